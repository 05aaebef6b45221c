//! What mattersync's integration tests share: the connection details of the real servers
//! (`.local/servers.env`, written by `scripts/servers.sh up`), the rule for tests that need
//! them, and a [`Sandbox`] that gives each test its own area, team, channels, directory users
//! and groups, so tests run in parallel without seeing each other's changes.
//!
//! The rule: a test that needs the real servers is marked
//! `#[ignore = "needs the real servers (scripts/test.sh runs it)"]` (always this reason), so
//! a plain `cargo test` lists it as ignored instead of passing it. `scripts/test.sh` starts
//! the servers and runs the suite with `--include-ignored`; a test that runs and cannot reach
//! a server fails ([`servers_or_fail`]), saying which one and how to start it. It never
//! passes without having run.

pub mod freeipa;
pub mod proxy;
pub mod restart;

/// The LDAP client the sandbox uses, for tests that change the directory in other ways.
pub use ldap3;

use ldap3::{LdapConnAsync, Mod};
use mattersync_mattermost::{Client, ClientConfig, Secret};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

/// Connection details of the local test servers.
#[derive(Debug, Clone)]
pub struct Servers {
    pub vars: BTreeMap<String, String>,
}

impl Servers {
    /// The workspace root (two levels above this crate).
    pub fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .nth(2)
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    }

    /// `.local/servers.env`, or the file named by `MATTERSYNC_SERVERS_ENV`.
    pub fn env_file() -> PathBuf {
        std::env::var_os("MATTERSYNC_SERVERS_ENV")
            .map(PathBuf::from)
            .unwrap_or_else(|| Self::root().join(".local/servers.env"))
    }

    /// Reads [`Servers::env_file`]; `None` when there is none.
    pub fn load() -> Option<Servers> {
        let text = std::fs::read_to_string(Self::env_file()).ok()?;
        Some(Servers {
            vars: parse_env(&text),
        })
    }

    pub fn get(&self, key: &str) -> String {
        self.vars
            .get(key)
            .cloned()
            .unwrap_or_else(|| panic!("{key} missing from .local/servers.env"))
    }

    pub fn ldap_password(&self) -> String {
        let f = self.get("MATTERSYNC_LDAP_PASSWORD_FILE");
        std::fs::read_to_string(&f)
            .unwrap_or_else(|e| panic!("cannot read {f}: {e}"))
            .trim_end_matches(['\r', '\n'])
            .to_string()
    }

    pub fn mm_token(&self) -> String {
        let f = self.get("MATTERSYNC_MM_TOKEN_FILE");
        std::fs::read_to_string(&f)
            .unwrap_or_else(|e| panic!("cannot read {f}: {e}"))
            .trim()
            .to_string()
    }

    /// A Mattermost client with the admin token of the test server.
    pub fn mattermost(&self) -> Client {
        Client::new(ClientConfig::new(
            self.get("MATTERSYNC_MM_URL"),
            Secret::new(self.mm_token()),
        ))
        .expect("mattermost client")
    }

    /// Whether the directory answers a bind as the test account; `Err` says why not.
    pub async fn ldap_up(&self) -> Result<(), String> {
        let url = self.get("MATTERSYNC_LDAP_URL");
        let (conn, mut ldap) = LdapConnAsync::new(&url)
            .await
            .map_err(|e| format!("cannot connect to {url}: {e}"))?;
        ldap3::drive!(conn);
        let bound = ldap
            .simple_bind(&self.get("MATTERSYNC_LDAP_BIND_DN"), &self.ldap_password())
            .await
            .and_then(|r| r.success())
            .map(|_| ())
            .map_err(|e| format!("bind to {url} failed: {e}"));
        let _ = ldap.unbind().await;
        bound
    }
}

/// Parses `KEY=value` lines; values may be double-quoted.
pub fn parse_env(text: &str) -> BTreeMap<String, String> {
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

/// The servers, after checking that both answer. A test that needs them and cannot reach
/// them fails here, saying which server and how to start it.
pub async fn servers_or_fail(test: &str) -> Servers {
    const START: &str = "start the servers with scripts/servers.sh up";
    let Some(servers) = Servers::load() else {
        panic!(
            "{test} needs the real servers: no {} ({START})",
            Servers::env_file().display()
        );
    };
    if let Err(e) = servers.ldap_up().await {
        panic!("{test} needs the real 389-ds, which does not answer: {e} ({START})");
    }
    if let Err(e) = servers.mattermost().ping().await {
        panic!("{test} needs the real Mattermost, which does not answer: {e} ({START})");
    }
    servers
}

/// A directory user made for one test.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub uid: String,
    /// The Mattermost account id, when it has one.
    pub mm_id: Option<String>,
}

/// One test's own corner of both servers.
pub struct Sandbox {
    pub servers: Servers,
    /// The area (and team name): `s` + 8 hex digits.
    pub area: String,
    pub team_id: String,
    pub mm: Client,
    pub dir: tempfile::TempDir,
    base: String,
    /// Accounts made for this sandbox; deactivated when it is dropped, because a server
    /// without a licence refuses new accounts past 250 active ones.
    accounts: std::sync::Mutex<Vec<String>>,
    /// Directory entries made for this sandbox; deleted (newest first) when it is dropped.
    entries: std::sync::Mutex<Vec<String>>,
    /// The token's own account (creator of the sandbox's channels), left out of `members`.
    pub admin: String,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let ids: Vec<String> = self
            .accounts
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default();
        let entries: Vec<String> = self
            .entries
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default();
        let servers = self.servers.clone();
        let team = self.team_id.clone();
        // Drop may run inside the test's runtime: clean up from a thread with its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                // A client of this runtime's own: the test's pooled connections belong to
                // the test's runtime, which is blocked in this drop.
                let mm = servers.mattermost();
                for id in ids {
                    let _ = mm.set_user_active(&id, false).await;
                }
                let _ = mm.delete_team(&team, false).await;
                if let Ok((conn, mut ldap)) =
                    LdapConnAsync::new(&servers.get("MATTERSYNC_LDAP_URL")).await
                {
                    ldap3::drive!(conn);
                    let bound = ldap
                        .simple_bind(
                            &servers.get("MATTERSYNC_LDAP_BIND_DN"),
                            &servers.ldap_password(),
                        )
                        .await
                        .and_then(|r| r.success())
                        .is_ok();
                    if bound {
                        for dn in entries.iter().rev() {
                            let _ = ldap.delete(dn).await;
                        }
                    }
                    let _ = ldap.unbind().await;
                }
            });
        })
        .join();
    }
}

/// A PostgreSQL ledger of a test's own: a fresh schema on one of the test clusters.
pub struct PgLedger {
    /// `[ledger] url`: the schema chosen through `options=-csearch_path=…`.
    pub url: String,
    pub password_file: String,
    /// The same ledger for the test's own look-ups (password set).
    pub target: mattersync_ledger::PgTarget,
}

impl PgLedger {
    /// The `[ledger]` lines of a configuration that uses it (goes right after
    /// [`Sandbox::config`]'s own `[ledger]` line, i.e. first in `extra`).
    pub fn config_lines(&self) -> String {
        format!(
            "url = \"{}\"\npassword_file = \"{}\"\n",
            self.url, self.password_file
        )
    }
}

impl Sandbox {
    /// A fresh schema `<name>_<area>` on the ledger cluster whose variables start with
    /// `prefix` (`MATTERSYNC_LEDGER_PG` or `MATTERSYNC_LEDGER2_PG`), reached through `via`
    /// (`host:port`, e.g. a proxy) when given.
    pub fn pg_ledger(&self, prefix: &str, name: &str, via: Option<&str>) -> PgLedger {
        let url = self.servers.get(&format!("{prefix}_URL"));
        let password_file = self.servers.get(&format!("{prefix}_PASSWORD_FILE"));
        let password = std::fs::read_to_string(&password_file)
            .expect("the ledger's password file")
            .trim()
            .to_string();
        let mut admin = mattersync_ledger::PgTarget::new(&url);
        admin.password = Some(password.clone());
        let schema = format!("{name}_{}", self.area);
        mattersync_ledger::create_schema(&admin, &schema).expect("create a schema");
        let mut url = format!("{url}&options=-csearch_path%3D{schema}");
        if let Some(addr) = via {
            let port = self.servers.get(&format!("{prefix}_PORT"));
            url = url.replace(&format!("127.0.0.1:{port}"), addr);
        }
        let mut target = mattersync_ledger::PgTarget::new(&url);
        target.password = Some(password);
        PgLedger {
            url,
            password_file,
            target,
        }
    }

    /// A fresh sandbox; fails the test when the servers do not answer ([`servers_or_fail`]).
    pub async fn new(test: &str) -> Sandbox {
        Self::on(test, servers_or_fail(test).await).await
    }

    /// A fresh sandbox on the servers `servers` names (e.g. the shared ones with another
    /// Mattermost's or directory's variables put over them, [`restart`]); the caller has
    /// checked that they answer.
    pub async fn on(test: &str, servers: Servers) -> Sandbox {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let area = format!("s{}", &id[..8]);
        let mm = servers.mattermost();
        let team = mm
            .create_team(&area, &format!("Test {test}"))
            .await
            .expect("create the sandbox team");
        let base = servers.get("MATTERSYNC_LDAP_BASE_DN");
        let admin = mm.me().await.expect("the admin token's account").username;
        Sandbox {
            servers,
            area,
            team_id: team.id,
            mm,
            dir: tempfile::tempdir().expect("tempdir"),
            base,
            accounts: std::sync::Mutex::new(Vec::new()),
            entries: std::sync::Mutex::new(Vec::new()),
            admin,
        }
    }

    /// Notes a directory entry to delete when the sandbox is dropped (entries a test adds
    /// by hand, too).
    pub fn track(&self, dn: String) {
        if let Ok(mut v) = self.entries.lock() {
            v.push(dn);
        }
    }

    /// A `[[link]]` table linking `group` to `<sandbox team>/<channel>` with the defaults.
    pub fn link(&self, group: &str, channel: &str) -> String {
        format!(
            "[[link]]\ngroup = \"{group}\"\nchannel = \"{}/{channel}\"\n",
            self.area
        )
    }

    /// `mm_<area>_<name>`.
    pub fn group(&self, name: &str) -> String {
        format!("mm_{}_{}", self.area, name)
    }

    /// The directory uid (and Mattermost username) for a short name.
    pub fn uid(&self, name: &str) -> String {
        format!("{}.{}", self.area, name)
    }

    pub fn user_dn(&self, uid: &str) -> String {
        format!("uid={uid},cn=users,cn=accounts,{}", self.base)
    }

    pub fn group_dn(&self, cn: &str) -> String {
        format!("cn={cn},cn=groups,cn=accounts,{}", self.base)
    }

    async fn ldap(&self) -> ldap3::Ldap {
        let (conn, mut ldap) = LdapConnAsync::new(&self.servers.get("MATTERSYNC_LDAP_URL"))
            .await
            .expect("ldap connect");
        ldap3::drive!(conn);
        ldap.simple_bind(
            &self.servers.get("MATTERSYNC_LDAP_BIND_DN"),
            &self.servers.ldap_password(),
        )
        .await
        .and_then(|r| r.success())
        .expect("ldap bind");
        ldap
    }

    /// Creates a directory user (and, with `account`, a Mattermost account with the same
    /// username and email).
    pub async fn user(&self, name: &str, account: bool, disabled: bool) -> TestUser {
        let uid = self.uid(name);
        let mail = format!("{uid}@example.org");
        let mut ldap = self.ldap().await;
        let mut attrs: Vec<(&str, HashSet<&str>)> = vec![
            (
                "objectClass",
                [
                    "top",
                    "person",
                    "organizationalperson",
                    "inetorgperson",
                    "inetuser",
                    "ipaobject",
                    "fasuser",
                ]
                .into_iter()
                .collect(),
            ),
            ("uid", [uid.as_str()].into()),
            ("cn", [name].into()),
            ("sn", [name].into()),
            ("mail", [mail.as_str()].into()),
        ];
        let unique = uuid::Uuid::new_v4().to_string();
        attrs.push(("ipaUniqueID", [unique.as_str()].into()));
        if disabled {
            attrs.push(("nsAccountLock", ["TRUE"].into()));
        }
        ldap.add(&self.user_dn(&uid), attrs)
            .await
            .and_then(|r| r.success())
            .unwrap_or_else(|e| panic!("add user {uid}: {e}"));
        self.track(self.user_dn(&uid));
        let _ = ldap.unbind().await;
        let mm_id = if account {
            Some(self.account(&uid).await)
        } else {
            None
        };
        TestUser { uid, mm_id }
    }

    /// Creates the Mattermost account of a directory user (e.g. a pending user signs in).
    pub async fn account(&self, uid: &str) -> String {
        let password = format!("Pw-{}-9x!", uuid::Uuid::new_v4().simple());
        let id = self
            .mm
            .create_user(uid, &format!("{uid}@example.org"), &password)
            .await
            .unwrap_or_else(|e| panic!("create account {uid}: {e}"))
            .id;
        if let Ok(mut v) = self.accounts.lock() {
            v.push(id.clone());
        }
        id
    }

    /// Creates a FAS group `mm_<area>_<name>` with direct members, nested groups and managers.
    pub async fn create_group(
        &self,
        name: &str,
        members: &[&TestUser],
        nested: &[&str],
        managers: &[&TestUser],
    ) -> String {
        let cn = self.group(name);
        self.create_raw_group(&cn, members, nested, managers, true)
            .await;
        cn
    }

    /// Creates a group with any name (FAS or not).
    pub async fn create_raw_group(
        &self,
        cn: &str,
        members: &[&TestUser],
        nested: &[&str],
        managers: &[&TestUser],
        fas: bool,
    ) {
        let mut ldap = self.ldap().await;
        let mut classes: HashSet<&str> = [
            "top",
            "groupofnames",
            "nestedgroup",
            "ipausergroup",
            "ipaobject",
        ]
        .into();
        if fas {
            classes.insert("fasgroup");
        }
        let member_dns: Vec<String> = members
            .iter()
            .map(|u| self.user_dn(&u.uid))
            .chain(nested.iter().map(|g| self.group_dn(g)))
            .collect();
        let manager_dns: Vec<String> = managers.iter().map(|u| self.user_dn(&u.uid)).collect();
        let unique = uuid::Uuid::new_v4().to_string();
        let mut attrs: Vec<(&str, HashSet<&str>)> = vec![
            ("objectClass", classes),
            ("cn", [cn].into()),
            ("description", ["test group"].into()),
            ("ipaUniqueID", [unique.as_str()].into()),
        ];
        if !member_dns.is_empty() {
            attrs.push(("member", member_dns.iter().map(String::as_str).collect()));
        }
        if !manager_dns.is_empty() {
            attrs.push((
                "memberManager",
                manager_dns.iter().map(String::as_str).collect(),
            ));
        }
        ldap.add(&self.group_dn(cn), attrs)
            .await
            .and_then(|r| r.success())
            .unwrap_or_else(|e| panic!("add group {cn}: {e}"));
        self.track(self.group_dn(cn));
        let _ = ldap.unbind().await;
    }

    async fn modify_group(&self, cn: &str, m: Mod<String>) {
        let mut ldap = self.ldap().await;
        ldap.modify(&self.group_dn(cn), vec![m])
            .await
            .and_then(|r| r.success())
            .unwrap_or_else(|e| panic!("modify group {cn}: {e}"));
        let _ = ldap.unbind().await;
    }

    pub async fn add_member(&self, cn: &str, user: &TestUser) {
        self.modify_group(
            cn,
            Mod::Add("member".to_string(), [self.user_dn(&user.uid)].into()),
        )
        .await
    }

    /// Removes several members in one modification (one directory change).
    pub async fn remove_members(&self, cn: &str, users: &[&TestUser]) {
        self.modify_group(
            cn,
            Mod::Delete(
                "member".to_string(),
                users.iter().map(|u| self.user_dn(&u.uid)).collect(),
            ),
        )
        .await
    }

    /// Adds several members in one modification (one directory change).
    pub async fn add_members(&self, cn: &str, users: &[&TestUser]) {
        self.modify_group(
            cn,
            Mod::Add(
                "member".to_string(),
                users.iter().map(|u| self.user_dn(&u.uid)).collect(),
            ),
        )
        .await
    }

    /// Makes the group `inner` a member of the group `cn` (a nested group).
    pub async fn nest(&self, cn: &str, inner: &str) {
        self.modify_group(
            cn,
            Mod::Add("member".to_string(), [self.group_dn(inner)].into()),
        )
        .await
    }

    pub async fn unnest(&self, cn: &str, inner: &str) {
        self.modify_group(
            cn,
            Mod::Delete("member".to_string(), [self.group_dn(inner)].into()),
        )
        .await
    }

    pub async fn remove_member(&self, cn: &str, user: &TestUser) {
        self.modify_group(
            cn,
            Mod::Delete("member".to_string(), [self.user_dn(&user.uid)].into()),
        )
        .await
    }

    pub async fn set_managers(&self, cn: &str, managers: &[&TestUser]) {
        let dns: HashSet<String> = managers.iter().map(|u| self.user_dn(&u.uid)).collect();
        self.modify_group(cn, Mod::Replace("memberManager".to_string(), dns))
            .await
    }

    /// Renames a group in the directory (a modrdn with the old RDN deleted: the entry, and
    /// its ipaUniqueID and nsUniqueId, stay) and keeps tracking it under its new DN.
    pub async fn rename_group(&self, cn: &str, new_cn: &str) {
        let mut ldap = self.ldap().await;
        ldap.modifydn(&self.group_dn(cn), &format!("cn={new_cn}"), true, None)
            .await
            .and_then(|r| r.success())
            .unwrap_or_else(|e| panic!("rename group {cn} to {new_cn}: {e}"));
        let _ = ldap.unbind().await;
        let (old, new) = (self.group_dn(cn), self.group_dn(new_cn));
        if let Ok(mut v) = self.entries.lock() {
            for dn in v.iter_mut().filter(|dn| **dn == old) {
                dn.clone_from(&new);
            }
        }
    }

    /// Deletes a group from the directory.
    pub async fn delete_group(&self, cn: &str) {
        let mut ldap = self.ldap().await;
        ldap.delete(&self.group_dn(cn))
            .await
            .and_then(|r| r.success())
            .unwrap_or_else(|e| panic!("delete group {cn}: {e}"));
        let _ = ldap.unbind().await;
    }

    /// The directory's `nsUniqueId` of a group (its id whatever its name).
    pub async fn group_unique_id(&self, cn: &str) -> String {
        let mut ldap = self.ldap().await;
        let (entries, _) = ldap
            .search(
                &self.group_dn(cn),
                ldap3::Scope::Base,
                "(objectClass=*)",
                vec!["nsUniqueId"],
            )
            .await
            .and_then(|r| r.success())
            .unwrap_or_else(|e| panic!("read group {cn}: {e}"));
        let _ = ldap.unbind().await;
        let entry = ldap3::SearchEntry::construct(
            entries
                .into_iter()
                .next()
                .unwrap_or_else(|| panic!("group {cn} not found")),
        );
        entry
            .attrs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("nsUniqueId"))
            .and_then(|(_, v)| v.first().cloned())
            .unwrap_or_else(|| panic!("group {cn} has no nsUniqueId"))
    }

    /// Renames a channel of the sandbox (its name and display name); the id stays.
    pub async fn rename_channel(&self, channel_id: &str, new_name: &str) {
        self.mm
            .rename_channel(channel_id, new_name, new_name)
            .await
            .unwrap_or_else(|e| panic!("rename channel {channel_id} to {new_name}: {e}"));
    }

    /// Creates a channel in the sandbox team and returns its id.
    pub async fn channel(&self, name: &str, private: bool) -> String {
        self.mm
            .create_channel(&self.team_id, name, name, private)
            .await
            .unwrap_or_else(|e| panic!("create channel {name}: {e}"))
            .id
    }

    /// The channel's members but the admin account: username → channel admin.
    pub async fn members(&self, channel_id: &str) -> BTreeMap<String, bool> {
        let members = self
            .mm
            .channel_members(channel_id)
            .await
            .expect("channel members");
        let ids: Vec<String> = members.keys().cloned().collect();
        let users = self.mm.users_by_ids(&ids).await.expect("users by ids");
        users
            .into_iter()
            .filter(|u| u.username != self.admin)
            .map(|u| {
                let admin = members.get(&u.id).is_some_and(|m| m.scheme_admin);
                (u.username, admin)
            })
            .collect()
    }

    /// Puts a user in the team and the channel by hand (a "manual member").
    pub async fn add_by_hand(&self, channel_id: &str, user_id: &str) {
        self.mm
            .add_team_members(&self.team_id, &[user_id.to_string()])
            .await
            .expect("team add");
        self.mm
            .add_channel_members(channel_id, &[user_id.to_string()])
            .await
            .expect("channel add");
    }

    /// Takes a user out of a channel the way leaving on their own does.
    pub async fn leave(&self, channel_id: &str, user_id: &str) {
        self.mm
            .remove_channel_member(channel_id, user_id)
            .await
            .expect("leave channel");
    }

    /// Writes a configuration for this sandbox (LDAPS with the test CA, the sandbox area
    /// mapped to its team, a ledger in the sandbox's temp dir) plus `extra` TOML, and
    /// returns its path.
    pub fn config(&self, extra: &str) -> PathBuf {
        self.config_with(&self.servers.get("MATTERSYNC_LDAPS_URL"), extra)
    }

    /// As [`Sandbox::config`], with another directory URI (e.g. a fault-injecting proxy).
    pub fn config_with(&self, ldap_uri: &str, extra: &str) -> PathBuf {
        let s = &self.servers;
        let text = format!(
            r#"[directory]
kind = "ldap"
uri = "{uri}"
ca_file = "{ca}"
bind_dn = "{bind}"
bind_password_file = "{pw}"
base_dn = "{base}"
group_filter = "(&(objectClass=fasGroup)(cn=mm_{area}_*))"
timeout_secs = 10

[areas]
{area} = "{area}"

[mattermost]
url = "{mm}"
token_file = "{token}"
# The sandbox's accounts are made with a password, not by an auth service: match by
# username, asked for explicitly (the default, auth_data, needs an auth_service).
match = {{ by = "username" }}

[ledger]
path = "{ledger}"

{extra}
"#,
            uri = ldap_uri,
            ca = s.get("MATTERSYNC_LDAP_CA_FILE"),
            bind = s.get("MATTERSYNC_LDAP_BIND_DN"),
            pw = s.get("MATTERSYNC_LDAP_PASSWORD_FILE"),
            base = self.base,
            area = self.area,
            mm = s.get("MATTERSYNC_MM_URL"),
            token = s.get("MATTERSYNC_MM_TOKEN_FILE"),
            ledger = self.dir.path().join("ledger.db").display(),
        );
        let path = self.dir.path().join("config.toml");
        std::fs::write(&path, text).expect("write config");
        path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The attribute of every test that needs the real servers. `#[ignore]` takes a string
    /// literal only (a macro or a const there loses the reason), so each test spells it out
    /// and this checks that they all agree.
    const NEEDS_SERVERS: &str = r#"#[ignore = "needs the real servers (scripts/test.sh runs it)"]"#;

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    #[test]
    fn every_ignored_test_is_ignored_for_the_one_reason() {
        let mut files = Vec::new();
        rust_files(&Servers::root().join("crates"), &mut files);
        let mut ignored = 0;
        for file in files {
            let text = std::fs::read_to_string(&file).expect("read a source file");
            for (n, line) in text.lines().enumerate() {
                if line.trim_start().starts_with("#[ignore") {
                    assert_eq!(line.trim(), NEEDS_SERVERS, "{}:{}", file.display(), n + 1);
                    ignored += 1;
                }
            }
        }
        assert!(ignored > 0, "no test is marked as needing the real servers");
    }

    #[test]
    fn env_files_parse_with_and_without_quotes() {
        let vars = parse_env("# c\nA=1\nB=\"cn=Directory Manager\"\n\nC=x=y\n");
        assert_eq!(vars["A"], "1");
        assert_eq!(vars["B"], "cn=Directory Manager");
        assert_eq!(vars["C"], "x=y");
        assert_eq!(vars.len(), 3);
    }
}
