//! The mattersync engine: one sync run, owned in one place. The CLI (`plan`, `apply`,
//! `explain`), `serve`'s worker, `GET /plan` and the slash command's preview all run it
//! through these steps; none of them re-implements one.
//!
//! - [`config`]: the configuration file, typed (the adapters' own config types where they
//!   have one), with environment overrides and secret files;
//! - [`links`]: links from the file, the ledger and the naming convention;
//! - [`source`]: the two seams, [`DirectorySource`] and [`MattermostApi`], and the LDAP one;
//! - [`run`]: gather (read-only), settle (lock holder only), plan, [`verdict`] (the one
//!   guard decision), saved-plan checks, apply and record;
//! - [`hold`]: what a guard holds, summarised for people ([`HoldSummary`]);
//! - [`actor`]: who did something, as the audit trail names them;
//! - [`backoff`]: the one retry policy of the service.

pub mod actor;
pub mod backoff;
pub mod config;
pub mod fault;
pub mod hold;
pub mod identity;
pub mod kept;
pub mod ledger;
pub mod links;
pub mod run;
pub mod source;

pub use config::Config;
pub use hold::{HeldCause, HeldChange, HeldScope, HoldSummary};
pub use identity::{record_identities, Identified, TargetCache};
pub use kept::{finish_kept, gather_kept, kept_facts, Kept, KeptReads};
pub use ledger::{
    instance_name, ledger_name, ledger_target, open_ledger, open_ledger_read_only, run_lock,
};
pub use links::{resolve_links, source_name};
pub use run::{
    apply, changes_of, check_saved, describe_trips, gather, gather_selected, held_fingerprint,
    ldap_config, links_now, mattermost_client, read_all, record_hold, settle, verdict, ApplyReport,
    Approval, Change, LedgerView, Linked, SavedPlanMismatch, State, Verdict,
};
pub use source::{DirectorySource, Ldap, MattermostApi};
