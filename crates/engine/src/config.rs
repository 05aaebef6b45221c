//! The configuration file (TOML) with environment overrides, validated up front.
//!
//! Overrides: `MATTERSYNC__<SECTION>__<KEY>=<value>` sets `<section>.<key>` (the value is read
//! as a TOML literal when it parses as one, as a string otherwise), e.g.
//! `MATTERSYNC__MATTERMOST__URL=https://chat.example.org`. Secrets never live in the file:
//! they come from `*_file` paths or from `MATTERSYNC_MATTERMOST_TOKEN`,
//! `MATTERSYNC_LDAP_PASSWORD`, `MATTERSYNC_IPA_PASSWORD`.

use anyhow::{bail, Context, Result};
use mattersync_core::{Admins, Guards, Link, LinkSource, Matching, Mode, Naming, Readd, Target};
pub use mattersync_directory::LdapConfig;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

pub const DEFAULT_PATH: &str = "/etc/mattersync/config.toml";

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Read apart from the rest (see [`directory_section`]).
    #[serde(skip_deserializing)]
    pub directory: DirectorySection,
    #[serde(default)]
    pub naming: NamingSection,
    #[serde(default)]
    pub areas: BTreeMap<String, String>,
    pub mattermost: MattermostSection,
    #[serde(default)]
    pub defaults: Defaults,
    #[serde(default, rename = "link")]
    pub links: Vec<LinkSection>,
    #[serde(default, serialize_with = "every_guard")]
    pub guards: Guards,
    #[serde(default)]
    pub exclusive: ExclusiveSection,
    #[serde(default)]
    pub ledger: LedgerSection,
    #[serde(default)]
    pub serve: ServeSection,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DirectoryKind {
    #[default]
    Freeipa,
    Ldap,
}

/// `[directory]`: the LDAP adapter's own settings ([`LdapConfig`], every key declared once,
/// there) plus which backend writes groups.
#[derive(Debug, Clone, Serialize)]
pub struct DirectorySection {
    pub kind: DirectoryKind,
    pub freeipa: Option<FreeipaSection>,
    #[serde(flatten)]
    pub ldap: LdapConfig,
}

/// Every guard, the defaults included (`Guards` leaves unchanged addition guards out of a
/// plan's fingerprint; `config show` shows them).
fn every_guard<S: serde::Serializer>(g: &Guards, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeStruct;
    let mut st = s.serialize_struct("Guards", 4)?;
    st.serialize_field("max_removals", &g.max_removals)?;
    st.serialize_field("max_removal_ratio", &g.max_removal_ratio)?;
    st.serialize_field("max_additions", &g.max_additions)?;
    st.serialize_field("max_addition_ratio", &g.max_addition_ratio)?;
    st.end()
}

fn default_timeout() -> u64 {
    30
}

fn default_read_concurrency() -> usize {
    4
}

impl Default for DirectorySection {
    fn default() -> Self {
        DirectorySection {
            kind: DirectoryKind::default(),
            freeipa: None,
            ldap: LdapConfig::new("", ""),
        }
    }
}

/// The keys of `[directory]` that are not the LDAP adapter's.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DirectoryExtras {
    #[serde(default)]
    kind: DirectoryKind,
    #[serde(default)]
    freeipa: Option<FreeipaSection>,
}

/// Splits `[directory]` into the adapter's settings and ours, naming the key of any error.
fn directory_section(table: Option<toml::Value>) -> Result<DirectorySection> {
    let Some(toml::Value::Table(mut t)) = table else {
        bail!("directory: missing section [directory] (uri, base_dn, ...)");
    };
    let mut extras = toml::Table::new();
    for k in ["kind", "freeipa"] {
        if let Some(v) = t.remove(k) {
            extras.insert(k.to_string(), v);
        }
    }
    if t.contains_key("bind_password") {
        bail!("directory.bind_password: secrets never live in the configuration file; use directory.bind_password_file or MATTERSYNC_LDAP_PASSWORD");
    }
    let named = |e: serde_path_to_error::Error<toml::de::Error>| {
        let path = e.path().to_string();
        if path == "." {
            anyhow::anyhow!("directory: {}", e.inner())
        } else {
            anyhow::anyhow!("directory.{path}: {}", e.inner())
        }
    };
    let extras: DirectoryExtras =
        serde_path_to_error::deserialize(toml::Value::Table(extras)).map_err(named)?;
    let ldap: LdapConfig =
        serde_path_to_error::deserialize(toml::Value::Table(t)).map_err(named)?;
    Ok(DirectorySection {
        kind: extras.kind,
        freeipa: extras.freeipa,
        ldap,
    })
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // for `group` commands through FreeIPA's JSON-RPC API
pub struct FreeipaSection {
    pub url: String,
    pub user: String,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ChannelFromName {
    #[default]
    UnderscoreToHyphen,
    Verbatim,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NamingSection {
    pub template: String,
    pub channel_from_name: ChannelFromName,
}

impl Default for NamingSection {
    fn default() -> Self {
        NamingSection {
            template: mattersync_core::naming::DEFAULT_TEMPLATE.to_string(),
            channel_from_name: ChannelFromName::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MattermostSection {
    pub url: String,
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// The auth service accounts sign in with (`openid`, `gitlab`, `saml`, `ldap`): with it,
    /// accounts are matched by `auth_data` unless `match` says otherwise.
    #[serde(default)]
    pub auth_service: Option<String>,
    /// `match` as the file says it; [`MattermostSection::matching`] is what is used.
    #[serde(default, rename = "match", skip_serializing)]
    pub match_file: Option<Matching>,
    /// How directory users are matched to accounts: `match`, or by `auth_data` with
    /// `auth_service`. There is no default without one of them (see [`parse`]).
    #[serde(skip_deserializing, rename = "match")]
    pub matching: Matching,
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub insecure: bool,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Requests in flight at most while reading teams, channels, members and accounts.
    #[serde(default = "default_read_concurrency")]
    pub read_concurrency: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Defaults {
    pub mode: Mode,
    pub admins: Admins,
    pub readd: Readd,
    pub auto_link: bool,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            mode: Mode::Sync,
            admins: Admins::None,
            readd: Readd::Never,
            auto_link: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LinkSection {
    pub group: String,
    #[serde(default)]
    pub channel: Option<String>,
    #[serde(default)]
    pub team: Option<String>,
    #[serde(default)]
    pub mode: Option<Mode>,
    #[serde(default)]
    pub admins: Option<Admins>,
    #[serde(default)]
    pub readd: Option<Readd>,
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ExclusiveSection {
    /// Usernames `exclusive` links never remove.
    pub allow: BTreeSet<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LedgerSection {
    /// The SQLite ledger (the default, for one instance).
    pub path: PathBuf,
    /// A PostgreSQL ledger instead (`postgres://user@host/db`), for one or more instances
    /// with one leader. TLS is required and verified unless the URL says `sslmode=disable`.
    pub url: Option<String>,
    /// The PostgreSQL password (or `MATTERSYNC_LEDGER_PASSWORD`).
    pub password_file: Option<PathBuf>,
    /// A CA bundle for the PostgreSQL server's certificate (default: the system's roots).
    pub ca_file: Option<PathBuf>,
}

impl Default for LedgerSection {
    fn default() -> Self {
        LedgerSection {
            path: PathBuf::from("/var/lib/mattersync/ledger.db"),
            url: None,
            password_file: None,
            ca_file: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeSection {
    pub listen: String,
    pub full_reconcile: String,
    /// The guards also count over this window of applied changes (`0s`: per cycle only).
    pub guard_window: String,
    /// How long an approval of a held plan (`POST /approve/<fingerprint>`) stays good while
    /// the service cannot apply it yet (the directory or Mattermost does not answer).
    pub approval_ttl: String,
    pub api_token_file: Option<PathBuf>,
    /// No longer accepted (one token for every team): refused with a pointer to
    /// `slash_command_token_dir`.
    pub slash_command_token_file: Option<PathBuf>,
    /// One slash command token per team: `<dir>/<team>.token`, mode 600, for each team of
    /// `[areas]` (written by `mattersync slash install`).
    pub slash_command_token_dir: Option<PathBuf>,
    /// The URL Mattermost calls for the slash command (`https://<host>/slash`): what
    /// `mattersync slash install` registers; its dialogs submit to `<url>/dialog`.
    pub slash_command_url: Option<String>,
    /// Besides system admins, who may use the slash command's privileged options
    /// (`mode=exclusive`, `admins=…`, `readd=always`) and link a group outside the area of
    /// the channel's team: `"team_admin"`.
    pub slash_privileged: Vec<SlashRole>,
    /// `team/channel`: where `serve` posts one message per hold, with Show / Approve /
    /// Dismiss buttons (off when unset).
    pub alerts_channel: Option<String>,
    /// Mattermost usernames who may approve a hold from its alert (empty: system admins).
    pub approvers: Vec<String>,
    /// Also post failures during apply and broken links in `alerts_channel`.
    pub alerts_problems: bool,
    /// One message per distinct problem at most this often (and at most
    /// `PROBLEM_BURST` problem messages within it).
    pub alerts_problem_interval: String,
    /// Where directory changes come from: `auto`, `syncrepl`, `poll` or `off`.
    pub changes: String,
    /// Changes within this long of each other are synced together.
    pub debounce: String,
    /// Polling: how often to ask for entries with a newer modifyTimestamp.
    pub poll_interval: String,
    /// Polling: how often to compare a full listing (catches deletions).
    pub poll_listing: String,
    /// `text` or `json` (JSON lines).
    pub log_format: String,
    pub http_header_timeout: String,
    pub http_body_timeout: String,
    pub http_max_connections: usize,
    pub http_max_body: usize,
}

/// A Mattermost role the slash command's permission model can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SlashRole {
    SystemAdmin,
    TeamAdmin,
}

impl Default for ServeSection {
    fn default() -> Self {
        ServeSection {
            listen: "127.0.0.1:8787".to_string(),
            full_reconcile: "15m".to_string(),
            guard_window: "10m".to_string(),
            approval_ttl: "1h".to_string(),
            api_token_file: None,
            slash_command_token_file: None,
            slash_command_token_dir: None,
            slash_command_url: None,
            slash_privileged: vec![SlashRole::SystemAdmin],
            alerts_channel: None,
            approvers: Vec::new(),
            alerts_problems: true,
            alerts_problem_interval: "1h".to_string(),
            changes: "auto".to_string(),
            debounce: "100ms".to_string(),
            poll_interval: "5s".to_string(),
            poll_listing: "60s".to_string(),
            log_format: "text".to_string(),
            http_header_timeout: "10s".to_string(),
            http_body_timeout: "30s".to_string(),
            http_max_connections: 256,
            http_max_body: 64 * 1024,
        }
    }
}

/// Reads and validates the configuration at `path`, applying environment overrides.
pub fn load(path: &Path) -> Result<Config> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read the configuration {} (set --config or MATTERSYNC_CONFIG)",
            path.display()
        )
    })?;
    let env: Vec<(String, String)> = std::env::vars().collect();
    parse(&text, &env).with_context(|| format!("configuration {}", path.display()))
}

/// Parses configuration text with the given environment (for tests, an explicit list).
pub fn parse(text: &str, env: &[(String, String)]) -> Result<Config> {
    let mut value: toml::Table = toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
    apply_env(&mut value, env)?;
    let directory = directory_section(value.remove("directory"))?;
    let de = toml::Value::Table(value);
    let mut cfg: Config = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        anyhow::anyhow!(
            "{}: {}",
            if path == "." {
                "top level".to_string()
            } else {
                path
            },
            e.inner()
        )
    })?;
    cfg.directory = directory;
    cfg.mattermost.matching = resolve_matching(&cfg.mattermost)?;
    cfg.validate()?;
    Ok(cfg)
}

/// The matching to use. The default cannot be squatted: by `auth_data` with the configured
/// `auth_service`. Matching by username or e-mail (which anyone who can sign up can take)
/// must be asked for with `match`.
fn resolve_matching(m: &MattermostSection) -> Result<Matching> {
    match (&m.match_file, &m.auth_service) {
        (Some(Matching::AuthData { auth_service }), Some(s)) if auth_service != s => bail!(
            "mattermost.match.auth_service: {auth_service:?} differs from mattermost.auth_service = {s:?}; give one"
        ),
        (Some(found), _) => Ok(found.clone()),
        (None, Some(s)) => Ok(Matching::AuthData {
            auth_service: s.clone(),
        }),
        (None, None) => bail!(
            "mattermost: say how directory users are matched to accounts: set auth_service = \"openid\" (the service they sign in with; accounts are matched by auth_data, which nobody can take over), or ask for match = {{ by = \"username\" }} (or \"email\") explicitly, knowing that a self-registered account with a directory user's name then receives that user's channels"
        ),
    }
}

fn apply_env(table: &mut toml::Table, env: &[(String, String)]) -> Result<()> {
    for (k, v) in env {
        let Some(rest) = k.strip_prefix("MATTERSYNC__") else {
            continue;
        };
        let parts: Vec<String> = rest.split("__").map(|p| p.to_lowercase()).collect();
        if parts.iter().any(|p| p.is_empty()) {
            bail!("environment override {k}: empty key part");
        }
        let value = toml::from_str::<toml::Table>(&format!("v = {v}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(v.clone()));
        let mut cur = &mut *table;
        for p in &parts[..parts.len() - 1] {
            let entry = cur
                .entry(p.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            cur = match entry {
                toml::Value::Table(t) => t,
                _ => bail!("environment override {k}: {p} is not a section"),
            };
        }
        if let Some(last) = parts.last() {
            cur.insert(last.clone(), value);
        }
    }
    Ok(())
}

impl Config {
    /// The teams the slash command serves (those of `[areas]`) and where each one's token
    /// file is; empty when the slash command is off.
    pub fn slash_token_files(&self) -> Vec<(String, PathBuf)> {
        let Some(dir) = &self.serve.slash_command_token_dir else {
            return Vec::new();
        };
        let teams: BTreeSet<&String> = self.areas.values().collect();
        // Team names are checked as Mattermost names (a-z, 0-9, '-'), so each is one plain
        // file name.
        teams
            .into_iter()
            .map(|t| (t.clone(), dir.join(format!("{t}.token"))))
            .collect()
    }

    fn validate(&self) -> Result<()> {
        if self.areas.is_empty() {
            bail!("areas: at least one area must map to a team, e.g. rl = \"rocky-linux\"");
        }
        for (area, team) in &self.areas {
            if !area
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
                || area.is_empty()
            {
                bail!("areas.{area}: an area is lowercase letters a-z and digits");
            }
            team.parse::<Target>()
                .map_err(|e| anyhow::anyhow!("areas.{area}: {e}"))?;
        }
        if !(self.guards.max_addition_ratio >= 0.0 && self.guards.max_addition_ratio.is_finite()) {
            bail!(
                "guards.max_addition_ratio: {} is not a number of times a channel's size (0 or more)",
                self.guards.max_addition_ratio
            );
        }
        if !(0.0..=1.0).contains(&self.guards.max_removal_ratio) {
            bail!(
                "guards.max_removal_ratio: {} is not between 0 and 1",
                self.guards.max_removal_ratio
            );
        }
        let naming = self.naming()?;
        for (i, l) in self.links.iter().enumerate() {
            // As `mattersync link` and the slash command check it: a group outside the
            // template is never in the directory's snapshot, and a link to it would only
            // leave its channel add-only.
            naming
                .parse(&l.group)
                .map_err(|e| anyhow::anyhow!("link[{i}].group: {e}"))?;
            self.link_target(l)
                .with_context(|| format!("link[{i}] (group {:?})", l.group))?;
        }
        if let Matching::AuthData { auth_service } = &self.mattermost.matching {
            if auth_service.is_empty() {
                bail!("mattermost.match.auth_service: must name the auth service, e.g. \"openid\"");
            }
        }
        if !(1..=64).contains(&self.mattermost.read_concurrency) {
            bail!(
                "mattermost.read_concurrency: {} is not between 1 and 64 requests in flight",
                self.mattermost.read_concurrency
            );
        }
        for (key, url) in [("mattermost.url", &self.mattermost.url)] {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                bail!("{key}: {url:?} is not an http(s) URL");
            }
        }
        let uri = &self.directory.ldap.uri;
        if !(uri.starts_with("ldap://")
            || uri.starts_with("ldaps://")
            || uri.starts_with("ldapi://"))
        {
            bail!("directory.uri: {uri:?} is not an ldap://, ldaps:// or ldapi:// URI");
        }
        // The password is not in the file: it may come from the environment.
        let mut ldap = self.directory.ldap.clone();
        if ldap.bind_password_file.is_none()
            && (std::env::var_os("MATTERSYNC_LDAP_PASSWORD").is_some_and(|v| !v.is_empty())
                || credential_path("MATTERSYNC_LDAP_PASSWORD").is_some())
        {
            ldap.bind_password = Some(mattersync_directory::Secret::new("(from the environment)"));
        }
        ldap.validate()
            .map_err(|e| anyhow::anyhow!("directory: {e}"))?;
        humantime(&self.serve.full_reconcile).context("serve.full_reconcile")?;
        if let Some(f) = &self.serve.slash_command_token_file {
            bail!(
                "serve.slash_command_token_file ({}): one token for every team is no longer accepted, \
                 since whoever can read one team's command token could then act in every team. \
                 Set serve.slash_command_token_dir instead: one <team>.token per team, which \
                 `mattersync slash install` registers and writes",
                f.display()
            );
        }
        if let Some(url) = &self.ledger.url {
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                bail!("ledger.url: {url:?} is not a postgres:// URL");
            }
            if url
                .split_once("://")
                .and_then(|(_, rest)| rest.split_once('@'))
                .is_some_and(|(userinfo, _)| userinfo.contains(':'))
            {
                bail!("ledger.url: holds a password; put it in ledger.password_file or MATTERSYNC_LEDGER_PASSWORD");
            }
        }
        if let Some(url) = &self.serve.slash_command_url {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                bail!("serve.slash_command_url: {url:?} is not an http(s) URL");
            }
        }
        if let Some(c) = &self.serve.alerts_channel {
            let ok = c
                .split_once('/')
                .is_some_and(|(t, ch)| !t.is_empty() && !ch.is_empty() && !ch.contains('/'));
            if !ok {
                bail!("serve.alerts_channel: {c:?} is not \"team/channel\" (names, as in a link)");
            }
        }
        humantime(&self.serve.guard_window).context("serve.guard_window")?;
        humantime(&self.serve.alerts_problem_interval).context("serve.alerts_problem_interval")?;
        for (key, v) in [
            ("serve.debounce", &self.serve.debounce),
            ("serve.poll_interval", &self.serve.poll_interval),
            ("serve.poll_listing", &self.serve.poll_listing),
            ("serve.http_header_timeout", &self.serve.http_header_timeout),
            ("serve.http_body_timeout", &self.serve.http_body_timeout),
        ] {
            humantime(v).context(key)?;
        }
        if !["auto", "syncrepl", "poll", "off"].contains(&self.serve.changes.as_str()) {
            bail!(
                "serve.changes: {:?} is not auto, syncrepl, poll or off",
                self.serve.changes
            );
        }
        if !["text", "json"].contains(&self.serve.log_format.as_str()) {
            bail!(
                "serve.log_format: {:?} is not text or json",
                self.serve.log_format
            );
        }
        humantime(&self.serve.approval_ttl).context("serve.approval_ttl")?;
        Ok(())
    }

    pub fn naming(&self) -> Result<Naming> {
        Naming::new(&self.naming.template, self.areas.keys().cloned())
            .map_err(|e| anyhow::anyhow!("naming.template: {e}"))
    }

    fn link_target(&self, l: &LinkSection) -> Result<Target> {
        match (&l.channel, &l.team) {
            (Some(c), None) => {
                let t: Target = c
                    .parse()
                    .map_err(|e: String| anyhow::anyhow!("channel: {e}"))?;
                if !matches!(t, Target::Channel { .. }) {
                    bail!("channel: {c:?} must be team/channel (use team = \"…\" for a team link)");
                }
                Ok(t)
            }
            (None, Some(t)) => {
                let t: Target = t
                    .parse()
                    .map_err(|e: String| anyhow::anyhow!("team: {e}"))?;
                if !matches!(t, Target::Team { .. }) {
                    bail!("team: a team link names only the team");
                }
                Ok(t)
            }
            (Some(_), Some(_)) => {
                bail!("give either channel = \"team/channel\" or team = \"team\", not both")
            }
            (None, None) => bail!("missing channel = \"team/channel\" or team = \"team\""),
        }
    }

    /// Links declared in the file, with defaults filled in.
    pub fn file_links(&self) -> Result<Vec<Link>> {
        self.links
            .iter()
            .map(|l| {
                Ok(Link {
                    group: l.group.clone(),
                    target: self.link_target(l)?,
                    mode: l.mode.unwrap_or(self.defaults.mode),
                    admins: l
                        .admins
                        .clone()
                        .unwrap_or_else(|| self.defaults.admins.clone()),
                    readd: l.readd.unwrap_or(self.defaults.readd),
                    source: LinkSource::Config,
                })
            })
            .collect()
    }

    /// The link a group makes by convention (`auto_link`): `Ok(None)` when its name does not
    /// fit the template, `Err` (why, for a warning) when it fits but the channel name derived
    /// from it is longer than Mattermost allows, so the group gets no convention link.
    pub fn convention_link(&self, naming: &Naming, group: &str) -> Result<Option<Link>, String> {
        let Ok(name) = naming.parse(group) else {
            return Ok(None);
        };
        let Some(team) = self.areas.get(&name.area) else {
            return Ok(None);
        };
        let channel = match self.naming.channel_from_name {
            ChannelFromName::UnderscoreToHyphen => name.conventional_channel(),
            ChannelFromName::Verbatim => name.name.clone(),
        };
        let target = Target::Channel {
            team: team.clone(),
            channel,
        };
        target.check_bounds().map_err(|e| {
            format!(
                "group {group} gets no convention link (auto_link): its {e}; link it to a channel by hand with `mattersync link` or a [[link]] in the configuration file"
            )
        })?;
        Ok(Some(Link {
            group: group.to_string(),
            target,
            mode: self.defaults.mode,
            admins: self.defaults.admins.clone(),
            readd: self.defaults.readd,
            source: LinkSource::Convention,
        }))
    }
}

/// The key paths of a configuration value (as `config show` prints it and
/// `docs/config.md` lists them): `section.key`, `directory.freeipa.key`, `areas.<area>`,
/// `link[].key`; `mattermost.match` is one key.
pub fn key_paths(value: &serde_json::Value) -> BTreeSet<String> {
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut BTreeSet<String>) {
        match v {
            serde_json::Value::Object(m) if prefix != "mattermost.match" && prefix != "areas" => {
                for (k, v) in m {
                    let path = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&path, v, out);
                }
            }
            serde_json::Value::Array(items) if prefix == "link" => {
                for item in items {
                    walk("link[]", item, out);
                }
            }
            _ if prefix == "areas" => {
                out.insert("areas.<area>".to_string());
            }
            _ => {
                out.insert(prefix.to_string());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk("", value, &mut out);
    out
}

/// The key paths the file at `path` sets itself (before environment overrides).
pub fn file_keys(path: &Path) -> Result<BTreeSet<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the configuration {}", path.display()))?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| anyhow::anyhow!("{e}"))?;
    let json = serde_json::to_value(&table).context("configuration as data")?;
    Ok(key_paths(&json))
}

/// The key paths the environment overrides (`MATTERSYNC__SECTION__KEY`).
pub fn env_keys(env: &[(String, String)]) -> BTreeSet<String> {
    env.iter()
        .filter_map(|(k, _)| k.strip_prefix("MATTERSYNC__"))
        .map(|rest| {
            rest.split("__")
                .map(|p| p.to_lowercase())
                .collect::<Vec<_>>()
                .join(".")
        })
        .collect()
}

/// Parses durations like `90s`, `15m`, `2h 30m` (the `humantime` crate's format; a bare
/// number is seconds). A value too large for a duration is an error, never a wrap-around.
pub fn humantime(s: &str) -> Result<std::time::Duration> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        let n: u64 = s
            .parse()
            .map_err(|_| anyhow::anyhow!("{s:?} is too large for a duration"))?;
        return Ok(std::time::Duration::from_secs(n));
    }
    ::humantime::parse_duration(s)
        .map_err(|e| anyhow::anyhow!("{s:?} is not a duration like 90s, 15m or 2h: {e}"))
}

/// The systemd credential a secret may come from (`LoadCredential=`): its environment
/// variable's name without `MATTERSYNC_`, lowercased (`mattermost_token`, `ldap_password`,
/// `ipa_password`, `api_token`, `slash_token`).
pub fn credential_name(env: &str) -> String {
    env.strip_prefix("MATTERSYNC_")
        .unwrap_or(env)
        .to_ascii_lowercase()
}

/// `$CREDENTIALS_DIRECTORY/<credential_name>`, when systemd handed the service that file.
pub fn credential_path(env: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("CREDENTIALS_DIRECTORY").filter(|d| !d.is_empty())?;
    let path = Path::new(&dir).join(credential_name(env));
    path.is_file().then_some(path)
}

/// Reads a secret from the environment variable `env`, else from the systemd credential of
/// that name ([`credential_path`]), else from `file`. The file must not be readable by
/// others.
pub fn secret(env: &str, file: Option<&Path>, what: &str) -> Result<Option<String>> {
    if let Ok(v) = std::env::var(env) {
        if !v.is_empty() {
            return Ok(Some(v));
        }
    }
    let credential = credential_path(env);
    let Some(file) = credential.as_deref().or(file) else {
        return Ok(None);
    };
    check_secret_file(file, what)?;
    let v = std::fs::read_to_string(file)
        .with_context(|| format!("{what}: cannot read {}", file.display()))?;
    let v = v.trim_end_matches(['\n', '\r']).to_string();
    if v.is_empty() {
        bail!("{what}: {} is empty", file.display());
    }
    Ok(Some(v))
}

fn check_secret_file(file: &Path, what: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(file)
        .with_context(|| format!("{what}: secret file {} is missing", file.display()))?;
    if meta.permissions().mode() & 0o004 != 0 {
        bail!(
            "{what}: secret file {} is readable by every user; run chmod 600 {}",
            file.display(),
            file.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[directory]
uri = "ldaps://ipa.example.org"
base_dn = "dc=rockylinux,dc=org"

[areas]
rl = "rocky-linux"
resf = "resf"

[mattermost]
url = "https://chat.example.org"
token_file = "/etc/mattersync/mattermost.token"
auth_service = "openid"

[[link]]
group = "mm_rl_infra"
channel = "rocky-linux/infrastructure"
admins = "managers"

[[link]]
group = "mm_resf_board"
team = "resf"
mode = "add"
"#;

    fn err_of(text: &str) -> String {
        format!("{:#}", parse(text, &[]).expect_err("must be refused"))
    }

    #[test]
    fn mattermost_reads_four_at_a_time_unless_told_otherwise() {
        let cfg = parse(MINIMAL, &[]).expect("valid");
        assert_eq!(cfg.mattermost.read_concurrency, 4);
        let with = |n: &str| {
            MINIMAL.replace(
                "auth_service = \"openid\"\n",
                &format!("auth_service = \"openid\"\nread_concurrency = {n}\n"),
            )
        };
        let cfg = parse(&with("1"), &[]).expect("valid");
        assert_eq!(cfg.mattermost.read_concurrency, 1);
        for bad in ["0", "65"] {
            let e = err_of(&with(bad));
            assert!(e.contains("mattermost.read_concurrency"), "{e}");
        }
    }

    #[test]
    fn a_minimal_file_gets_defaults_and_links() {
        let cfg = parse(MINIMAL, &[]).expect("valid");
        assert_eq!(cfg.guards.max_removals, 50);
        assert_eq!(
            humantime(&cfg.serve.approval_ttl).expect("ttl"),
            std::time::Duration::from_secs(3600)
        );
        assert_eq!(
            cfg.mattermost.matching,
            Matching::AuthData {
                auth_service: "openid".into()
            }
        );
        let links = cfg.file_links().expect("links");
        assert_eq!(links.len(), 2);
        assert_eq!(links[0].admins, Admins::Managers);
        assert_eq!(links[0].mode, Mode::Sync);
        assert_eq!(
            links[1].target,
            Target::Team {
                team: "resf".into()
            }
        );
        assert_eq!(links[1].mode, Mode::Add);
        let naming = cfg.naming().expect("naming");
        let conv = cfg
            .convention_link(&naming, "mm_rl_release_eng")
            .expect("fits")
            .expect("link");
        assert_eq!(conv.target.to_string(), "rocky-linux/release-eng");
        assert_eq!(cfg.convention_link(&naming, "mm_xx_y"), Ok(None));
    }

    #[test]
    fn matching_defaults_to_auth_data_and_username_or_email_must_be_asked_for() {
        let without = MINIMAL.replace("auth_service = \"openid\"\n", "");
        let e = err_of(&without);
        assert!(
            e.contains("auth_service") && e.contains("match = { by = \"username\" }"),
            "{e}"
        );
        for (by, m) in [("username", Matching::Username), ("email", Matching::Email)] {
            let text = without.replace(
                "[mattermost]\n",
                &format!("[mattermost]\nmatch = {{ by = \"{by}\" }}\n"),
            );
            assert_eq!(parse(&text, &[]).expect("explicit").mattermost.matching, m);
        }
        // An explicit match wins over auth_service; two auth services are refused.
        let text = MINIMAL.replace(
            "auth_service = \"openid\"\n",
            "auth_service = \"openid\"\nmatch = { by = \"email\" }\n",
        );
        assert_eq!(
            parse(&text, &[]).expect("valid").mattermost.matching,
            Matching::Email
        );
        let text = MINIMAL.replace(
            "auth_service = \"openid\"\n",
            "auth_service = \"openid\"\nmatch = { by = \"auth_data\", auth_service = \"gitlab\" }\n",
        );
        assert!(err_of(&text).contains("differs"), "{}", err_of(&text));
        // From the environment too.
        let env = vec![(
            "MATTERSYNC__MATTERMOST__AUTH_SERVICE".to_string(),
            "saml".to_string(),
        )];
        assert_eq!(
            parse(&without, &env).expect("valid").mattermost.matching,
            Matching::AuthData {
                auth_service: "saml".into()
            }
        );
    }

    #[test]
    fn a_convention_channel_over_64_characters_is_no_link_and_says_why() {
        let cfg = parse(&format!("{MINIMAL}\n[defaults]\nauto_link = true\n"), &[]).expect("valid");
        let naming = cfg.naming().expect("naming");
        // The channel is the name part with '_' turned into '-': 64 is the longest.
        let at_limit = format!("mm_rl_{}", "a_".repeat(32).trim_end_matches('_'));
        let l = cfg
            .convention_link(&naming, &format!("{at_limit}b"))
            .expect("64 fits")
            .expect("link");
        match &l.target {
            Target::Channel { channel, .. } => assert_eq!(channel.len(), 64),
            t => panic!("{t:?}"),
        }
        let over = format!("{at_limit}bc");
        let why = cfg.convention_link(&naming, &over).expect_err("65 is over");
        assert!(
            why.contains(&over) && why.contains("65 character(s)") && why.contains("1 to 64"),
            "{why}"
        );
        // resolve_links leaves the group out and says so.
        let mut dir = mattersync_core::Directory::default();
        for cn in [format!("{at_limit}b"), over.clone()] {
            dir.groups.insert(cn.clone(), Default::default());
        }
        let (links, warnings) = crate::resolve_links(&cfg, &dir, vec![]).expect("links");
        assert!(links.iter().all(|l| l.group != over), "{links:?}");
        assert!(
            links.iter().any(|l| l.group == format!("{at_limit}b")),
            "{links:?}"
        );
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains(&over), "{warnings:?}");
    }

    #[test]
    fn a_file_link_must_name_a_group_that_fits_the_template() {
        // Outside the template, an unknown area, and over FreeIPA's 255 characters: each
        // is a configuration error naming the link's key.
        let long = format!("mm_resf_{}", "x".repeat(248));
        for (group, needle) in [
            ("admins", "does not match the template"),
            ("mm_foo_board", "area \"foo\" is not configured"),
            ("mm_resf_Board", "may only contain"),
            (long.as_str(), "256 characters long"),
        ] {
            let e = err_of(
                &MINIMAL.replace("group = \"mm_resf_board\"", &format!("group = \"{group}\"")),
            );
            assert!(
                e.contains("link[1].group: ") && e.contains(needle),
                "{group}: {e}"
            );
        }
        // 255 characters is accepted.
        let longest = format!("mm_resf_{}", "x".repeat(247));
        parse(&MINIMAL.replace("mm_resf_board", &longest), &[]).expect("255 characters");
    }

    #[test]
    fn file_link_targets_are_within_mattermosts_name_lengths() {
        let long = "c".repeat(65);
        let e =
            err_of(&MINIMAL.replace("rocky-linux/infrastructure", &format!("rocky-linux/{long}")));
        assert!(e.contains("link[0]") && e.contains("1 to 64"), "{e}");
        parse(
            &MINIMAL.replace(
                "rocky-linux/infrastructure",
                &format!("rocky-linux/{}", &long[..64]),
            ),
            &[],
        )
        .expect("64 characters");
        let e =
            err_of(&MINIMAL.replace("team = \"resf\"", &format!("team = \"{}\"", "t".repeat(65))));
        assert!(e.contains("link[1]") && e.contains("2 to 64"), "{e}");
    }

    #[test]
    fn unknown_keys_name_their_path() {
        let text = MINIMAL.replace("token_file", "tokn_file");
        let e = err_of(&text);
        assert!(e.contains("mattermost") && e.contains("tokn_file"), "{e}");
        let text = format!("{MINIMAL}\n[guards]\nmax_removal = 3\n");
        let e = err_of(&text);
        assert!(e.contains("guards") && e.contains("max_removal"), "{e}");
    }

    #[test]
    fn bad_values_name_their_path() {
        let e = err_of(&MINIMAL.replace("mode = \"add\"", "mode = \"mirror\""));
        assert!(e.contains("link[1].mode"), "{e}");
        let e = err_of(&MINIMAL.replace("admins = \"managers\"", "admins = \"owners\""));
        assert!(
            e.contains("link[0].admins") && e.contains("group:<name>"),
            "{e}"
        );
        let e = err_of(&format!("{MINIMAL}\n[guards]\nmax_removals = \"ten\"\n"));
        assert!(e.contains("guards.max_removals"), "{e}");
        let e = err_of(&format!("{MINIMAL}\n[guards]\nmax_removal_ratio = 1.5\n"));
        assert!(e.contains("max_removal_ratio"), "{e}");
        let e = err_of(&MINIMAL.replace(
            "channel = \"rocky-linux/infrastructure\"",
            "channel = \"Rocky/x\"",
        ));
        assert!(e.contains("link[0]") && e.contains("Rocky/x"), "{e}");
        let e =
            err_of(&MINIMAL.replace("team = \"resf\"", "team = \"resf\"\nchannel = \"resf/x\""));
        assert!(e.contains("not both"), "{e}");
        let e = err_of(&MINIMAL.replace("ldaps://", "https://"));
        assert!(e.contains("directory.uri"), "{e}");
        let e = err_of(&MINIMAL.replace("rl = \"rocky-linux\"", "RL = \"rocky-linux\""));
        assert!(e.contains("areas.RL"), "{e}");
        let e = err_of(&format!("{MINIMAL}\n[serve]\napproval_ttl = \"an hour\"\n"));
        assert!(e.contains("serve.approval_ttl"), "{e}");
    }

    #[test]
    fn environment_overrides_win_and_keep_types() {
        let env = vec![
            (
                "MATTERSYNC__MATTERMOST__URL".to_string(),
                "https://other.example.org".to_string(),
            ),
            (
                "MATTERSYNC__GUARDS__MAX_REMOVALS".to_string(),
                "7".to_string(),
            ),
            (
                "MATTERSYNC__LEDGER__PATH".to_string(),
                "/tmp/x.db".to_string(),
            ),
            ("UNRELATED".to_string(), "1".to_string()),
        ];
        let cfg = parse(MINIMAL, &env).expect("valid");
        assert_eq!(cfg.mattermost.url, "https://other.example.org");
        assert_eq!(cfg.guards.max_removals, 7);
        assert_eq!(cfg.ledger.path, PathBuf::from("/tmp/x.db"));
        let bad = vec![(
            "MATTERSYNC__GUARDS__MAX_REMOVALS".to_string(),
            "many".to_string(),
        )];
        let e = format!("{:#}", parse(MINIMAL, &bad).expect_err("wrong type"));
        assert!(e.contains("guards.max_removals"), "{e}");
    }

    #[test]
    fn secret_files_must_not_be_world_readable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("token");
        std::fs::write(&f, "s3cret\n").expect("write");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let e = format!(
            "{:#}",
            secret("MATTERSYNC_TEST_UNSET_VAR", Some(&f), "token").expect_err("world-readable")
        );
        assert!(e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(
            secret("MATTERSYNC_TEST_UNSET_VAR", Some(&f), "token")
                .expect("ok")
                .as_deref(),
            Some("s3cret")
        );
        let e = format!(
            "{:#}",
            secret(
                "MATTERSYNC_TEST_UNSET_VAR",
                Some(&dir.path().join("nope")),
                "token"
            )
            .expect_err("missing")
        );
        assert!(e.contains("missing"), "{e}");
    }

    #[test]
    fn every_key_of_the_ldap_adapter_reaches_the_file_and_secrets_do_not() {
        let text = MINIMAL.replace(
            "base_dn = \"dc=rockylinux,dc=org\"",
            "base_dn = \"dc=rockylinux,dc=org\"\ndisabled_attr = \"loginDisabled\"\npage_size = 200\nsize_limit = 90000",
        );
        let cfg = parse(&text, &[]).expect("parses");
        assert_eq!(cfg.directory.ldap.disabled_attr, "loginDisabled");
        assert_eq!(cfg.directory.ldap.page_size, 200);
        assert_eq!(cfg.directory.ldap.size_limit, 90000);
        let e = err_of(&MINIMAL.replace(
            "base_dn = \"dc=rockylinux,dc=org\"",
            "base_dn = \"dc=rockylinux,dc=org\"\nbind_password = \"hunter2\"",
        ));
        assert!(e.contains("directory.bind_password"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        let e = err_of(&MINIMAL.replace(
            "base_dn = \"dc=rockylinux,dc=org\"",
            "base_dn = \"dc=rockylinux,dc=org\"\npage_size = 0",
        ));
        assert!(e.contains("page_size"), "{e}");
        let e = err_of(&MINIMAL.replace(
            "base_dn = \"dc=rockylinux,dc=org\"",
            "base_dn = \"dc=rockylinux,dc=org\"\npage_sise = 10",
        ));
        assert!(e.contains("directory.page_sise"), "{e}");
    }

    #[test]
    fn the_reference_lists_every_key_and_no_other() {
        // Every optional section and key set, so that each has a path.
        let full = format!(
            "{MINIMAL}\n[directory.freeipa]\nurl = \"https://ipa.example.org\"\nuser = \"admin\"\n\n[exclusive]\nallow = [\"bot\"]\n"
        );
        let cfg = parse(&full, &[]).expect("valid");
        let keys = key_paths(&serde_json::to_value(&cfg).expect("serializes"));
        assert!(keys.contains("directory.freeipa.url") && keys.contains("link[].team"));
        let doc = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/config.md"),
        )
        .expect("docs/config.md");
        let documented: BTreeSet<String> = doc
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split_once('`'))
            .map(|(k, _)| k.to_string())
            .collect();
        let missing: Vec<&String> = keys.difference(&documented).collect();
        let extra: Vec<&String> = documented.difference(&keys).collect();
        assert!(
            missing.is_empty(),
            "keys missing from docs/config.md: {missing:?}"
        );
        assert!(
            extra.is_empty(),
            "docs/config.md lists keys that do not exist: {extra:?}"
        );
    }

    #[test]
    fn durations_parse() {
        assert_eq!(humantime("15m").expect("ok").as_secs(), 900);
        assert_eq!(humantime("90s").expect("ok").as_secs(), 90);
        assert_eq!(humantime("2h 30m").expect("ok").as_secs(), 9000);
        assert_eq!(humantime("45").expect("ok").as_secs(), 45);
        assert!(humantime("soon").is_err());
        assert!(humantime("").is_err());
        // Too large: an error, not a wrapped-around small value or a panic.
        assert!(humantime("5124095576030432h").is_err());
        assert!(humantime("99999999999999999999999s").is_err());
        assert!(humantime("99999999999999999999999").is_err());
    }
}
