//! The group commands mattersync uses, typed.

use crate::client::IpaClient;
use crate::error::IpaError;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// `group_add` options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupAdd {
    pub description: String,
    /// No GID (the SOP's intent for chat groups).
    pub nonposix: bool,
    /// A fixed GID for a POSIX group; `None` lets FreeIPA assign one.
    pub gidnumber: Option<u32>,
}

/// `group_mod` options; `None`/`false` leaves a setting alone.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupMod {
    pub description: Option<String>,
    /// Make it a FAS group (freeipa-fas; there is no way back through the API).
    pub fasgroup: bool,
    /// Make a non-POSIX group POSIX (there is no way back through the API).
    pub posix: bool,
    pub gidnumber: Option<u32>,
}

impl GroupMod {
    /// `group_mod --fasgroup`, what the SOP's playbook runs when `ipa_fas` is set.
    pub fn fasgroup() -> GroupMod {
        GroupMod {
            fasgroup: true,
            ..GroupMod::default()
        }
    }
}

/// What a `group_mod` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Modified {
    Changed,
    /// FreeIPA answered `EmptyModlist` (4202): it was so already (e.g. "already a FAS
    /// group" from older freeipa-fas on a re-run). Success, not an error.
    Unchanged,
}

/// Users or groups, as member calls name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberKind {
    User,
    Group,
}

impl std::fmt::Display for MemberKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MemberKind::User => "user",
            MemberKind::Group => "group",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct MemberRef {
    pub kind: MemberKind,
    pub name: String,
}

/// One member FreeIPA did not add or remove, with its reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberFailure {
    pub kind: MemberKind,
    pub name: String,
    pub reason: String,
}

impl std::fmt::Display for MemberFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.kind, self.name, self.reason)
    }
}

/// What a member call (`group_add_member`, `group_add_member_manager`, …) did. FreeIPA
/// answers these with `{completed, failed, result}`: a member that could not be added is in
/// `failed` while the call itself "succeeds".
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct MemberOutcome {
    /// How many members the server changed.
    pub completed: u64,
    /// Asked for, and already so: "This entry is already a member" on an add, "This entry
    /// is not a member" on a remove. Success on a re-run.
    pub unchanged: Vec<MemberRef>,
    /// Every other per-member failure (no such entry, no permission, a missing user
    /// agreement, …): errors to report.
    pub failed: Vec<MemberFailure>,
}

/// A group as `group_show` returns it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct IpaGroup {
    pub cn: String,
    pub description: Option<String>,
    pub gidnumber: Option<String>,
    pub fasgroup: bool,
    pub posix: bool,
    pub member_users: BTreeSet<String>,
    pub member_groups: BTreeSet<String>,
    pub manager_users: BTreeSet<String>,
    pub manager_groups: BTreeSet<String>,
}

/// The messages FreeIPA puts in `failed` for a member that is already as asked
/// (`ipalib/errors.py`: `AlreadyGroupMember` 4014, `NotGroupMember` 4012).
const ALREADY_A_MEMBER: &str = "This entry is already a member";
const NOT_A_MEMBER: &str = "This entry is not a member";

fn options(pairs: impl IntoIterator<Item = (&'static str, Value)>) -> Map<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

fn names(v: &[String]) -> Value {
    Value::Array(v.iter().cloned().map(Value::String).collect())
}

/// The first string of an LDAP-style attribute value (`["x"]` or `"x"`).
fn first_str(entry: &Value, key: &str) -> Option<String> {
    match entry.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Array(a) => a.first().and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

fn str_set(entry: &Value, key: &str) -> BTreeSet<String> {
    match entry.get(key) {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        Some(Value::String(s)) => [s.clone()].into(),
        _ => BTreeSet::new(),
    }
}

/// Reads `{completed, failed: {<attr>: {user: [[name, reason], …], group: […]}}}`.
pub(crate) fn member_outcome(
    method: &str,
    result: &Value,
    attr: &str,
    benign: &str,
) -> Result<MemberOutcome, IpaError> {
    let decode = |detail: String| IpaError::Decode {
        method: method.to_string(),
        detail,
    };
    let completed = result
        .get("completed")
        .and_then(Value::as_u64)
        .ok_or_else(|| decode("no completed count".into()))?;
    let mut out = MemberOutcome {
        completed,
        ..MemberOutcome::default()
    };
    let failed = match result.get("failed") {
        None | Some(Value::Null) => return Ok(out),
        Some(f) => f,
    };
    let by_kind = match failed.get(attr) {
        None | Some(Value::Null) => return Ok(out),
        Some(Value::Object(m)) => m,
        Some(other) => return Err(decode(format!("failed.{attr} is not an object: {other}"))),
    };
    for (kind_name, entries) in by_kind {
        let kind = match kind_name.as_str() {
            "user" => MemberKind::User,
            "group" => MemberKind::Group,
            // service, idoverrideuser, ipaexternalmember: mattersync never sends these, so
            // a failure there is a server surprise worth failing loudly on.
            other => {
                if entries.as_array().is_some_and(|a| a.is_empty()) {
                    continue;
                }
                return Err(decode(format!(
                    "failures for {other:?}, which were not asked for"
                )));
            }
        };
        let Some(list) = entries.as_array() else {
            return Err(decode(format!("failed.{attr}.{kind_name} is not a list")));
        };
        for item in list {
            // `[name, reason]` (FreeIPA serializes its (pkey, error) tuples as lists); a bare
            // name is taken as a failure without a reason.
            let (name, reason) = match item {
                Value::Array(pair) => (
                    pair.first()
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    pair.get(1)
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                ),
                Value::String(s) => (s.clone(), String::new()),
                other => return Err(decode(format!("malformed failure entry {other}"))),
            };
            if reason == benign {
                out.unchanged.push(MemberRef { kind, name });
            } else {
                out.failed.push(MemberFailure {
                    kind,
                    name,
                    reason: if reason.is_empty() {
                        "failed (no reason given)".to_string()
                    } else {
                        reason
                    },
                });
            }
        }
    }
    Ok(out)
}

impl IpaClient {
    /// `group_add`: creates the group. An existing group is [`IpaError::Api`] with
    /// `DuplicateEntry` (4002, [`IpaError::is_duplicate`]).
    pub async fn group_add(&self, cn: &str, add: &GroupAdd) -> Result<(), IpaError> {
        let mut opts = options([("description", Value::String(add.description.clone()))]);
        if add.nonposix {
            opts.insert("nonposix".into(), Value::Bool(true));
        }
        if let Some(gid) = add.gidnumber {
            opts.insert("gidnumber".into(), Value::from(gid));
        }
        self.call("group_add", vec![Value::String(cn.to_string())], opts)
            .await
            .map(|_| ())
    }

    /// `group_mod`. `EmptyModlist` (4202) is [`Modified::Unchanged`], not an error.
    pub async fn group_mod(&self, cn: &str, m: &GroupMod) -> Result<Modified, IpaError> {
        let mut opts = Map::new();
        if let Some(d) = &m.description {
            opts.insert("description".into(), Value::String(d.clone()));
        }
        if m.fasgroup {
            opts.insert("fasgroup".into(), Value::Bool(true));
        }
        if m.posix {
            opts.insert("posix".into(), Value::Bool(true));
        }
        if let Some(gid) = m.gidnumber {
            opts.insert("gidnumber".into(), Value::from(gid));
        }
        match self
            .call("group_mod", vec![Value::String(cn.to_string())], opts)
            .await
        {
            Ok(_) => Ok(Modified::Changed),
            Err(e) if e.is_empty_modlist() => Ok(Modified::Unchanged),
            Err(e) => Err(e),
        }
    }

    /// `group_show`; `None` when FreeIPA answers `NotFound` (4001).
    pub async fn group_show(&self, cn: &str) -> Result<Option<IpaGroup>, IpaError> {
        let r = match self
            .call(
                "group_show",
                vec![Value::String(cn.to_string())],
                Map::new(),
            )
            .await
        {
            Ok(r) => r,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        let entry = r.get("result").ok_or_else(|| IpaError::Decode {
            method: "group_show".into(),
            detail: "no result entry".into(),
        })?;
        let classes: BTreeSet<String> = str_set(entry, "objectclass")
            .into_iter()
            .map(|c| c.to_ascii_lowercase())
            .collect();
        let gidnumber = first_str(entry, "gidnumber");
        Ok(Some(IpaGroup {
            cn: first_str(entry, "cn").unwrap_or_else(|| cn.to_string()),
            description: first_str(entry, "description"),
            fasgroup: entry
                .get("fasgroup")
                .and_then(Value::as_bool)
                .unwrap_or(false)
                || classes.contains("fasgroup"),
            posix: gidnumber.is_some() || classes.contains("posixgroup"),
            gidnumber,
            member_users: str_set(entry, "member_user"),
            member_groups: str_set(entry, "member_group"),
            manager_users: str_set(entry, "membermanager_user"),
            manager_groups: str_set(entry, "membermanager_group"),
        }))
    }

    async fn member_call(
        &self,
        method: &str,
        cn: &str,
        users: &[String],
        groups: &[String],
        attr: &str,
        benign: &str,
    ) -> Result<MemberOutcome, IpaError> {
        let mut opts = Map::new();
        if !users.is_empty() {
            opts.insert("user".into(), names(users));
        }
        if !groups.is_empty() {
            opts.insert("group".into(), names(groups));
        }
        let r = self
            .call(method, vec![Value::String(cn.to_string())], opts)
            .await?;
        member_outcome(method, &r, attr, benign)
    }

    /// `group_add_member_manager`: users and groups that may manage the members.
    pub async fn group_add_member_manager(
        &self,
        cn: &str,
        users: &[String],
        groups: &[String],
    ) -> Result<MemberOutcome, IpaError> {
        self.member_call(
            "group_add_member_manager",
            cn,
            users,
            groups,
            "membermanager",
            ALREADY_A_MEMBER,
        )
        .await
    }

    /// `group_remove_member_manager`.
    pub async fn group_remove_member_manager(
        &self,
        cn: &str,
        users: &[String],
        groups: &[String],
    ) -> Result<MemberOutcome, IpaError> {
        self.member_call(
            "group_remove_member_manager",
            cn,
            users,
            groups,
            "membermanager",
            NOT_A_MEMBER,
        )
        .await
    }

    /// `group_add_member`: users and nested groups.
    pub async fn group_add_member(
        &self,
        cn: &str,
        users: &[String],
        groups: &[String],
    ) -> Result<MemberOutcome, IpaError> {
        self.member_call(
            "group_add_member",
            cn,
            users,
            groups,
            "member",
            ALREADY_A_MEMBER,
        )
        .await
    }

    /// `group_remove_member`. With freeipa-fas, a removed user also stops being a member
    /// manager of the group.
    pub async fn group_remove_member(
        &self,
        cn: &str,
        users: &[String],
        groups: &[String],
    ) -> Result<MemberOutcome, IpaError> {
        self.member_call(
            "group_remove_member",
            cn,
            users,
            groups,
            "member",
            NOT_A_MEMBER,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn member_failures_are_split_into_already_so_and_real_failures() {
        let r = json!({
            "completed": 1,
            "failed": {"member": {
                "user": [["alice", "This entry is already a member"], ["neil2", "no matching entry found"]],
                "group": [],
                "service": []
            }},
            "result": {"cn": ["mm_rl_infra"]}
        });
        let out = member_outcome("group_add_member", &r, "member", ALREADY_A_MEMBER).expect("ok");
        assert_eq!(out.completed, 1);
        assert_eq!(
            out.unchanged,
            vec![MemberRef {
                kind: MemberKind::User,
                name: "alice".into()
            }]
        );
        assert_eq!(out.failed.len(), 1);
        assert_eq!(
            out.failed[0].to_string(),
            "user neil2: no matching entry found"
        );
    }

    #[test]
    fn on_a_remove_already_a_member_is_a_failure_and_not_a_member_is_not() {
        let r = json!({"completed": 0, "failed": {"membermanager": {"user": [
            ["bob", "This entry is not a member"], ["carol", "This entry is already a member"]
        ], "group": []}}});
        let out = member_outcome(
            "group_remove_member_manager",
            &r,
            "membermanager",
            NOT_A_MEMBER,
        )
        .expect("ok");
        assert_eq!(out.unchanged.len(), 1);
        assert_eq!(out.unchanged[0].name, "bob");
        assert_eq!(out.failed.len(), 1);
        assert_eq!(out.failed[0].name, "carol");
    }

    #[test]
    fn malformed_member_answers_are_errors_not_successes() {
        for bad in [
            json!({"failed": {}}),
            json!({"completed": 0, "failed": {"member": []}}),
            json!({"completed": 0, "failed": {"member": {"user": "x"}}}),
            json!({"completed": 0, "failed": {"member": {"service": [["s", "why"]]}}}),
        ] {
            assert!(
                member_outcome("m", &bad, "member", ALREADY_A_MEMBER).is_err(),
                "{bad}"
            );
        }
    }
}
