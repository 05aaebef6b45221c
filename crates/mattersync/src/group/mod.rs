//! `mattersync group …`: create and manage directory groups the way the SOP says — named by
//! the template, with a description, non-POSIX, flagged FAS, with group managers — through
//! FreeIPA's JSON-RPC API (`[directory.freeipa]` with `kind = "freeipa"`) or plain LDAP.
//!
//! Reads always go over LDAP. Everything is validated before the first write; a request that
//! is already so changes nothing ("unchanged"); an existing group with other settings is
//! shown and changed only with `--update`.
//!
//! All-or-nothing: over LDAP every change is one add or one modify, so it lands whole or not
//! at all. FreeIPA's API needs several calls; before the first one the request is noted in
//! the ledger, so if a later call fails the same command run again completes the group
//! (without `--update`), and the error says exactly which steps were done.

mod ipa;
mod show;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use mattersync_core::group_spec::{decide, diff, Change, Decision, Kind, Settings, Spec};
use mattersync_directory::{
    Dn, GroupEntry, GroupUpdate, IdSource, LdapDirectory, NewGroup, WriteError,
};
use mattersync_engine as engine;
use mattersync_engine::config::{self, Config, DirectoryKind};
use mattersync_freeipa::{IpaClient, IpaConfig};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

/// Exit codes of `group` commands beyond the common ones (documented in the README).
pub mod exit {
    /// `group create`: the group exists with other settings; nothing was changed (re-run
    /// with `--update` to change them).
    pub const DRIFT: u8 = 7;
}

#[derive(Subcommand)]
pub enum GroupCommand {
    /// Create a group the way the SOP says: description, non-POSIX, FAS, managers.
    Create(CreateArgs),
    /// A group's settings, members (nested too), managers and the channels it is linked to.
    Show {
        /// The group, e.g. mm_rl_infra.
        group: String,
    },
    /// Every group whose name fits the naming template, with flags and counts.
    List,
    /// Add users (and nested groups) to a group.
    AddMember(MemberArgs),
    /// Remove users (and nested groups) from a group.
    RemoveMember(MemberArgs),
    /// Let users (and members of groups) manage a group's members.
    AddManager(MemberArgs),
    /// Take that right away again.
    RemoveManager(MemberArgs),
}

impl GroupCommand {
    /// The name in the JSON envelope (`command`).
    pub fn name(&self) -> &'static str {
        match self {
            GroupCommand::Create(_) => "group create",
            GroupCommand::Show { .. } => "group show",
            GroupCommand::List => "group list",
            GroupCommand::AddMember(_) => "group add-member",
            GroupCommand::RemoveMember(_) => "group remove-member",
            GroupCommand::AddManager(_) => "group add-manager",
            GroupCommand::RemoveManager(_) => "group remove-manager",
        }
    }
}

#[derive(Args)]
pub struct CreateArgs {
    /// mm_<area>_<name>, with an area from [areas].
    pub name: String,
    /// What the group is for.
    #[arg(long)]
    pub description: String,
    /// A user who may manage the members (repeatable).
    #[arg(long = "manager", value_name = "USER")]
    pub managers: Vec<String>,
    /// A group whose members may manage the members (repeatable).
    #[arg(long = "manager-group", value_name = "GROUP")]
    pub manager_groups: Vec<String>,
    /// Make a POSIX group with a GID (the default is non-POSIX, as the SOP intends).
    #[arg(long)]
    pub posix: bool,
    /// The GID of a POSIX group (default: the directory assigns one).
    #[arg(long, requires = "posix")]
    pub gid: Option<u32>,
    /// Do not flag it as a FAS group (it will not show in RAS/Noggin).
    #[arg(long)]
    pub no_fas: bool,
    /// If the group exists with other settings, change them to these.
    #[arg(long)]
    pub update: bool,
}

#[derive(Args)]
pub struct MemberArgs {
    /// The group, e.g. mm_rl_infra.
    pub group: String,
    /// Users (uids).
    pub users: Vec<String>,
    /// A group (repeatable): a nested member, or a group whose members manage.
    #[arg(long = "group", value_name = "GROUP")]
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MemberOp {
    AddMember,
    RemoveMember,
    AddManager,
    RemoveManager,
}

impl MemberOp {
    fn adds(self) -> bool {
        matches!(self, MemberOp::AddMember | MemberOp::AddManager)
    }
    fn managers(self) -> bool {
        matches!(self, MemberOp::AddManager | MemberOp::RemoveManager)
    }
    fn noun(self) -> &'static str {
        if self.managers() {
            "manager"
        } else {
            "member"
        }
    }
}

pub async fn run(cfg: &Config, json: bool, cmd: GroupCommand) -> Result<u8> {
    match cmd {
        GroupCommand::Create(a) => create(cfg, json, a).await,
        GroupCommand::Show { group } => show::show(cfg, json, &group).await,
        GroupCommand::List => show::list(cfg, json).await,
        GroupCommand::AddMember(a) => members(cfg, json, MemberOp::AddMember, a).await,
        GroupCommand::RemoveMember(a) => members(cfg, json, MemberOp::RemoveMember, a).await,
        GroupCommand::AddManager(a) => members(cfg, json, MemberOp::AddManager, a).await,
        GroupCommand::RemoveManager(a) => members(cfg, json, MemberOp::RemoveManager, a).await,
    }
}

/// Where group writes go.
enum Writer {
    Ldap(IdSource),
    Ipa(ipa::Ipa),
}

impl Writer {
    fn name(&self) -> &'static str {
        match self {
            Writer::Ldap(_) => "ldap",
            Writer::Ipa(_) => "freeipa",
        }
    }
}

/// The bases that tell user DNs from group DNs.
pub(crate) struct Bases {
    users: Dn,
    groups: Dn,
    uid_attr: String,
}

impl Bases {
    fn new(l: &mattersync_directory::LdapConfig) -> Result<Bases> {
        Ok(Bases {
            users: Dn::parse(&l.user_base()).context("directory.user_base")?,
            groups: Dn::parse(&l.group_base()).context("directory.group_base")?,
            uid_attr: l.user_id_attr.clone(),
        })
    }

    /// A member or manager DN as the CLI names it: a user's uid, a group's cn (lowercased),
    /// or the DN itself.
    fn classify(&self, dn: &Dn) -> (Kind, String) {
        if dn.is_descendant_of(&self.users) {
            if let Some(uid) = dn.rdn_value(&self.uid_attr) {
                return (Kind::User, uid.to_lowercase());
            }
        }
        if dn.is_descendant_of(&self.groups) {
            if let Some(cn) = dn.rdn_value("cn") {
                return (Kind::Group, cn.to_lowercase());
            }
        }
        (Kind::Other, dn.to_string())
    }

    fn settings(&self, e: &GroupEntry) -> Settings {
        let mut s = Settings {
            description: e.description.clone(),
            fas: e.is_fas(),
            posix: e.is_posix(),
            gid: e.gid_number.clone(),
            ..Settings::default()
        };
        for dn in &e.managers {
            match self.classify(dn) {
                (Kind::User, n) => s.manager_users.insert(n),
                (Kind::Group, n) => s.manager_groups.insert(n),
                (Kind::Other, n) => s.manager_others.insert(n),
            };
        }
        s
    }
}

/// The open directory, the bases and where writes go.
struct Ctx {
    dir: LdapDirectory,
    bases: Bases,
    writer: Writer,
}

impl Ctx {
    async fn connect(cfg: &Config) -> Result<Ctx> {
        let l = engine::ldap_config(cfg)?;
        let bases = Bases::new(&l)?;
        let writer = match ipa_client(cfg)? {
            Some(c) => Writer::Ipa(ipa::Ipa::new(c)),
            None => Writer::Ldap(match cfg.directory.kind {
                DirectoryKind::Freeipa => IdSource::Server,
                DirectoryKind::Ldap => IdSource::Client,
            }),
        };
        let dir = LdapDirectory::connect(&l)
            .await
            .context("directory: cannot connect; nothing was changed")?;
        Ok(Ctx { dir, bases, writer })
    }
}

/// The FreeIPA JSON-RPC client, when the config asks for it (`kind = "freeipa"` with a
/// `[directory.freeipa]` section).
fn ipa_client(cfg: &Config) -> Result<Option<IpaClient>> {
    if cfg.directory.kind != DirectoryKind::Freeipa {
        return Ok(None);
    }
    let Some(f) = &cfg.directory.freeipa else {
        return Ok(None);
    };
    let password = config::secret(
        "MATTERSYNC_IPA_PASSWORD",
        f.password_file.as_deref(),
        "directory.freeipa.password_file",
    )?
    .context(
        "directory.freeipa: no password: set password_file (a file only its owner can read) or \
         MATTERSYNC_IPA_PASSWORD",
    )?;
    let mut c = IpaConfig::new(&f.url, &f.user, mattersync_freeipa::Secret::new(password));
    c.ca_file = f.ca_file.clone();
    c.timeout = std::time::Duration::from_secs(cfg.directory.ldap.timeout_secs);
    Ok(Some(IpaClient::new(c).context("directory.freeipa")?))
}

/// The ledger key under which an interrupted FreeIPA create remembers its request.
fn pending_key(cn: &str) -> String {
    format!("group-create:{cn}")
}

fn pending(cfg: &Config, cn: &str) -> Result<Option<Spec>> {
    let ledger = mattersync_engine::open_ledger(cfg, None)
        .context("opening the ledger (it remembers interrupted group creates)")?;
    Ok(ledger
        .cursor(&pending_key(cn))?
        .and_then(|b| serde_json::from_slice(&b).ok()))
}

fn set_pending(cfg: &Config, cn: &str, spec: Option<&Spec>) -> Result<()> {
    let ledger = mattersync_engine::open_ledger(cfg, None)
        .context("opening the ledger (it remembers interrupted group creates)")?;
    let bytes = spec.map(serde_json::to_vec).transpose()?;
    ledger.set_cursor(&pending_key(cn), bytes.as_deref())?;
    Ok(())
}

fn problems_error(what: &str, problems: &[String]) -> anyhow::Error {
    if let [one] = problems {
        anyhow!("{what}: {one}; nothing was changed")
    } else {
        anyhow!(
            "{what}: {} problems, nothing was changed:\n  - {}",
            problems.len(),
            problems.join("\n  - ")
        )
    }
}

fn flags(fas: bool, posix: bool) -> String {
    format!(
        "{}, {}",
        if fas { "FAS" } else { "not FAS" },
        if posix { "POSIX" } else { "non-POSIX" }
    )
}

fn list_or_none(v: impl IntoIterator<Item = String>) -> String {
    let v: Vec<String> = v.into_iter().collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

async fn create(cfg: &Config, json: bool, a: CreateArgs) -> Result<u8> {
    let naming = cfg.naming()?;
    naming
        .parse(&a.name)
        .map_err(|e| anyhow!("{e}; nothing was changed"))?;
    let what = format!("group create {}", a.name);
    let mut problems: Vec<String> = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    let description = a.description.trim().to_string();
    if description.is_empty() {
        problems.push(
            "--description is empty: say what the group is for (the SOP asks for it), e.g. \
             --description \"Rocky Linux infrastructure team\""
                .into(),
        );
    }
    let mut ctx = Ctx::connect(cfg).await?;
    // Every manager must exist; keep the DNs the directory has for them.
    let mut manager_dns: BTreeMap<(Kind, String), Dn> = BTreeMap::new();
    for u in &a.managers {
        match ctx.dir.find_user(u).await? {
            Some(e) => {
                if e.disabled {
                    warnings.push(format!(
                        "manager {} is disabled in the directory: they cannot manage the group until enabled",
                        e.uid
                    ));
                }
                manager_dns.insert((Kind::User, e.uid.to_lowercase()), e.dn);
            }
            None => problems.push(format!(
                "manager {u:?} does not exist in the directory (no {}={u} under {}); check the \
                 spelling or create the user first",
                ctx.bases.uid_attr, ctx.bases.users
            )),
        }
    }
    for g in &a.manager_groups {
        match ctx.dir.group_entry(g).await? {
            Some(e) => {
                manager_dns.insert((Kind::Group, e.cn.to_lowercase()), e.dn);
            }
            None => problems.push(format!(
                "manager group {g:?} does not exist in the directory (no group cn={g} under {})",
                ctx.bases.groups
            )),
        }
    }
    if !problems.is_empty() {
        return Err(problems_error(&what, &problems));
    }
    let existing = ctx.dir.group_entry(&a.name).await?;
    if manager_dns.is_empty() && existing.is_none() {
        warnings.push(
            "no --manager: only administrators can change its members (the SOP gives every \
             group a manager)"
                .into(),
        );
    }
    let spec = Spec {
        cn: a.name.clone(),
        description,
        fas: !a.no_fas,
        posix: a.posix,
        gid: a.gid,
        manager_users: manager_dns
            .keys()
            .filter(|(k, _)| *k == Kind::User)
            .map(|(_, n)| n.clone())
            .collect(),
        manager_groups: manager_dns
            .keys()
            .filter(|(k, _)| *k == Kind::Group)
            .map(|(_, n)| n.clone())
            .collect(),
    };
    for w in &warnings {
        crate::report::warning("group", w.as_str());
    }
    let Some(entry) = existing else {
        return create_new(cfg, json, &mut ctx, &spec, &manager_dns).await;
    };
    let have = ctx.bases.settings(&entry);
    let changes = diff(&spec, &have);
    let pending = match ctx.writer {
        Writer::Ipa(_) => pending(cfg, &spec.cn)?,
        Writer::Ldap(_) => None,
    };
    let decision = decide(&spec, &changes, a.update, pending.as_ref());
    let backend = ctx.writer.name();
    let report = |result: &str, changed: bool| {
        json!({
            "changed": changed,
            "result": result,
            "group": spec.cn,
            "backend": backend,
            "changes": changes,
        })
    };
    match decision {
        Decision::Unchanged => {
            if pending.is_some() {
                set_pending(cfg, &spec.cn, None)?;
            }
            if json {
                crate::report::data("group", report("unchanged", false));
            } else {
                println!(
                    "unchanged: {} exists as asked ({})",
                    spec.cn,
                    flags(spec.fas, spec.posix)
                );
            }
            Ok(crate::exit::OK)
        }
        Decision::Drift => {
            if json {
                crate::report::data("group", report("drift", false));
            } else {
                println!("{} exists with other settings:", spec.cn);
                for c in &changes {
                    println!("  {c}");
                }
            }
            eprintln!(
                "error: {} exists with other settings (shown above); nothing was changed. Re-run \
                 with --update to change them, or change the command to match.",
                spec.cn
            );
            Ok(exit::DRIFT)
        }
        Decision::Update | Decision::Complete => {
            let result = if decision == Decision::Complete {
                "completed"
            } else {
                "updated"
            };
            match &ctx.writer {
                Writer::Ldap(ids) => {
                    let ids = *ids;
                    let update = ldap_update(&ctx.bases, &entry, &changes, &manager_dns);
                    let schema = ctx.dir.schema().await?;
                    ctx.dir
                        .modify_group(&entry, &update, &schema, ids)
                        .await
                        .map_err(|e| write_error(&spec.cn, e))?;
                }
                Writer::Ipa(ipa) => {
                    let steps = ipa::update_steps(&spec, &changes)?;
                    let outcome = ipa.run(&spec.cn, steps).await;
                    if let Some(code) = ipa::report_failure(json, &spec.cn, &outcome, false)? {
                        return Ok(code);
                    }
                    set_pending(cfg, &spec.cn, None)?;
                }
            }
            if json {
                crate::report::data("group", report(result, true));
            } else {
                println!("{result} {}:", spec.cn);
                for c in &changes {
                    println!("  {c}");
                }
            }
            Ok(crate::exit::OK)
        }
    }
}

/// The LDAP modify for `changes` (managers by the DNs found for them / stored).
fn ldap_update(
    bases: &Bases,
    entry: &GroupEntry,
    changes: &[Change],
    manager_dns: &BTreeMap<(Kind, String), Dn>,
) -> GroupUpdate {
    let mut u = GroupUpdate::default();
    for c in changes {
        match c {
            Change::Description { to, .. } => u.description = Some(to.clone()),
            Change::Fas { to } => u.fas = Some(*to),
            Change::Posix { to } => u.posix = Some(*to),
            Change::Gid { to, .. } => u.gid = Some(*to),
            Change::AddManager { kind, name } => {
                if let Some(dn) = manager_dns.get(&(*kind, name.clone())) {
                    u.add_managers.push(dn.clone());
                }
            }
            Change::RemoveManager { kind, name } => u.remove_managers.extend(
                entry
                    .managers
                    .iter()
                    .filter(|dn| bases.classify(dn) == (*kind, name.clone()))
                    .cloned(),
            ),
        }
    }
    u
}

fn write_error(cn: &str, e: WriteError) -> anyhow::Error {
    anyhow!("group {cn}: {e}")
}

async fn create_new(
    cfg: &Config,
    json: bool,
    ctx: &mut Ctx,
    spec: &Spec,
    manager_dns: &BTreeMap<(Kind, String), Dn>,
) -> Result<u8> {
    match &ctx.writer {
        Writer::Ldap(ids) => {
            let ids = *ids;
            let schema = ctx.dir.schema().await?;
            let g = NewGroup {
                cn: spec.cn.clone(),
                description: spec.description.clone(),
                fas: spec.fas,
                posix: spec.posix,
                gid: spec.gid,
                managers: manager_dns.values().cloned().collect(),
            };
            ctx.dir
                .add_group(&g, &schema, ids)
                .await
                .map_err(|e| write_error(&spec.cn, e))?;
        }
        Writer::Ipa(ipa) => {
            // Remember the request first: if a later call fails, running the same command
            // again completes the group instead of calling it drift.
            set_pending(cfg, &spec.cn, Some(spec))?;
            let outcome = ipa.run(&spec.cn, ipa::create_steps(spec)).await;
            if outcome.failed.is_some() && outcome.done.is_empty() && !outcome.maybe_done() {
                // Refused outright: nothing to complete later.
                set_pending(cfg, &spec.cn, None)?;
            }
            if let Some(code) = ipa::report_failure(json, &spec.cn, &outcome, true)? {
                return Ok(code);
            }
            set_pending(cfg, &spec.cn, None)?;
        }
    }
    let managers: Vec<String> = spec
        .manager_users
        .iter()
        .cloned()
        .chain(spec.manager_groups.iter().map(|g| format!("group {g}")))
        .collect();
    if json {
        crate::report::data(
            "group",
            json!({
            "changed": true,
            "result": "created",
            "group": spec.cn,
            "backend": ctx.writer.name(),
            "description": spec.description,
            "fas": spec.fas,
            "posix": spec.posix,
            "managers": managers,
            }),
        );
    } else {
        println!(
            "created {} ({}; managers: {}) via {}",
            spec.cn,
            flags(spec.fas, spec.posix),
            list_or_none(managers),
            ctx.writer.name()
        );
    }
    Ok(crate::exit::OK)
}

async fn members(cfg: &Config, json: bool, op: MemberOp, a: MemberArgs) -> Result<u8> {
    let naming = cfg.naming()?;
    naming
        .parse(&a.group)
        .map_err(|e| anyhow!("{e}; nothing was changed"))?;
    if a.users.is_empty() && a.groups.is_empty() {
        bail!("name at least one user, or a group with --group; nothing was changed");
    }
    let what = format!(
        "group {} {}",
        match op {
            MemberOp::AddMember => "add-member",
            MemberOp::RemoveMember => "remove-member",
            MemberOp::AddManager => "add-manager",
            MemberOp::RemoveManager => "remove-manager",
        },
        a.group
    );
    let mut ctx = Ctx::connect(cfg).await?;
    let Some(entry) = ctx.dir.group_entry(&a.group).await? else {
        bail!(
            "group {} does not exist in the directory; create it with `mattersync group create {} --description …`; nothing was changed",
            a.group,
            a.group
        );
    };
    let current: &[Dn] = if op.managers() {
        &entry.managers
    } else {
        &entry.members
    };
    let present: BTreeMap<(Kind, String), Dn> = current
        .iter()
        .map(|dn| (ctx.bases.classify(dn), dn.clone()))
        .collect();
    let mut problems = Vec::new();
    let mut change: BTreeMap<(Kind, String), Dn> = BTreeMap::new();
    let mut unchanged: BTreeSet<(Kind, String)> = BTreeSet::new();
    let asked: Vec<(Kind, String)> = a
        .users
        .iter()
        .map(|u| (Kind::User, u.clone()))
        .chain(a.groups.iter().map(|g| (Kind::Group, g.clone())))
        .collect();
    for (kind, name) in asked {
        let key = (kind, name.to_lowercase());
        if op.adds() {
            if present.contains_key(&key) {
                unchanged.insert(key);
                continue;
            }
            let found = match kind {
                Kind::User => ctx.dir.find_user(&name).await?.map(|u| {
                    if u.disabled {
                        eprintln!(
                            "warning: {} is disabled in the directory: sync leaves them out until enabled",
                            u.uid
                        );
                    }
                    u.dn
                }),
                _ => ctx.dir.group_entry(&name).await?.map(|g| g.dn),
            };
            match found {
                Some(dn) if dn == entry.dn => {
                    problems.push(format!("a group cannot contain or manage itself ({name})"))
                }
                Some(dn) => {
                    change.insert(key, dn);
                }
                None => problems.push(match kind {
                    Kind::User => format!(
                        "user {name:?} does not exist in the directory (no {}={name} under {})",
                        ctx.bases.uid_attr, ctx.bases.users
                    ),
                    _ => format!(
                        "group {name:?} does not exist in the directory (no group cn={name} under {})",
                        ctx.bases.groups
                    ),
                }),
            }
        } else {
            match present.get(&key) {
                Some(dn) => {
                    change.insert(key, dn.clone());
                }
                None => {
                    unchanged.insert(key);
                }
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems_error(&what, &problems));
    }
    let names = |s: &mut dyn Iterator<Item = &(Kind, String)>| -> Vec<String> {
        s.map(|(k, n)| match k {
            Kind::Group => format!("group {n}"),
            _ => n.clone(),
        })
        .collect()
    };
    let changed_names = names(&mut change.keys());
    let mut unchanged_names = names(&mut unchanged.iter());
    let verb = match op {
        MemberOp::AddMember => "added as members",
        MemberOp::RemoveMember => "removed as members",
        MemberOp::AddManager => "added as managers",
        MemberOp::RemoveManager => "removed as managers",
    };
    let already = match op {
        MemberOp::AddMember => "already members",
        MemberOp::RemoveMember => "not members",
        MemberOp::AddManager => "already managers",
        MemberOp::RemoveManager => "not managers",
    };
    let mut failed: Vec<String> = Vec::new();
    let mut done = changed_names.clone();
    if !change.is_empty() {
        match &ctx.writer {
            Writer::Ldap(ids) => {
                let ids = *ids;
                let dns: Vec<Dn> = change.values().cloned().collect();
                let mut u = GroupUpdate::default();
                match op {
                    MemberOp::AddMember => u.add_members = dns,
                    MemberOp::RemoveMember => u.remove_members = dns,
                    MemberOp::AddManager => u.add_managers = dns,
                    MemberOp::RemoveManager => u.remove_managers = dns,
                }
                let schema = ctx.dir.schema().await?;
                ctx.dir
                    .modify_group(&entry, &u, &schema, ids)
                    .await
                    .map_err(|e| write_error(&a.group, e))?;
            }
            Writer::Ipa(ipa) => {
                let users: Vec<String> = change
                    .keys()
                    .filter(|(k, _)| *k == Kind::User)
                    .map(|(_, n)| n.clone())
                    .collect();
                let groups: Vec<String> = change
                    .keys()
                    .filter(|(k, _)| *k == Kind::Group)
                    .map(|(_, n)| n.clone())
                    .collect();
                let out = ipa
                    .members(op.adds(), op.managers(), &entry.cn, &users, &groups)
                    .await
                    .map_err(|e| anyhow!("group {}: {e}", a.group))?;
                failed = out.failed.iter().map(ToString::to_string).collect();
                let shown = |kind: mattersync_freeipa::MemberKind, name: &str| match kind {
                    mattersync_freeipa::MemberKind::Group => format!("group {name}"),
                    mattersync_freeipa::MemberKind::User => name.to_string(),
                };
                let failed_names: BTreeSet<String> =
                    out.failed.iter().map(|f| shown(f.kind, &f.name)).collect();
                // FreeIPA knew better than the directory read a moment ago: already so.
                let already: BTreeSet<String> = out
                    .unchanged
                    .iter()
                    .map(|m| shown(m.kind, &m.name))
                    .collect();
                done.retain(|n| !failed_names.contains(n) && !already.contains(n));
                unchanged_names.extend(already);
            }
        }
    }
    let changed = !done.is_empty();
    if json {
        crate::report::data(
            "group",
            json!({
                "changed": changed,
                "group": a.group,
                "backend": ctx.writer.name(),
                "done": done,
                "unchanged": unchanged_names,
                "failed": failed,
            }),
        );
    } else {
        if !done.is_empty() {
            println!("{} {verb}: {}", a.group, done.join(", "));
        }
        if !unchanged_names.is_empty() {
            println!("{} {already}: {}", a.group, unchanged_names.join(", "));
        }
        for f in &failed {
            println!("failed: {f}");
        }
    }
    if failed.is_empty() {
        Ok(crate::exit::OK)
    } else if changed {
        eprintln!(
            "error: group {}: {} of the {} {}s failed (listed above); the others were done",
            a.group,
            failed.len(),
            failed.len() + done.len(),
            op.noun()
        );
        Ok(crate::exit::PARTIAL)
    } else {
        Err(anyhow!(
            "group {}: every {} failed: {}; nothing was changed",
            a.group,
            op.noun(),
            failed.join("; ")
        ))
    }
}
