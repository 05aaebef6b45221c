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
use crate::snapshot::{
    assemble, dir_group, distinct, is_group_entry, two_groups, two_users, user_from_entry, RawGroup,
};

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
    /// How many member and manager values of the groups name each DN: a DN no value names
    /// any more is forgotten (unless it is a matched group), so a refresh costs what the
    /// change touches, not a pass over the whole directory.
    refs: HashMap<Dn, u32>,
    dir: Arc<Directory>,
}

/// What one refresh did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Refreshed {
    /// Base reads made.
    pub reads: usize,
    /// The groups (by name) whose view the refresh may have changed: those whose entries
    /// were read again, appeared or went, those that reference a user whose record changed,
    /// and every group that nests or names one of them as manager. No other group's view
    /// changed.
    pub groups: BTreeSet<String>,
}

/// What the model held at a DN before a refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Held {
    Group(String),
    User(DirUser),
    Missing,
    Nothing,
}

fn count_refs(refs: &mut HashMap<Dn, u32>, g: &RawGroup) {
    for r in g.refs() {
        *refs.entry(r.clone()).or_insert(0) += 1;
    }
}

/// Takes `g`'s values off the counts; DNs no value names any more go to `orphans`, those
/// still named by fewer values to `weakened`.
fn uncount_refs(
    refs: &mut HashMap<Dn, u32>,
    g: &RawGroup,
    orphans: &mut Vec<Dn>,
    weakened: &mut Vec<Dn>,
) {
    for r in g.refs() {
        if let Some(n) = refs.get_mut(r) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                refs.remove(r);
                orphans.push(r.clone());
            } else {
                weakened.push(r.clone());
            }
        }
    }
}

impl DirModel {
    /// The view, as a snapshot would return it.
    pub fn directory(&self) -> &Arc<Directory> {
        &self.dir
    }

    pub fn into_directory(self) -> Directory {
        Arc::try_unwrap(self.dir).unwrap_or_else(|d| (*d).clone())
    }

    fn known(&self, dn: &Dn) -> bool {
        self.groups.contains_key(dn) || self.users.contains_key(dn) || self.missing.contains(dn)
    }

    fn held(&self, dn: &Dn) -> Held {
        if let Some(g) = self.groups.get(dn) {
            Held::Group(g.cn.clone())
        } else if let Some(u) = self.users.get(dn) {
            Held::User(u.clone())
        } else if self.missing.contains(dn) {
            Held::Missing
        } else {
            Held::Nothing
        }
    }

    /// The groups whose values name `dn`.
    fn referrers(&self, dn: &Dn) -> Vec<&RawGroup> {
        if !self.refs.contains_key(dn) {
            return Vec::new();
        }
        self.groups
            .values()
            .filter(|g| g.refs().any(|r| r == dn))
            .collect()
    }

    fn add_group(&mut self, dn: Dn, g: RawGroup) -> Result<(), DirectoryError> {
        if let Some(other) = self.groups.values().find(|o| o.cn == g.cn && o.dn != dn) {
            return Err(two_groups(&g.cn, &other.dn, &dn));
        }
        count_refs(&mut self.refs, &g);
        self.groups.insert(dn, g);
        Ok(())
    }

    fn add_user(&mut self, dn: Dn, u: DirUser) -> Result<(), DirectoryError> {
        if let Some((other, _)) = self.users.iter().find(|(d, o)| o.uid == u.uid && **d != dn) {
            return Err(two_users(&u.uid, other, &dn));
        }
        self.users.insert(dn, u);
        Ok(())
    }

    /// Forgets what nothing reaches any more: `orphans` no value names (a matched group
    /// stays), the groups they held taken off the counts in turn. When a group lost values
    /// naming it but is still named (`weakened`), it may be named only from inside a cycle
    /// of groups nothing matched reaches: then a reachability pass settles it.
    fn forget_orphans(
        &mut self,
        mut orphans: Vec<Dn>,
        mut weakened: Vec<Dn>,
        gone: &mut Vec<RawGroup>,
        gone_users: &mut Vec<DirUser>,
    ) {
        while let Some(dn) = orphans.pop() {
            if self.refs.contains_key(&dn) || self.matched.contains(&dn) {
                continue;
            }
            if let Some(g) = self.groups.remove(&dn) {
                uncount_refs(&mut self.refs, &g, &mut orphans, &mut weakened);
                gone.push(g);
            }
            if let Some(u) = self.users.remove(&dn) {
                gone_users.push(u);
            }
            self.missing.remove(&dn);
        }
        let cycle_possible = weakened
            .iter()
            .any(|d| self.groups.contains_key(d) && !self.matched.contains(d));
        if !cycle_possible {
            return;
        }
        let mut reached: HashSet<&Dn> = HashSet::new();
        let mut queue: VecDeque<&Dn> = self.matched.iter().collect();
        while let Some(dn) = queue.pop_front() {
            if !reached.insert(dn) {
                continue;
            }
            if let Some(g) = self.groups.get(dn) {
                queue.extend(g.refs().filter(|r| self.groups.contains_key(*r)));
            }
        }
        let unreached: Vec<Dn> = self
            .groups
            .keys()
            .filter(|d| !reached.contains(d))
            .cloned()
            .collect();
        let mut orphans = Vec::new();
        let mut weakened = Vec::new();
        for dn in unreached {
            if let Some(g) = self.groups.remove(&dn) {
                uncount_refs(&mut self.refs, &g, &mut orphans, &mut weakened);
                gone.push(g);
            }
        }
        // What only those groups named is named by nothing now.
        while let Some(dn) = orphans.pop() {
            if self.refs.contains_key(&dn) || self.groups.contains_key(&dn) {
                continue;
            }
            if let Some(u) = self.users.remove(&dn) {
                gone_users.push(u);
            }
            self.missing.remove(&dn);
        }
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
        let mut refs = HashMap::new();
        for g in groups.values() {
            count_refs(&mut refs, g);
        }
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
            refs,
            dir: Arc::new(dir),
        })
    }

    /// Reads the entries `changed` names (DNs, as a change notification gives them) again
    /// and updates `model` to what a full read would return now, at the cost of what the
    /// change touches. On an error the model is half updated: drop it and read in full.
    pub async fn refresh_model(
        &mut self,
        model: &mut DirModel,
        changed: &[String],
    ) -> Result<Refreshed, DirectoryError> {
        let mut done = Refreshed::default();
        let group_filter = self.config().group_filter.clone();
        let attrs = self.group_attrs();
        let mut named: Vec<Dn> = Vec::new();
        let mut before: HashMap<Dn, Held> = HashMap::new();
        let mut orphans = Vec::new();
        let mut weakened = Vec::new();
        let mut gone: Vec<RawGroup> = Vec::new();
        let mut gone_users: Vec<DirUser> = Vec::new();
        // Groups whose entry was (re)read: their view is built again.
        let mut fresh: Vec<Dn> = Vec::new();
        for s in changed {
            let dn = Dn::parse(s).map_err(|e| {
                DirectoryError::Inconsistent(format!(
                    "a change notification names {s:?}, which is not a DN: {e}"
                ))
            })?;
            if before.contains_key(&dn) {
                continue;
            }
            before.insert(dn.clone(), model.held(&dn));
            named.push(dn.clone());
            // What the model knew of the entry goes; it is read again as a full read would.
            if let Some(g) = model.groups.remove(&dn) {
                uncount_refs(&mut model.refs, &g, &mut orphans, &mut weakened);
                gone.push(g);
            }
            model.matched.remove(&dn);
            if let Some(u) = model.users.remove(&dn) {
                gone_users.push(u);
            }
            model.missing.remove(&dn);
            if dn.is_descendant_of(&self.group_base) {
                done.reads += 1;
                if let Some(e) = self.read_entry_matching(&dn, &group_filter, &attrs).await? {
                    let g = RawGroup::from_entry(&e, self.config())?;
                    model.matched.insert(dn.clone());
                    model.add_group(dn.clone(), g)?;
                    fresh.push(dn);
                }
            }
            // Not matched: if a value names it (a nested group, a user), the expansion
            // below reads it; if none does, it is not part of the view.
        }
        // Every named entry still named by a value, and everything the groups read anew
        // name, is read as a full read would.
        let mut queue: VecDeque<Dn> = named
            .iter()
            .filter(|d| model.refs.contains_key(*d) && !model.known(d))
            .cloned()
            .collect();
        for d in &fresh {
            if let Some(g) = model.groups.get(d) {
                queue.extend(g.refs().filter(|r| !model.known(r)).cloned());
            }
        }
        let mut read_users: Vec<Dn> = Vec::new();
        self.expand_model(model, queue, &mut done, &mut fresh, &mut read_users)
            .await?;
        // A group read anew with the stable id of another not named here: renamed (the
        // notification named its new DN only); the old entry goes.
        let stale: Vec<Dn> = fresh
            .iter()
            .filter_map(|d| model.groups.get(d))
            .flat_map(|g| {
                model
                    .groups
                    .values()
                    .filter(|o| o.id == g.id && o.dn != g.dn && !before.contains_key(&o.dn))
                    .map(|o| o.dn.clone())
            })
            .collect();
        for dn in stale {
            debug!(dn = %dn, "a renamed group's old entry is forgotten");
            model.matched.remove(&dn);
            if let Some(g) = model.groups.remove(&dn) {
                uncount_refs(&mut model.refs, &g, &mut orphans, &mut weakened);
                gone.push(g);
            }
            orphans.push(dn);
        }
        model.forget_orphans(orphans, weakened, &mut gone, &mut gone_users);

        // The view: what went, what was read, and the groups whose values name an entry
        // that is now something else (a user gone, a group renamed).
        let mut rebuild: BTreeSet<Dn> = fresh.iter().cloned().collect();
        for dn in &named {
            let now = model.held(dn);
            let was = before.get(dn).unwrap_or(&Held::Nothing);
            match (was, &now) {
                (Held::User(a), Held::User(b)) if a.uid != b.uid => {
                    rebuild.extend(model.referrers(dn).into_iter().map(|g| g.dn.clone()));
                }
                (Held::User(a), Held::User(b)) if a != b => {
                    // The same user with another record: the views of the groups that name
                    // them changed, not the groups themselves.
                    done.groups
                        .extend(model.referrers(dn).into_iter().map(|g| g.cn.clone()));
                }
                (Held::User(_), Held::User(_)) => {}
                (Held::Nothing, _) => {}
                (was, now) if was != now => {
                    rebuild.extend(model.referrers(dn).into_iter().map(|g| g.dn.clone()));
                }
                _ => {}
            }
        }
        let dir = Arc::make_mut(&mut model.dir);
        for g in &gone {
            done.groups.insert(g.cn.clone());
            if !model.groups.values().any(|o| o.cn == g.cn) {
                dir.groups.remove(&g.cn);
            }
        }
        for u in &gone_users {
            if !model.users.values().any(|o| o.uid == u.uid) {
                dir.users.remove(&u.uid);
            }
        }
        for dn in named.iter().chain(&read_users) {
            if let Some(u) = model.users.get(dn) {
                dir.users.insert(u.uid.clone(), u.clone());
            }
        }
        for dn in &rebuild {
            if let Some(g) = model.groups.get(dn) {
                done.groups.insert(g.cn.clone());
                dir.groups
                    .insert(g.cn.clone(), dir_group(g, &model.groups, &model.users));
            }
        }
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
        done.groups
            .retain(|cn| dir.groups.contains_key(cn) || gone.iter().any(|g| g.cn == *cn));
        Ok(done)
    }

    /// Reads the DNs in `queue` that the model does not know, as a full read does: a
    /// possible group first (breadth first, so what a new nested group names is read too),
    /// then a user under `user_base`. Groups read go to `fresh`, users to `read_users`.
    async fn expand_model(
        &mut self,
        model: &mut DirModel,
        mut queue: VecDeque<Dn>,
        done: &mut Refreshed,
        fresh: &mut Vec<Dn>,
        read_users: &mut Vec<Dn>,
    ) -> Result<(), DirectoryError> {
        let gattrs = self.group_attrs();
        let uattrs = self.user_attrs();
        let user_filter = format!("({}=*)", self.config().user_id_attr);
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
                        model.add_group(dn.clone(), g)?;
                        fresh.push(dn);
                        continue;
                    }
                    _ => {}
                }
            }
            if under_users {
                done.reads += 1;
                let found = self.read_entry_matching(&dn, &user_filter, &uattrs).await?;
                let user = match found {
                    Some(e) => user_from_entry(&e, self.config())?,
                    None => None,
                };
                match user {
                    Some(u) => {
                        model.add_user(dn.clone(), u)?;
                        read_users.push(dn);
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
