//! Group writes through FreeIPA's JSON-RPC API: a create or an update is a short list of
//! calls, made in order and stopped at the first failure, with an account of what was done.

use anyhow::{bail, Result};
use mattersync_core::group_spec::{Change, Kind, Spec};
use mattersync_freeipa::{GroupAdd, GroupMod, IpaClient, IpaError, MemberOutcome, Modified};
use serde::Serialize;
use serde_json::json;

/// One JSON-RPC call of a create or an update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Add(GroupAdd),
    Mod {
        what: String,
        m: GroupMod,
    },
    AddManagers {
        users: Vec<String>,
        groups: Vec<String>,
    },
    RemoveManagers {
        users: Vec<String>,
        groups: Vec<String>,
    },
}

fn who(users: &[String], groups: &[String]) -> String {
    users
        .iter()
        .cloned()
        .chain(groups.iter().map(|g| format!("group {g}")))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Step {
    pub fn describe(&self) -> String {
        match self {
            Step::Add(a) => format!(
                "create the group (group_add, {})",
                if a.nonposix { "non-POSIX" } else { "POSIX" }
            ),
            Step::Mod { what, .. } => format!("{what} (group_mod)"),
            Step::AddManagers { users, groups } => format!(
                "add managers {} (group_add_member_manager)",
                who(users, groups)
            ),
            Step::RemoveManagers { users, groups } => format!(
                "remove managers {} (group_remove_member_manager)",
                who(users, groups)
            ),
        }
    }
}

/// The calls that create `spec`: the SOP's playbook in order.
pub fn create_steps(spec: &Spec) -> Vec<Step> {
    let mut steps = vec![Step::Add(GroupAdd {
        description: spec.description.clone(),
        nonposix: !spec.posix,
        gidnumber: spec.gid,
    })];
    if spec.fas {
        steps.push(Step::Mod {
            what: "make it a FAS group".into(),
            m: GroupMod::fasgroup(),
        });
    }
    if !spec.manager_users.is_empty() || !spec.manager_groups.is_empty() {
        steps.push(Step::AddManagers {
            users: spec.manager_users.iter().cloned().collect(),
            groups: spec.manager_groups.iter().cloned().collect(),
        });
    }
    steps
}

/// The calls that make `changes`; what FreeIPA's API cannot do is refused before any call.
pub fn update_steps(spec: &Spec, changes: &[Change]) -> Result<Vec<Step>> {
    let mut settings = GroupMod::default();
    let mut fas = false;
    let (mut add_u, mut add_g, mut rm_u, mut rm_g) = (vec![], vec![], vec![], vec![]);
    for c in changes {
        match c {
            Change::Description { to, .. } => settings.description = Some(to.clone()),
            Change::Posix { to: true } => {
                settings.posix = true;
                settings.gidnumber = spec.gid;
            }
            Change::Gid { to, .. } => settings.gidnumber = Some(*to),
            Change::Fas { to: true } => fas = true,
            Change::Fas { to: false } => bail!(
                "group {}: FreeIPA's API cannot take the FAS flag off a group (freeipa-fas has no \
                 way back); nothing was changed",
                spec.cn
            ),
            Change::Posix { to: false } => bail!(
                "group {}: FreeIPA cannot turn a POSIX group into a non-POSIX one; nothing was \
                 changed",
                spec.cn
            ),
            Change::AddManager {
                kind: Kind::User,
                name,
            } => add_u.push(name.clone()),
            Change::AddManager {
                kind: Kind::Group,
                name,
            } => add_g.push(name.clone()),
            Change::RemoveManager {
                kind: Kind::User,
                name,
            } => rm_u.push(name.clone()),
            Change::RemoveManager {
                kind: Kind::Group,
                name,
            } => rm_g.push(name.clone()),
            Change::AddManager { name, .. } | Change::RemoveManager { name, .. } => bail!(
                "group {}: manager entry {name} is neither a user nor a group, so FreeIPA's API \
                 cannot change it; nothing was changed",
                spec.cn
            ),
        }
    }
    let mut steps = Vec::new();
    if settings != GroupMod::default() {
        steps.push(Step::Mod {
            what: "change description/POSIX/GID".into(),
            m: settings,
        });
    }
    if fas {
        steps.push(Step::Mod {
            what: "make it a FAS group".into(),
            m: GroupMod::fasgroup(),
        });
    }
    if !add_u.is_empty() || !add_g.is_empty() {
        steps.push(Step::AddManagers {
            users: add_u,
            groups: add_g,
        });
    }
    if !rm_u.is_empty() || !rm_g.is_empty() {
        steps.push(Step::RemoveManagers {
            users: rm_u,
            groups: rm_g,
        });
    }
    Ok(steps)
}

/// The step that failed.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub step: String,
    pub error: String,
    /// The call may have been carried out although no answer came.
    pub outcome_unknown: bool,
}

/// What a list of calls did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome {
    pub done: Vec<String>,
    pub failed: Option<Failure>,
    pub not_done: Vec<String>,
}

impl Outcome {
    pub fn maybe_done(&self) -> bool {
        self.failed.as_ref().is_some_and(|f| f.outcome_unknown)
    }
}

fn member_result(out: MemberOutcome) -> Result<String, (String, bool)> {
    if out.failed.is_empty() {
        Ok(if out.completed == 0 && !out.unchanged.is_empty() {
            "already so".into()
        } else {
            String::new()
        })
    } else {
        let list: Vec<String> = out.failed.iter().map(ToString::to_string).collect();
        Err((
            format!(
                "{} per-member failure(s): {}{}",
                out.failed.len(),
                list.join("; "),
                if out.completed > 0 {
                    format!(" ({} done)", out.completed)
                } else {
                    String::new()
                }
            ),
            false,
        ))
    }
}

/// The FreeIPA writer.
pub struct Ipa {
    client: IpaClient,
}

impl Ipa {
    pub fn new(client: IpaClient) -> Ipa {
        Ipa { client }
    }

    async fn step(&self, cn: &str, s: &Step) -> Result<String, (String, bool)> {
        let err = |e: IpaError| (e.to_string(), e.outcome_unknown());
        match s {
            Step::Add(a) => self
                .client
                .group_add(cn, a)
                .await
                .map(|_| String::new())
                .map_err(err),
            Step::Mod { m, .. } => match self.client.group_mod(cn, m).await.map_err(err)? {
                Modified::Changed => Ok(String::new()),
                Modified::Unchanged => Ok("already so".into()),
            },
            Step::AddManagers { users, groups } => member_result(
                self.client
                    .group_add_member_manager(cn, users, groups)
                    .await
                    .map_err(err)?,
            ),
            Step::RemoveManagers { users, groups } => member_result(
                self.client
                    .group_remove_member_manager(cn, users, groups)
                    .await
                    .map_err(err)?,
            ),
        }
    }

    /// Makes the calls in order; stops at the first that fails.
    pub async fn run(&self, cn: &str, steps: Vec<Step>) -> Outcome {
        let mut out = Outcome::default();
        let mut rest = steps.into_iter();
        for s in rest.by_ref() {
            match self.step(cn, &s).await {
                Ok(note) if note.is_empty() => out.done.push(s.describe()),
                Ok(note) => out.done.push(format!("{} ({note})", s.describe())),
                Err((error, outcome_unknown)) => {
                    out.failed = Some(Failure {
                        step: s.describe(),
                        error,
                        outcome_unknown,
                    });
                    break;
                }
            }
        }
        out.not_done = rest.map(|s| s.describe()).collect();
        out
    }

    /// `group_add_member`/`group_remove_member` or the member-manager pair.
    pub async fn members(
        &self,
        add: bool,
        managers: bool,
        cn: &str,
        users: &[String],
        groups: &[String],
    ) -> Result<MemberOutcome, IpaError> {
        match (add, managers) {
            (true, false) => self.client.group_add_member(cn, users, groups).await,
            (false, false) => self.client.group_remove_member(cn, users, groups).await,
            (true, true) => {
                self.client
                    .group_add_member_manager(cn, users, groups)
                    .await
            }
            (false, true) => {
                self.client
                    .group_remove_member_manager(cn, users, groups)
                    .await
            }
        }
    }
}

/// Says what a failed list of calls left behind. `None`: nothing failed. An error: nothing
/// was done (or it is unknown whether the first call was). Otherwise prints the account and
/// returns the exit code for a partial result.
pub fn report_failure(
    json: bool,
    cn: &str,
    outcome: &Outcome,
    creating: bool,
) -> Result<Option<u8>> {
    let Some(f) = &outcome.failed else {
        return Ok(None);
    };
    let again = if creating {
        "run the same command again to complete it"
    } else {
        "run the same command (with --update) again to finish"
    };
    if outcome.done.is_empty() {
        if f.outcome_unknown {
            bail!(
                "group {cn}: {} failed: {}; it may or may not have been done: {again}",
                f.step,
                f.error
            );
        }
        bail!(
            "group {cn}: {} failed: {}; nothing was changed",
            f.step,
            f.error
        );
    }
    let state = if creating {
        format!("the group {cn} exists but is incomplete")
    } else {
        format!("the group {cn} is partly updated")
    };
    if json {
        crate::report::data(
            "group",
            json!({
                "changed": true,
                "result": "incomplete",
                "group": cn,
                "backend": "freeipa",
                "done": outcome.done,
                "failed": f,
                "not_done": outcome.not_done,
            }),
        );
    } else {
        for d in &outcome.done {
            println!("done:     {d}");
        }
        println!("FAILED:   {}: {}", f.step, f.error);
        for d in &outcome.not_done {
            println!("not done: {d}");
        }
    }
    eprintln!(
        "error: {state}: {} failed{}; {again}",
        f.step,
        if f.outcome_unknown {
            " (and may or may not have been done)"
        } else {
            ""
        }
    );
    Ok(Some(crate::exit::PARTIAL))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn spec() -> Spec {
        Spec {
            cn: "mm_rl_infra".into(),
            description: "Infra".into(),
            fas: true,
            posix: false,
            gid: None,
            manager_users: ["neil".to_string()].into(),
            manager_groups: ["leads".to_string()].into(),
        }
    }

    #[test]
    fn a_create_is_the_sops_playbook_in_order() {
        let steps: Vec<String> = create_steps(&spec()).iter().map(Step::describe).collect();
        assert_eq!(
            steps,
            [
                "create the group (group_add, non-POSIX)",
                "make it a FAS group (group_mod)",
                "add managers neil, group leads (group_add_member_manager)"
            ]
        );
        let mut bare = spec();
        bare.fas = false;
        bare.manager_users = BTreeSet::new();
        bare.manager_groups = BTreeSet::new();
        assert_eq!(create_steps(&bare).len(), 1);
    }

    #[test]
    fn what_freeipa_cannot_undo_is_refused_before_any_call() {
        for c in [
            Change::Fas { to: false },
            Change::Posix { to: false },
            Change::RemoveManager {
                kind: Kind::Other,
                name: "cn=x,dc=y".into(),
            },
        ] {
            let e = update_steps(&spec(), std::slice::from_ref(&c)).expect_err("refused");
            assert!(e.to_string().contains("nothing was changed"), "{c}: {e}");
        }
    }

    #[test]
    fn an_update_batches_settings_into_one_group_mod() {
        let steps = update_steps(
            &spec(),
            &[
                Change::Description {
                    from: None,
                    to: "New".into(),
                },
                Change::Fas { to: true },
                Change::RemoveManager {
                    kind: Kind::User,
                    name: "alice".into(),
                },
            ],
        )
        .expect("ok");
        assert_eq!(steps.len(), 3);
        assert_eq!(
            steps[0],
            Step::Mod {
                what: "change description/POSIX/GID".into(),
                m: GroupMod {
                    description: Some("New".into()),
                    ..GroupMod::default()
                }
            }
        );
        assert_eq!(
            steps[2],
            Step::RemoveManagers {
                users: vec!["alice".into()],
                groups: vec![]
            }
        );
    }
}
