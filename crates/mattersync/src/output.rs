//! How plans, reports and explanations look to people and to programs.

use anyhow::{Context, Result};
use mattersync_core::explain::Explanation;
use mattersync_core::{Action, LinkIssue, Note, Plan};
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

pub fn plan_json(
    plan: &Plan,
    hold: Option<&mattersync_engine::HoldSummary>,
    issues: &[LinkIssue],
    calls: &ApiStats,
) -> serde_json::Value {
    serde_json::json!({
        "changed": plan.has_changes(),
        "summary": plan.summary(),
        "plan": plan,
        "held_fingerprint": (!plan.guard_trips.is_empty())
            .then(|| mattersync_engine::held_fingerprint(plan)),
        "hold": hold,
        "link_issues": issues,
        "broken_links": issues.iter().filter(|i| i.broken()).count(),
        "api_calls": calls,
    })
}

/// Renames followed and links that are broken, one line each.
pub fn link_issues_text(issues: &[LinkIssue]) -> String {
    let mut s = String::new();
    for i in issues {
        let _ = writeln!(s, "{i}");
    }
    s
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
            Action::RemoveTeamMember {
                team,
                user,
                channels,
                ..
            } => {
                if channels.is_empty() {
                    format!("  - team    {team}: {}", user.username)
                } else {
                    format!(
                        "  - team    {team}: {} (and with it from {})",
                        user.username,
                        names(channels.iter().map(|c| c.channel.clone()))
                    )
                }
            }
            Action::RecordPreexisting { scope, users, .. } => format!(
                "  = ledger  {scope}: already members: {}",
                names(users.iter().map(|u| u.username.clone()))
            ),
            Action::RecordDeparted { scope, users, .. } => format!(
                "  = ledger  {scope}: left on their own: {}",
                names(users.iter().map(|u| u.username.clone()))
            ),
            Action::RecordDemoted { channel, users, .. } => format!(
                "  = ledger  {channel}: admin role taken back by hand (not granted again): {}",
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

/// An explanation in words. The ledger adds, for each membership it records, the groups
/// that caused it and the run that made it.
/// The explanation as data: who on each side, the groups, one entry per link (with what the
/// ledger records), the next run's actions and the notes; `text` is the same in words.
pub fn explain_json(
    who: &str,
    why: &Explanation,
    ledger: &Ledger,
    text: &[String],
) -> Result<serde_json::Value> {
    let records = match &why.account {
        Some((id, _)) => ledger.memberships_of(id)?,
        None => Vec::new(),
    };
    let links: Vec<serde_json::Value> = why
        .links
        .iter()
        .map(|v| {
            let l = &v.link;
            let detail = records
                .iter()
                .find(|r| Some(&r.scope_id) == v.scope_id.as_ref());
            serde_json::json!({
                "group": l.group,
                "target": l.target.to_string(),
                "kind": match l.target {
                    mattersync_core::Target::Team { .. } => "team",
                    mattersync_core::Target::Channel { .. } => "channel",
                },
                "mode": l.mode,
                "admins": l.admins,
                "readd": l.readd,
                "source": mattersync_engine::source_name(l.source),
                "in_group": v.in_group,
                "member": v.member,
                "scope_id": v.scope_id,
                "ledger": v.record.map(|r| serde_json::json!({
                    "origin": r.origin,
                    "state": r.state,
                    "groups": detail.map(|d| d.groups.clone()),
                    "run_id": detail.map(|d| d.run_id.clone()),
                    "updated_at": detail.map(|d| d.updated_at.clone()),
                })),
            })
        })
        .collect();
    Ok(serde_json::json!({
        "user": who,
        "uid": why.uid,
        "disabled": why.disabled,
        "account": why.account.as_ref().map(|(id, username)| serde_json::json!({"id": id, "username": username})),
        "pending": why.uid.is_some() && why.account.is_none(),
        "groups": why.groups,
        "links": links,
        "next_actions": why.actions,
        "notes": why.notes,
        "text": text,
    }))
}

pub fn explain_text(who: &str, why: &Explanation, ledger: &Ledger) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let disabled = if why.disabled {
        ", DISABLED (not a member for sync)"
    } else {
        ""
    };
    out.push(match (&why.uid, &why.account) {
        (Some(uid), None) => format!(
            "{who}: directory user {uid}{disabled}; no matching Mattermost account (pending)"
        ),
        (Some(uid), Some((id, name))) => {
            format!("{who}: directory user {uid}{disabled}; Mattermost account {name} ({id})")
        }
        (None, Some((id, name))) => format!(
            "{who}: Mattermost account {name} ({id}); no directory user of a linked group matches it"
        ),
        (None, None) => format!("{who}: unknown"),
    });
    out.push(format!(
        "groups: {}",
        if why.groups.is_empty() {
            "none".to_string()
        } else {
            why.groups.join(", ")
        }
    ));
    let records = match &why.account {
        Some((id, _)) => ledger.memberships_of(id)?,
        None => Vec::new(),
    };
    for v in &why.links {
        let l = &v.link;
        let detail = records
            .iter()
            .find(|r| Some(&r.scope_id) == v.scope_id.as_ref());
        let ledger_text = match (v.record, detail) {
            (Some(r), Some(d)) => format!(
                "{} / {} (groups {}, run {}, {})",
                r.origin,
                r.state,
                d.groups.join(","),
                d.run_id,
                d.updated_at
            ),
            (Some(r), None) => format!("{} / {}", r.origin, r.state),
            (None, _) => "no record".to_string(),
        };
        out.push(format!(
            "{}: link from {} (mode {}, {}): {} the group; {} the {}; ledger: {}",
            l.target,
            l.group,
            l.mode,
            mattersync_engine::source_name(l.source),
            if v.in_group { "in" } else { "not in" },
            if v.member {
                "member of"
            } else {
                "not a member of"
            },
            match l.target {
                mattersync_core::Target::Team { .. } => "team",
                mattersync_core::Target::Channel { .. } => "channel",
            },
            ledger_text
        ));
    }
    for act in &why.actions {
        let one = plan_text(&Plan {
            actions: vec![act.clone()],
            ..Default::default()
        });
        out.push(format!(
            "next run: {}",
            one.lines().nth(1).unwrap_or_default().trim()
        ));
    }
    for n in &why.notes {
        out.push(format!("note: {}", note_text(n)));
    }
    Ok(out)
}
