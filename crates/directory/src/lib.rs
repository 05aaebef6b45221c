//! The directory adapter of mattersync: reads FreeIPA/RAS (or any LDAPv3 directory with
//! `groupOfNames`/`member` groups) into a [`Directory`](mattersync_core::Directory).
//!
//! ```no_run
//! # async fn run() -> Result<(), mattersync_directory::DirectoryError> {
//! use mattersync_directory::{LdapConfig, LdapDirectory};
//! let mut cfg = LdapConfig::new("ldaps://ipa.rockylinux.org", "dc=rockylinux,dc=org");
//! cfg.bind_dn = Some("uid=mattersync,cn=sysaccounts,cn=etc,dc=rockylinux,dc=org".into());
//! cfg.bind_password_file = Some("/etc/mattersync/ldap.password".into());
//! let mut dir = LdapDirectory::connect(&cfg).await?;
//! let snapshot = dir.snapshot().await?;
//! let members = snapshot.effective_members("mm_rl_infra");
//! # let _ = members; Ok(()) }
//! ```
//!
//! Invariant: **fail closed.** A snapshot is complete or it is an error. Every non-success
//! result code on any page, a referral, a timeout, a dropped connection, a base the bind
//! cannot see, a malformed entry: all are a [`DirectoryError`], never a partial `Directory`.
//!
//! Invariant: every value put into a filter goes through [`escape_filter_value`], every value
//! put into a DN through [`escape_dn_value`]; DNs are compared parsed ([`Dn`]), never as
//! strings.
//!
//! Invariant: the bind password is only ever in a [`Secret`] and is never logged.

pub mod config;
pub mod dn;
pub mod error;
pub mod filter;
mod ldap;
pub mod model;
pub mod preflight;
mod snapshot;
pub mod syncrepl;
pub mod write;

pub use config::{LdapConfig, Secret};
pub use dn::{escape_dn_value, Dn, DnError};
pub use error::{result_code_name, DirectoryError};
pub use filter::escape_filter_value;
pub use ldap::LdapDirectory;
pub use model::{DirModel, Refreshed};
pub use write::{GroupEntry, GroupUpdate, IdSource, NewGroup, Schema, UserEntry, WriteError};
