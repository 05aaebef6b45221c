//! Reading groups, their nesting and their users into a [`Directory`].

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use ldap3::Scope;
use mattersync_core::model::{DirGroup, DirUser, Directory};
use tracing::{debug, warn};

use crate::config::LdapConfig;
use crate::dn::Dn;
use crate::error::DirectoryError;
use crate::filter;
use crate::ldap::{Entry, LdapDirectory};

/// Stable-id attributes tried after `group_id_attr`: 389-ds/FreeIPA, then OpenLDAP.
const ID_FALLBACKS: [&str; 2] = ["nsUniqueId", "entryUUID"];

/// objectClasses that make an entry a group whose members are DNs.
const GROUP_CLASSES: [&str; 5] = [
    "groupofnames",
    "groupofuniquenames",
    "group",
    "nestedgroup",
    "ipausergroup",
];

/// A group entry as read, before names are resolved.
#[derive(Debug, Clone)]
pub(crate) struct RawGroup {
    pub dn: Dn,
    pub cn: String,
    pub id: String,
    pub description: Option<String>,
    pub members: Vec<Dn>,
    pub managers: Vec<Dn>,
}

impl RawGroup {
    pub fn from_entry(e: &Entry, cfg: &LdapConfig) -> Result<RawGroup, DirectoryError> {
        let cn = match e.first("cn")? {
            Some(cn) => cn,
            None => match e.dn.rdn_value("cn") {
                Some(cn) => cn.to_string(),
                None => {
                    return Err(DirectoryError::Inconsistent(format!(
                        "group {} has no cn",
                        e.dn
                    )))
                }
            },
        };
        let mut id = None;
        for attr in std::iter::once(cfg.group_id_attr.as_str()).chain(ID_FALLBACKS) {
            if let Some(v) = e.first(attr)? {
                id = Some(v);
                break;
            }
        }
        let Some(id) = id else {
            return Err(DirectoryError::Inconsistent(format!(
                "group {cn} ({}) has none of {}, {}: it cannot be keyed by a stable id (is the \
                 attribute readable by the bind account?)",
                e.dn,
                cfg.group_id_attr,
                ID_FALLBACKS.join(", ")
            )));
        };
        Ok(RawGroup {
            dn: e.dn.clone(),
            cn,
            id,
            description: e.first("description")?,
            members: e.dns(&cfg.member_attr)?,
            managers: e.dns(&cfg.manager_attr)?,
        })
    }

    pub(crate) fn refs(&self) -> impl Iterator<Item = &Dn> {
        self.members.iter().chain(self.managers.iter())
    }
}

pub(crate) fn is_group_entry(e: &Entry) -> bool {
    e.values("objectClass").iter().any(|oc| {
        std::str::from_utf8(oc)
            .is_ok_and(|oc| GROUP_CLASSES.contains(&oc.to_ascii_lowercase().as_str()))
    })
}

pub(crate) fn user_from_entry(
    e: &Entry,
    cfg: &LdapConfig,
) -> Result<Option<DirUser>, DirectoryError> {
    let ids = e.strings(&cfg.user_id_attr)?;
    // A multi-valued uid: the one in the RDN names the entry.
    let uid = match e.dn.rdn_value(&cfg.user_id_attr) {
        Some(r) if ids.iter().any(|v| v.eq_ignore_ascii_case(r)) => {
            ids.iter().find(|v| v.eq_ignore_ascii_case(r)).cloned()
        }
        _ => ids.into_iter().find(|v| !v.is_empty()),
    };
    let Some(uid) = uid else {
        return Ok(None);
    };
    let auth_id = match &cfg.auth_id_attr {
        Some(a) => e.first(a)?,
        None => None,
    };
    let disabled = e
        .first(&cfg.disabled_attr)?
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    Ok(Some(DirUser {
        uid,
        email: e.first(&cfg.email_attr)?,
        auth_id,
        disabled,
    }))
}

/// The entries of one search are distinct to the server; mattersync compares DNs the way
/// LDAP matches names (case and runs of spaces folded), so two entries the server keeps
/// apart, e.g. `cn=mm_rl_infra` and `cn=mm_rl_infra\20`, could be taken for one and one
/// silently replace the other. That is an error naming both, never a guess.
pub(crate) fn distinct<'a>(dns: impl IntoIterator<Item = &'a Dn>) -> Result<(), DirectoryError> {
    let mut seen = Distinct::default();
    for dn in dns {
        seen.check(dn)?;
    }
    Ok(())
}

/// [`distinct`] one entry at a time, keeping only each DN's comparison form and text (not
/// the parsed DN), so a streamed search of every user can be checked cheaply.
#[derive(Default)]
pub(crate) struct Distinct {
    seen: HashMap<String, String>,
}

impl Distinct {
    pub(crate) fn check(&mut self, dn: &Dn) -> Result<(), DirectoryError> {
        match self.seen.entry(dn.key()) {
            std::collections::hash_map::Entry::Occupied(prev) => {
                Err(DirectoryError::Inconsistent(format!(
                    "the directory returned two entries that differ only in case or spaces: {prev:?} \
                     and {dn:?}; mattersync cannot tell them apart, rename one",
                    prev = prev.get(),
                    dn = dn.to_string()
                )))
            }
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(dn.to_string());
                Ok(())
            }
        }
    }
}

/// Build the `Directory` from the groups read and the users found by DN. Member DNs that are
/// neither (deleted users, entries outside `user_base`) are left out and logged.
pub(crate) fn assemble(
    groups: &BTreeMap<Dn, RawGroup>,
    users: &HashMap<Dn, DirUser>,
) -> Result<Directory, DirectoryError> {
    let mut dir = Directory::default();
    let mut user_dn_by_uid: BTreeMap<String, &Dn> = BTreeMap::new();
    let mut group_dn_by_cn: BTreeMap<String, &Dn> = BTreeMap::new();
    for g in groups.values() {
        if let Some(other) = group_dn_by_cn.insert(g.cn.clone(), &g.dn) {
            return Err(DirectoryError::Inconsistent(format!(
                "two groups are named {}: {} and {}; group names must be unique",
                g.cn, other, g.dn
            )));
        }
    }
    let mut dangling: BTreeSet<String> = BTreeSet::new();
    for g in groups.values() {
        let mut out = DirGroup {
            id: g.id.clone(),
            cn: g.cn.clone(),
            description: g.description.clone(),
            ..Default::default()
        };
        for (dns, users_out, groups_out) in [
            (&g.members, &mut out.member_users, &mut out.member_groups),
            (&g.managers, &mut out.manager_users, &mut out.manager_groups),
        ] {
            for dn in dns {
                if let Some(nested) = groups.get(dn) {
                    groups_out.insert(nested.cn.clone());
                } else if let Some(u) = users.get(dn) {
                    if let Some(prev) = user_dn_by_uid.insert(u.uid.clone(), dn) {
                        if prev != dn {
                            return Err(DirectoryError::Inconsistent(format!(
                                "two user entries have {} {:?}: {} and {}",
                                "the user id", u.uid, prev, dn
                            )));
                        }
                    }
                    users_out.insert(u.uid.clone());
                    dir.users.entry(u.uid.clone()).or_insert_with(|| u.clone());
                } else {
                    debug!(group = %g.cn, dn = %dn, "member or manager is neither a known user nor a group; ignored");
                    dangling.insert(dn.to_string());
                }
            }
        }
        dir.groups.insert(out.cn.clone(), out);
    }
    if !dangling.is_empty() {
        warn!(
            count = dangling.len(),
            first = %dangling.iter().next().map(String::as_str).unwrap_or(""),
            "member/manager DNs that are neither users under user_base nor groups were ignored"
        );
    }
    Ok(dir)
}

impl LdapDirectory {
    pub(crate) fn group_attrs(&self) -> Vec<String> {
        let cfg = self.config();
        let mut attrs: Vec<String> = Vec::new();
        for a in [
            "objectClass",
            "cn",
            "description",
            &cfg.member_attr,
            &cfg.manager_attr,
            &cfg.group_id_attr,
        ]
        .into_iter()
        .chain(ID_FALLBACKS)
        {
            if !attrs.iter().any(|x| x.eq_ignore_ascii_case(a)) {
                attrs.push(a.to_string());
            }
        }
        attrs
    }

    pub(crate) fn user_attrs(&self) -> Vec<String> {
        let cfg = self.config();
        let mut attrs: Vec<String> = Vec::new();
        for a in [&cfg.user_id_attr, &cfg.email_attr, &cfg.disabled_attr]
            .into_iter()
            .chain(cfg.auth_id_attr.as_ref())
        {
            if !attrs.iter().any(|x| x.eq_ignore_ascii_case(a)) {
                attrs.push(a.clone());
            }
        }
        attrs
    }

    /// Everything mattersync needs from the directory in one consistent read: every group
    /// matching `group_filter` under `group_base`, every group they nest or name as manager
    /// (transitively, whether or not it matches the filter), and every user they reference,
    /// disabled ones flagged. Any error or limit aborts the whole read.
    pub async fn snapshot(&mut self) -> Result<Directory, DirectoryError> {
        Ok(self.read_model().await?.into_directory())
    }

    /// One group by name (any group under `group_base`, whether or not it matches the
    /// filter), with the groups it nests or names as manager and the users it references, in
    /// the same shape as a snapshot. `None` when there is no such group.
    pub async fn group(&mut self, cn: &str) -> Result<Option<Directory>, DirectoryError> {
        let group_base = self.config().group_base();
        let user_base = self.config().user_base();
        self.check_readable("group_base", &group_base).await?;
        self.check_readable("user_base", &user_base).await?;
        let f = format!(
            "(&{}(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=group)))",
            filter::eq("cn", cn)
        );
        let attrs = self.group_attrs();
        let entries = self
            .search(&group_base, Scope::Subtree, &f, &attrs, false)
            .await?;
        let entry = match entries.as_slice() {
            [] => return Ok(None),
            [one] => one,
            many => {
                return Err(DirectoryError::Inconsistent(format!(
                    "{} groups are named {cn:?} under {group_base}",
                    many.len()
                )))
            }
        };
        let g = RawGroup::from_entry(entry, self.config())?;
        let mut groups = BTreeMap::from([(g.dn.clone(), g)]);
        self.expand(&mut groups).await?;
        let users = self.referenced_users(&groups).await?;
        assemble(&groups, &users).map(Some)
    }

    /// One user by user id (`uid`) under `user_base`; `None` when there is none.
    pub async fn user(&mut self, uid: &str) -> Result<Option<DirUser>, DirectoryError> {
        let user_base = self.config().user_base();
        self.check_readable("user_base", &user_base).await?;
        let f = filter::eq(&self.config().user_id_attr, uid);
        let attrs = self.user_attrs();
        let entries = self
            .search(&user_base, Scope::Subtree, &f, &attrs, false)
            .await?;
        match entries.as_slice() {
            [] => Ok(None),
            [one] => user_from_entry(one, self.config()),
            many => Err(DirectoryError::Inconsistent(format!(
                "{} users have {} {uid:?} under {user_base}",
                many.len(),
                self.config().user_id_attr
            ))),
        }
    }

    /// Whether a user with this user id exists under `user_base` (disabled or not).
    pub async fn user_exists(&mut self, uid: &str) -> Result<bool, DirectoryError> {
        Ok(self.user(uid).await?.is_some())
    }

    /// Follow member and manager DNs to groups, breadth first, each DN once (cycles end).
    pub(crate) async fn expand(
        &mut self,
        groups: &mut BTreeMap<Dn, RawGroup>,
    ) -> Result<(), DirectoryError> {
        let attrs = self.group_attrs();
        let mut queue: VecDeque<Dn> = groups.values().flat_map(|g| g.refs().cloned()).collect();
        let mut seen: HashSet<Dn> = groups.keys().cloned().collect();
        let mut reads = 0usize;
        while let Some(dn) = queue.pop_front() {
            if !seen.insert(dn.clone()) {
                continue;
            }
            let under_groups = dn.is_descendant_of(&self.group_base);
            let under_users = dn.is_descendant_of(&self.user_base);
            if under_users && !under_groups {
                continue; // a user: the user search resolves it
            }
            reads += 1;
            let Some(entry) = self.read_entry(&dn, &attrs).await? else {
                if under_groups && !under_users {
                    // A group we cannot see would silently drop its members: fail closed.
                    let by = groups
                        .values()
                        .find(|g| g.refs().any(|r| r == &dn))
                        .map_or_else(|| "a group".to_string(), |g| format!("group {}", g.cn));
                    return Err(DirectoryError::Inconsistent(format!(
                        "{by} lists {dn} as a member or manager, but that entry cannot be read \
                         (deleted without referential integrity, or hidden from the bind \
                         account); remove the stale value or grant read access"
                    )));
                }
                debug!(dn = %dn, "referenced entry does not exist");
                continue;
            };
            if is_group_entry(&entry) || (under_groups && !under_users) {
                let g = RawGroup::from_entry(&entry, self.config())?;
                queue.extend(g.refs().cloned());
                groups.insert(dn, g);
            }
        }
        debug!(groups = groups.len(), reads, "nested groups resolved");
        Ok(())
    }

    /// The users under `user_base` that the groups reference (one paged search).
    pub(crate) async fn referenced_users(
        &mut self,
        groups: &BTreeMap<Dn, RawGroup>,
    ) -> Result<HashMap<Dn, DirUser>, DirectoryError> {
        let wanted: HashSet<&Dn> = groups
            .values()
            .flat_map(|g| g.refs())
            .filter(|dn| !groups.contains_key(*dn))
            .collect();
        let mut users = HashMap::new();
        if wanted.is_empty() {
            return Ok(users);
        }
        let user_base = self.config().user_base();
        let f = format!("({}=*)", self.config().user_id_attr);
        let attrs = self.user_attrs();
        // Streamed: only the referenced users are kept, not every entry under user_base.
        let cfg = self.config().clone();
        let mut seen = Distinct::default();
        let total = self
            .search_each(&user_base, Scope::Subtree, &f, &attrs, true, |e| {
                seen.check(&e.dn)?;
                if wanted.contains(&e.dn) {
                    if let Some(u) = user_from_entry(&e, &cfg)? {
                        users.insert(e.dn, u);
                    }
                }
                Ok(())
            })
            .await?;
        debug!(listed = total, referenced = users.len(), "users read");
        Ok(users)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: &str = "cn=accounts,dc=rockylinux,dc=org";

    fn cfg() -> LdapConfig {
        LdapConfig::new("ldap://127.0.0.1", "dc=rockylinux,dc=org")
    }

    fn udn(uid: &str) -> String {
        format!("uid={uid},cn=users,{B}")
    }
    fn gdn(cn: &str) -> String {
        format!("cn={cn},cn=groups,{B}")
    }
    fn dn(s: &str) -> Dn {
        match Dn::parse(s) {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        }
    }

    fn group(cn: &str, members: &[String], managers: &[String]) -> RawGroup {
        let m: Vec<&str> = members.iter().map(String::as_str).collect();
        let mm: Vec<&str> = managers.iter().map(String::as_str).collect();
        let e = Entry::for_test(
            &gdn(cn),
            &[
                ("objectClass", &["top", "groupOfNames", "ipaUserGroup"]),
                ("cn", &[cn]),
                ("ipaUniqueID", &[&format!("id-{cn}")]),
                ("member", &m),
                ("memberManager", &mm),
            ],
        );
        match RawGroup::from_entry(&e, &cfg()) {
            Ok(g) => g,
            Err(err) => panic!("{err}"),
        }
    }

    fn user(uid: &str, disabled: bool) -> (Dn, DirUser) {
        (
            dn(&udn(uid)),
            DirUser {
                uid: uid.into(),
                disabled,
                ..Default::default()
            },
        )
    }

    #[test]
    fn entries_that_differ_only_in_case_or_spaces_are_an_error_not_one_entry() {
        let real = dn(&gdn("mm_rl_infra"));
        let spaced = dn(&gdn("mm_rl_infra\\20"));
        assert_eq!(real, spaced, "the same to mattersync's comparison");
        let err = distinct([&real, &spaced]).expect_err("must be refused");
        let msg = err.to_string();
        assert!(
            msg.contains("mm_rl_infra") && msg.contains("differ only in case or spaces"),
            "{msg}"
        );
        let other = dn(&gdn("mm_rl_infra2"));
        assert!(distinct([&real, &other]).is_ok());
    }

    #[test]
    fn groups_and_users_are_resolved_by_dn_regardless_of_case_and_spacing() {
        let g = group(
            "mm_rl_infra",
            &[
                "UID=Neil, CN=Users,cn=accounts,DC=rockylinux,dc=org".into(),
                gdn("infra_oncall").to_uppercase(),
                udn("ghost"),
            ],
            &[udn("neil")],
        );
        let oncall = group("infra_oncall", &[udn("wkim"), udn("tvaughn")], &[]);
        let groups = BTreeMap::from([(g.dn.clone(), g), (oncall.dn.clone(), oncall)]);
        let users = HashMap::from([
            user("neil", false),
            user("wkim", false),
            user("tvaughn", true),
        ]);
        let dir = match assemble(&groups, &users) {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        };
        let infra = &dir.groups["mm_rl_infra"];
        assert_eq!(infra.id, "id-mm_rl_infra");
        assert_eq!(infra.member_users, BTreeSet::from(["neil".to_string()]));
        assert_eq!(
            infra.member_groups,
            BTreeSet::from(["infra_oncall".to_string()])
        );
        assert_eq!(infra.manager_users, BTreeSet::from(["neil".to_string()]));
        assert!(dir.users["tvaughn"].disabled);
        assert!(!dir.users.contains_key("ghost"));
        let eff: Vec<_> = dir.effective_members("mm_rl_infra").into_iter().collect();
        assert_eq!(eff, ["neil", "wkim"]);
    }

    #[test]
    fn two_groups_with_one_name_are_an_error() {
        let a = group("dup", &[], &[]);
        let mut b = a.clone();
        b.dn = dn(&format!("cn=dup,cn=other,{B}"));
        let groups = BTreeMap::from([(a.dn.clone(), a), (b.dn.clone(), b)]);
        let err = assemble(&groups, &HashMap::new())
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("two groups are named dup")));
    }

    #[test]
    fn a_group_without_any_stable_id_is_an_error() {
        let e = Entry::for_test(
            &gdn("x"),
            &[("cn", &["x"]), ("objectClass", &["groupOfNames"])],
        );
        let err = RawGroup::from_entry(&e, &cfg())
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("ipaUniqueID, nsUniqueId, entryUUID")));
        // The fallbacks are used in order.
        let e = Entry::for_test(
            &gdn("x"),
            &[
                ("cn", &["x"]),
                ("entryUUID", &["u-1"]),
                ("nsUniqueId", &["n-1"]),
            ],
        );
        assert_eq!(
            RawGroup::from_entry(&e, &cfg())
                .map(|g| g.id)
                .ok()
                .as_deref(),
            Some("n-1")
        );
    }

    #[test]
    fn a_malformed_member_dn_is_an_error_not_a_missing_member() {
        let e = Entry::for_test(
            &gdn("x"),
            &[
                ("cn", &["x"]),
                ("ipaUniqueID", &["1"]),
                ("member", &["uid=a,", "uid=b"]),
            ],
        );
        assert!(RawGroup::from_entry(&e, &cfg()).is_err());
    }

    #[test]
    fn users_read_uid_mail_lock_and_auth_id() {
        let mut c = cfg();
        c.auth_id_attr = Some("krbPrincipalName".into());
        let e = Entry::for_test(
            &udn("neil"),
            &[
                ("uid", &["neil"]),
                ("mail", &["neil@example.org"]),
                ("NSACCOUNTLOCK", &["True"]),
                ("krbPrincipalName", &["neil@ROCKYLINUX.ORG"]),
            ],
        );
        let u = user_from_entry(&e, &c).ok().flatten();
        assert_eq!(
            u,
            Some(DirUser {
                uid: "neil".into(),
                email: Some("neil@example.org".into()),
                auth_id: Some("neil@ROCKYLINUX.ORG".into()),
                disabled: true,
            })
        );
        let e = Entry::for_test(
            &udn("x"),
            &[("uid", &["other", "x"]), ("nsAccountLock", &["FALSE"])],
        );
        let u = user_from_entry(&e, &cfg()).ok().flatten();
        assert_eq!(
            u.as_ref().map(|u| (u.uid.as_str(), u.disabled)),
            Some(("x", false))
        );
    }

    #[test]
    fn group_classes_are_recognised_case_insensitively() {
        let e = Entry::for_test(&gdn("x"), &[("objectclass", &["top", "GROUPOFNAMES"])]);
        assert!(is_group_entry(&e));
        let e = Entry::for_test(&udn("x"), &[("objectClass", &["top", "person"])]);
        assert!(!is_group_entry(&e));
    }
}
