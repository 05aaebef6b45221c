//! How to reach and read the directory. The defaults are FreeIPA's (RAS): only `uri` and
//! `base_dn` are needed there. Any LDAPv3 directory with `groupOfNames`/`member` groups
//! works by changing the attribute names and bases.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::dn::Dn;
use crate::error::DirectoryError;

/// The bind password's type: `Debug` prints `***`, no `Display`, no `Serialize`.
pub use mattersync_core::Secret;

/// The `[directory]` settings for LDAP access. `Serialize` (for `config show`) leaves the
/// password out.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LdapConfig {
    /// `ldaps://host[:port]`, `ldap://host[:port]` (with `starttls`, or plain on loopback)
    /// or `ldapi://<percent-encoded socket path>`.
    pub uri: String,
    /// Simple bind DN; `None` binds anonymously.
    #[serde(default)]
    pub bind_dn: Option<String>,
    /// The bind password. Prefer `bind_password_file`.
    #[serde(default, skip_serializing)]
    pub bind_password: Option<Secret>,
    /// A file holding the bind password (one trailing newline is ignored).
    #[serde(default)]
    pub bind_password_file: Option<PathBuf>,
    /// The suffix, e.g. `dc=rockylinux,dc=org`.
    pub base_dn: String,
    /// Where users live; default `cn=users,cn=accounts,<base_dn>`.
    #[serde(default)]
    pub user_base: Option<String>,
    /// Where groups live; default `cn=groups,cn=accounts,<base_dn>`.
    #[serde(default)]
    pub group_base: Option<String>,
    /// Which groups are synced (searched under `group_base`).
    #[serde(default = "default_group_filter")]
    pub group_filter: String,
    /// Group attribute holding member DNs (users and groups).
    #[serde(default = "default_member_attr")]
    pub member_attr: String,
    /// Group attribute holding manager DNs (users and groups).
    #[serde(default = "default_manager_attr")]
    pub manager_attr: String,
    /// User attribute that names a user (the key in the snapshot).
    #[serde(default = "default_user_id_attr")]
    pub user_id_attr: String,
    /// Group attribute with the stable id; `nsUniqueId` and `entryUUID` are the fallbacks.
    #[serde(default = "default_group_id_attr")]
    pub group_id_attr: String,
    #[serde(default = "default_email_attr")]
    pub email_attr: String,
    /// User attribute whose value Mattermost keeps in `auth_data`; `None`: the user id.
    #[serde(default)]
    pub auth_id_attr: Option<String>,
    /// User attribute that is `TRUE` for a disabled account.
    #[serde(default = "default_disabled_attr")]
    pub disabled_attr: String,
    /// PEM file with the CA certificate(s) to trust for ldaps/StartTLS; default: the
    /// system's trust store.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Upgrade an `ldap://` connection with StartTLS.
    #[serde(default)]
    pub starttls: bool,
    /// Do not verify the server's certificate. Logs a warning on every connect.
    #[serde(default)]
    pub insecure: bool,
    /// Time limit for connecting and for each directory operation, in seconds.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Entries per page of a paged search (RFC 2696).
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Most entries one search may return (sent as the search's size limit); a search that
    /// would return more fails instead of returning part. 0: only the server's limits.
    #[serde(default)]
    pub size_limit: u32,
}

fn default_group_filter() -> String {
    "(&(objectClass=fasGroup)(cn=mm_*))".into()
}
fn default_member_attr() -> String {
    "member".into()
}
fn default_manager_attr() -> String {
    "memberManager".into()
}
fn default_user_id_attr() -> String {
    "uid".into()
}
fn default_group_id_attr() -> String {
    "ipaUniqueID".into()
}
fn default_email_attr() -> String {
    "mail".into()
}
fn default_disabled_attr() -> String {
    "nsAccountLock".into()
}
fn default_timeout_secs() -> u64 {
    30
}
fn default_page_size() -> u32 {
    500
}

impl LdapConfig {
    /// FreeIPA defaults for a server and suffix, anonymous until `bind_dn` is set.
    pub fn new(uri: impl Into<String>, base_dn: impl Into<String>) -> LdapConfig {
        LdapConfig {
            uri: uri.into(),
            bind_dn: None,
            bind_password: None,
            bind_password_file: None,
            base_dn: base_dn.into(),
            user_base: None,
            group_base: None,
            group_filter: default_group_filter(),
            member_attr: default_member_attr(),
            manager_attr: default_manager_attr(),
            user_id_attr: default_user_id_attr(),
            group_id_attr: default_group_id_attr(),
            email_attr: default_email_attr(),
            auth_id_attr: None,
            disabled_attr: default_disabled_attr(),
            ca_file: None,
            starttls: false,
            insecure: false,
            timeout_secs: default_timeout_secs(),
            page_size: default_page_size(),
            size_limit: 0,
        }
    }

    /// `user_base`, or `cn=users,cn=accounts,<base_dn>`.
    pub fn user_base(&self) -> String {
        match &self.user_base {
            Some(b) => b.clone(),
            None => format!("cn=users,cn=accounts,{}", self.base_dn),
        }
    }

    /// `group_base`, or `cn=groups,cn=accounts,<base_dn>`.
    pub fn group_base(&self) -> String {
        match &self.group_base {
            Some(b) => b.clone(),
            None => format!("cn=groups,cn=accounts,{}", self.base_dn),
        }
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    /// Check everything that can be checked without the network.
    pub fn validate(&self) -> Result<(), DirectoryError> {
        let bad = |m: String| Err(DirectoryError::Config(m));
        let scheme = uri_scheme(&self.uri);
        match scheme.as_deref() {
            Some("ldap") | Some("ldaps") | Some("ldapi") => {}
            _ => {
                return bad(format!(
                    "uri {:?} must start with ldaps://, ldap:// or ldapi://",
                    self.uri
                ))
            }
        }
        if self.starttls && scheme.as_deref() != Some("ldap") {
            return bad(format!(
                "starttls needs an ldap:// uri, not {:?} (ldaps:// is TLS already)",
                self.uri
            ));
        }
        for (name, dn) in [
            ("base_dn", self.base_dn.clone()),
            ("user_base", self.user_base()),
            ("group_base", self.group_base()),
        ] {
            match Dn::parse(&dn) {
                Ok(d) if d.is_root() => return bad(format!("{name} is empty")),
                Ok(_) => {}
                Err(e) => return bad(format!("{name}: {e}")),
            }
        }
        if let Some(b) = &self.bind_dn {
            if let Err(e) = Dn::parse(b) {
                return bad(format!("bind_dn: {e}"));
            }
            if self.bind_password.is_none() && self.bind_password_file.is_none() {
                return bad(
                    "bind_dn is set but neither bind_password nor bind_password_file is".into(),
                );
            }
        }
        if self.bind_password.is_some() && self.bind_password_file.is_some() {
            return bad("set bind_password or bind_password_file, not both".into());
        }
        if let Err(m) = crate::filter::validate(&self.group_filter) {
            return bad(format!("group_filter: {m}"));
        }
        for (name, attr) in [
            ("member_attr", &self.member_attr),
            ("manager_attr", &self.manager_attr),
            ("user_id_attr", &self.user_id_attr),
            ("group_id_attr", &self.group_id_attr),
            ("email_attr", &self.email_attr),
            ("disabled_attr", &self.disabled_attr),
        ]
        .into_iter()
        .chain(self.auth_id_attr.iter().map(|a| ("auth_id_attr", a)))
        {
            if !is_attr_name(attr) {
                return bad(format!("{name} {attr:?} is not an attribute name"));
            }
        }
        if self.timeout_secs == 0 {
            return bad("timeout_secs must be at least 1".into());
        }
        if self.page_size == 0 || self.page_size > i32::MAX as u32 {
            return bad("page_size must be between 1 and 2147483647".into());
        }
        if self.size_limit > i32::MAX as u32 {
            return bad("size_limit must be at most 2147483647".into());
        }
        Ok(())
    }
}

/// `ldaps` of `ldaps://host`, lowercased.
pub(crate) fn uri_scheme(uri: &str) -> Option<String> {
    uri.split_once("://").map(|(s, _)| s.to_ascii_lowercase())
}

/// The host of an `ldap(s)://host:port/...` uri (brackets of an IPv6 literal removed).
pub(crate) fn uri_host(uri: &str) -> Option<String> {
    let rest = uri.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split_once(']')?.0
    } else {
        authority.split(':').next()?
    };
    Some(host.to_string())
}

pub(crate) fn is_loopback_host(host: &str) -> bool {
    if host.is_empty() || host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

fn is_attr_name(a: &str) -> bool {
    let mut chars = a.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() => chars.all(|c| c.is_ascii_alphanumeric() || c == '-'),
        Some(c) if c.is_ascii_digit() => a
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freeipa_defaults_need_only_uri_and_base() {
        let cfg: LdapConfig = match toml::from_str(
            r#"
            uri = "ldaps://ipa.rockylinux.org"
            base_dn = "dc=rockylinux,dc=org"
            "#,
        ) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(
            cfg,
            LdapConfig::new("ldaps://ipa.rockylinux.org", "dc=rockylinux,dc=org")
        );
        assert_eq!(cfg.user_base(), "cn=users,cn=accounts,dc=rockylinux,dc=org");
        assert_eq!(
            cfg.group_base(),
            "cn=groups,cn=accounts,dc=rockylinux,dc=org"
        );
        assert_eq!(cfg.group_filter, "(&(objectClass=fasGroup)(cn=mm_*))");
        assert_eq!(cfg.member_attr, "member");
        assert_eq!(cfg.manager_attr, "memberManager");
        assert_eq!(cfg.user_id_attr, "uid");
        assert_eq!(cfg.group_id_attr, "ipaUniqueID");
        assert_eq!(cfg.email_attr, "mail");
        assert_eq!(cfg.auth_id_attr, None);
        assert_eq!(cfg.disabled_attr, "nsAccountLock");
        assert_eq!(
            (cfg.timeout_secs, cfg.page_size, cfg.size_limit),
            (30, 500, 0)
        );
        assert!(!cfg.starttls && !cfg.insecure && cfg.ca_file.is_none());
        assert!(cfg.validate().is_ok());
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let r: Result<LdapConfig, _> = toml::from_str(
            r#"
            uri = "ldaps://ipa"
            base_dn = "dc=x"
            group_filtr = "(cn=*)"
            "#,
        );
        assert!(r.is_err_and(|e| e.to_string().contains("group_filtr")));
    }

    #[test]
    fn the_password_never_shows_in_debug_output() {
        let mut cfg = LdapConfig::new("ldaps://ipa", "dc=x");
        cfg.bind_dn = Some("uid=mattersync,cn=sysaccounts,cn=etc,dc=x".into());
        cfg.bind_password = Some(Secret::new("hunter2-very-secret"));
        let dbg = format!("{cfg:?} {:?}", cfg.bind_password);
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(dbg.contains("***"));
        let from_toml: LdapConfig = match toml::from_str(
            "uri = \"ldaps://ipa\"\nbase_dn = \"dc=x\"\nbind_password = \"s3cret\"\n",
        ) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(
            from_toml.bind_password.as_ref().map(Secret::expose),
            Some("s3cret")
        );
        assert!(!format!("{from_toml:?}").contains("s3cret"));
    }

    #[test]
    fn validate_catches_mistakes_before_connecting() {
        let ok = LdapConfig::new("ldap://127.0.0.1:3389", "dc=rockylinux,dc=org");
        assert!(ok.validate().is_ok());
        type Change = fn(&mut LdapConfig);
        let cases: [(Change, &str); 12] = [
            (|c| c.uri = "http://x".into(), "uri"),
            (
                |c| {
                    c.uri = "ldaps://x".into();
                    c.starttls = true;
                },
                "starttls",
            ),
            (|c| c.base_dn = "not a dn".into(), "base_dn"),
            (|c| c.base_dn = String::new(), "base_dn"),
            (|c| c.group_base = Some("cn=a,".into()), "group_base"),
            (|c| c.group_filter = "(cn=mm_*".into(), "group_filter"),
            (|c| c.member_attr = "mem ber".into(), "member_attr"),
            (|c| c.auth_id_attr = Some("x(".into()), "auth_id_attr"),
            (|c| c.timeout_secs = 0, "timeout_secs"),
            (|c| c.page_size = 0, "page_size"),
            (|c| c.bind_dn = Some("uid=x,dc=y".into()), "bind_password"),
            (
                |c| {
                    c.bind_password = Some(Secret::new("a"));
                    c.bind_password_file = Some("/x".into());
                },
                "not both",
            ),
        ];
        for (change, needle) in cases {
            let mut c = ok.clone();
            change(&mut c);
            match c.validate() {
                Err(e) => assert!(e.to_string().contains(needle), "{needle}: {e}"),
                Ok(()) => panic!("{needle}: should fail"),
            }
        }
        let mut ldaps = ok.clone();
        ldaps.uri = "ldaps://ipa.rockylinux.org".into();
        assert!(ldaps.validate().is_ok());
    }

    #[test]
    fn uri_hosts_and_loopback() {
        assert_eq!(
            uri_host("ldap://127.0.0.1:3389").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(
            uri_host("ldaps://ipa.rockylinux.org").as_deref(),
            Some("ipa.rockylinux.org")
        );
        assert_eq!(uri_host("ldap://[::1]:389/").as_deref(), Some("::1"));
        assert_eq!(
            uri_host("ldap://localhost/dc=x?uid").as_deref(),
            Some("localhost")
        );
        assert!(is_loopback_host("127.0.0.1"));
        assert!(is_loopback_host("127.8.9.1"));
        assert!(is_loopback_host("::1"));
        assert!(is_loopback_host("LOCALHOST"));
        assert!(!is_loopback_host("ipa.rockylinux.org"));
        assert!(!is_loopback_host("10.0.0.1"));
    }
}
