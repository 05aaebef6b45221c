//! How plans, reports and explanations look to people and to programs.

use crate::engine::State;
use anyhow::{bail, Context, Result};
use mattersync_core::{Action, Note, Plan};
use mattersync_ledger::Ledger;
use mattersync_mattermost::ApiStats;
use std::fmt::Write as _;
use std::path::Path;

pub fn save_plan(path: &Path, plan: &Plan) -> Result<()> {
    std::fs::write(path, plan.to_saved_json())
        .with_context(|| format!("writing {}", path.display()))
}

pub fn load_plan(path: &Path) -> Result<Plan> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Plan::from_saved_json(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

pub fn plan_json(plan: &Plan, calls: &ApiStats) -> serde_json::Value {
    serde_json::json!({
        "changed": plan.has_changes(),
        "summary": plan.summary(),
        "plan": plan,
        "api_calls": calls,
    })
}

pub fn calls_text(c: &ApiStats) -> String {
    format!(
        "API calls: {} ({} writes; GET {}, POST {}, PUT {}, DELETE {}; retries {}, rate-limited {})",
        c.calls, c.writes, c.get, c.post, c.put, c.delete, c.retries, c.rate_limited
    )
}

fn names(users: impl Iterator<Item = String>) -> String {
    users.collect::<Vec<_>>().join(", ")
}

/// The plan as a person reads it.
pub fn plan_text(plan: &Plan) -> String {
    let mut s = String::new();
    let writes = plan.writes();
    let _ = writeln!(
        s,
        "Plan {} — {} change(s) to Mattermost, {} ledger update(s), {} note(s)",
        plan.fingerprint.get(..12).unwrap_or(&plan.fingerprint),
        writes,
        plan.actions.len() - writes,
        plan.notes.len()
    );
    for a in &plan.actions {
        let line = match a {
            Action::AddTeamMembers { team, users, .. } => format!(
                "  + team    {team}: {}",
                names(users.iter().map(|u| u.username.clone()))
            ),
            Action::AddChannelMembers { channel, users, .. } => format!(
                "  + channel {channel}: {}",
                names(
                    users
                        .iter()
                        .map(|u| format!("{} ({})", u.username, u.groups.join(",")))
                )
            ),
            Action::SetChannelAdmin {
                channel,
                user,
                admin: true,
                groups,
                ..
            } => format!(
                "  ^ admin   {channel}: {} (via {})",
                user.username,
                groups.join(",")
            ),
            Action::SetChannelAdmin {
                channel,
                user,
                admin: false,
                ..
            } => format!(
                "  v admin   {channel}: {} (no longer wanted)",
                user.username
            ),
            Action::RemoveChannelMember {
                channel,
                user,
                mode,
                ..
            } => format!(
                "  - channel {channel}: {} ({mode}: in no linked group)",
                user.username
            ),
            Action::RemoveTeamMember { team, user, .. } => {
                format!("  - team    {team}: {}", user.username)
            }
            Action::RecordPreexisting { scope, users, .. } => format!(
                "  = ledger  {scope}: already members: {}",
                names(users.iter().map(|u| u.username.clone()))
            ),
            Action::RecordDeparted { scope, users, .. } => format!(
                "  = ledger  {scope}: left on their own: {}",
                names(users.iter().map(|u| u.username.clone()))
            ),
        };
        let _ = writeln!(s, "{line}");
    }
    if !plan.notes.is_empty() {
        let _ = writeln!(s, "Notes:");
        for n in &plan.notes {
            let _ = writeln!(s, "  {}", note_text(n));
        }
    }
    for g in &plan.guard_trips {
        let _ = writeln!(s, "GUARD: {g}");
    }
    s
}

pub fn note_text(n: &Note) -> String {
    match n {
        Note::PendingUser { uid, groups } => format!(
            "pending: {uid} ({}) has no Mattermost account yet; added when it appears",
            groups.join(",")
        ),
        Note::InactiveUser { uid, username } => {
            format!("inactive: {uid}'s account {username} is deactivated; not added")
        }
        Note::AmbiguousUser { uid, usernames } => format!(
            "ambiguous: {uid} matches several accounts ({}); none is used",
            usernames.join(", ")
        ),
        Note::UnknownGroup { group, link } => format!(
            "unknown group: {group} (link {link}) was not returned by the directory; its channel is add-only this run"
        ),
        Note::UnknownTeam { team, link } => format!("unknown team: {team} (link {link})"),
        Note::UnknownChannel { channel, link } => {
            format!("unknown channel: {channel} (link {link}); create it or fix the link")
        }
        Note::ArchivedChannel { channel, link } => {
            format!("archived channel: {channel} (link {link}) is skipped")
        }
        Note::ModeConflict {
            channel,
            modes,
            used,
        } => format!(
            "mode conflict: links to {channel} say {}; using {used} (removes least)",
            modes.iter().map(|m| m.to_string()).collect::<Vec<_>>().join(", ")
        ),
        Note::SkippedBot { channel, username } => {
            format!("kept bot: {username} in {channel}")
        }
        Note::Allowed { channel, username } => {
            format!("kept (allow-list): {username} in {channel}")
        }
        Note::DefaultChannel { channel, username } => format!(
            "kept: {username} in default channel {channel} (never a removal target)"
        ),
        Note::NotReadded { channel, username } => format!(
            "not re-added: {username} left {channel} on their own (readd = \"never\")"
        ),
    }
}

/// Why a user is or is not in the linked channels.
pub fn explain(
    state: &State,
    plan: &Plan,
    ledger: &Ledger,
    who: &str,
    channel: Option<&str>,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mm = &state.mattermost;
    let account = mm
        .users
        .values()
        .find(|u| u.username.eq_ignore_ascii_case(who));
    let dir_user = state.directory.users.get(who);
    match (dir_user, account) {
        (None, None) => bail!(
            "{who}: neither a directory user of a linked group nor a known Mattermost account"
        ),
        (Some(d), None) => out.push(format!(
            "{who}: directory user{}; no matching Mattermost account (pending)",
            if d.disabled { ", DISABLED" } else { "" }
        )),
        (Some(d), Some(a)) => out.push(format!(
            "{who}: directory user{}; Mattermost account {} ({})",
            if d.disabled {
                ", DISABLED (not a member for sync)"
            } else {
                ""
            },
            a.username,
            a.id
        )),
        (None, Some(a)) => out.push(format!(
            "{who}: Mattermost account {} ({}); not a member of any linked group",
            a.username, a.id
        )),
    }
    let groups: Vec<&String> = state
        .directory
        .groups
        .keys()
        .filter(|g| state.directory.effective_members(g).contains(who))
        .collect();
    out.push(format!(
        "groups: {}",
        if groups.is_empty() {
            "none".to_string()
        } else {
            groups
                .iter()
                .map(|g| g.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        }
    ));
    let records = match account {
        Some(a) => ledger.memberships_of(&a.id)?,
        None => Vec::new(),
    };
    for l in &state.policy.links {
        let target = l.target.to_string();
        if channel.is_some_and(|c| c != target) {
            continue;
        }
        let wants = state.directory.effective_members(&l.group).contains(who);
        let present = account.is_some_and(|a| match &l.target {
            mattersync_core::Target::Channel { .. } => mm
                .channels
                .get(&target)
                .is_some_and(|c| c.members.contains_key(&a.id)),
            mattersync_core::Target::Team { team } => mm
                .teams
                .get(team)
                .is_some_and(|t| t.members.contains_key(&a.id)),
        });
        let scope_id = match &l.target {
            mattersync_core::Target::Channel { .. } => {
                mm.channels.get(&target).map(|c| c.id.clone())
            }
            mattersync_core::Target::Team { team } => mm.teams.get(team).map(|t| t.id.clone()),
        };
        let record = records
            .iter()
            .find(|r| Some(&r.scope_id) == scope_id.as_ref());
        out.push(format!(
            "{target}: link from {} (mode {}, {}): {} the group; {} the {}; ledger: {}",
            l.group,
            l.mode,
            crate::engine::source_name(l.source),
            if wants { "in" } else { "not in" },
            if present {
                "member of"
            } else {
                "not a member of"
            },
            if matches!(l.target, mattersync_core::Target::Team { .. }) {
                "team"
            } else {
                "channel"
            },
            record
                .map(|r| format!(
                    "{} / {} (groups {}, run {}, {})",
                    r.origin,
                    r.state,
                    r.groups.join(","),
                    r.run_id,
                    r.updated_at
                ))
                .unwrap_or_else(|| "no record".to_string())
        ));
    }
    if let Some(a) = account {
        for act in &plan.actions {
            if crate::engine::subjects(act).contains(&a.id) {
                out.push(format!(
                    "next run: {}",
                    plan_text(&Plan {
                        actions: vec![act.clone()],
                        ..Default::default()
                    })
                    .lines()
                    .nth(1)
                    .unwrap_or_default()
                    .trim()
                ));
            }
        }
        for n in &plan.notes {
            let t = note_text(n);
            if t.contains(&a.username) {
                out.push(format!("note: {t}"));
            }
        }
    }
    for n in &plan.notes {
        if matches!(n, Note::PendingUser { uid, .. } if uid == who) {
            out.push(format!("note: {}", note_text(n)));
        }
    }
    Ok(out)
}
