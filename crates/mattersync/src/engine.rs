//! One sync run: read both sides and the ledger, plan, and (for `apply`) execute the plan
//! action by action, recording every outcome.
//!
//! Invariant: removals only ever come from a plan computed on a complete directory read; a
//! directory error ends the run before a plan exists.

use crate::config::{self, Config};
use anyhow::{Context, Result};
use mattersync_core::{
    plan, Action, Directory, LedgerFacts, Link, LinkSource, Matching, Mattermost, Plan, PlanInput,
    Policy, Target,
};
use mattersync_directory::{LdapConfig, LdapDirectory};
use mattersync_ledger::{Ledger, RunEnd, UserOutcome};
use mattersync_mattermost::{Client, ClientConfig, Outcome, Secret};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Everything a plan is computed from.
pub struct State {
    pub directory: Directory,
    pub mattermost: Mattermost,
    pub facts: LedgerFacts,
    pub policy: Policy,
    /// Conflicts between config-file and ledger links (the file wins).
    pub warnings: Vec<String>,
}

impl State {
    pub fn plan(&self) -> Plan {
        plan(PlanInput {
            directory: &self.directory,
            mattermost: &self.mattermost,
            ledger: &self.facts,
            policy: &self.policy,
        })
    }
}

pub fn ldap_config(cfg: &Config) -> Result<LdapConfig> {
    let d = &cfg.directory;
    let password = config::secret(
        "MATTERSYNC_LDAP_PASSWORD",
        d.bind_password_file.as_deref(),
        "directory.bind_password_file",
    )?;
    let mut l = LdapConfig::new(&d.uri, &d.base_dn);
    l.bind_dn = d.bind_dn.clone();
    l.bind_password = password.map(mattersync_directory::Secret::new);
    if let Some(v) = &d.user_base {
        l.user_base = Some(v.clone());
    }
    if let Some(v) = &d.group_base {
        l.group_base = Some(v.clone());
    }
    if let Some(v) = &d.group_filter {
        l.group_filter = v.clone();
    }
    if let Some(v) = &d.member_attr {
        l.member_attr = v.clone();
    }
    if let Some(v) = &d.manager_attr {
        l.manager_attr = v.clone();
    }
    if let Some(v) = &d.user_id_attr {
        l.user_id_attr = v.clone();
    }
    if let Some(v) = &d.group_id_attr {
        l.group_id_attr = v.clone();
    }
    if let Some(v) = &d.email_attr {
        l.email_attr = v.clone();
    }
    l.auth_id_attr = d.auth_id_attr.clone();
    l.ca_file = d.ca_file.clone();
    l.starttls = d.starttls;
    l.insecure = d.insecure;
    l.timeout_secs = d.timeout_secs;
    Ok(l)
}

pub fn mattermost_client(cfg: &Config) -> Result<Client> {
    let m = &cfg.mattermost;
    let token = config::secret(
        "MATTERSYNC_MATTERMOST_TOKEN",
        m.token_file.as_deref(),
        "mattermost.token_file",
    )?
    .context("mattermost: no token (set mattermost.token_file or MATTERSYNC_MATTERMOST_TOKEN)")?;
    let mut c = ClientConfig::new(&m.url, Secret::new(token));
    c.timeout = Duration::from_secs(m.timeout_secs);
    c.ca_file = m.ca_file.clone();
    c.insecure = m.insecure;
    Client::new(c).context("mattermost client")
}

/// Links from the config file, the ledger and (with `auto_link`) the naming convention. The
/// file wins over the ledger for the same group and target; the convention fills in only
/// where neither says anything.
pub fn resolve_links(
    cfg: &Config,
    directory: &Directory,
    ledger_links: Vec<Link>,
) -> Result<(Vec<Link>, Vec<String>)> {
    let mut warnings = Vec::new();
    let mut by_key: BTreeMap<(String, Target), Link> = BTreeMap::new();
    for l in cfg.file_links()? {
        by_key.insert((l.group.clone(), l.target.clone()), l);
    }
    for l in ledger_links {
        let key = (l.group.clone(), l.target.clone());
        match by_key.get(&key) {
            Some(f) if f.mode != l.mode || f.admins != l.admins || f.readd != l.readd => {
                warnings.push(format!(
                    "link {} is in the config file (mode {}, admins {}, readd {}) and in the ledger (mode {}, admins {}, readd {}); the config file wins",
                    l.id(), f.mode, f.admins, f.readd, l.mode, l.admins, l.readd
                ));
            }
            Some(_) => {}
            None => {
                by_key.insert(key, l);
            }
        }
    }
    if cfg.defaults.auto_link {
        let naming = cfg.naming()?;
        for cn in directory.groups.keys() {
            if let Some(l) = cfg.convention_link(&naming, cn) {
                by_key
                    .entry((l.group.clone(), l.target.clone()))
                    .or_insert(l);
            }
        }
    }
    Ok((by_key.into_values().collect(), warnings))
}

/// Reads the directory (fail closed), the ledger and Mattermost.
pub async fn gather(cfg: &Config, ledger: &Ledger, mm: &Client) -> Result<State> {
    let mut dir = LdapDirectory::connect(&ldap_config(cfg)?)
        .await
        .context("directory: cannot connect; nothing was changed")?;
    let directory = dir
        .snapshot()
        .await
        .context("directory: read failed; the run stopped before planning, nothing was changed")?;
    gather_with(cfg, ledger, mm, directory).await
}

/// As [`gather`], with a directory snapshot already read.
pub async fn gather_with(
    cfg: &Config,
    ledger: &Ledger,
    mm: &Client,
    directory: Directory,
) -> Result<State> {
    let (links, warnings) = resolve_links(cfg, &directory, ledger.links()?)?;
    let mut state =
        gather_links(cfg, mm, directory, links, LedgerFacts::default(), warnings).await?;
    settle_intents(ledger, &state.mattermost)?;
    state.facts = ledger.facts()?;
    Ok(state)
}

/// Settles what a run stopped between an API call and its record left behind, from what
/// Mattermost shows now (only for the teams and channels in `mattermost`).
pub fn settle_intents(ledger: &Ledger, mattermost: &Mattermost) -> Result<usize> {
    let settled = ledger.resolve_intents("resolve", |kind, scope_id, user_id| {
        let members = if kind == "team" {
            mattermost
                .teams
                .values()
                .find(|t| t.id == scope_id)
                .map(|t| &t.members)
        } else {
            mattermost
                .channels
                .values()
                .find(|c| c.id == scope_id)
                .map(|c| &c.members)
        };
        members.map(|m| m.contains_key(user_id))
    })?;
    if settled > 0 {
        tracing::warn!(
            settled,
            "settled writes an interrupted or failed run had not recorded"
        );
    }
    Ok(settled)
}

/// What an apply did.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ApplyReport {
    pub run_id: String,
    /// Stopped by a signal before every action ran.
    pub stopped: bool,
    pub actions: usize,
    pub users_ok: usize,
    pub users_failed: usize,
    pub failures: Vec<String>,
    pub api_calls: u64,
}

/// Executes every action of the plan in order; a failed action never stops the others.
pub async fn apply(
    plan: &Plan,
    ledger: &mut Ledger,
    mm: &Client,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> Result<ApplyReport> {
    let before = mm.stats();
    let run_id = ledger.begin_run("apply", Some(&plan.fingerprint))?;
    // Fault injection for the crash tests: die like `kill -9` right after the N-th write
    // call returned and before its outcome is recorded.
    let abort_after: Option<usize> = std::env::var("MATTERSYNC_FAULT_ABORT_AFTER_WRITE")
        .ok()
        .and_then(|v| v.parse().ok());
    let mut writes_done = 0usize;
    let mut report = ApplyReport {
        run_id: run_id.clone(),
        ..Default::default()
    };
    for action in &plan.actions {
        if *stop.borrow() {
            report.stopped = true;
            report
                .failures
                .push("stopped by signal before the remaining actions".to_string());
            break;
        }
        report.actions += 1;
        ledger
            .intend(&run_id, action)
            .context("ledger: noting an intended change")?;
        let outcomes: Vec<UserOutcome> = match mm.apply(action).await {
            Ok(outs) => outs
                .into_iter()
                .map(|o| UserOutcome {
                    result: match o.outcome {
                        Outcome::Failed {
                            status, message, ..
                        } => Err(match status {
                            Some(s) => format!("HTTP {s}: {message}"),
                            None => message,
                        }),
                        _ => Ok(()),
                    },
                    user_id: o.user_id,
                })
                .collect(),
            Err(e) => subjects(action)
                .into_iter()
                .map(|id| UserOutcome {
                    user_id: id,
                    result: Err(e.to_string()),
                })
                .collect(),
        };
        if action.writes_mattermost() {
            writes_done += 1;
            if abort_after == Some(writes_done) {
                std::process::abort();
            }
        }
        for o in &outcomes {
            match &o.result {
                Ok(()) => report.users_ok += 1,
                Err(e) => {
                    report.users_failed += 1;
                    report.failures.push(format!(
                        "{} {}: {e}",
                        action.kind(),
                        describe(action, &o.user_id)
                    ));
                }
            }
        }
        if !action.writes_mattermost() {
            report.users_ok += subjects(action).len();
        }
        ledger
            .record(&run_id, action, &outcomes)
            .context("ledger: recording an action")?;
    }
    report.api_calls = mm.stats().since(&before).calls;
    ledger.finish_run(
        &run_id,
        &RunEnd {
            outcome: if report.failures.is_empty() {
                "ok"
            } else {
                "partial"
            }
            .to_string(),
            actions_ok: report.users_ok as i64,
            actions_failed: report.users_failed as i64,
            api_calls: report.api_calls as i64,
            detail: (!report.failures.is_empty()).then(|| report.failures.join("\n")),
        },
    )?;
    Ok(report)
}

/// The user ids an action touches.
pub fn subjects(action: &Action) -> Vec<String> {
    match action {
        Action::AddTeamMembers { users, .. } | Action::AddChannelMembers { users, .. } => {
            users.iter().map(|u| u.id.clone()).collect()
        }
        Action::SetChannelAdmin { user, .. }
        | Action::RemoveChannelMember { user, .. }
        | Action::RemoveTeamMember { user, .. } => vec![user.id.clone()],
        Action::RecordPreexisting { users, .. } | Action::RecordDeparted { users, .. } => {
            users.iter().map(|u| u.id.clone()).collect()
        }
    }
}

fn describe(action: &Action, user_id: &str) -> String {
    let (scope, name) = match action {
        Action::AddTeamMembers { team, users, .. } => (
            team.as_str(),
            users
                .iter()
                .find(|u| u.id == user_id)
                .map(|u| u.username.clone()),
        ),
        Action::AddChannelMembers { channel, users, .. } => (
            channel.as_str(),
            users
                .iter()
                .find(|u| u.id == user_id)
                .map(|u| u.username.clone()),
        ),
        Action::SetChannelAdmin { channel, user, .. }
        | Action::RemoveChannelMember { channel, user, .. } => {
            (channel.as_str(), Some(user.username.clone()))
        }
        Action::RemoveTeamMember { team, user, .. } => (team.as_str(), Some(user.username.clone())),
        Action::RecordPreexisting { scope, .. } | Action::RecordDeparted { scope, .. } => {
            (scope.as_str(), None)
        }
    };
    format!("{scope} {}", name.unwrap_or_else(|| user_id.to_string()))
}

/// The link sources, for `links`.
pub fn source_name(s: LinkSource) -> &'static str {
    match s {
        LinkSource::Config => "config",
        LinkSource::Convention => "convention",
        LinkSource::Ledger => "ledger",
    }
}

/// As [`gather_with`], for links already resolved (for `serve`, the subset a directory change
/// touches) and ledger facts already read: reads only the teams and channels those links
/// name, so a change to one group costs a few API calls, and holds no ledger handle across
/// the reads.
pub async fn gather_links(
    cfg: &Config,
    mm: &Client,
    directory: Directory,
    links: Vec<Link>,
    facts: LedgerFacts,
    warnings: Vec<String>,
) -> Result<State> {
    let mut teams = BTreeSet::new();
    let mut channels = BTreeSet::new();
    let mut wanted = BTreeSet::new();
    for l in &links {
        teams.insert(l.target.team().to_string());
        if let Target::Channel { team, channel } = &l.target {
            channels.insert((team.clone(), channel.clone()));
        }
        wanted.extend(directory.effective_members(&l.group));
        wanted.extend(directory.effective_managers(&l.group));
        if let mattersync_core::Admins::Group(g) = &l.admins {
            wanted.extend(directory.effective_members(g));
        }
    }
    let me = mm
        .me()
        .await
        .context("mattermost: cannot read the token's own account")?;
    let teams: Vec<String> = teams.into_iter().collect();
    let channels: Vec<(String, String)> = channels.into_iter().collect();
    let usernames: Vec<String> = match cfg.mattermost.matching {
        Matching::Username => wanted.into_iter().collect(),
        _ => Vec::new(),
    };
    let mut mattermost = if links.is_empty() {
        Mattermost::default()
    } else {
        mm.read_state(&teams, &channels, &usernames).await.context(
            "mattermost: reading teams, channels and members failed; nothing was changed",
        )?
    };
    if !links.is_empty() && !matches!(cfg.mattermost.matching, Matching::Username) {
        for u in mm.all_users().await.context("mattermost: listing users")? {
            mattermost.users.insert(u.id.clone(), u);
        }
    }
    let mut allow = cfg.exclusive.allow.clone();
    allow.insert(me.username.clone());
    let policy = Policy {
        links,
        matching: cfg.mattermost.matching.clone(),
        guards: cfg.guards.clone(),
        allow,
    };
    Ok(State {
        directory,
        mattermost,
        facts,
        policy,
        warnings,
    })
}
