//! The directory kept in memory between reads, for `serve`.
//!
//! A full read builds a [`DirModel`]: the same groups, nested groups and users a snapshot
//! reads, plus what the snapshot forgets once it has assembled the [`Directory`] (the
//! entries by DN, which groups the filter matched, which referenced DNs have no entry). A
//! change notification names entries; [`LdapDirectory::refresh_model`] reads exactly those
//! again (a base search each, with the snapshot's own filter and attributes), reads what they
//! newly reference, forgets what nothing references any more, and assembles the view again.
//! So the model is what a full read would return, as long as every change is notified; the
//! periodic full reconcile checks that ([`Directory::differences`] in the engine's caller).
//!
//! The notification is never trusted for content: only the DNs it names are used, and the
//! entries are read afresh under the same rules (a group the bind cannot see fails the read).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use ldap3::Scope;
use mattersync_core::model::{DirUser, Directory};
use tracing::{debug, info};

use crate::dn::Dn;
use crate::error::DirectoryError;
use crate::ldap::LdapDirectory;
use crate::snapshot::{assemble, distinct, is_group_entry, user_from_entry, RawGroup};

/// The directory as of the last read, updated entry by entry.
#[derive(Debug, Clone)]
pub struct DirModel {
    /// Groups the group filter matched under `group_base`.
    matched: BTreeSet<Dn>,
    /// Matched groups and every group they reach as member or manager.
    groups: BTreeMap<Dn, RawGroup>,
    /// Users the groups reference.
    users: HashMap<Dn, DirUser>,
    /// Referenced DNs that are neither a group nor a user (deleted without referential
    /// integrity, or outside `user_base`): left out, as a snapshot leaves them out.
    missing: HashSet<Dn>,
    dir: Arc<Directory>,
}

/// What one refresh did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Refreshed {
    /// Base reads made.
    pub reads: usize,
    /// The groups (by name) whose view the refresh may have changed: those whose entries
    /// were read again, appeared or went, those that reference a user read again, and every
    /// group that nests or names one of them as manager. No other group's view changed.
    pub groups: BTreeSet<String>,
}

impl DirModel {
    /// The view, as a snapshot would return it.
    pub fn directory(&self) -> &Arc<Directory> {
        &self.dir
    }

    pub fn into_directory(self) -> Directory {
        Arc::try_unwrap(self.dir).unwrap_or_else(|d| (*d).clone())
    }

    /// For the drift tests only (the fault-injection build): forgets that `uid` is a direct
    /// member of group `cn`, as a lost notification would. True when it was one.
    #[doc(hidden)]
    pub fn corrupt_forget_member(&mut self, cn: &str, uid: &str) -> bool {
        let mut dir = (*self.dir).clone();
        let hit = dir
            .groups
            .get_mut(cn)
            .is_some_and(|g| g.member_users.remove(uid));
        self.dir = Arc::new(dir);
        hit
    }

    fn refs(&self) -> impl Iterator<Item = &Dn> {
        self.groups.values().flat_map(|g| g.refs())
    }

    fn known(&self, dn: &Dn) -> bool {
        self.groups.contains_key(dn) || self.users.contains_key(dn) || self.missing.contains(dn)
    }

    /// Forgets groups nothing matched reaches, users and missing DNs nothing references;
    /// of two groups with one stable id (a rename the notification named by its new DN
    /// only), the one not named by this change.
    fn prune(&mut self, named: &HashSet<Dn>) -> Vec<String> {
        let mut gone = Vec::new();
        let mut by_id: HashMap<&str, Vec<&Dn>> = HashMap::new();
        for (dn, g) in &self.groups {
            by_id.entry(g.id.as_str()).or_default().push(dn);
        }
        let stale: Vec<Dn> = by_id
            .into_values()
            .filter(|dns| dns.len() > 1 && dns.iter().any(|d| named.contains(*d)))
            .flat_map(|dns| {
                dns.into_iter()
                    .filter(|d| !named.contains(*d))
                    .cloned()
                    .collect::<Vec<_>>()
            })
            .collect();
        for dn in stale {
            debug!(dn = %dn, "a renamed group's old entry is forgotten");
            if let Some(g) = self.groups.remove(&dn) {
                gone.push(g.cn);
            }
            self.matched.remove(&dn);
        }
        let mut reached: HashSet<Dn> = HashSet::new();
        let mut queue: VecDeque<&Dn> = self.matched.iter().collect();
        while let Some(dn) = queue.pop_front() {
            if !reached.insert(dn.clone()) {
                continue;
            }
            if let Some(g) = self.groups.get(dn) {
                queue.extend(g.refs().filter(|r| self.groups.contains_key(*r)));
            }
        }
        self.groups.retain(|dn, g| {
            let keep = reached.contains(dn);
            if !keep {
                gone.push(g.cn.clone());
            }
            keep
        });
        let referenced: HashSet<&Dn> = self.refs().collect();
        let referenced: HashSet<Dn> = referenced.into_iter().cloned().collect();
        self.users.retain(|dn, _| referenced.contains(dn));
        self.missing.retain(|dn| referenced.contains(dn));
        gone
    }
}

impl LdapDirectory {
    /// A full read, as [`LdapDirectory::snapshot`], kept as a model that change
    /// notifications can update.
    pub async fn read_model(&mut self) -> Result<DirModel, DirectoryError> {
        let started = Instant::now();
        let group_base = self.config().group_base();
        let user_base = self.config().user_base();
        let group_filter = self.config().group_filter.clone();
        self.check_readable("group_base", &group_base).await?;
        self.check_readable("user_base", &user_base).await?;
        let attrs = self.group_attrs();
        let entries = self
            .search(&group_base, Scope::Subtree, &group_filter, &attrs, true)
            .await?;
        distinct(entries.iter().map(|e| &e.dn))?;
        let mut groups = BTreeMap::new();
        for e in &entries {
            let g = RawGroup::from_entry(e, self.config())?;
            groups.insert(g.dn.clone(), g);
        }
        let matched: BTreeSet<Dn> = groups.keys().cloned().collect();
        self.expand(&mut groups).await?;
        let users = self.referenced_users(&groups).await?;
        let missing: HashSet<Dn> = groups
            .values()
            .flat_map(|g| g.refs())
            .filter(|dn| !groups.contains_key(*dn) && !users.contains_key(*dn))
            .cloned()
            .collect();
        let dir = assemble(&groups, &users)?;
        info!(
            matched = matched.len(),
            groups = dir.groups.len(),
            users = dir.users.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "directory snapshot read"
        );
        Ok(DirModel {
            matched,
            groups,
            users,
            missing,
            dir: Arc::new(dir),
        })
    }

    /// Reads the entries `changed` names (DNs, as a change notification gives them) again
    /// and updates `model` to what a full read would return now. On an error the model is
    /// half updated: drop it and read in full.
    pub async fn refresh_model(
        &mut self,
        model: &mut DirModel,
        changed: &[String],
    ) -> Result<Refreshed, DirectoryError> {
        let mut done = Refreshed::default();
        let group_filter = self.config().group_filter.clone();
        let attrs = self.group_attrs();
        let mut named: HashSet<Dn> = HashSet::new();
        for s in changed {
            let dn = Dn::parse(s).map_err(|e| {
                DirectoryError::Inconsistent(format!(
                    "a change notification names {s:?}, which is not a DN: {e}"
                ))
            })?;
            if !named.insert(dn.clone()) {
                continue;
            }
            if let Some(g) = model.groups.get(&dn) {
                done.groups.insert(g.cn.clone());
            }
            if model.users.contains_key(&dn) || model.missing.contains(&dn) {
                done.groups.extend(
                    model
                        .groups
                        .values()
                        .filter(|g| g.refs().any(|r| r == &dn))
                        .map(|g| g.cn.clone()),
                );
            }
            // What the model knew of the entry goes; it is read again as a full read would.
            model.groups.remove(&dn);
            model.matched.remove(&dn);
            model.users.remove(&dn);
            model.missing.remove(&dn);
            if dn.is_descendant_of(&self.group_base) {
                done.reads += 1;
                let found = match self
                    .search(&dn.to_string(), Scope::Base, &group_filter, &attrs, false)
                    .await
                {
                    Ok(mut e) => e.pop(),
                    Err(DirectoryError::Operation { rc: 32, .. }) => None,
                    Err(e) => return Err(e),
                };
                if let Some(e) = found {
                    let g = RawGroup::from_entry(&e, self.config())?;
                    model.matched.insert(dn.clone());
                    model.groups.insert(dn, g);
                }
            }
            // Not matched: if something references it (a nested group, a user), the
            // expansion below reads it; if nothing does, it is not part of the view.
        }
        let before: BTreeSet<String> = model.groups.values().map(|g| g.cn.clone()).collect();
        self.expand_model(model, &mut done).await?;
        let gone = model.prune(&named);
        done.groups.extend(gone);
        for (dn, g) in &model.groups {
            if named.contains(dn) || !before.contains(&g.cn) {
                done.groups.insert(g.cn.clone());
            }
        }
        let dir = assemble(&model.groups, &model.users)?;
        // Whatever nests a group whose view changed changed too.
        loop {
            let up: Vec<String> = dir
                .groups
                .values()
                .filter(|g| !done.groups.contains(&g.cn))
                .filter(|g| {
                    g.member_groups
                        .iter()
                        .chain(&g.manager_groups)
                        .any(|n| done.groups.contains(n))
                })
                .map(|g| g.cn.clone())
                .collect();
            if up.is_empty() {
                break;
            }
            done.groups.extend(up);
        }
        model.dir = Arc::new(dir);
        Ok(done)
    }

    /// Reads every referenced DN the model does not know, as a full read does: a possible
    /// group first (breadth first, so what a new nested group references is read too), then
    /// a user under `user_base`.
    async fn expand_model(
        &mut self,
        model: &mut DirModel,
        done: &mut Refreshed,
    ) -> Result<(), DirectoryError> {
        let gattrs = self.group_attrs();
        let uattrs = self.user_attrs();
        let user_filter = format!("({}=*)", self.config().user_id_attr);
        let mut queue: VecDeque<Dn> = model
            .refs()
            .filter(|dn| !model.known(dn))
            .cloned()
            .collect();
        while let Some(dn) = queue.pop_front() {
            if model.known(&dn) {
                continue;
            }
            let under_groups = dn.is_descendant_of(&self.group_base);
            let under_users = dn.is_descendant_of(&self.user_base);
            if !under_users || under_groups {
                done.reads += 1;
                match self.read_entry(&dn, &gattrs).await? {
                    None if under_groups && !under_users => {
                        let by = model
                            .groups
                            .values()
                            .find(|g| g.refs().any(|r| r == &dn))
                            .map_or_else(|| "a group".to_string(), |g| format!("group {}", g.cn));
                        return Err(DirectoryError::Inconsistent(format!(
                            "{by} lists {dn} as a member or manager, but that entry cannot be \
                             read (deleted without referential integrity, or hidden from the \
                             bind account); remove the stale value or grant read access"
                        )));
                    }
                    Some(e) if is_group_entry(&e) || (under_groups && !under_users) => {
                        let g = RawGroup::from_entry(&e, self.config())?;
                        queue.extend(g.refs().filter(|r| !model.known(r)).cloned());
                        model.groups.insert(dn, g);
                        continue;
                    }
                    _ => {}
                }
            }
            if under_users {
                done.reads += 1;
                let found = match self
                    .search(&dn.to_string(), Scope::Base, &user_filter, &uattrs, false)
                    .await
                {
                    Ok(mut e) => e.pop(),
                    Err(DirectoryError::Operation { rc: 32, .. }) => None,
                    Err(e) => return Err(e),
                };
                let user = match found {
                    Some(e) => user_from_entry(&e, self.config())?,
                    None => None,
                };
                match user {
                    Some(u) => {
                        model.users.insert(dn, u);
                    }
                    None => {
                        model.missing.insert(dn);
                    }
                }
            } else {
                model.missing.insert(dn);
            }
        }
        Ok(())
    }
}

/// Where two views of the directory differ: how many groups and users are not the same in
/// both (added, gone or changed), and the first `limit` of them by name.
pub fn differences(a: &Directory, b: &Directory, limit: usize) -> (usize, Vec<String>) {
    let mut count = 0;
    let mut named = Vec::new();
    let groups: BTreeSet<&String> = a.groups.keys().chain(b.groups.keys()).collect();
    for cn in groups {
        if a.groups.get(cn) != b.groups.get(cn) {
            count += 1;
            if named.len() < limit {
                named.push(format!("group {cn}"));
            }
        }
    }
    let users: BTreeSet<&String> = a.users.keys().chain(b.users.keys()).collect();
    for uid in users {
        if a.users.get(uid) != b.users.get(uid) {
            count += 1;
            if named.len() < limit {
                named.push(format!("user {uid}"));
            }
        }
    }
    (count, named)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mattersync_core::model::DirGroup;

    fn dir(groups: &[(&str, &[&str])], users: &[&str]) -> Directory {
        Directory {
            users: users
                .iter()
                .map(|u| {
                    (
                        u.to_string(),
                        DirUser {
                            uid: u.to_string(),
                            ..Default::default()
                        },
                    )
                })
                .collect(),
            groups: groups
                .iter()
                .map(|(cn, members)| {
                    (
                        cn.to_string(),
                        DirGroup {
                            id: format!("id-{cn}"),
                            cn: cn.to_string(),
                            member_users: members.iter().map(|m| m.to_string()).collect(),
                            ..Default::default()
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn differences_name_what_differs_and_nothing_else() {
        let a = dir(&[("g1", &["a", "b"]), ("g2", &["c"])], &["a", "b", "c"]);
        assert_eq!(differences(&a, &a.clone(), 5), (0, vec![]));
        let mut b = a.clone();
        b.groups.get_mut("g1").map(|g| g.member_users.remove("b"));
        b.users.remove("b");
        b.users.insert(
            "d".to_string(),
            DirUser {
                uid: "d".to_string(),
                disabled: true,
                ..Default::default()
            },
        );
        let (n, named) = differences(&a, &b, 5);
        assert_eq!(n, 3);
        assert_eq!(named, vec!["group g1", "user b", "user d"]);
        assert_eq!(differences(&a, &b, 1), (3, vec!["group g1".to_string()]));
    }
}
