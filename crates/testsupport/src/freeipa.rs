//! The live FreeIPA test server (`scripts/freeipa.sh`, FreeIPA 4.12.4's own server framework
//! over a 389-ds instance of its own): its connection details from `.local/servers.env`
//! (`MATTERSYNC_IPA_*`) and an [`IpaSandbox`] per test — users and `mm_<area>_*` groups made
//! through the JSON-RPC API as the server's `admin` and deleted again afterwards.

use crate::Servers;
use mattersync_freeipa::{IpaClient, IpaConfig, Secret};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};

/// Reads a password file (no trailing newline is part of the password).
pub fn read_secret(path: &str) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
        .trim_end_matches(['\r', '\n'])
        .to_string()
}

/// The FreeIPA test server's connection details.
#[derive(Debug, Clone)]
pub struct Ipa {
    pub servers: Servers,
}

impl Ipa {
    pub fn get(&self, key: &str) -> String {
        self.servers.get(key)
    }

    /// `https://127.0.0.1:8443`.
    pub fn url(&self) -> String {
        self.get("MATTERSYNC_IPA_URL")
    }

    /// The test CA's certificate (PEM) that signed the server's.
    pub fn ca_file(&self) -> PathBuf {
        PathBuf::from(self.get("MATTERSYNC_IPA_CA_FILE"))
    }

    /// The password file of one of the seed's accounts: `admin`, `mattersync-admin` (the
    /// delegated role), `nobody-special` (no role), `neil` (a member manager), or `member`
    /// (every other seed user).
    pub fn password_file(&self, account: &str) -> PathBuf {
        self.ca_file().with_file_name(format!("{account}.password"))
    }

    pub fn password(&self, account: &str) -> String {
        read_secret(&self.password_file(account).display().to_string())
    }

    /// A client for `user` (password from `password_file(account)`), trusting the test CA.
    pub fn client(&self, user: &str, account: &str) -> IpaClient {
        let mut c = IpaConfig::new(self.url(), user, Secret::new(self.password(account)));
        c.ca_file = Some(self.ca_file());
        IpaClient::new(c).expect("FreeIPA client")
    }

    /// POST to a test control of the server (`/ipa/_test/<what>`):
    /// `expire_sessions?user=U`, `cut_after?method=M&arg=GROUP`.
    pub async fn control(&self, what: &str) -> String {
        let url = format!("{}/{what}", self.get("MATTERSYNC_IPA_CONTROL_URL"));
        let pem = std::fs::read(self.ca_file()).expect("read the test CA");
        let ca = reqwest::Certificate::from_pem(&pem).expect("the test CA");
        let http = reqwest::Client::builder()
            .add_root_certificate(ca)
            .build()
            .expect("http client");
        let resp = http
            .post(&url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        assert!(resp.status().is_success(), "{url}: {}", resp.status());
        resp.text().await.unwrap_or_default().trim().to_string()
    }
}

/// The FreeIPA test server, after checking that it answers a login. A test that needs it
/// and cannot reach it fails here, saying how to start it.
pub async fn ipa_or_fail(test: &str) -> Ipa {
    const START: &str = "start it with scripts/servers.sh up (or scripts/freeipa.sh up)";
    let Some(servers) = Servers::load() else {
        panic!(
            "{test} needs the FreeIPA test server: no {} ({START})",
            Servers::env_file().display()
        );
    };
    if !servers.vars.contains_key("MATTERSYNC_IPA_URL") {
        panic!(
            "{test} needs the FreeIPA test server: no MATTERSYNC_IPA_URL in {} ({START})",
            Servers::env_file().display()
        );
    }
    let ipa = Ipa { servers };
    if let Err(e) = ipa.client("admin", "admin").login().await {
        panic!("{test} needs the FreeIPA test server, which does not answer: {e} ({START})");
    }
    ipa
}

/// One test's own users and groups on the FreeIPA test server.
pub struct IpaSandbox {
    pub ipa: Ipa,
    /// `i` + 8 hex digits: the area of the groups and the prefix of the users.
    pub area: String,
    pub admin: IpaClient,
    pub dir: tempfile::TempDir,
    users: std::sync::Mutex<Vec<String>>,
    groups: std::sync::Mutex<Vec<String>>,
}

impl Drop for IpaSandbox {
    fn drop(&mut self) {
        let users: Vec<String> = self
            .users
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default();
        let groups: Vec<String> = self
            .groups
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default();
        let ipa = self.ipa.clone();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                let admin = ipa.client("admin", "admin");
                for g in groups.iter().rev() {
                    let _ = admin.call("group_del", vec![json!(g)], Map::new()).await;
                }
                for u in users.iter().rev() {
                    let _ = admin.call("user_del", vec![json!(u)], Map::new()).await;
                }
            });
        })
        .join();
    }
}

fn opts(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

impl IpaSandbox {
    pub async fn new(test: &str) -> IpaSandbox {
        let ipa = ipa_or_fail(test).await;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let admin = ipa.client("admin", "admin");
        IpaSandbox {
            area: format!("i{}", &id[..8]),
            admin,
            ipa,
            dir: tempfile::tempdir().expect("tempdir"),
            users: std::sync::Mutex::new(Vec::new()),
            groups: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// `mm_<area>_<name>`, remembered for the clean-up.
    pub fn group(&self, name: &str) -> String {
        let cn = format!("mm_{}_{}", self.area, name);
        self.track_group(&cn);
        cn
    }

    pub fn track_group(&self, cn: &str) {
        if let Ok(mut v) = self.groups.lock() {
            if !v.iter().any(|g| g == cn) {
                v.push(cn.to_string());
            }
        }
    }

    /// A FAS user `<area>.<name>` made with `user_add` (+ objectClass fasUser), as the
    /// server's admin.
    pub async fn user(&self, name: &str) -> String {
        let uid = format!("{}.{name}", self.area);
        self.admin
            .call(
                "user_add",
                vec![json!(uid)],
                opts(
                    json!({"givenname": name, "sn": "Test", "mail": format!("{uid}@example.org")}),
                ),
            )
            .await
            .unwrap_or_else(|e| panic!("user_add {uid}: {e}"));
        if let Ok(mut v) = self.users.lock() {
            v.push(uid.clone());
        }
        self.admin
            .call(
                "user_mod",
                vec![json!(uid)],
                opts(json!({"addattr": ["objectclass=fasuser"]})),
            )
            .await
            .unwrap_or_else(|e| panic!("user_mod {uid}: {e}"));
        uid
    }

    /// A group made as the admin: `group_add` (non-POSIX, FAS unless `fas` is false), then
    /// members and managers.
    pub async fn make_group(
        &self,
        name: &str,
        fas: bool,
        users: &[&str],
        managers: &[&str],
    ) -> String {
        let cn = self.group(name);
        let mut o = json!({"description": "test group", "nonposix": true});
        if fas {
            o["fasgroup"] = json!(true);
        }
        self.admin
            .call("group_add", vec![json!(cn)], opts(o))
            .await
            .unwrap_or_else(|e| panic!("group_add {cn}: {e}"));
        if !users.is_empty() {
            self.admin
                .call(
                    "group_add_member",
                    vec![json!(cn)],
                    opts(json!({"user": users})),
                )
                .await
                .unwrap_or_else(|e| panic!("group_add_member {cn}: {e}"));
        }
        if !managers.is_empty() {
            self.admin
                .call(
                    "group_add_member_manager",
                    vec![json!(cn)],
                    opts(json!({"user": managers})),
                )
                .await
                .unwrap_or_else(|e| panic!("group_add_member_manager {cn}: {e}"));
        }
        cn
    }

    /// Makes the seed's FAS agreement (FPCA) required, or no longer required, for `cn`
    /// (as Directory Manager: freeipa-fas manages agreements with commands of its own,
    /// which the test server's minimal plugin does not have).
    pub async fn require_agreement(&self, cn: &str, on: bool) {
        use ldap3::{LdapConnAsync, Mod};
        use std::collections::HashSet;
        let base = self.ipa.get("MATTERSYNC_IPA_LDAP_BASE_DN");
        let (conn, mut ldap) = LdapConnAsync::new(&self.ipa.get("MATTERSYNC_IPA_LDAP_URL"))
            .await
            .expect("connect to the FreeIPA test server's LDAP");
        ldap3::drive!(conn);
        ldap.simple_bind(
            "cn=Directory Manager",
            &read_secret(&self.ipa.get("MATTERSYNC_IPA_DM_PASSWORD_FILE")),
        )
        .await
        .and_then(|r| r.success())
        .expect("bind as Directory Manager");
        let group = format!("cn={cn},cn=groups,cn=accounts,{base}");
        let values: HashSet<String> = [group].into();
        let m = if on {
            Mod::Add("seeAlso".to_string(), values)
        } else {
            Mod::Delete("seeAlso".to_string(), values)
        };
        ldap.modify(&format!("cn=FPCA,cn=fasagreements,{base}"), vec![m])
            .await
            .and_then(|r| r.success())
            .unwrap_or_else(|e| panic!("FPCA for {cn}: {e}"));
        let _ = ldap.unbind().await;
    }

    /// `group_show --all` as the admin; `None` when there is no such group.
    pub async fn show(&self, cn: &str) -> Option<Value> {
        match self
            .admin
            .call("group_show", vec![json!(cn)], opts(json!({"all": true})))
            .await
        {
            Ok(v) => Some(v["result"].clone()),
            Err(e) if e.is_not_found() => None,
            Err(e) => panic!("group_show {cn}: {e}"),
        }
    }

    /// A mattersync config whose group commands write through the FreeIPA test server's
    /// JSON-RPC API as `user` (password in `password_file`) and read over LDAP as the
    /// seed's system account (`uid=mattersync,cn=sysaccounts,cn=etc`) under FreeIPA's own
    /// ACIs. `freeipa_extra` is added to `[directory.freeipa]` (e.g. a `ca_file` line; the
    /// test CA is the default).
    pub fn config(&self, user: &str, password_file: &Path, freeipa_extra: Option<&str>) -> PathBuf {
        let ipa = &self.ipa;
        let freeipa = freeipa_extra
            .map(str::to_string)
            .unwrap_or_else(|| format!("ca_file = \"{}\"", ipa.ca_file().display()));
        let text = format!(
            r#"[directory]
kind = "freeipa"
uri = "{uri}"
bind_dn = "{bind}"
bind_password_file = "{bindpw}"
base_dn = "{base}"
group_filter = "(&(objectClass=fasGroup)(cn=mm_{area}_*))"
timeout_secs = 10

[directory.freeipa]
url = "{url}"
user = "{user}"
password_file = "{pw}"
{freeipa}

[areas]
{area} = "{area}"

[mattermost]
url = "{mm}"
token_file = "{token}"
# Test accounts have passwords, not an auth service: match by username, explicitly.
match = {{ by = "username" }}

[ledger]
path = "{ledger}"
"#,
            uri = ipa.get("MATTERSYNC_IPA_LDAP_URL"),
            bind = ipa.get("MATTERSYNC_IPA_SYSACCOUNT_DN"),
            bindpw = ipa.get("MATTERSYNC_IPA_SYSACCOUNT_PASSWORD_FILE"),
            base = ipa.get("MATTERSYNC_IPA_LDAP_BASE_DN"),
            area = self.area,
            url = ipa.url(),
            pw = password_file.display(),
            mm = ipa.get("MATTERSYNC_MM_URL"),
            token = ipa.get("MATTERSYNC_MM_TOKEN_FILE"),
            ledger = self.dir.path().join("ledger.db").display(),
        );
        let path = self.dir.path().join(format!("config-{user}.toml"));
        std::fs::write(&path, text).expect("write config");
        path
    }
}
