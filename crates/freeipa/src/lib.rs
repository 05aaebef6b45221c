//! mattersync's FreeIPA JSON-RPC client: what `mattersync group …` needs to create and manage
//! `mm_<area>_<name>` groups the way the SOP's `adhoc-ipagroup.yml` does — session login,
//! `group_add`, `group_mod` (`fasgroup`, description, `posix`), `group_show`,
//! `group_add_member_manager` / `group_remove_member_manager` and
//! `group_add_member` / `group_remove_member`.
//!
//! ```no_run
//! # async fn run() -> Result<(), mattersync_freeipa::IpaError> {
//! use mattersync_freeipa::{IpaClient, IpaConfig, Secret};
//! let ipa = IpaClient::new(IpaConfig::new(
//!     "https://ipa.rockylinux.org",
//!     "mattersync-admin",
//!     Secret::new("from a file, never argv"),
//! ))?;
//! ipa.group_add("mm_rl_infra", &mattersync_freeipa::GroupAdd {
//!     description: "Rocky Linux infrastructure team".into(),
//!     nonposix: true,
//!     gidnumber: None,
//! }).await?;
//! ipa.group_mod("mm_rl_infra", &mattersync_freeipa::GroupMod::fasgroup()).await?;
//! let out = ipa.group_add_member_manager("mm_rl_infra", &["neil".into()], &[]).await?;
//! assert!(out.failed.is_empty());
//! # Ok(()) }
//! ```
//!
//! The wire format follows FreeIPA's API documentation (`doc/api/*.md` and the JSON-RPC
//! usage guide in freeipa/freeipa): a request is `{"method": "<name>/1", "params": [[args],
//! {options}], "id": n}` POSTed to `/ipa/session/json` with the session cookie from
//! `/ipa/session/login_password` and a `Referer` of `<server>/ipa`; an answer is
//! `{"result", "error", "id", "principal"}` with `error = {code, message, data, name}`.
//! Member calls answer `{completed, failed, result}` and report per-member failures in
//! `failed`, not as an error: [`MemberOutcome`] keeps them apart from "already a member".
//!
//! Proven against a live FreeIPA 4.12.4 (FreeIPA's own server framework, which
//! `scripts/freeipa.sh` runs): `crates/mattersync/tests/real_freeipa.rs`. The
//! fixtures in `tests/fixtures/` hold answers recorded from that server. What the live
//! server showed: answers carry `version` (the server's, "4.12.4") and, when the request
//! names no API version, a `VersionMissing` (13001) message naming the server's (2.254);
//! `group_mod` and the member calls answer without `objectclass`, `ipauniqueid` or
//! `fasgroup` (only `group_show` says `"fasgroup": true`); an unknown member is
//! `[name, "no matching entry found"]`.
//!
//! Invariant: the password is only in a [`Secret`], sent once per session in the login form
//! body, and never appears in an error, a log line or `Debug` output.

mod client;
mod config;
mod error;
#[cfg(feature = "fake")]
pub mod fake;
mod group;

pub use client::IpaClient;
pub use config::{IpaConfig, Secret};
pub use error::{codes, IpaError};
pub use group::{
    GroupAdd, GroupMod, IpaGroup, MemberFailure, MemberKind, MemberOutcome, MemberRef, Modified,
};
