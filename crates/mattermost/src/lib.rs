//! mattersync's Mattermost adapter: REST API v4 reads (users, teams, channels, members,
//! the assembled [`mattersync_core::Mattermost`] state) and writes (memberships, channel
//! roles, the plan's [`mattersync_core::Action`]s), with retries and call counts.
//!
//! Invariant: only this crate knows Mattermost's wire JSON (`wire.rs`); everything it hands
//! out is a core model type or a small type of its own.
//!
//! Invariant: the token is sent in the `Authorization` header only, marked sensitive, and
//! never appears in a log line, an error or a `Debug` output.
//!
//! Resilience: 429 waits for `Retry-After` / `X-Ratelimit-Reset`; 5xx, timeouts and broken
//! connections are retried with capped exponential backoff and jitter (`max_retries`);
//! other 4xx are not retried. Every attempt is counted ([`Client::stats`]).

mod access;
mod client;
mod config;
mod error;
mod interact;
mod read;
mod stats;
mod wire;
mod write;

pub use access::ServerLimits;
pub use client::{Attempt, Client, Observer};
pub use config::{ClientConfig, Secret};
pub use error::{ApiError, MmError};
pub use interact::{is_id, trigger_user, Caller, Membership, SlashCommand, SlashCommandIn};
pub use read::{hides_auth_data, Channel, ServerVersion, Team, PER_PAGE, USER_BATCH};
pub use stats::ApiStats;
pub use write::{Outcome, UserOutcome, CHANNEL_BATCH, TEAM_BATCH};
