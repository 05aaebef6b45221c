//! Why a user is or is not in the linked teams and channels, built from the planner's own
//! matching and its plan, so it can never disagree with what a run would do. Pure.

use crate::model::{Directory, LedgerFacts, Mattermost, Record};
use crate::plan::{Action, Note, Plan};
use crate::planner::{account_matches, PlanInput};
use crate::policy::{Link, Policy, Target};
use serde::Serialize;

/// The explained user on both sides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    /// The directory uid, when the name is a directory user or matches one.
    pub uid: Option<String>,
    pub disabled: bool,
    /// The Mattermost account (id, username) the planner matches, or the one with this
    /// username when there is no directory user.
    pub account: Option<(String, String)>,
    /// Groups the user is an effective member of (nesting followed).
    pub groups: Vec<String>,
    pub links: Vec<LinkView>,
    /// The planned actions that touch this user.
    pub actions: Vec<Action>,
    /// The plan's notes about this user or about the links shown.
    pub notes: Vec<Note>,
}

/// One link as it concerns the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkView {
    pub link: Link,
    pub in_group: bool,
    pub member: bool,
    /// The team or channel id, when Mattermost has the target.
    pub scope_id: Option<String>,
    /// What the ledger knows of this membership.
    pub record: Option<Record>,
}

/// What went wrong with the name asked about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExplainError {
    #[error("{0}: neither a directory user nor a known Mattermost account")]
    Unknown(String),
}

pub struct ExplainInput<'a> {
    pub directory: &'a Directory,
    pub mattermost: &'a Mattermost,
    pub ledger: &'a LedgerFacts,
    pub policy: &'a Policy,
    pub plan: &'a Plan,
}

/// Explains `who` (a directory uid, or a Mattermost username), for every link or only those
/// to `target`.
pub fn explain(
    input: &ExplainInput<'_>,
    who: &str,
    target: Option<&Target>,
) -> Result<Explanation, ExplainError> {
    let matches = account_matches(PlanInput {
        directory: input.directory,
        mattermost: input.mattermost,
        ledger: input.ledger,
        policy: input.policy,
    });
    let mm = input.mattermost;
    let dir_user = input.directory.users.get(who);
    let (uid, account_id) = match dir_user {
        Some(d) => (Some(d.uid.clone()), matches.get(&d.uid).cloned()),
        None => {
            let by_name = mm
                .users
                .values()
                .find(|u| u.username.eq_ignore_ascii_case(who))
                .map(|u| u.id.clone());
            let uid = by_name.as_ref().and_then(|id| {
                matches
                    .iter()
                    .find(|(_, a)| *a == id)
                    .map(|(uid, _)| uid.clone())
            });
            (uid, by_name)
        }
    };
    let account = account_id
        .as_ref()
        .and_then(|id| mm.users.get(id))
        .map(|u| (u.id.clone(), u.username.clone()));
    if uid.is_none() && account.is_none() {
        return Err(ExplainError::Unknown(who.to_string()));
    }
    let disabled = uid
        .as_ref()
        .and_then(|u| input.directory.users.get(u))
        .is_some_and(|d| d.disabled);
    let groups: Vec<String> = match &uid {
        Some(u) => input
            .directory
            .groups
            .keys()
            .filter(|g| input.directory.effective_members(g).contains(u))
            .cloned()
            .collect(),
        None => Vec::new(),
    };
    let mut links = Vec::new();
    for l in &input.policy.links {
        if target.is_some_and(|t| *t != l.target) {
            continue;
        }
        let in_group = uid
            .as_ref()
            .is_some_and(|u| input.directory.effective_members(&l.group).contains(u));
        let (scope_id, members, records) = match &l.target {
            Target::Team { team } => {
                let t = mm.teams.get(team);
                (
                    t.map(|t| t.id.clone()),
                    t.map(|t| &t.members),
                    t.and_then(|t| input.ledger.teams.get(&t.id)),
                )
            }
            Target::Channel { .. } => {
                let c = mm.channels.get(&l.target.to_string());
                (
                    c.map(|c| c.id.clone()),
                    c.map(|c| &c.members),
                    c.and_then(|c| input.ledger.channels.get(&c.id)),
                )
            }
        };
        let member = account
            .as_ref()
            .is_some_and(|(id, _)| members.is_some_and(|m| m.contains_key(id)));
        let record = account
            .as_ref()
            .and_then(|(id, _)| records.and_then(|r| r.get(id)))
            .copied();
        links.push(LinkView {
            link: l.clone(),
            in_group,
            member,
            scope_id,
            record,
        });
    }
    let actions = match &account {
        Some((id, _)) => input
            .plan
            .actions
            .iter()
            .filter(|a| a.subjects().iter().any(|(s, _, _)| s == id))
            .cloned()
            .collect(),
        None => Vec::new(),
    };
    let username = account.as_ref().map(|(_, n)| n.as_str());
    let shown: Vec<String> = links.iter().map(|v| v.link.id()).collect();
    let notes = input
        .plan
        .notes
        .iter()
        .filter(|n| about(n, uid.as_deref(), username, &shown))
        .cloned()
        .collect();
    Ok(Explanation {
        uid,
        disabled,
        account,
        groups,
        links,
        actions,
        notes,
    })
}

/// Whether a note concerns this user (by the field that names them, compared whole) or one
/// of the links shown.
fn about(n: &Note, uid: Option<&str>, username: Option<&str>, links: &[String]) -> bool {
    let is_uid = |u: &str| uid == Some(u);
    let is_name = |u: &str| username.is_some_and(|n| n.eq_ignore_ascii_case(u));
    match n {
        Note::PendingUser { uid, .. }
        | Note::InactiveUser { uid, .. }
        | Note::AmbiguousUser { uid, .. } => is_uid(uid),
        Note::SkippedBot { username, .. }
        | Note::Allowed { username, .. }
        | Note::DefaultChannel { username, .. }
        | Note::NotReadded { username, .. } => is_name(username),
        Note::UnknownGroup { link, .. }
        | Note::UnknownTeam { link, .. }
        | Note::UnknownChannel { link, .. }
        | Note::ArchivedChannel { link, .. } => links.contains(link),
        Note::ModeConflict { .. } => false,
    }
}
