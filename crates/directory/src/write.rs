//! Group writes over LDAP, for `mattersync group …`: read one group's raw settings, the
//! schema and users by uid; create a group; change its settings, members and managers.
//!
//! Invariant: every change is one LDAP operation — one add, or one modify carrying all of
//! its modifications — so the directory applies all of it or none of it. A modify that adds
//! a value that is there already, or deletes one that is gone, fails whole: the group changed
//! since it was read ([`WriteError::Conflict`]), and nothing was written.
//!
//! Invariant: when the request may have reached the server but no answer came (timeout,
//! dropped connection), the error says the outcome is unknown ([`WriteError::OutcomeUnknown`])
//! instead of claiming that nothing happened.

use std::collections::{BTreeSet, HashSet};

use ldap3::{LdapError, LdapResult, Mod, Scope};

use crate::dn::Dn;
use crate::error::{result_code_name, DirectoryError};
use crate::filter;
use crate::ldap::{Entry, LdapDirectory};

/// The objectClasses a FreeIPA group has (`ipaUserGroup` SUP `nestedGroup` SUP
/// `groupOfNames`, `ipaObject` for `ipaUniqueID`).
const IPA_GROUP_CLASSES: [&str; 3] = ["nestedGroup", "ipaUserGroup", "ipaObject"];
/// The freeipa-fas group attributes, which go when `fasGroup` goes.
const FAS_GROUP_ATTRS: [&str; 3] = ["fasURL", "fasMailingList", "fasIRCChannel"];
/// FreeIPA's magic values: the UUID plugin replaces `autogenerate`, the DNA plugin `-1`.
const IPA_UUID_MAGIC: &str = "autogenerate";
const DNA_MAGIC: &str = "-1";
/// The first GID handed out when the directory has no POSIX group yet (plain LDAP).
const FIRST_GID: u32 = 10000;

/// A group write could not be done.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Reading failed (fail closed: nothing was written).
    #[error(transparent)]
    Directory(#[from] DirectoryError),

    /// The directory cannot hold what was asked (found before any write).
    #[error("{0}; nothing was changed")]
    Unsupported(String),

    /// The server refused the operation; LDAP operations are atomic, so nothing changed.
    #[error(
        "the directory refused to {op}: {reason} (code {rc}){detail}{hint}; nothing was changed"
    )]
    Refused {
        op: String,
        rc: u32,
        reason: &'static str,
        detail: String,
        hint: &'static str,
    },

    /// The entry is not as it was read (someone else changed it meanwhile).
    #[error(
        "cannot {op}: the directory changed since mattersync read it ({detail}); nothing was \
         changed; run the command again"
    )]
    Conflict { op: String, detail: String },

    /// The request may have reached the server, but no answer came back.
    #[error(
        "lost the answer to \"{op}\" ({source}): the directory may or may not have done it; \
         run the same command again, it finds out and finishes the job"
    )]
    OutcomeUnknown {
        op: String,
        #[source]
        source: Box<LdapError>,
    },
}

impl WriteError {
    /// Whether the write may have happened although an error came back.
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, WriteError::OutcomeUnknown { .. })
    }
}

/// What the directory's schema defines (names lowercased, aliases included).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schema {
    classes: BTreeSet<String>,
    attributes: BTreeSet<String>,
}

impl Schema {
    /// From the `objectClasses` and `attributeTypes` values of the subschema entry.
    pub fn from_definitions<'a>(
        classes: impl IntoIterator<Item = &'a str>,
        attributes: impl IntoIterator<Item = &'a str>,
    ) -> Schema {
        Schema {
            classes: classes.into_iter().flat_map(definition_names).collect(),
            attributes: attributes.into_iter().flat_map(definition_names).collect(),
        }
    }

    pub fn has_class(&self, name: &str) -> bool {
        self.classes.contains(&name.to_ascii_lowercase())
    }

    pub fn has_attribute(&self, name: &str) -> bool {
        self.attributes.contains(&name.to_ascii_lowercase())
    }

    /// FreeIPA's group classes and `ipaUniqueID` are there.
    pub fn is_freeipa(&self) -> bool {
        IPA_GROUP_CLASSES.iter().all(|c| self.has_class(c)) && self.has_attribute("ipaUniqueID")
    }
}

/// The `NAME` (or `NAME ( 'a' 'b' )`) of an RFC 4512 definition, lowercased.
fn definition_names(def: &str) -> Vec<String> {
    let Some(rest) = def.split_once(" NAME ").map(|(_, r)| r.trim_start()) else {
        return Vec::new();
    };
    let names = if let Some(list) = rest.strip_prefix('(') {
        list.split_once(')').map_or("", |(inside, _)| inside)
    } else {
        rest.split_whitespace().next().unwrap_or("")
    };
    names
        .split_whitespace()
        .map(|n| n.trim_matches('\'').to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect()
}

/// How new entries get their stable id and GID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdSource {
    /// A FreeIPA server: its UUID plugin fills `ipaUniqueID: autogenerate` and its DNA
    /// plugin `gidNumber: -1` (a value mattersync sets is refused there).
    Server,
    /// Any other directory (389-ds or OpenLDAP with the FreeIPA schema loaded, plain LDAP):
    /// mattersync makes a random UUID, and the next free GID (highest + 1).
    Client,
}

/// One group's settings as stored (what `group create` compares with what is asked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    pub dn: Dn,
    pub cn: String,
    /// `ipaUniqueID` (or `nsUniqueId`/`entryUUID`).
    pub id: Option<String>,
    pub description: Option<String>,
    /// Lowercased.
    pub object_classes: BTreeSet<String>,
    pub gid_number: Option<String>,
    /// Member DNs (users and nested groups), as stored.
    pub members: Vec<Dn>,
    /// Manager DNs (users and groups), as stored.
    pub managers: Vec<Dn>,
    /// FAS attributes present (they go when the FAS flag goes).
    pub fas_attributes: Vec<String>,
    /// `memberUid` values present (RFC 2307 members of a POSIX group).
    pub has_member_uid: bool,
}

impl GroupEntry {
    pub fn is_fas(&self) -> bool {
        self.object_classes.contains("fasgroup")
    }

    pub fn is_posix(&self) -> bool {
        self.object_classes.contains("posixgroup") || self.gid_number.is_some()
    }
}

/// A user found by uid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEntry {
    pub dn: Dn,
    pub uid: String,
    pub disabled: bool,
}

/// A group to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewGroup {
    pub cn: String,
    pub description: String,
    pub fas: bool,
    pub posix: bool,
    /// A fixed GID for a POSIX group; `None`: the server's (or the next free) one.
    pub gid: Option<u32>,
    /// Users and groups that may manage the members (DNs as found).
    pub managers: Vec<Dn>,
}

/// Changes to a group, applied in one modify. `None`/empty leaves a setting alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupUpdate {
    pub description: Option<String>,
    pub fas: Option<bool>,
    pub posix: Option<bool>,
    /// A new GID (or, with `posix: Some(true)`, the GID to use).
    pub gid: Option<u32>,
    pub add_managers: Vec<Dn>,
    pub remove_managers: Vec<Dn>,
    pub add_members: Vec<Dn>,
    pub remove_members: Vec<Dn>,
}

impl GroupUpdate {
    pub fn is_empty(&self) -> bool {
        *self == GroupUpdate::default()
    }
}

/// The attributes of a new group entry: the object classes the schema has for it,
/// `ipaUniqueID` where the schema has it, `gidNumber` only for a POSIX group, the managers.
pub fn new_group_attributes(
    g: &NewGroup,
    schema: &Schema,
    manager_attr: &str,
    unique_id: &str,
    gid: Option<&str>,
) -> Result<Vec<(String, Vec<String>)>, WriteError> {
    let mut classes: Vec<String> = vec!["top".into(), "groupOfNames".into()];
    for c in ["nestedGroup", "ipaUserGroup"] {
        if schema.has_class(c) {
            classes.push(c.into());
        }
    }
    let ipa_object = schema.has_class("ipaObject") && schema.has_attribute("ipaUniqueID");
    if ipa_object {
        classes.push("ipaObject".into());
    }
    if g.fas {
        if !schema.has_class("fasGroup") {
            return Err(WriteError::Unsupported(format!(
                "group {}: this directory has no fasGroup object class (it is not FreeIPA with \
                 freeipa-fas); pass --no-fas",
                g.cn
            )));
        }
        classes.push("fasGroup".into());
    }
    let mut attrs: Vec<(String, Vec<String>)> = Vec::new();
    if g.posix {
        if !schema.has_class("posixGroup") {
            return Err(WriteError::Unsupported(format!(
                "group {}: this directory has no posixGroup object class; leave out --posix",
                g.cn
            )));
        }
        classes.push("posixGroup".into());
        let Some(gid) = gid else {
            return Err(WriteError::Unsupported(format!(
                "group {}: a POSIX group needs a gidNumber",
                g.cn
            )));
        };
        attrs.push(("gidNumber".into(), vec![gid.to_string()]));
    }
    if !g.managers.is_empty() && !schema.has_attribute(manager_attr) {
        return Err(WriteError::Unsupported(format!(
            "group {}: this directory has no {manager_attr} attribute, so it cannot record \
             group managers; leave out --manager/--manager-group or set directory.manager_attr",
            g.cn
        )));
    }
    let mut out: Vec<(String, Vec<String>)> = vec![
        ("objectClass".into(), classes),
        ("cn".into(), vec![g.cn.clone()]),
        ("description".into(), vec![g.description.clone()]),
    ];
    if ipa_object {
        out.push(("ipaUniqueID".into(), vec![unique_id.to_string()]));
    }
    out.extend(attrs);
    if !g.managers.is_empty() {
        out.push((
            manager_attr.to_string(),
            g.managers.iter().map(ToString::to_string).collect(),
        ));
    }
    Ok(out)
}

/// The modifications that turn `entry` into what `u` asks for (one modify request).
pub fn group_modifications(
    entry: &GroupEntry,
    u: &GroupUpdate,
    schema: &Schema,
    member_attr: &str,
    manager_attr: &str,
    gid: Option<&str>,
) -> Result<Vec<Mod<String>>, WriteError> {
    let set = |vs: Vec<String>| -> HashSet<String> { vs.into_iter().collect() };
    let mut mods: Vec<Mod<String>> = Vec::new();
    if let Some(d) = &u.description {
        mods.push(Mod::Replace("description".into(), set(vec![d.clone()])));
    }
    match u.fas {
        Some(true) if !entry.is_fas() => {
            if !schema.has_class("fasGroup") {
                return Err(WriteError::Unsupported(format!(
                    "group {}: this directory has no fasGroup object class",
                    entry.cn
                )));
            }
            mods.push(Mod::Add("objectClass".into(), set(vec!["fasGroup".into()])));
        }
        Some(false) if entry.is_fas() => {
            mods.push(Mod::Delete(
                "objectClass".into(),
                set(vec!["fasGroup".into()]),
            ));
            for a in &entry.fas_attributes {
                mods.push(Mod::Delete(a.clone(), HashSet::new()));
            }
        }
        _ => {}
    }
    match u.posix {
        Some(true) if !entry.is_posix() => {
            if !schema.has_class("posixGroup") {
                return Err(WriteError::Unsupported(format!(
                    "group {}: this directory has no posixGroup object class",
                    entry.cn
                )));
            }
            let Some(gid) = gid else {
                return Err(WriteError::Unsupported(format!(
                    "group {}: a POSIX group needs a gidNumber",
                    entry.cn
                )));
            };
            mods.push(Mod::Add(
                "objectClass".into(),
                set(vec!["posixGroup".into()]),
            ));
            mods.push(Mod::Add("gidNumber".into(), set(vec![gid.to_string()])));
        }
        Some(false) if entry.is_posix() => {
            if entry.object_classes.contains("posixgroup") {
                mods.push(Mod::Delete(
                    "objectClass".into(),
                    set(vec!["posixGroup".into()]),
                ));
            }
            if entry.gid_number.is_some() {
                mods.push(Mod::Delete("gidNumber".into(), HashSet::new()));
            }
            if entry.has_member_uid {
                mods.push(Mod::Delete("memberUid".into(), HashSet::new()));
            }
        }
        _ => {
            if let (Some(g), true) = (u.gid, entry.is_posix()) {
                mods.push(Mod::Replace("gidNumber".into(), set(vec![g.to_string()])));
            }
        }
    }
    for (attr, add, remove) in [
        (manager_attr, &u.add_managers, &u.remove_managers),
        (member_attr, &u.add_members, &u.remove_members),
    ] {
        if !add.is_empty() {
            mods.push(Mod::Add(
                attr.to_string(),
                add.iter().map(ToString::to_string).collect(),
            ));
        }
        if !remove.is_empty() {
            mods.push(Mod::Delete(
                attr.to_string(),
                remove.iter().map(ToString::to_string).collect(),
            ));
        }
    }
    if !u.add_managers.is_empty() && !schema.has_attribute(manager_attr) {
        return Err(WriteError::Unsupported(format!(
            "group {}: this directory has no {manager_attr} attribute",
            entry.cn
        )));
    }
    Ok(mods)
}

/// A random (version 4) UUID, for `ipaUniqueID` where no server plugin makes one: 36
/// lowercase characters, `xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx`, as FreeIPA's UUID plugin
/// writes them.
pub fn random_uuid() -> String {
    uuid::Uuid::new_v4().hyphenated().to_string()
}

fn write_hint(rc: u32) -> &'static str {
    match rc {
        50 => "; the bind account may not write here: grant it write access (ACI) to group_base",
        65 => "; the directory's schema does not allow this entry (object classes or attributes)",
        19 => "; a server plugin refused the value (e.g. a uniqueness or UUID plugin)",
        21 => "; a value does not have the syntax the schema requires",
        53 => "; the server refuses writes (read-only replica, or a value only a plugin may set)",
        _ => "",
    }
}

fn text_of(res: &LdapResult) -> String {
    if res.text.trim().is_empty() {
        String::new()
    } else {
        format!(": {}", res.text.trim())
    }
}

impl LdapDirectory {
    fn write_error(&mut self, op: &str, e: LdapError) -> WriteError {
        match e {
            LdapError::LdapResult { result } => result_write_error(op, &result),
            e @ (LdapError::Timeout { .. }
            | LdapError::Io { .. }
            | LdapError::OpSend { .. }
            | LdapError::ResultRecv { .. }
            | LdapError::IdScrubSend { .. }
            | LdapError::MiscSend { .. }
            | LdapError::EndOfStream) => {
                // Mark the connection unusable, then say that the write may have landed.
                let _ = self.op_error(op, LdapError::EndOfStream);
                WriteError::OutcomeUnknown {
                    op: op.to_string(),
                    source: Box::new(e),
                }
            }
            e => WriteError::Directory(self.op_error(op, e)),
        }
    }

    fn refuse_insecure_writes(&self) -> Result<(), WriteError> {
        if self.config().insecure {
            return Err(WriteError::Unsupported(
                "directory writes need a verified TLS connection: set directory.ca_file \
                 instead of insecure = true"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The schema the server publishes (its subschema entry).
    pub async fn schema(&mut self) -> Result<Schema, DirectoryError> {
        let root = self
            .search(
                "",
                Scope::Base,
                "(objectClass=*)",
                &["subschemaSubentry".to_string()],
                false,
            )
            .await?;
        let base = match root.first().map(|e| e.first("subschemaSubentry")) {
            Some(r) => r?.unwrap_or_else(|| "cn=schema".to_string()),
            None => "cn=schema".to_string(),
        };
        let entries = self
            .search(
                &base,
                Scope::Base,
                "(objectClass=*)",
                &["objectClasses".to_string(), "attributeTypes".to_string()],
                false,
            )
            .await?;
        let Some(e) = entries.first() else {
            return Err(DirectoryError::Inconsistent(format!(
                "the schema ({base}) is not readable by the bind account"
            )));
        };
        let classes = e.strings("objectClasses")?;
        let attributes = e.strings("attributeTypes")?;
        if classes.is_empty() {
            return Err(DirectoryError::Inconsistent(format!(
                "the schema entry {base} lists no object classes (not readable by the bind \
                 account?)"
            )));
        }
        Ok(Schema::from_definitions(
            classes.iter().map(String::as_str),
            attributes.iter().map(String::as_str),
        ))
    }

    fn group_entry_attrs(&self) -> Vec<String> {
        let cfg = self.config();
        let mut attrs: Vec<String> = Vec::new();
        for a in [
            "objectClass",
            "cn",
            "description",
            "gidNumber",
            "memberUid",
            cfg.member_attr.as_str(),
            cfg.manager_attr.as_str(),
            cfg.group_id_attr.as_str(),
            "nsUniqueId",
            "entryUUID",
        ]
        .into_iter()
        .chain(FAS_GROUP_ATTRS)
        {
            if !attrs.iter().any(|x| x.eq_ignore_ascii_case(a)) {
                attrs.push(a.to_string());
            }
        }
        attrs
    }

    fn group_entry_from(&self, e: &Entry) -> Result<GroupEntry, DirectoryError> {
        let cfg = self.config();
        let cn = match e.first("cn")? {
            Some(cn) => cn,
            None => e.dn.rdn_value("cn").unwrap_or_default().to_string(),
        };
        let mut id = None;
        for a in [cfg.group_id_attr.as_str(), "nsUniqueId", "entryUUID"] {
            if let Some(v) = e.first(a)? {
                id = Some(v);
                break;
            }
        }
        Ok(GroupEntry {
            dn: e.dn.clone(),
            cn,
            id,
            description: e.first("description")?,
            object_classes: e
                .strings("objectClass")?
                .into_iter()
                .map(|c| c.to_ascii_lowercase())
                .collect(),
            gid_number: e.first("gidNumber")?,
            members: e.dns(&cfg.member_attr)?,
            managers: e.dns(&cfg.manager_attr)?,
            fas_attributes: FAS_GROUP_ATTRS
                .iter()
                .filter(|a| !e.values(a).is_empty())
                .map(|a| a.to_string())
                .collect(),
            has_member_uid: !e.values("memberUid").is_empty(),
        })
    }

    /// One group's stored settings, by name, anywhere under `group_base` (whether or not
    /// `group_filter` selects it); `None` when there is none.
    pub async fn group_entry(&mut self, cn: &str) -> Result<Option<GroupEntry>, DirectoryError> {
        let base = self.config().group_base();
        self.check_readable("group_base", &base).await?;
        let f = format!(
            "(&{}(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=group)))",
            filter::eq("cn", cn)
        );
        let attrs = self.group_entry_attrs();
        let entries = self
            .search(&base, Scope::Subtree, &f, &attrs, false)
            .await?;
        match entries.as_slice() {
            [] => Ok(None),
            [one] => self.group_entry_from(one).map(Some),
            many => Err(DirectoryError::Inconsistent(format!(
                "{} groups are named {cn:?} under {base}",
                many.len()
            ))),
        }
    }

    /// The stored settings of every group under `group_base` that `filter` selects.
    pub async fn group_entries(&mut self, filter: &str) -> Result<Vec<GroupEntry>, DirectoryError> {
        let base = self.config().group_base();
        self.check_readable("group_base", &base).await?;
        let attrs = self.group_entry_attrs();
        let entries = self
            .search(&base, Scope::Subtree, filter, &attrs, true)
            .await?;
        entries.iter().map(|e| self.group_entry_from(e)).collect()
    }

    /// Whether `group_filter` selects the group `cn` (that is, whether sync sees it).
    pub async fn selected_by_filter(&mut self, cn: &str) -> Result<bool, DirectoryError> {
        let base = self.config().group_base();
        let f = format!("(&{}{})", self.config().group_filter, filter::eq("cn", cn));
        let found = self
            .search(&base, Scope::Subtree, &f, &["1.1".to_string()], false)
            .await?;
        Ok(!found.is_empty())
    }

    /// A user by user id under `user_base`, with its DN; `None` when there is none.
    pub async fn find_user(&mut self, uid: &str) -> Result<Option<UserEntry>, DirectoryError> {
        let base = self.config().user_base();
        self.check_readable("user_base", &base).await?;
        let id_attr = self.config().user_id_attr.clone();
        let disabled_attr = self.config().disabled_attr.clone();
        let f = filter::eq(&id_attr, uid);
        let entries = self
            .search(
                &base,
                Scope::Subtree,
                &f,
                &[id_attr.clone(), disabled_attr.clone()],
                false,
            )
            .await?;
        match entries.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(UserEntry {
                dn: one.dn.clone(),
                uid: one
                    .strings(&id_attr)?
                    .into_iter()
                    .find(|v| v.eq_ignore_ascii_case(uid))
                    .unwrap_or_else(|| uid.to_string()),
                disabled: one
                    .first(&disabled_attr)?
                    .is_some_and(|v| v.trim().eq_ignore_ascii_case("true")),
            })),
            many => Err(DirectoryError::Inconsistent(format!(
                "{} users have {id_attr} {uid:?} under {base}",
                many.len()
            ))),
        }
    }

    /// The highest `gidNumber` of the groups under `group_base` (`None` when no group has
    /// one).
    pub async fn highest_gid(&mut self) -> Result<Option<u32>, DirectoryError> {
        let base = self.config().group_base();
        let entries = self
            .search(
                &base,
                Scope::Subtree,
                "(gidNumber=*)",
                &["gidNumber".to_string()],
                true,
            )
            .await?;
        let mut max = None;
        for e in &entries {
            for v in e.strings("gidNumber")? {
                if let Ok(n) = v.trim().parse::<u32>() {
                    max = max.max(Some(n));
                }
            }
        }
        Ok(max)
    }

    async fn gid_value(&mut self, fixed: Option<u32>, ids: IdSource) -> Result<String, WriteError> {
        Ok(match (fixed, ids) {
            (Some(g), _) => g.to_string(),
            (None, IdSource::Server) => DNA_MAGIC.to_string(),
            (None, IdSource::Client) => match self.highest_gid().await? {
                Some(n) => n
                    .checked_add(1)
                    .ok_or_else(|| {
                        WriteError::Unsupported("no free gidNumber above the highest one".into())
                    })?
                    .max(FIRST_GID)
                    .to_string(),
                None => FIRST_GID.to_string(),
            },
        })
    }

    /// Creates the group `cn=<cn>,<group_base>` in one add. Returns its DN.
    pub async fn add_group(
        &mut self,
        g: &NewGroup,
        schema: &Schema,
        ids: IdSource,
    ) -> Result<Dn, WriteError> {
        self.refuse_insecure_writes()?;
        let gid = if g.posix {
            Some(self.gid_value(g.gid, ids).await?)
        } else {
            None
        };
        let unique = match ids {
            IdSource::Server => IPA_UUID_MAGIC.to_string(),
            IdSource::Client => random_uuid(),
        };
        let manager_attr = self.config().manager_attr.clone();
        let attrs = new_group_attributes(g, schema, &manager_attr, &unique, gid.as_deref())?;
        let base = Dn::parse(&self.config().group_base())
            .map_err(|e| DirectoryError::Config(format!("group_base: {e}")))?;
        let dn = base.child("cn", &g.cn);
        let op = format!("add group {dn}");
        let timeout = self.config().timeout();
        let attrs: Vec<(String, HashSet<String>)> = attrs
            .into_iter()
            .map(|(a, vs)| (a, vs.into_iter().collect()))
            .collect();
        let res = self
            .handle()
            .with_timeout(timeout)
            .add(&dn.to_string(), attrs)
            .await;
        match res {
            Ok(r) if r.rc == 0 => Ok(dn),
            Ok(r) => Err(result_write_error(&op, &r)),
            Err(e) => Err(self.write_error(&op, e)),
        }
    }

    /// Applies `u` to the group in one modify (nothing when there is nothing to change).
    pub async fn modify_group(
        &mut self,
        entry: &GroupEntry,
        u: &GroupUpdate,
        schema: &Schema,
        ids: IdSource,
    ) -> Result<(), WriteError> {
        self.refuse_insecure_writes()?;
        let gid = if u.posix == Some(true) && !entry.is_posix() {
            Some(self.gid_value(u.gid, ids).await?)
        } else {
            None
        };
        let (member_attr, manager_attr) = (
            self.config().member_attr.clone(),
            self.config().manager_attr.clone(),
        );
        let mods = group_modifications(
            entry,
            u,
            schema,
            &member_attr,
            &manager_attr,
            gid.as_deref(),
        )?;
        if mods.is_empty() {
            return Ok(());
        }
        let op = format!("modify group {}", entry.dn);
        let timeout = self.config().timeout();
        let res = self
            .handle()
            .with_timeout(timeout)
            .modify(&entry.dn.to_string(), mods)
            .await;
        match res {
            Ok(r) if r.rc == 0 => Ok(()),
            Ok(r) => Err(result_write_error(&op, &r)),
            Err(e) => Err(self.write_error(&op, e)),
        }
    }
}

fn result_write_error(op: &str, res: &LdapResult) -> WriteError {
    match res.rc {
        // attributeOrValueExists, noSuchAttribute, entryAlreadyExists, noSuchObject: the
        // entry is not what was read a moment ago.
        16 | 20 | 32 | 68 => WriteError::Conflict {
            op: op.to_string(),
            detail: format!("{}{}", result_code_name(res.rc), text_of(res)),
        },
        rc => WriteError::Refused {
            op: op.to_string(),
            rc,
            reason: result_code_name(rc),
            detail: text_of(res),
            hint: write_hint(rc),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dn(s: &str) -> Dn {
        match Dn::parse(s) {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        }
    }

    const BASE: &str = "dc=rockylinux,dc=org";

    fn ipa_schema() -> Schema {
        Schema::from_definitions(
            [
                "( 2.5.6.9 NAME 'groupOfNames' SUP top STRUCTURAL MUST cn MAY ( member $ description ) )",
                "( 2.16.840.1.113730.3.8.4.3 NAME 'nestedGroup' SUP groupOfNames STRUCTURAL MAY ( memberOf ) )",
                "( 2.16.840.1.113730.3.8.4.4 NAME 'ipaUserGroup' SUP nestedGroup STRUCTURAL MAY ( memberManager ) )",
                "( 2.16.840.1.113730.3.8.4.12 NAME 'ipaObject' AUXILIARY MUST ( ipaUniqueID ) )",
                "( 1.3.6.1.4.1.30401.1.2.2 NAME 'fasGroup' SUP ipaUserGroup AUXILIARY )",
                "( 1.3.6.1.1.1.2.2 NAME 'posixGroup' SUP top AUXILIARY MUST gidNumber )",
            ],
            [
                "( 2.16.840.1.113730.3.8.3.1 NAME 'ipaUniqueID' SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )",
                "( 2.16.840.1.113730.3.8.23.1 NAME 'memberManager' SUP distinguishedName )",
                "( 2.5.4.13 NAME 'description' )",
            ],
        )
    }

    fn plain_schema() -> Schema {
        Schema::from_definitions(
            [
                "( 2.5.6.9 NAME 'groupOfNames' SUP top STRUCTURAL MUST ( member $ cn ) )",
                "( 1.3.6.1.1.1.2.2 NAME 'posixGroup' SUP top STRUCTURAL MUST ( cn $ gidNumber ) )",
            ],
            ["( 2.5.4.3 NAME ( 'cn' 'commonName' ) SUP name )"],
        )
    }

    fn new_group(fas: bool, posix: bool, managers: &[&str]) -> NewGroup {
        NewGroup {
            cn: "mm_rl_infra".into(),
            description: "Rocky Linux infrastructure team".into(),
            fas,
            posix,
            gid: None,
            managers: managers.iter().map(|m| dn(m)).collect(),
        }
    }

    fn attr<'a>(attrs: &'a [(String, Vec<String>)], name: &str) -> Option<&'a Vec<String>> {
        attrs.iter().find(|(a, _)| a == name).map(|(_, v)| v)
    }

    #[test]
    fn schema_names_are_read_with_aliases_and_without_case() {
        let s = plain_schema();
        assert!(s.has_class("groupofnames") && s.has_class("POSIXGROUP"));
        assert!(s.has_attribute("commonName") && s.has_attribute("cn"));
        assert!(!s.has_class("fasGroup") && !s.is_freeipa());
        assert!(ipa_schema().is_freeipa());
    }

    #[test]
    fn a_freeipa_fas_group_gets_the_ipa_classes_an_id_no_gid_and_its_managers() {
        let neil = format!("uid=neil,cn=users,cn=accounts,{BASE}");
        let attrs = new_group_attributes(
            &new_group(true, false, &[&neil]),
            &ipa_schema(),
            "memberManager",
            "autogenerate",
            None,
        )
        .expect("ok");
        assert_eq!(
            attr(&attrs, "objectClass").expect("classes"),
            &[
                "top",
                "groupOfNames",
                "nestedGroup",
                "ipaUserGroup",
                "ipaObject",
                "fasGroup"
            ]
        );
        assert_eq!(attr(&attrs, "ipaUniqueID").expect("id"), &["autogenerate"]);
        assert_eq!(attr(&attrs, "memberManager").expect("managers"), &[neil]);
        assert!(attr(&attrs, "gidNumber").is_none());
        assert_eq!(
            attr(&attrs, "description").expect("description"),
            &["Rocky Linux infrastructure team"]
        );
    }

    #[test]
    fn a_posix_group_gets_posix_group_and_the_gid() {
        let attrs = new_group_attributes(
            &new_group(false, true, &[]),
            &ipa_schema(),
            "memberManager",
            "u",
            Some("-1"),
        )
        .expect("ok");
        let classes = attr(&attrs, "objectClass").expect("classes");
        assert!(classes.contains(&"posixGroup".to_string()));
        assert!(!classes.contains(&"fasGroup".to_string()));
        assert_eq!(attr(&attrs, "gidNumber").expect("gid"), &["-1"]);
    }

    #[test]
    fn a_plain_directory_gets_group_of_names_only_and_clear_refusals() {
        let attrs = new_group_attributes(
            &new_group(false, false, &[]),
            &plain_schema(),
            "memberManager",
            "unused",
            None,
        )
        .expect("ok");
        assert_eq!(
            attr(&attrs, "objectClass").expect("classes"),
            &["top", "groupOfNames"]
        );
        assert!(attr(&attrs, "ipaUniqueID").is_none());
        let e = new_group_attributes(
            &new_group(true, false, &[]),
            &plain_schema(),
            "memberManager",
            "u",
            None,
        )
        .expect_err("no fasGroup");
        assert!(e.to_string().contains("pass --no-fas"), "{e}");
        let e = new_group_attributes(
            &new_group(false, false, &["uid=neil,dc=x"]),
            &plain_schema(),
            "memberManager",
            "u",
            None,
        )
        .expect_err("no memberManager");
        assert!(
            e.to_string().contains("no memberManager attribute")
                && e.to_string().contains("nothing was changed"),
            "{e}"
        );
    }

    fn entry(classes: &[&str], gid: Option<&str>, managers: &[&str]) -> GroupEntry {
        GroupEntry {
            dn: dn(&format!("cn=mm_rl_infra,cn=groups,cn=accounts,{BASE}")),
            cn: "mm_rl_infra".into(),
            id: Some("x".into()),
            description: Some("old".into()),
            object_classes: classes.iter().map(|c| c.to_ascii_lowercase()).collect(),
            gid_number: gid.map(str::to_string),
            members: Vec::new(),
            managers: managers.iter().map(|m| dn(m)).collect(),
            fas_attributes: Vec::new(),
            has_member_uid: false,
        }
    }

    fn render(mods: &[Mod<String>]) -> Vec<String> {
        mods.iter()
            .map(|m| {
                let (op, a, vs) = match m {
                    Mod::Add(a, v) => ("add", a, v),
                    Mod::Delete(a, v) => ("delete", a, v),
                    Mod::Replace(a, v) => ("replace", a, v),
                    Mod::Increment(a, _) => ("increment", a, &HashSet::new()),
                };
                let mut vs: Vec<&String> = vs.iter().collect();
                vs.sort();
                format!(
                    "{op} {a}: {}",
                    vs.into_iter().cloned().collect::<Vec<_>>().join(" | ")
                )
            })
            .collect()
    }

    #[test]
    fn an_update_is_one_list_of_modifications() {
        let mut e = entry(
            &[
                "top",
                "groupOfNames",
                "ipaUserGroup",
                "fasGroup",
                "posixGroup",
            ],
            Some("1000"),
            &["uid=alice,dc=x"],
        );
        e.fas_attributes = vec!["fasURL".into()];
        e.has_member_uid = true;
        let u = GroupUpdate {
            description: Some("new".into()),
            fas: Some(false),
            posix: Some(false),
            add_managers: vec![dn("uid=neil,dc=x")],
            remove_managers: vec![dn("uid=alice,dc=x")],
            ..GroupUpdate::default()
        };
        let mods = group_modifications(&e, &u, &ipa_schema(), "member", "memberManager", None)
            .expect("ok");
        assert_eq!(
            render(&mods),
            [
                "replace description: new",
                "delete objectClass: fasGroup",
                "delete fasURL: ",
                "delete objectClass: posixGroup",
                "delete gidNumber: ",
                "delete memberUid: ",
                "add memberManager: uid=neil,dc=x",
                "delete memberManager: uid=alice,dc=x",
            ]
        );
    }

    #[test]
    fn turning_on_fas_and_posix_adds_classes_and_the_gid_and_already_so_adds_nothing() {
        let e = entry(&["top", "groupOfNames", "ipaUserGroup"], None, &[]);
        let u = GroupUpdate {
            fas: Some(true),
            posix: Some(true),
            ..GroupUpdate::default()
        };
        let mods = group_modifications(
            &e,
            &u,
            &ipa_schema(),
            "member",
            "memberManager",
            Some("10001"),
        )
        .expect("ok");
        assert_eq!(
            render(&mods),
            [
                "add objectClass: fasGroup",
                "add objectClass: posixGroup",
                "add gidNumber: 10001"
            ]
        );
        let done = entry(&["fasGroup", "posixGroup"], Some("1"), &[]);
        let mods = group_modifications(&done, &u, &ipa_schema(), "member", "memberManager", None)
            .expect("ok");
        assert!(mods.is_empty(), "{:?}", render(&mods));
    }

    #[test]
    fn random_uuids_are_version_4_and_differ() {
        let a = random_uuid();
        let b = random_uuid();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(a.as_bytes()[14], b'4');
        assert!(matches!(a.as_bytes()[19], b'8' | b'9' | b'a' | b'b'));
        for (i, c) in a.bytes().enumerate() {
            if [8, 13, 18, 23].contains(&i) {
                assert_eq!(c, b'-', "{a}");
            } else {
                assert!(matches!(c, b'0'..=b'9' | b'a'..=b'f'), "{a}");
            }
        }
    }
}
