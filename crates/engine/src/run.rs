//! One sync run, in steps every entry point shares: read (fail closed), resolve links, gather
//! Mattermost and the ledger, settle (lock holder only), plan, decide, apply and record.
//!
//! Invariants kept here:
//! - removals only ever come from a plan computed on a complete directory read; a
//!   directory error ends the run before a plan exists;
//! - only the holder of the run lock settles intents or writes outcomes ([`settle`],
//!   [`apply`] and [`record_hold`] take the lock as proof); read-only commands plan from
//!   [`mattersync_core::intent::settled_view`] and never write;
//! - the guard decision is made in one place ([`verdict`]).

use crate::config::{self, Config};
use crate::identity::{identify, TargetCache};
use crate::links::resolve_links;
use crate::source::{DirectorySource, MattermostApi};
use anyhow::{Context, Result};
use mattersync_core::explain::{explain, ExplainError, ExplainInput, Explanation};
use mattersync_core::intent::{is_member, settled_view};
use mattersync_core::{
    plan, Action, Directory, GuardTrip, Intent, LedgerFacts, Link, LinkIdentity, LinkIssue,
    Matching, Mattermost, MmUser, Plan, PlanInput, Policy, Target,
};
use mattersync_directory::LdapConfig;
use mattersync_ledger::{Ledger, RunEnd, RunLock, UserOutcome};
use mattersync_mattermost::{Client, ClientConfig, Secret};
use std::collections::BTreeSet;
use std::time::Duration;

/// Everything a plan is computed from.
pub struct State {
    pub directory: Directory,
    pub mattermost: Mattermost,
    /// The ledger's facts, with unsettled intents read as [`settle`] would settle them.
    pub facts: LedgerFacts,
    /// Intents not settled yet (a read-only run leaves them in the ledger).
    pub intents: Vec<Intent>,
    pub policy: Policy,
    /// Conflicts between config-file and ledger links (the file wins).
    pub warnings: Vec<String>,
    /// Renamed, gone, replaced or refused link targets and groups: said on every run.
    pub link_issues: Vec<LinkIssue>,
    /// Ids seen for the first time, and names seen anew: a lock holder records them.
    pub learned: Vec<LinkIdentity>,
    /// The token's own account.
    pub me: MmUser,
}

impl State {
    /// Links that cannot do their job.
    pub fn broken_links(&self) -> usize {
        self.link_issues.iter().filter(|i| i.broken()).count()
    }

    pub fn input(&self) -> PlanInput<'_> {
        PlanInput {
            directory: &self.directory,
            mattermost: &self.mattermost,
            ledger: &self.facts,
            policy: &self.policy,
        }
    }

    pub fn plan(&self) -> Plan {
        plan(self.input())
    }

    /// Why `who` is or is not where the links want them, from the planner's own matching.
    pub fn explain(
        &self,
        plan: &Plan,
        who: &str,
        target: Option<&Target>,
    ) -> std::result::Result<Explanation, ExplainError> {
        explain(
            &ExplainInput {
                directory: &self.directory,
                mattermost: &self.mattermost,
                ledger: &self.facts,
                policy: &self.policy,
                plan,
            },
            who,
            target,
        )
    }
}

/// What a run reads from the ledger, in one go, so no ledger handle is held across network
/// reads.
#[derive(Debug, Clone, Default)]
pub struct LedgerView {
    pub links: Vec<Link>,
    pub facts: LedgerFacts,
    pub intents: Vec<Intent>,
    pub identities: Vec<LinkIdentity>,
}

impl LedgerView {
    /// All but the facts: what a change cycle reads before it knows its scopes (it reads
    /// their facts alone, [`crate::gather_kept`]).
    pub fn read_without_facts(ledger: &Ledger) -> Result<LedgerView> {
        Ok(LedgerView {
            links: ledger.links().context("ledger: reading links")?,
            facts: LedgerFacts::default(),
            intents: ledger.intents().context("ledger: reading intents")?,
            identities: ledger
                .identities()
                .context("ledger: reading link identities")?,
        })
    }

    pub fn read(ledger: &Ledger) -> Result<LedgerView> {
        Ok(LedgerView {
            facts: ledger.facts().context("ledger: reading facts")?,
            ..LedgerView::read_without_facts(ledger)?
        })
    }
}

pub fn ldap_config(cfg: &Config) -> Result<LdapConfig> {
    let mut l = cfg.directory.ldap.clone();
    let password = config::secret(
        "MATTERSYNC_LDAP_PASSWORD",
        l.bind_password_file.as_deref(),
        "directory.bind_password_file",
    )?;
    // The adapter reads no files: the password is handed over, the file name dropped.
    l.bind_password_file = None;
    l.bind_password = password.map(mattersync_directory::Secret::new);
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
    c.read_concurrency = m.read_concurrency;
    Client::new(c).context("mattermost client")
}

/// A whole read-only run's input: the directory (fail closed), every link, Mattermost for
/// them, and the ledger as it would be once settled. Writes nothing.
pub async fn read_all<D: DirectorySource, M: MattermostApi>(
    cfg: &Config,
    dir: &mut D,
    mm: &M,
    ledger: &Ledger,
) -> Result<State> {
    let directory = dir.snapshot().await?;
    let view = LedgerView::read(ledger)?;
    gather_selected(cfg, mm, directory, view, |links| links.to_vec()).await
}

/// A directory snapshot already read, the ledger as read: every link identified, then
/// Mattermost read for the links `select` picks (all of them, or one channel's scope for a
/// preview). Writes nothing.
pub async fn gather_selected<M: MattermostApi>(
    cfg: &Config,
    mm: &M,
    directory: Directory,
    view: LedgerView,
    select: impl FnOnce(&[Link]) -> Vec<Link>,
) -> Result<State> {
    let linked = links_now(cfg, &directory, &view, mm, &mut TargetCache::default()).await?;
    let selected = select(&linked.links);
    let mut state = gather(cfg, mm, directory, selected, view, linked.warnings).await?;
    state.link_issues = linked.issues;
    state.learned = linked.learned;
    Ok(state)
}

/// Every link as it means now: declared in the file, the ledger or by the convention, then
/// followed through the ids recorded for it.
#[derive(Debug, Clone)]
pub struct Linked {
    pub links: Vec<Link>,
    pub warnings: Vec<String>,
    pub issues: Vec<LinkIssue>,
    pub learned: Vec<LinkIdentity>,
}

pub async fn links_now<M: MattermostApi>(
    cfg: &Config,
    directory: &Directory,
    view: &LedgerView,
    mm: &M,
    cache: &mut TargetCache,
) -> Result<Linked> {
    let (declared, warnings) = resolve_links(cfg, directory, view.links.clone())?;
    let (declared, mut moved) =
        mattersync_core::identity::keep_convention_targets(declared, &view.identities, directory);
    let mut id = identify(declared, directory, &view.identities, mm, cache).await?;
    id.issues.append(&mut moved);
    id.issues.sort();
    id.issues.dedup();
    Ok(Linked {
        links: id.links,
        warnings,
        issues: id.issues,
        learned: id.learned,
    })
}

/// Why nobody signed in with `auth_service` is matched on a server that hides `auth_data`.
pub fn auth_data_hidden(auth_service: &str) -> String {
    format!(
        "this Mattermost shows no auth_data of the accounts signed in with {auth_service:?} (older servers, 9.9 among them, blank it in every answer): matching by auth_data finds none of them, so they stay pending; match by email or username (mattermost.match) on such a server"
    )
}

/// Reads the teams and channels `links` name (only those: in `serve` a change to one group
/// costs a few API calls) and the accounts that matter to them; the facts are `ledger`'s,
/// with its unsettled intents read against what Mattermost shows now.
pub async fn gather<M: MattermostApi>(
    cfg: &Config,
    mm: &M,
    directory: Directory,
    links: Vec<Link>,
    ledger: LedgerView,
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
        .context("mattermost: cannot read the token's own account; nothing was changed")?;
    let teams: Vec<String> = teams.into_iter().collect();
    let channels: Vec<(String, String)> = channels.into_iter().collect();
    let usernames: Vec<String> = match cfg.mattermost.matching {
        Matching::Username => wanted.into_iter().collect(),
        Matching::Email | Matching::AuthData { .. } => Vec::new(),
    };
    let mut mattermost = if links.is_empty() {
        Mattermost::default()
    } else {
        mm.read_state(&teams, &channels, &usernames).await.context(
            "mattermost: reading teams, channels and members failed; nothing was changed",
        )?
    };
    if !links.is_empty() && !matches!(cfg.mattermost.matching, Matching::Username) {
        for u in mm
            .all_users()
            .await
            .context("mattermost: listing users failed; nothing was changed")?
        {
            mattermost.users.insert(u.id.clone(), u);
        }
    }
    let mut warnings = warnings;
    if let Matching::AuthData { auth_service } = &cfg.mattermost.matching {
        if mattersync_mattermost::hides_auth_data(mattermost.users.values(), auth_service) {
            warnings.push(auth_data_hidden(auth_service));
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
    let facts = settled_view(&ledger.facts, &ledger.intents, &mattermost);
    let mut state = State {
        directory,
        mattermost,
        facts,
        intents: ledger.intents,
        policy,
        warnings,
        link_issues: Vec::new(),
        learned: Vec::new(),
        me,
    };
    team_channels(mm, &mut state).await?;
    Ok(state)
}

/// For every user the plan removes from a team, the team's channels they are in (linked or
/// joined by hand): Mattermost drops them with the team, so the plan shows them, the guards
/// count them, and the ledger records them as removed by mattersync. Read only when a plan
/// has team removals.
pub(crate) async fn team_channels<M: MattermostApi>(mm: &M, state: &mut State) -> Result<()> {
    // Only a team link that removes can plan a team removal: otherwise no second plan.
    let removing_team_link =
        state.policy.links.iter().any(|l| {
            matches!(l.target, Target::Team { .. }) && l.mode != mattersync_core::Mode::Add
        });
    if !removing_team_link {
        return Ok(());
    }
    let plan = state.plan();
    let mut wanted = Vec::new();
    for a in &plan.actions {
        if let Action::RemoveTeamMember {
            team_id,
            team,
            user,
            ..
        } = a
        {
            wanted.push((user.id.clone(), team_id.clone(), team.clone()));
        }
    }
    for (user_id, team_id, team) in wanted {
        // Only the linked channels matter for what is planned, and those were read already;
        // an account that may not list another user's channels (a team admin, not a system
        // admin) still syncs, with the hand-joined ones left out of the plan's words.
        let channels = match mm.user_team_channels(&user_id, &team_id).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(
                    user = %user_id,
                    team = %team,
                    error = %format!("{e:#}"),
                    "cannot list the channels a team removal takes with it; the linked ones are still recorded"
                );
                continue;
            }
        };
        let refs = channels
            .into_iter()
            .filter(|c| !c.direct)
            .map(|c| mattersync_core::ChannelRef {
                id: c.id,
                channel: format!("{team}/{}", c.name),
            })
            .collect();
        state
            .mattermost
            .user_channels
            .entry(user_id)
            .or_default()
            .insert(team, refs);
    }
    Ok(())
}

/// The lock holder's writes before planning: records the ids links resolved to for the
/// first time (and names seen anew), and settles what a run stopped between an API call and
/// its record left behind, from what Mattermost shows now (only for the teams and channels
/// in `state`); then re-reads the facts. Only the holder of the run lock may write:
/// `lock` is the proof.
pub fn settle(lock: &RunLock, ledger: &Ledger, state: &mut State) -> Result<usize> {
    crate::identity::record_identities(lock, ledger, &state.learned)?;
    state.learned.clear();
    let mm = &state.mattermost;
    let settled = ledger
        .resolve_intents(
            &format!("settle:{}", crate::instance_name()),
            |kind, scope_id, user_id| is_member(mm, kind, scope_id, user_id),
        )
        .context("ledger: settling intents")?;
    if settled > 0 {
        tracing::warn!(
            settled,
            "settled writes an interrupted or failed run had not recorded"
        );
    }
    state.facts = ledger.facts().context("ledger: reading facts")?;
    state.intents = ledger.intents().context("ledger: reading intents")?;
    // Intents of scopes this run did not read stay; read them as a read-only run would.
    state.facts = settled_view(&state.facts, &state.intents, &state.mattermost);
    Ok(settled)
}

/// What to do with a plan. The one place that decides whether a guard holds a plan.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Nothing to change.
    NoChanges,
    /// Apply it.
    Apply,
    /// A guard holds it; nothing may change until someone approves.
    Held(Vec<GuardTrip>),
}

/// What an admin said about a plan a guard holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Approval {
    /// Nothing: a held plan stays held.
    #[default]
    None,
    /// Whatever is held now (`--allow-mass-removal`).
    Any,
    /// Exactly the held plan with this fingerprint ([`held_fingerprint`]), as reviewed:
    /// if the directory changed since, what is held now is another plan and stays held.
    Exactly(String),
    /// What is left of an approved plan an apply did not finish (some of its changes
    /// failed): a plan all of whose per-user changes ([`changes_of`]) were in the approved
    /// one, and nothing else.
    Within(BTreeSet<Change>),
}

/// One per-user change of a plan, as an approval remembers it: (action kind, team or
/// channel id, user id).
pub type Change = (String, String, String);

/// Every per-user change a plan makes (ledger-only records included, so a plan that says
/// something new is never covered by an older approval).
pub fn changes_of(plan: &Plan) -> BTreeSet<Change> {
    let mut out = BTreeSet::new();
    for a in &plan.actions {
        let (_, scope_id, _) = a.scope();
        for (user, _, _) in a.subjects() {
            out.insert((a.kind().to_string(), scope_id.to_string(), user.to_string()));
        }
    }
    out
}

impl Approval {
    pub fn covers(&self, plan: &Plan) -> bool {
        match self {
            Approval::None => false,
            Approval::Any => true,
            Approval::Exactly(fp) => *fp == held_fingerprint(plan),
            Approval::Within(approved) => {
                plan.has_changes() && changes_of(plan).is_subset(approved)
            }
        }
    }
}

pub fn verdict(plan: &Plan, approval: &Approval) -> Verdict {
    if !plan.guard_trips.is_empty() && !approval.covers(plan) {
        Verdict::Held(plan.guard_trips.clone())
    } else if !plan.has_changes() {
        Verdict::NoChanges
    } else {
        Verdict::Apply
    }
}

/// What a guard holds, as a fingerprint of the held plan's actions (not of its inputs, nor
/// of which guards said so): the same changes seen again are the same hold, however much
/// of the directory elsewhere changed, and an approval of them covers exactly them.
pub fn held_fingerprint(plan: &Plan) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    if let Ok(bytes) = serde_json::to_vec(&plan.actions) {
        h.update(&bytes);
    }
    hex::encode(h.finalize())
}

/// The trips, in words.
pub fn describe_trips(trips: &[GuardTrip]) -> String {
    trips
        .iter()
        .map(|g| g.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Why a saved plan may not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SavedPlanMismatch {
    #[error("the saved plan is stale: the directory, Mattermost or the ledger changed since it was made (fingerprint {saved} now {now}); run `mattersync plan` again")]
    Stale { saved: String, now: String },
    #[error("the saved plan does not match what its fingerprint says it was computed from; it was edited after it was saved — refusing it")]
    Edited,
}

/// A saved plan is applied only if a fresh plan has the same fingerprint and the same
/// actions.
pub fn check_saved(saved: &Plan, fresh: &Plan) -> std::result::Result<(), SavedPlanMismatch> {
    let short = |s: &str| s.get(..12).unwrap_or(s).to_string();
    if saved.fingerprint != fresh.fingerprint {
        return Err(SavedPlanMismatch::Stale {
            saved: short(&saved.fingerprint),
            now: short(&fresh.fingerprint),
        });
    }
    if saved != fresh {
        return Err(SavedPlanMismatch::Edited);
    }
    Ok(())
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
    /// The per-user outcomes of each action that ran, in plan order (for `serve`'s kept
    /// state of Mattermost).
    #[serde(skip)]
    pub outcomes: Vec<Vec<UserOutcome>>,
}

/// Executes every action of the plan in order, noting each write as an intent before its
/// call and recording every per-user outcome before the next action; a failed action never
/// stops the others. `kind` names the run in the ledger (`apply`, `serve`), `actor` who
/// made it happen ([`crate::actor`]).
pub async fn apply<M: MattermostApi>(
    _lock: &RunLock,
    plan: &Plan,
    ledger: &mut Ledger,
    mm: &M,
    stop: &tokio::sync::watch::Receiver<bool>,
    kind: &str,
    actor: &str,
) -> Result<ApplyReport> {
    let before = mm.api_calls();
    let run_id = ledger.begin_run(kind, Some(&plan.fingerprint), actor)?;
    let mut crash = crash_hook();
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
        let outcomes: Vec<UserOutcome> = if action.writes_mattermost() {
            let outs = match mm.apply(action).await {
                Ok(outs) => outs,
                Err(e) => action
                    .subjects()
                    .into_iter()
                    .map(|(id, _, _)| UserOutcome {
                        user_id: id.to_string(),
                        result: Err(format!("{e:#}")),
                    })
                    .collect(),
            };
            crash.after_write();
            outs
        } else {
            Vec::new()
        };
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
            report.users_ok += action.subjects().len();
        }
        ledger
            .record(&run_id, action, &outcomes)
            .context("ledger: recording an action")?;
        report.outcomes.push(outcomes);
    }
    report.api_calls = mm.api_calls().saturating_sub(before);
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

/// A plan a guard held still gets a run in the ledger, so `status` and the audit show it.
pub fn record_hold(
    _lock: &RunLock,
    ledger: &Ledger,
    plan: &Plan,
    kind: &str,
    actor: &str,
) -> Result<String> {
    let id = ledger.begin_run(kind, Some(&plan.fingerprint), actor)?;
    ledger.finish_run(
        &id,
        &RunEnd {
            outcome: "guard_tripped".to_string(),
            detail: Some(format!(
                "guard tripped, nothing was changed: {} (held {})",
                describe_trips(&plan.guard_trips),
                held_fingerprint(plan)
            )),
            ..Default::default()
        },
    )?;
    Ok(id)
}

/// `scope user` for a failure line.
fn describe(action: &Action, user_id: &str) -> String {
    let (_, _, scope) = action.scope();
    let name = action
        .subjects()
        .into_iter()
        .find(|(id, _, _)| *id == user_id)
        .map(|(_, name, _)| name.to_string())
        .unwrap_or_else(|| user_id.to_string());
    format!("{scope} {name}")
}

/// The fault tests' crash hook: with the `fault-injection` feature (test builds only),
/// `MATTERSYNC_FAULT_ABORT_AFTER_WRITE=N` dies like `kill -9` right after the N-th write
/// call returned and before its outcome is recorded. Release builds have no such hook.
struct CrashHook {
    #[cfg(feature = "fault-injection")]
    after: Option<usize>,
    #[cfg(feature = "fault-injection")]
    writes: usize,
}

fn crash_hook() -> CrashHook {
    CrashHook {
        #[cfg(feature = "fault-injection")]
        after: std::env::var("MATTERSYNC_FAULT_ABORT_AFTER_WRITE")
            .ok()
            .and_then(|v| v.parse().ok()),
        #[cfg(feature = "fault-injection")]
        writes: 0,
    }
}

impl CrashHook {
    fn after_write(&mut self) {
        #[cfg(feature = "fault-injection")]
        {
            self.writes += 1;
            if self.after == Some(self.writes) {
                std::process::abort();
            }
        }
    }
}
