//! Shared by the integration tests: the real 389-ds (from `.local/dirsrv.env`) and a mock.
#![allow(dead_code)]

pub mod mock;
pub mod sandbox;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mattersync_directory::LdapConfig;

/// Connection details written by `scripts/dirsrv.sh up`.
#[derive(Debug, Clone)]
pub struct Dirsrv {
    pub url: String,
    pub ldaps_url: String,
    pub bind_dn: String,
    pub password_file: PathBuf,
    pub base_dn: String,
    pub ca_file: PathBuf,
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn env_file() -> PathBuf {
    std::env::var_os("MATTERSYNC_SERVERS_ENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".local/dirsrv.env"))
}

fn parse_env(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            (k.trim().to_string(), v.to_string())
        })
        .collect()
}

/// The real 389-ds, after checking that it answers. A test that needs it and cannot reach it
/// fails here, saying why and how to start it.
pub fn dirsrv_or_fail(test: &str) -> Dirsrv {
    let path = env_file();
    let why = match std::fs::read_to_string(&path) {
        Err(_) => format!("no {}", path.display()),
        Ok(text) => {
            let vars = parse_env(&text);
            let get = |k: &str| vars.get(k).cloned().unwrap_or_default();
            let d = Dirsrv {
                url: get("MATTERSYNC_LDAP_URL"),
                ldaps_url: get("MATTERSYNC_LDAPS_URL"),
                bind_dn: get("MATTERSYNC_LDAP_BIND_DN"),
                password_file: PathBuf::from(get("MATTERSYNC_LDAP_PASSWORD_FILE")),
                base_dn: get("MATTERSYNC_LDAP_BASE_DN"),
                ca_file: PathBuf::from(get("MATTERSYNC_LDAP_CA_FILE")),
            };
            let hostport = d
                .url
                .trim_start_matches("ldap://")
                .trim_end_matches('/')
                .to_string();
            let answers = std::net::ToSocketAddrs::to_socket_addrs(&hostport)
                .ok()
                .and_then(|mut a| a.next())
                .is_some_and(|a| {
                    std::net::TcpStream::connect_timeout(&a, std::time::Duration::from_secs(2))
                        .is_ok()
                });
            if answers {
                return d;
            }
            format!("nothing answers on {}", d.url)
        }
    };
    panic!("{test} needs the real 389-ds: {why} (start the servers with scripts/servers.sh up)");
}

impl Dirsrv {
    /// FreeIPA defaults, bound as the test server's Directory Manager over plain LDAP.
    pub fn config(&self) -> LdapConfig {
        let mut c = LdapConfig::new(&self.url, &self.base_dn);
        c.bind_dn = Some(self.bind_dn.clone());
        c.bind_password_file = Some(self.password_file.clone());
        c.timeout_secs = 10;
        c
    }

    /// [`Dirsrv::config`] for the seed's areas only: other tests add their own
    /// mm_<area>_* groups to the shared directory at the same time (some deliberately
    /// malformed), which a snapshot with the FreeIPA default filter would read too. Still
    /// FAS groups only, as by default.
    pub fn seed_config(&self) -> LdapConfig {
        let mut c = self.config();
        c.group_filter = "(&(objectClass=fasGroup)(|(cn=mm_rl_*)(cn=mm_resf_*)))".to_string();
        c
    }

    pub fn password(&self) -> String {
        std::fs::read_to_string(&self.password_file)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", self.password_file.display()))
            .trim_end_matches(['\r', '\n'])
            .to_string()
    }

    pub fn user_base(&self) -> String {
        format!("cn=users,cn=accounts,{}", self.base_dn)
    }

    pub fn group_base(&self) -> String {
        format!("cn=groups,cn=accounts,{}", self.base_dn)
    }
}

/// A unique name for entries a test creates: `mattersync-dirtest-<pid>-<nanos>-<n>`.
pub fn unique(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("mattersync-dirtest-{}-{nanos}-{tag}", std::process::id())
}
