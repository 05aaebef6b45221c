//! `mattersync check`: a preflight checklist. Every item runs (an item that needs an
//! earlier one, such as the bases after a failed bind, is shown as not checked); each is
//! ✓ (ok), ! (works, but look) or ✗ (will fail); any ✗ makes the exit code 1.

use anyhow::Result;
use mattersync_core::{Admins, Link, Matching, Mode, Target};
use mattersync_directory::LdapDirectory;
use mattersync_engine::{self as engine, config};
use serde::Serialize;
use std::collections::BTreeSet;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Warn,
    Fail,
    /// Not checked: an item it needs failed.
    Skip,
}

impl Status {
    fn mark(self, unicode: bool) -> &'static str {
        match (self, unicode) {
            (Status::Ok, true) => "✓",
            (Status::Warn, _) => "!",
            (Status::Fail, true) => "✗",
            (Status::Skip, true) => "–",
            (Status::Ok, false) => "ok",
            (Status::Fail, false) => "x",
            (Status::Skip, false) => "-",
        }
    }
}

/// One line of the checklist.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    /// A stable machine name, e.g. `directory.bind`, `link.mm_rl_infra->rocky-linux/infra`.
    pub id: String,
    pub status: Status,
    pub summary: String,
}

#[derive(Debug, Default, Serialize)]
pub struct Checklist {
    pub items: Vec<Item>,
}

impl Checklist {
    fn push(&mut self, id: impl Into<String>, status: Status, summary: impl Into<String>) {
        self.items.push(Item {
            id: id.into(),
            status,
            summary: summary.into(),
        });
    }
    fn ok(&mut self, id: impl Into<String>, s: impl Into<String>) {
        self.push(id, Status::Ok, s)
    }
    fn warn(&mut self, id: impl Into<String>, s: impl Into<String>) {
        self.push(id, Status::Warn, s)
    }
    fn fail(&mut self, id: impl Into<String>, s: impl Into<String>) {
        self.push(id, Status::Fail, s)
    }
    fn skip(&mut self, id: impl Into<String>, s: impl Into<String>) {
        self.push(id, Status::Skip, s)
    }

    pub fn failed(&self) -> usize {
        self.count(Status::Fail)
    }

    pub fn count(&self, s: Status) -> usize {
        self.items.iter().filter(|i| i.status == s).count()
    }

    /// The human form: a header row, one row per item, a summary line.
    pub fn text(&self, unicode: bool) -> String {
        let width = self
            .items
            .iter()
            .map(|i| i.id.chars().count())
            .max()
            .unwrap_or(4)
            .max(4);
        let mut out = format!("   {:width$}  RESULT\n", "ITEM");
        for i in &self.items {
            out.push_str(&format!(
                "{:2} {:width$}  {}\n",
                i.status.mark(unicode),
                i.id,
                i.summary
            ));
        }
        out.push_str(&format!(
            "{} ok, {} warnings, {} failed, {} not checked\n",
            self.count(Status::Ok),
            self.count(Status::Warn),
            self.count(Status::Fail),
            self.count(Status::Skip)
        ));
        out
    }
}

/// Runs every check. Never fails as a whole: a failure is an item.
pub async fn run(config_path: &Path) -> Checklist {
    let mut c = Checklist::default();
    let cfg = match config::load(config_path) {
        Ok(cfg) => {
            c.ok(
                "config",
                format!(
                    "{}: valid ({} area(s), {} link(s) in the file)",
                    config_path.display(),
                    cfg.areas.len(),
                    cfg.links.len()
                ),
            );
            cfg
        }
        Err(e) => {
            c.fail("config", format!("{e:#}"));
            c.skip("directory", "not checked: the configuration is not valid");
            c.skip("mattermost", "not checked: the configuration is not valid");
            return c;
        }
    };
    secrets(&mut c, &cfg);
    matching(&mut c, &cfg);
    match crate::serve::validate(&cfg) {
        Ok(summary) => c.ok("serve", summary),
        Err(e) => c.fail("serve", format!("`serve` would refuse to start: {e:#}")),
    }
    let directory = directory(&mut c, &cfg).await;
    mattermost(&mut c, &cfg, directory.as_ref()).await;
    match crate::open_ledger(&cfg).and_then(|l| Ok(l.schema_version()?)) {
        Ok(v) => c.ok(
            "ledger",
            format!("{} (schema {v})", mattersync_engine::ledger_name(&cfg)),
        ),
        Err(e) => c.fail("ledger", format!("{e:#}")),
    }
    c
}

/// Each secret: where it comes from, and whether its file is private enough.
fn secrets(c: &mut Checklist, cfg: &config::Config) {
    use std::os::unix::fs::PermissionsExt;
    let entries: [(&str, &str, Option<&Path>, bool); 5] = [
        (
            "mattermost.token_file",
            "MATTERSYNC_MATTERMOST_TOKEN",
            cfg.mattermost.token_file.as_deref(),
            true,
        ),
        (
            "directory.bind_password_file",
            "MATTERSYNC_LDAP_PASSWORD",
            cfg.directory.ldap.bind_password_file.as_deref(),
            cfg.directory.ldap.bind_dn.is_some(),
        ),
        (
            "directory.freeipa.password_file",
            "MATTERSYNC_IPA_PASSWORD",
            cfg.directory
                .freeipa
                .as_ref()
                .and_then(|f| f.password_file.as_deref()),
            false,
        ),
        (
            "serve.api_token_file",
            "MATTERSYNC_API_TOKEN",
            cfg.serve.api_token_file.as_deref(),
            false,
        ),
        (
            "serve.slash_command_token_file",
            "MATTERSYNC_SLASH_TOKEN",
            cfg.serve.slash_command_token_file.as_deref(),
            false,
        ),
    ];
    for (key, env, file, needed) in entries {
        let id = format!("secret.{key}");
        if std::env::var(env).is_ok_and(|v| !v.is_empty()) {
            c.ok(id, format!("from the environment ({env})"));
            continue;
        }
        let credential = config::credential_path(env);
        if let Some(p) = &credential {
            c.ok(id, format!("from the systemd credential {}", p.display()));
            continue;
        }
        let Some(file) = file else {
            if needed {
                c.fail(id, format!("not set: set {key} or {env}"));
            }
            continue;
        };
        match std::fs::metadata(file) {
            Err(e) => c.fail(id, format!("{}: {e}", file.display())),
            Ok(m) => {
                let mode = m.permissions().mode() & 0o777;
                if mode & 0o004 != 0 {
                    c.fail(
                        id,
                        format!(
                            "{} is readable by every user (mode {mode:04o}); run chmod 600 {}",
                            file.display(),
                            file.display()
                        ),
                    );
                } else if let Err(e) = std::fs::read(file) {
                    c.fail(id, format!("{}: cannot read: {e}", file.display()));
                } else if mode & 0o040 != 0 {
                    c.warn(
                        id,
                        format!(
                            "{} (mode {mode:04o}) is readable by its group",
                            file.display()
                        ),
                    );
                } else {
                    c.ok(id, format!("{} (mode {mode:04o})", file.display()));
                }
            }
        }
    }
}

fn matching(c: &mut Checklist, cfg: &config::Config) {
    match &cfg.mattermost.matching {
        Matching::AuthData { auth_service } => c.ok(
            "matching",
            format!(
                "by auth_data of accounts signed in with {auth_service:?} (directory {}): an account cannot claim another's",
                cfg.directory
                    .ldap
                    .auth_id_attr
                    .as_deref()
                    .unwrap_or(cfg.directory.ldap.user_id_attr.as_str())
            ),
        ),
        m @ (Matching::Username | Matching::Email) => {
            let by = if *m == Matching::Username {
                "username"
            } else {
                "email"
            };
            c.warn(
                "matching",
                format!(
                    "by {by}, with no auth_service check: a self-registered account with a directory user's {by} receives that user's channels; set mattermost.auth_service to match by auth_data"
                ),
            )
        }
    }
}

fn tls_directory(c: &mut Checklist, l: &config::LdapConfig) {
    let scheme = l.uri.split("://").next().unwrap_or("").to_ascii_lowercase();
    let trust = match &l.ca_file {
        Some(f) => format!("CA file {}", f.display()),
        None => "the system trust store".to_string(),
    };
    let id = "directory.tls";
    if l.insecure && (scheme == "ldaps" || l.starttls) {
        c.warn(
            id,
            format!("{}: certificate NOT verified (insecure = true)", l.uri),
        );
    } else if scheme == "ldaps" {
        c.ok(id, format!("LDAPS to {}, verified against {trust}", l.uri));
    } else if l.starttls {
        c.ok(
            id,
            format!("StartTLS on {}, verified against {trust}", l.uri),
        );
    } else if scheme == "ldapi" {
        c.ok(id, format!("local socket {}", l.uri));
    } else if is_loopback(&l.uri) {
        c.warn(id, format!("plain LDAP to loopback {}, no TLS", l.uri));
    } else {
        c.warn(
            id,
            format!(
                "plain LDAP to {}: the bind password crosses the network unencrypted; use ldaps:// or starttls = true",
                l.uri
            ),
        );
    }
}

fn tls_mattermost(c: &mut Checklist, m: &config::MattermostSection) {
    let id = "mattermost.tls";
    let trust = match &m.ca_file {
        Some(f) => format!("CA file {}", f.display()),
        None => "the system trust store".to_string(),
    };
    if m.url.starts_with("https://") {
        if m.insecure {
            c.warn(
                id,
                format!("{}: certificate NOT verified (insecure = true)", m.url),
            );
        } else {
            c.ok(id, format!("HTTPS to {}, verified against {trust}", m.url));
        }
    } else if is_loopback(&m.url) {
        c.warn(id, format!("plain HTTP to loopback {}, no TLS", m.url));
    } else {
        c.warn(
            id,
            format!(
                "plain HTTP to {}: the token crosses the network unencrypted",
                m.url
            ),
        );
    }
}

fn is_loopback(uri: &str) -> bool {
    let rest = uri.split_once("://").map_or(uri, |(_, r)| r);
    let host = rest.split(['/', '?']).next().unwrap_or("");
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let host = if let Some(v6) = host.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host.split(':').next().unwrap_or("")
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The directory items; the snapshot when it could be read.
async fn directory(c: &mut Checklist, cfg: &config::Config) -> Option<mattersync_core::Directory> {
    let l = &cfg.directory.ldap;
    tls_directory(c, l);
    let ldap = match engine::ldap_config(cfg) {
        Ok(l) => l,
        Err(e) => {
            c.fail("directory.bind", format!("{e:#}"));
            c.skip("directory.*", "not checked: no bind credentials");
            return None;
        }
    };
    let who = l.bind_dn.clone().unwrap_or_else(|| "anonymous".into());
    let mut dir = match LdapDirectory::connect(&ldap).await {
        Ok(d) => {
            c.ok("directory.bind", format!("bound to {} as {who}", l.uri));
            d
        }
        Err(e) => {
            c.fail("directory.bind", format!("{}: {e}", l.uri));
            c.skip("directory.*", "not checked: the bind failed");
            return None;
        }
    };
    for (what, base) in [
        ("base_dn", l.base_dn.clone()),
        ("user_base", l.user_base()),
        ("group_base", l.group_base()),
    ] {
        match dir.base_visible(what, &base).await {
            Ok(()) => c.ok(format!("directory.{what}"), format!("{base} is visible")),
            Err(e) => c.fail(format!("directory.{what}"), e.to_string()),
        }
    }
    schema(c, cfg, &mut dir).await;
    let offered = match dir.supports_syncrepl().await {
        Ok(true) => {
            c.ok(
                "directory.syncrepl",
                "offered (the root DSE lists the Sync Request control)",
            );
            true
        }
        Ok(false) => {
            c.warn(
                "directory.syncrepl",
                "not offered: serve --changes auto polls modifyTimestamp instead (enable Content Synchronization and the Retro Changelog)",
            );
            false
        }
        Err(e) => {
            c.fail("directory.syncrepl", format!("reading the root DSE: {e}"));
            false
        }
    };
    if offered {
        match dir.sync_permitted().await {
            Ok(()) => c.ok(
                "directory.syncrepl_permitted",
                format!("{who} may use the Sync Request control"),
            ),
            Err(e) => c.fail(
                "directory.syncrepl_permitted",
                format!(
                    "{who} may not use it ({e}); apply the ACI in packaging/freeipa-syncrepl.ldif, or run serve --changes poll"
                ),
            ),
        }
        match dir.retro_changelog().await {
            Ok(Some(rc)) => {
                let missing: Vec<String> = [l.user_base(), l.group_base()]
                    .into_iter()
                    .filter(|b| !rc.covers(b))
                    .collect();
                if !rc.enabled {
                    c.fail("directory.retro_changelog", "the Retro Changelog plugin is off");
                } else if missing.is_empty() {
                    c.ok(
                        "directory.retro_changelog",
                        "keeps changes to the user and group bases",
                    );
                } else {
                    c.fail(
                        "directory.retro_changelog",
                        format!(
                            "does not keep changes under {}: add them to nsslapd-include-suffix (packaging/freeipa-syncrepl.ldif)",
                            missing.join(", ")
                        ),
                    );
                }
            }
            Ok(None) => c.warn(
                "directory.retro_changelog",
                format!("{who} cannot read its configuration in cn=config: make sure it includes the accounts subtree (packaging/freeipa-syncrepl.ldif)"),
            ),
            Err(e) => c.warn("directory.retro_changelog", format!("cannot tell: {e}")),
        }
    } else {
        c.skip(
            "directory.syncrepl_permitted",
            "not checked: syncrepl is not offered",
        );
    }
    let snap = match dir.snapshot().await {
        Ok(s) => {
            c.ok(
                "directory.read",
                format!(
                    "a complete read: {} group(s) selected by group_filter, {} user(s)",
                    s.groups.len(),
                    s.users.len()
                ),
            );
            Some(s)
        }
        Err(e) => {
            c.fail("directory.read", e.to_string());
            None
        }
    };
    dir.unbind().await;
    snap
}

async fn schema(c: &mut Checklist, cfg: &config::Config, dir: &mut LdapDirectory) {
    let l = &cfg.directory.ldap;
    let schema = match dir.schema().await {
        Ok(s) => s,
        Err(e) => {
            c.warn("directory.schema", format!("cannot read the schema: {e}"));
            return;
        }
    };
    let by_email = cfg.mattermost.matching == Matching::Email;
    let by_auth = matches!(cfg.mattermost.matching, Matching::AuthData { .. });
    let uses_managers = cfg.defaults.admins == Admins::Managers
        || cfg.links.iter().any(|k| k.admins == Some(Admins::Managers));
    let mut missing_fatal = Vec::new();
    let mut missing_soft = Vec::new();
    let mut present = Vec::new();
    let mut attrs: Vec<(&str, &str, bool)> = vec![
        ("member_attr", l.member_attr.as_str(), true),
        ("user_id_attr", l.user_id_attr.as_str(), true),
        ("manager_attr", l.manager_attr.as_str(), uses_managers),
        ("email_attr", l.email_attr.as_str(), by_email),
        ("disabled_attr", l.disabled_attr.as_str(), false),
        ("group_id_attr", l.group_id_attr.as_str(), false),
    ];
    if let Some(a) = &l.auth_id_attr {
        attrs.push(("auth_id_attr", a.as_str(), by_auth));
    }
    for (key, attr, fatal) in attrs {
        if schema.has_attribute(attr) {
            present.push(attr.to_string());
        } else if fatal {
            missing_fatal.push(format!("{key} = {attr:?}"));
        } else {
            missing_soft.push(format!("{key} = {attr:?}"));
        }
    }
    if !missing_fatal.is_empty() {
        c.fail(
            "directory.schema",
            format!("the schema has no {}", missing_fatal.join(", ")),
        );
    } else if !missing_soft.is_empty() {
        c.warn(
            "directory.schema",
            format!(
                "has {}; not {} (ids fall back to nsUniqueId/entryUUID, disabled accounts and managers go unseen)",
                present.join(", "),
                missing_soft.join(", ")
            ),
        );
    } else {
        c.ok("directory.schema", format!("has {}", present.join(", ")));
    }
}

/// What a link needs of the token's account, as Mattermost permission names.
fn needs(link: &Link, private: bool) -> Vec<(&'static str, &'static str)> {
    let removes = link.mode != Mode::Add;
    let roles = link.admins != Admins::None;
    let mut n = vec![("add_user_to_team", "add members to the team")];
    match &link.target {
        Target::Team { .. } => {
            if removes {
                n.push(("remove_user_from_team", "remove members from the team"));
            }
            if roles {
                n.push(("manage_team_roles", "make team admins"));
            }
        }
        Target::Channel { .. } => {
            n.push(if private {
                (
                    "manage_private_channel_members",
                    "add and remove channel members",
                )
            } else {
                (
                    "manage_public_channel_members",
                    "add and remove channel members",
                )
            });
            if roles {
                n.push(("manage_channel_roles", "make channel admins"));
            }
        }
    }
    n
}

async fn mattermost(
    c: &mut Checklist,
    cfg: &config::Config,
    directory: Option<&mattersync_core::Directory>,
) {
    tls_mattermost(c, &cfg.mattermost);
    let mm = match engine::mattermost_client(cfg) {
        Ok(m) => m,
        Err(e) => {
            c.fail("mattermost.version", format!("{e:#}"));
            c.skip("mattermost.*", "not checked: no client");
            return;
        }
    };
    match mm.ping().await {
        Ok(v) => {
            let licensed = if v.raw.ends_with(".true") {
                "licensed"
            } else {
                "unlicensed"
            };
            c.ok(
                "mattermost.version",
                format!("Mattermost {v} at {} ({licensed})", cfg.mattermost.url),
            )
        }
        Err(e) => {
            c.fail("mattermost.version", format!("{}: {e}", cfg.mattermost.url));
            c.skip("mattermost.*", "not checked: the server does not answer");
            return;
        }
    }
    let me = match mm.me().await {
        Ok(me) => me,
        Err(e) => {
            c.fail(
                "mattermost.account",
                format!("the token does not authenticate: {e}"),
            );
            c.skip("mattermost.*", "not checked: no account");
            return;
        }
    };
    let system_roles = match mm.user_roles(&me.id).await {
        Ok(r) => r,
        Err(e) => {
            c.warn(
                "mattermost.account",
                format!("@{}: roles unreadable: {e}", me.username),
            );
            Vec::new()
        }
    };
    let system_perms = mm.role_permissions(&system_roles).await.unwrap_or_default();
    let sysadmin = system_perms.contains("manage_system");
    c.ok(
        "mattermost.account",
        format!(
            "the token is @{}'s ({}{})",
            me.username,
            system_roles.join(" "),
            if me.is_bot { ", a bot" } else { "" }
        ),
    );
    // One item: a token that is not a system admin's sees nobody's auth_data; a system
    // admin's may still meet a server that blanks it for everyone.
    if matches!(cfg.mattermost.matching, Matching::AuthData { .. }) && !sysadmin {
        c.fail(
            "mattermost.auth_data",
            format!(
                "@{} is not a system admin: Mattermost shows other accounts' auth_data only to system admins, so matching by auth_data would find nobody (every user pending)",
                me.username
            ),
        );
    } else if let Matching::AuthData { auth_service } = &cfg.mattermost.matching {
        match mm.all_users().await {
            Ok(users) if mattersync_mattermost::hides_auth_data(&users, auth_service) => c.fail(
                "mattermost.auth_data",
                engine::run::auth_data_hidden(auth_service),
            ),
            Ok(users) => {
                let n = users
                    .iter()
                    .filter(|u| !u.is_bot && u.auth_service == *auth_service)
                    .count();
                if n == 0 {
                    c.ok(
                        "mattermost.auth_data",
                        format!("no account signed in with {auth_service:?} yet, so whether this server shows auth_data is not known"),
                    )
                } else {
                    c.ok(
                        "mattermost.auth_data",
                        format!("{n} account(s) signed in with {auth_service:?}; their auth_data is readable"),
                    )
                }
            }
            Err(e) => c.warn("mattermost.auth_data", format!("accounts unreadable: {e}")),
        }
    }
    // Links as a run would resolve them (file, ledger, convention).
    let ledger_links = crate::read_ledger(cfg)
        .and_then(|l| Ok(l.links()?))
        .unwrap_or_default();
    let empty = mattersync_core::Directory::default();
    let links = match engine::resolve_links(cfg, directory.unwrap_or(&empty), ledger_links) {
        Ok((links, _)) => links,
        Err(e) => {
            c.fail("links", format!("{e:#}"));
            Vec::new()
        }
    };
    if links.is_empty() {
        c.warn("links", "no links: a sync would change nothing");
    }
    for link in &links {
        link_item(c, &mm, &me.id, &system_perms, link).await;
    }
    headroom(c, cfg, &mm, sysadmin).await;
}

async fn link_item(
    c: &mut Checklist,
    mm: &mattersync_mattermost::Client,
    me: &str,
    system_perms: &BTreeSet<String>,
    link: &Link,
) {
    let id = format!("link.{}", link.id());
    let team_name = link.target.team();
    let team = match mm.team_by_name(team_name).await {
        Ok(Some(t)) if !t.archived => t,
        Ok(Some(_)) => return c.fail(id, format!("team {team_name} is archived")),
        Ok(None) => {
            return c.fail(
                id,
                format!("team {team_name} does not exist (or the token's account cannot see it)"),
            )
        }
        Err(e) => return c.fail(id, format!("looking up team {team_name}: {e}")),
    };
    let mut perms = system_perms.clone();
    let team_roles = match mm.team_member_roles(&team.id, me).await {
        Ok(r) => r,
        Err(e) => return c.fail(id, format!("reading the account's team roles: {e}")),
    };
    let mut roles = team_roles.clone().unwrap_or_default();
    let mut private = false;
    let mut what = format!("team {team_name}");
    if let Target::Channel { channel, .. } = &link.target {
        let ch = match mm.channel_by_name(team_name, channel).await {
            Ok(Some(ch)) if ch.direct => {
                return c.fail(id, "a direct or group message, never a link target")
            }
            Ok(Some(ch)) if ch.archived => return c.fail(id, "the channel is archived"),
            Ok(Some(ch)) => ch,
            Ok(None) => {
                return c.fail(
                    id,
                    format!(
                        "channel {team_name}/{channel} does not exist, or is private and the token's account is not a member"
                    ),
                )
            }
            Err(e) => return c.fail(id, format!("looking up the channel: {e}")),
        };
        private = ch.private;
        what = format!(
            "{} channel {team_name}/{channel}",
            if private { "private" } else { "public" }
        );
        match mm.channel_member_roles(&ch.id, me).await {
            Ok(Some(r)) => roles.extend(r),
            Ok(None) if private && !system_perms.contains("manage_system") => {
                return c.fail(
                    id,
                    format!("{what}: the token's account is not a member, so it cannot read or change its members; add it to the channel"),
                )
            }
            Ok(None) => {}
            Err(e) => return c.fail(id, format!("reading the account's channel roles: {e}")),
        }
    }
    match mm.role_permissions(&roles).await {
        Ok(p) => perms.extend(p),
        Err(e) => return c.fail(id, format!("reading role permissions: {e}")),
    }
    let missing: Vec<String> = needs(link, private)
        .into_iter()
        .filter(|(p, _)| !perms.contains(*p))
        .map(|(p, why)| format!("{p} ({why})"))
        .collect();
    let membership = match (&team_roles, perms.contains("manage_system")) {
        (_, true) => "system admin",
        (Some(r), _) if r.iter().any(|r| r == "team_admin") => "team admin",
        (Some(_), _) => "team member",
        (None, _) => "not in the team",
    };
    let mode = format!("{}, admins {}", link.mode, link.admins);
    if missing.is_empty() {
        c.ok(
            id,
            format!(
                "{what} exists; the account ({membership}) can do what the link needs ({mode})"
            ),
        );
    } else {
        let hint = if matches!(link.target, Target::Team { .. }) || link.admins != Admins::None {
            "; make the account team admin"
        } else {
            ""
        };
        c.fail(
            id,
            format!(
                "{what} exists, but the account ({membership}) lacks {}{hint}",
                missing.join(", ")
            ),
        );
    }
}

async fn headroom(
    c: &mut Checklist,
    cfg: &config::Config,
    mm: &mattersync_mattermost::Client,
    sysadmin: bool,
) {
    let id = "mattermost.user_limit";
    let limits = match mm.server_limits().await {
        Ok(Some(l)) => l,
        Ok(None) => return c.ok(id, "the server publishes no user limit"),
        Err(e) => return c.warn(id, format!("cannot read the server's limits: {e}")),
    };
    if limits.max_users_hard == 0 {
        return c.ok(id, "no limit on active accounts (licensed)");
    }
    if !sysadmin {
        return c.warn(
            id,
            format!(
                "an unlicensed server refuses new accounts past {} active ones; only a system admin's token can see how many there are",
                limits.max_users_hard
            ),
        );
    }
    let room = limits.max_users_hard - limits.active_users;
    // Pending directory users will need accounts: count them from a read-only plan.
    let pending = pending_users(cfg, mm).await;
    let pending_text = match &pending {
        Ok(n) => format!("{n} linked directory user(s) have no account yet"),
        Err(e) => format!("pending users not counted ({e:#})"),
    };
    let text = format!(
        "{} of {} active accounts (unlicensed), room for {room}; {pending_text}",
        limits.active_users, limits.max_users_hard
    );
    if room <= 0 {
        c.fail(id, format!("{text}: Mattermost refuses new accounts now"));
    } else if pending.as_ref().is_ok_and(|n| *n as i64 > room) {
        c.warn(id, format!("{text}: not all of them will get one"));
    } else if limits.max_users > 0 && limits.active_users >= limits.max_users {
        c.warn(
            id,
            format!("{text}: past the soft limit of {}", limits.max_users),
        );
    } else {
        c.ok(id, text);
    }
}

async fn pending_users(cfg: &config::Config, mm: &mattersync_mattermost::Client) -> Result<usize> {
    let ledger = crate::read_ledger(cfg)?;
    let mut dir = engine::Ldap::new(engine::ldap_config(cfg)?);
    let state = engine::read_all(cfg, &mut dir, mm, &ledger).await?;
    let plan = state.plan();
    Ok(plan
        .notes
        .iter()
        .filter(|n| matches!(n, mattersync_core::Note::PendingUser { .. }))
        .count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_has_a_header_a_row_per_item_and_a_summary() {
        let mut c = Checklist::default();
        c.ok("config", "fine");
        c.fail("directory.bind", "refused");
        c.warn("matching", "by username");
        c.skip("directory.*", "not checked");
        let t = c.text(true);
        let lines: Vec<&str> = t.lines().collect();
        assert!(
            lines[0].contains("ITEM") && lines[0].contains("RESULT"),
            "{t}"
        );
        assert!(lines[1].starts_with("✓  config"), "{t}");
        assert!(lines[2].starts_with("✗  directory.bind"), "{t}");
        assert!(lines[3].starts_with("!  matching"), "{t}");
        assert_eq!(lines[5], "1 ok, 1 warnings, 1 failed, 1 not checked");
        assert_eq!(c.failed(), 1);
        assert!(c
            .text(false)
            .lines()
            .nth(2)
            .is_some_and(|l| l.starts_with("x  directory.bind")));
    }

    #[test]
    fn loopback_hosts_are_told_apart() {
        assert!(is_loopback("ldap://127.0.0.1:3389"));
        assert!(is_loopback("http://localhost:8065/"));
        assert!(is_loopback("ldap://[::1]:389"));
        assert!(!is_loopback("ldap://ipa.example.org"));
    }

    #[test]
    fn what_a_link_needs_follows_its_mode_target_and_admins() {
        let link = |target: &str, mode: Mode, admins: Admins| Link {
            group: "mm_rl_x".into(),
            target: target.parse().expect("target"),
            mode,
            admins,
            readd: mattersync_core::Readd::Never,
            source: mattersync_core::LinkSource::Config,
        };
        let names = |l: &Link, p: bool| needs(l, p).into_iter().map(|(n, _)| n).collect::<Vec<_>>();
        assert_eq!(
            names(&link("rl", Mode::Add, Admins::None), false),
            ["add_user_to_team"]
        );
        assert_eq!(
            names(&link("rl", Mode::Sync, Admins::Managers), false),
            [
                "add_user_to_team",
                "remove_user_from_team",
                "manage_team_roles"
            ]
        );
        assert_eq!(
            names(&link("rl/x", Mode::Sync, Admins::None), true),
            ["add_user_to_team", "manage_private_channel_members"]
        );
        assert_eq!(
            names(&link("rl/x", Mode::Add, Admins::Managers), false),
            [
                "add_user_to_team",
                "manage_public_channel_members",
                "manage_channel_roles"
            ]
        );
    }
}
