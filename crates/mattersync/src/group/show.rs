//! `group show` and `group list`: what the directory has, as sync sees it, and where each
//! group is linked.

use super::{flags, list_or_none, Bases};
use anyhow::{bail, Context, Result};
use mattersync_core::{Directory, Link};
use mattersync_directory::{escape_filter_value, LdapDirectory};
use mattersync_engine as engine;
use mattersync_engine::config::Config;
use serde_json::json;
use std::collections::BTreeSet;

/// Links made with `link` (the ledger), or none with a warning if the ledger cannot be read
/// here (e.g. on an admin host without one).
fn ledger_links(cfg: &Config) -> Vec<Link> {
    match mattersync_engine::open_ledger(cfg, None).and_then(|l| Ok(l.links()?)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "warning: cannot read the ledger {} ({e:#}); links made with `mattersync link` are not shown",
                mattersync_engine::ledger_name(cfg)
            );
            Vec::new()
        }
    }
}

fn link_json(l: &Link) -> serde_json::Value {
    json!({
        "target": l.target.to_string(),
        "mode": l.mode.to_string(),
        "admins": l.admins.to_string(),
        "readd": l.readd.to_string(),
        "source": engine::source_name(l.source),
    })
}

fn link_text(l: &Link) -> String {
    format!(
        "{} (mode {}, admins {}, readd {}; from {})",
        l.target,
        l.mode,
        l.admins,
        l.readd,
        engine::source_name(l.source)
    )
}

async fn connect(cfg: &Config) -> Result<(LdapDirectory, Bases, String)> {
    let l = engine::ldap_config(cfg)?;
    let bases = Bases::new(&l)?;
    let dir = LdapDirectory::connect(&l)
        .await
        .context("directory: cannot connect")?;
    Ok((dir, bases, l.group_filter))
}

pub async fn show(cfg: &Config, json: bool, cn: &str) -> Result<u8> {
    let (mut dir, bases, _) = connect(cfg).await?;
    let Some(entry) = dir.group_entry(cn).await? else {
        bail!(
            "no group named {cn:?} under {}; `mattersync group list` shows the groups that fit the naming template",
            bases.groups
        );
    };
    let sub: Directory = dir.group(&entry.cn).await?.unwrap_or_default();
    let synced = dir.selected_by_filter(&entry.cn).await?;
    let empty = Directory::default();
    let (links, warnings) =
        engine::resolve_links(cfg, if synced { &sub } else { &empty }, ledger_links(cfg))?;
    for w in warnings
        .iter()
        .filter(|w| w.contains(&format!("link {}->", entry.cn)))
    {
        crate::report::warning("group", w.as_str());
    }
    let links: Vec<&Link> = links.iter().filter(|l| l.group == entry.cn).collect();
    let g = sub.groups.get(&entry.cn).cloned().unwrap_or_default();
    let disabled = |u: &String| sub.users.get(u).is_some_and(|x| x.disabled);
    let effective = sub.effective_members(&entry.cn);
    let nested: Vec<(String, BTreeSet<String>)> = g
        .member_groups
        .iter()
        .map(|n| (n.clone(), sub.effective_members(n)))
        .collect();
    let all_users: BTreeSet<String> = {
        // Every user reachable through nesting, enabled or not (for the disabled list).
        let mut seen = BTreeSet::new();
        let mut stack = vec![entry.cn.clone()];
        let mut out = BTreeSet::new();
        while let Some(n) = stack.pop() {
            if !seen.insert(n.clone()) {
                continue;
            }
            if let Some(x) = sub.groups.get(&n) {
                out.extend(x.member_users.iter().cloned());
                stack.extend(x.member_groups.iter().cloned());
            }
        }
        out
    };
    let disabled_members: Vec<String> = all_users.iter().filter(|u| disabled(u)).cloned().collect();
    let settings = bases.settings(&entry);
    if json {
        crate::report::data(
            "group",
            json!({
                "group": entry.cn,
                "dn": entry.dn.to_string(),
                "id": entry.id,
                "description": entry.description,
                "fas": entry.is_fas(),
                "posix": entry.is_posix(),
                "gid": entry.gid_number,
                "synced": synced,
                "managers": {
                    "users": settings.manager_users,
                    "groups": settings.manager_groups,
                    "other": settings.manager_others,
                    "effective": sub.effective_managers(&entry.cn),
                },
                "members": {
                    "users": g.member_users,
                    "groups": nested.iter().map(|(n, m)| json!({"group": n, "members": m})).collect::<Vec<_>>(),
                    "effective": effective,
                    "disabled": disabled_members,
                },
                "links": links.iter().map(|l| link_json(l)).collect::<Vec<_>>(),
            }),
        );
        return Ok(crate::exit::OK);
    }
    println!("{}  ({})", entry.cn, entry.dn);
    println!(
        "  description  {}",
        entry.description.as_deref().unwrap_or("(none)")
    );
    println!(
        "  flags        {}{}",
        flags(entry.is_fas(), entry.is_posix()),
        entry
            .gid_number
            .as_ref()
            .map(|g| format!(" (gid {g})"))
            .unwrap_or_default()
    );
    println!("  id           {}", entry.id.as_deref().unwrap_or("(none)"));
    println!(
        "  synced       {}",
        if synced {
            "yes"
        } else {
            "no: directory.group_filter does not select it (not a FAS group?)"
        }
    );
    println!(
        "  managers     {}",
        list_or_none(
            settings
                .manager_users
                .iter()
                .cloned()
                .chain(settings.manager_groups.iter().map(|g| format!("group {g}")))
                .chain(settings.manager_others.iter().cloned())
        )
    );
    println!(
        "  members      {} direct: {}",
        g.member_users.len(),
        list_or_none(g.member_users.iter().cloned())
    );
    for (n, m) in &nested {
        println!(
            "  nested       {n} ({}): {}",
            m.len(),
            list_or_none(m.iter().cloned())
        );
    }
    println!("  effective    {} members", effective.len());
    if !disabled_members.is_empty() {
        println!(
            "  disabled     {} (not counted)",
            disabled_members.join(", ")
        );
    }
    if links.is_empty() {
        println!("  linked to    nothing");
    }
    for l in &links {
        println!("  linked to    {}", link_text(l));
    }
    Ok(crate::exit::OK)
}

pub async fn list(cfg: &Config, json: bool) -> Result<u8> {
    let naming = cfg.naming()?;
    let (mut dir, bases, group_filter) = connect(cfg).await?;
    let prefix = cfg
        .naming
        .template
        .split("{area}")
        .next()
        .unwrap_or_default();
    let filter = format!(
        "(&(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=group))(cn={}*))",
        escape_filter_value(prefix)
    );
    let entries: Vec<_> = dir
        .group_entries(&filter)
        .await?
        .into_iter()
        .filter(|e| naming.parse(&e.cn).is_ok())
        .collect();
    let mut entries = entries;
    entries.sort_by(|a, b| a.cn.cmp(&b.cn));
    let selected: BTreeSet<String> = dir
        .group_entries(&group_filter)
        .await?
        .into_iter()
        .map(|e| e.cn)
        .collect();
    let snapshot = dir.snapshot().await?;
    let (links, _) = engine::resolve_links(cfg, &snapshot, ledger_links(cfg))?;
    let mut rows = Vec::new();
    for e in &entries {
        let s = bases.settings(e);
        let managers: Vec<String> = s
            .manager_users
            .iter()
            .cloned()
            .chain(s.manager_groups.iter().map(|g| format!("group:{g}")))
            .collect();
        let linked: Vec<String> = links
            .iter()
            .filter(|l| l.group == e.cn)
            .map(|l| l.target.to_string())
            .collect();
        rows.push(json!({
            "group": e.cn,
            "description": e.description,
            "fas": e.is_fas(),
            "posix": e.is_posix(),
            "synced": selected.contains(&e.cn),
            "direct_members": e.members.len(),
            "effective_members": snapshot.groups.contains_key(&e.cn).then(|| snapshot.effective_members(&e.cn).len()),
            "managers": managers,
            "links": linked,
        }));
    }
    if json {
        crate::report::data("groups", serde_json::to_value(&rows)?);
        return Ok(crate::exit::OK);
    }
    println!(
        "{:32} {:4} {:5} {:6} {:8} {:24} links",
        "group", "fas", "posix", "synced", "members", "managers"
    );
    for r in &rows {
        let yn = |k: &str| if r[k] == true { "yes" } else { "no" };
        let strs = |k: &str| {
            r[k].as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default()
        };
        println!(
            "{:32} {:4} {:5} {:6} {:8} {:24} {}",
            r["group"].as_str().unwrap_or_default(),
            yn("fas"),
            yn("posix"),
            yn("synced"),
            r["effective_members"]
                .as_u64()
                .map(|n| n.to_string())
                .unwrap_or_else(|| "-".into()),
            strs("managers"),
            strs("links")
        );
    }
    Ok(crate::exit::OK)
}
