//! What `mattersync check` asks the directory before anything depends on it: the bases the
//! bind can see, whether the server offers syncrepl and lets the bind account use it, and
//! which subtrees the retro changelog keeps. Each question is its own call, so one failing
//! answer never hides the others.

use ldap3::controls::{MakeCritical, RawControl, RefreshMode, SyncRequest};
use ldap3::Scope;

use crate::dn::Dn;
use crate::error::DirectoryError;
use crate::ldap::LdapDirectory;
use crate::syncrepl::watch_base;

/// The retro changelog plugin's entry in 389-ds/FreeIPA's `cn=config`.
pub const RETRO_CHANGELOG_DN: &str = "cn=Retro Changelog Plugin,cn=plugins,cn=config";

/// What the retro changelog's configuration says, when the bind account may read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetroChangelog {
    /// `nsslapd-pluginEnabled: on`.
    pub enabled: bool,
    /// `nsslapd-include-suffix` values (none: every suffix).
    pub include: Vec<String>,
    /// `nsslapd-exclude-suffix` values.
    pub exclude: Vec<String>,
}

impl RetroChangelog {
    /// Whether changes under `dn` are kept (included, or nothing is listed, and not excluded).
    pub fn covers(&self, dn: &str) -> bool {
        let Ok(dn) = Dn::parse(dn) else {
            return false;
        };
        let under =
            |s: &String| Dn::parse(s).is_ok_and(|base| dn == base || dn.is_descendant_of(&base));
        self.enabled
            && (self.include.is_empty() || self.include.iter().any(under))
            && !self.exclude.iter().any(under)
    }
}

impl LdapDirectory {
    /// `Ok` when the bind sees `base` (an ACI that hides it makes searches look empty).
    pub async fn base_visible(&mut self, what: &str, base: &str) -> Result<(), DirectoryError> {
        self.check_readable(what, base).await
    }

    /// Starts a `refreshOnly` sync over the watched subtree for an entry that cannot
    /// exist: `Ok` when the server accepts the Sync Request control from the bind account,
    /// the server's refusal otherwise (12: not offered, 50: no ACI on the control).
    pub async fn sync_permitted(&mut self) -> Result<(), DirectoryError> {
        let base = watch_base(self.config())?;
        let filter = "(cn=mattersync-preflight-no-such-entry)";
        let op = format!("sync request (refreshOnly) under {base:?}");
        let ctrl: RawControl = SyncRequest {
            mode: RefreshMode::RefreshOnly,
            cookie: None,
            reload_hint: false,
        }
        .critical()
        .into();
        let timeout = self.config().timeout();
        let answer = self
            .handle()
            .with_controls(vec![ctrl])
            .with_timeout(timeout)
            .search(&base, Scope::Subtree, filter, vec!["1.1"])
            .await;
        match answer {
            Ok(r) => match r.success() {
                Ok(_) => Ok(()),
                Err(e) => Err(self.op_error(&op, e)),
            },
            Err(e) => Err(self.op_error(&op, e)),
        }
    }

    /// The retro changelog's configuration; `Ok(None)` when the bind account cannot read
    /// `cn=config` (the usual case for a least-privilege account) or there is no such plugin.
    pub async fn retro_changelog(&mut self) -> Result<Option<RetroChangelog>, DirectoryError> {
        let attrs = [
            "nsslapd-pluginEnabled",
            "nsslapd-include-suffix",
            "nsslapd-exclude-suffix",
        ]
        .map(String::from);
        let found = self
            .search(
                RETRO_CHANGELOG_DN,
                Scope::Base,
                "(objectClass=*)",
                &attrs,
                false,
            )
            .await;
        let entries = match found {
            Ok(e) => e,
            // No such entry, or not allowed to look: both mean "cannot tell".
            Err(DirectoryError::Operation { rc: 32 | 50, .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(e) = entries.first() else {
            return Ok(None);
        };
        Ok(Some(RetroChangelog {
            enabled: e
                .first("nsslapd-pluginEnabled")?
                .is_some_and(|v| v.eq_ignore_ascii_case("on")),
            include: e.strings("nsslapd-include-suffix")?,
            exclude: e.strings("nsslapd-exclude-suffix")?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_retro_changelog_covers_what_it_includes_and_not_what_it_excludes() {
        let rc = RetroChangelog {
            enabled: true,
            include: vec!["cn=accounts,dc=example,dc=org".into()],
            exclude: vec!["cn=staged,cn=accounts,dc=example,dc=org".into()],
        };
        assert!(rc.covers("cn=users,cn=accounts,dc=example,dc=org"));
        assert!(rc.covers("CN=Accounts,DC=example,DC=org"));
        assert!(!rc.covers("cn=etc,dc=example,dc=org"));
        assert!(!rc.covers("cn=x,cn=staged,cn=accounts,dc=example,dc=org"));
        let all = RetroChangelog {
            enabled: true,
            include: vec![],
            exclude: vec![],
        };
        assert!(all.covers("cn=users,cn=accounts,dc=example,dc=org"));
        let off = RetroChangelog {
            enabled: false,
            ..all
        };
        assert!(!off.covers("cn=users,cn=accounts,dc=example,dc=org"));
    }
}
