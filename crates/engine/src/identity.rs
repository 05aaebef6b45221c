//! Following links by the stable ids their names resolved to on first sight
//! (`mattersync_core::identity`): renamed groups, teams and channels keep their links; a new
//! one that takes an old name gets nothing; a target that is gone, replaced or a direct
//! message is reported on every run.

use crate::source::MattermostApi;
use anyhow::{Context, Result};
use mattersync_core::identity::{identify_group, unresolvable};
use mattersync_core::{ChannelInfo, Directory, Link, LinkIdentity, LinkIssue, Target, TeamInfo};
use mattersync_ledger::{Ledger, RunLock};
use std::collections::{BTreeMap, HashMap};

/// Links as they mean now, what to tell the admin, and the ids to record.
#[derive(Debug, Default, Clone)]
pub struct Identified {
    pub links: Vec<Link>,
    pub issues: Vec<LinkIssue>,
    pub learned: Vec<LinkIdentity>,
}

/// What a declared target resolved to: the target by its current names, what to report,
/// and its ids.
#[derive(Debug, Clone)]
struct Resolved {
    target: Target,
    issue: Option<LinkIssue>,
    team_id: Option<String>,
    channel_id: Option<String>,
}

/// Target look-ups kept between runs of a service (a change cycle reuses what the last
/// full reconcile looked up; `clear` before each full one). A CLI run uses a fresh one.
#[derive(Debug, Default)]
pub struct TargetCache {
    /// By the target as declared: what it resolved to when last looked up.
    targets: BTreeMap<Target, Resolved>,
    teams: BTreeMap<String, Option<TeamInfo>>,
    /// Every channel from one listing, when many links are to be looked up (a channel not in
    /// it is still asked for alone: a direct message, one deleted or created meanwhile).
    channels: Option<Listed>,
    /// Team ids by name, for channels found in the listing by name.
    team_ids: BTreeMap<String, Option<String>>,
}

/// One listing of every channel, by id and by (team id, name).
#[derive(Debug, Default)]
struct Listed {
    by_id: HashMap<String, ChannelInfo>,
    by_name: HashMap<(String, String), String>,
}

impl Listed {
    fn of(channels: Vec<ChannelInfo>) -> Listed {
        let mut l = Listed::default();
        for c in channels {
            l.by_name
                .insert((c.team_id.clone(), c.name.clone()), c.id.clone());
            l.by_id.insert(c.id.clone(), c);
        }
        l
    }
}

impl TargetCache {
    pub fn clear(&mut self) {
        self.targets.clear();
        self.teams.clear();
        self.channels = None;
        self.team_ids.clear();
    }
}

/// Below this many channels to look up, asking for each costs no more than listing.
const LIST_CHANNELS_FROM: usize = 8;

async fn channel_by_id<M: MattermostApi>(
    mm: &M,
    listed: Option<&Listed>,
    id: &str,
) -> Result<Option<ChannelInfo>> {
    match listed.and_then(|l| l.by_id.get(id)) {
        Some(c) => Ok(Some(c.clone())),
        None => mm.channel_by_id(id).await,
    }
}

async fn channel_by_name<M: MattermostApi>(
    mm: &M,
    listed: Option<&Listed>,
    team_ids: &mut BTreeMap<String, Option<String>>,
    team: &str,
    name: &str,
) -> Result<Option<ChannelInfo>> {
    if let Some(l) = listed {
        let id = match team_ids.get(team) {
            Some(id) => id.clone(),
            None => {
                let id = mm.team_by_name(team).await?.map(|t| t.id);
                team_ids.insert(team.to_string(), id.clone());
                id
            }
        };
        let found = id
            .and_then(|t| l.by_name.get(&(t, name.to_string())))
            .and_then(|c| l.by_id.get(c));
        if let Some(c) = found {
            return Ok(Some(c.clone()));
        }
    }
    mm.channel_by_name(team, name).await
}

/// Resolves every link through its recorded ids (`known`, from the ledger).
pub async fn identify<M: MattermostApi>(
    links: Vec<Link>,
    dir: &Directory,
    known: &[LinkIdentity],
    mm: &M,
    cache: &mut TargetCache,
) -> Result<Identified> {
    let by_key: BTreeMap<(&str, &Target), &LinkIdentity> = known
        .iter()
        .map(|k| ((k.group.as_str(), &k.target), k))
        .collect();
    let mut out = Identified::default();
    // Many channels to look up (by the ids recorded, or by name on first sight): one listing
    // (a page per 200 channels) instead of a call each.
    let wanted = links
        .iter()
        .filter(|l| !cache.targets.contains_key(&l.target))
        .filter(|l| matches!(l.target, Target::Channel { .. }))
        .count();
    if cache.channels.is_none() && wanted >= LIST_CHANNELS_FROM {
        cache.channels = mm
            .all_channels()
            .await
            .context("mattermost: listing channels; nothing was changed")?
            .map(Listed::of);
    }
    for link in links {
        let k = by_key.get(&(link.group.as_str(), &link.target)).copied();
        let (group, group_issue, group_id) = identify_group(&link, k, dir);
        let team_known = k.and_then(|k| k.team_id.clone());
        let channel_known = k.and_then(|k| k.channel_id.clone());
        let resolved = match cache.targets.get(&link.target) {
            Some(r) => r.clone(),
            None => {
                let r = resolve_target(
                    &link,
                    team_known.as_deref(),
                    channel_known.as_deref(),
                    mm,
                    &mut cache.teams,
                    cache.channels.as_ref(),
                    &mut cache.team_ids,
                )
                .await
                .with_context(|| {
                    format!(
                        "mattermost: looking up the target of link {}; nothing was changed",
                        link.id()
                    )
                })?;
                cache.targets.insert(link.target.clone(), r.clone());
                r
            }
        };
        out.issues.extend(group_issue.iter().cloned());
        out.issues.extend(resolved.issue.iter().cloned());
        let identity = LinkIdentity {
            group: link.group.clone(),
            target: link.target.clone(),
            group_id: k.and_then(|k| k.group_id.clone()).or(group_id),
            team_id: team_known.or(resolved.team_id.clone()),
            channel_id: channel_known.or(resolved.channel_id.clone()),
            group_seen: dir.groups.contains_key(&group).then(|| group.clone()),
            target_seen: resolved
                .issue
                .as_ref()
                .is_none_or(|i| !i.broken())
                .then(|| resolved.target.to_string()),
        };
        let changed = match k {
            Some(k) => {
                k.group_id != identity.group_id
                    || k.team_id != identity.team_id
                    || k.channel_id != identity.channel_id
                    || (identity.group_seen.is_some() && k.group_seen != identity.group_seen)
                    || (identity.target_seen.is_some() && k.target_seen != identity.target_seen)
            }
            None => {
                identity.group_id.is_some()
                    || identity.team_id.is_some()
                    || identity.channel_id.is_some()
            }
        };
        if changed {
            out.learned.push(identity);
        }
        out.links.push(Link {
            group,
            target: resolved.target,
            ..link
        });
    }
    out.issues.sort();
    out.issues.dedup();
    Ok(out)
}

/// The target a link was made for no longer has its id: another with the same name took
/// its place, or none did.
fn gone_or_replaced(link: &Link, replaced: bool) -> LinkIssue {
    let target = link.target.to_string();
    if replaced {
        LinkIssue::TargetReplaced {
            link: link.id(),
            target,
        }
    } else {
        LinkIssue::TargetGone {
            link: link.id(),
            target,
        }
    }
}

async fn team<M: MattermostApi>(
    mm: &M,
    teams: &mut BTreeMap<String, Option<TeamInfo>>,
    id: &str,
) -> Result<Option<TeamInfo>> {
    if let Some(t) = teams.get(id) {
        return Ok(t.clone());
    }
    let t = mm.team_by_id(id).await?;
    teams.insert(id.to_string(), t.clone());
    Ok(t)
}

async fn resolve_target<M: MattermostApi>(
    link: &Link,
    team_id: Option<&str>,
    channel_id: Option<&str>,
    mm: &M,
    teams: &mut BTreeMap<String, Option<TeamInfo>>,
    listed: Option<&Listed>,
    team_ids: &mut BTreeMap<String, Option<String>>,
) -> Result<Resolved> {
    let declared = link.target.to_string();
    let gone = |target: Target, issue: LinkIssue| Resolved {
        target,
        issue: Some(issue),
        team_id: None,
        channel_id: None,
    };
    match &link.target {
        Target::Team { team: name } => match team_id {
            Some(id) => match team(mm, teams, id).await? {
                Some(t) if !t.archived => Ok(Resolved {
                    issue: (t.name != *name).then(|| LinkIssue::TeamRenamed {
                        link: link.id(),
                        from: name.clone(),
                        to: t.name.clone(),
                    }),
                    target: Target::Team { team: t.name },
                    team_id: None,
                    channel_id: None,
                }),
                Some(t) => Ok(gone(
                    Target::Team {
                        team: t.name.clone(),
                    },
                    LinkIssue::TargetArchived {
                        link: link.id(),
                        target: t.name,
                    },
                )),
                None => {
                    let replaced = mm.team_by_name(name).await?.is_some_and(|t| t.id != id);
                    let target = Target::Team {
                        team: unresolvable(name),
                    };
                    Ok(gone(target, gone_or_replaced(link, replaced)))
                }
            },
            None => Ok(Resolved {
                target: link.target.clone(),
                issue: None,
                team_id: mm.team_by_name(name).await?.map(|t| t.id),
                channel_id: None,
            }),
        },
        Target::Channel {
            team: team_name,
            channel: name,
        } => {
            let unresolved = Target::Channel {
                team: team_name.clone(),
                channel: unresolvable(name),
            };
            let direct = |link: &Link| LinkIssue::DirectMessage {
                link: link.id(),
                target: declared.clone(),
            };
            match channel_id {
                Some(id) => match channel_by_id(mm, listed, id).await? {
                    Some(c) if c.direct => Ok(gone(unresolved, direct(link))),
                    Some(c) => {
                        let Some(t) = team(mm, teams, &c.team_id).await? else {
                            return Ok(gone(
                                unresolved,
                                LinkIssue::TargetGone {
                                    link: link.id(),
                                    target: declared,
                                },
                            ));
                        };
                        let now = Target::Channel {
                            team: t.name.clone(),
                            channel: c.name,
                        };
                        // Archived (the channel or its team): broken, and left alone. The
                        // planner skips it too; restoring it makes the link work again.
                        if c.archived || t.archived {
                            let target = if c.archived { now.to_string() } else { t.name };
                            return Ok(gone(
                                now,
                                LinkIssue::TargetArchived {
                                    link: link.id(),
                                    target,
                                },
                            ));
                        }
                        Ok(Resolved {
                            issue: (now != link.target).then(|| LinkIssue::ChannelRenamed {
                                link: link.id(),
                                from: declared.clone(),
                                to: now.to_string(),
                            }),
                            target: now,
                            team_id: None,
                            channel_id: None,
                        })
                    }
                    None => {
                        let replaced = mm
                            .channel_by_name(team_name, name)
                            .await?
                            .is_some_and(|c| c.id != id);
                        Ok(gone(unresolved, gone_or_replaced(link, replaced)))
                    }
                },
                None => match channel_by_name(mm, listed, team_ids, team_name, name).await? {
                    Some(c) if c.direct => Ok(gone(unresolved, direct(link))),
                    Some(c) => Ok(Resolved {
                        target: link.target.clone(),
                        issue: None,
                        team_id: Some(c.team_id),
                        channel_id: Some(c.id),
                    }),
                    None => Ok(Resolved {
                        target: link.target.clone(),
                        issue: None,
                        team_id: None,
                        channel_id: None,
                    }),
                },
            }
        }
    }
}

/// Records ids seen for the first time and names seen anew. Only the lock holder writes.
pub fn record_identities(_lock: &RunLock, ledger: &Ledger, learned: &[LinkIdentity]) -> Result<()> {
    for id in learned {
        ledger
            .put_identity(id)
            .context("ledger: recording a link's ids")?;
    }
    Ok(())
}
