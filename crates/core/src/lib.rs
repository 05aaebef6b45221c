//! The core of mattersync: the model of both sides, the naming template, the link policy and
//! the pure planner that turns desired and actual state into a [`Plan`].
//!
//! It also holds [`Secret`], the one type every adapter keeps a password or token in.
//!
//! Invariant: nothing in this crate does I/O, reads a clock or draws random numbers. The same
//! input always gives the same plan, byte for byte. (The one exception is
//! [`Secret::from_file`], a convenience for the adapters that nothing in this crate calls.)

pub mod explain;
pub mod group_spec;
pub mod identity;
pub mod intent;
pub mod kept;
pub mod model;
pub mod naming;
pub mod plan;
pub mod planner;
pub mod policy;
pub mod scope;
pub mod secret;

pub use identity::{ChannelInfo, LinkIdentity, LinkIssue, TeamInfo};
pub use intent::{Intent, IntentKind, ScopeKind, Settlement};
pub use model::{
    ChannelMember, DirGroup, DirUser, Directory, LedgerFacts, Mattermost, MmChannel, MmTeam,
    MmUser, Origin, Record, RecordState,
};
pub use naming::{GroupName, NameError, Naming};
pub use plan::{Action, ChannelRef, GuardTrip, Note, Plan, PlanMember, SavedPlanError, UserRef};
pub use planner::{account_matches, plan, PlanInput};
pub use policy::{Admins, Guards, Link, LinkSource, Matching, Mode, Policy, Readd, Target};
pub use secret::Secret;
