//! Links from the config file, the ledger and (with `auto_link`) the naming convention.

use crate::config::Config;
use anyhow::Result;
use mattersync_core::{Directory, Link, LinkSource, Target};
use std::collections::BTreeMap;

/// The file wins over the ledger for the same group and target (a conflict is a warning);
/// the convention fills in only where neither says anything.
pub fn resolve_links(
    cfg: &Config,
    directory: &Directory,
    ledger_links: Vec<Link>,
) -> Result<(Vec<Link>, Vec<String>)> {
    let mut warnings = Vec::new();
    let mut by_key: BTreeMap<(String, Target), Link> = BTreeMap::new();
    for l in cfg.file_links()? {
        by_key.insert((l.group.clone(), l.target.clone()), l);
    }
    for l in ledger_links {
        let key = (l.group.clone(), l.target.clone());
        match by_key.get(&key) {
            Some(f) if f.mode != l.mode || f.admins != l.admins || f.readd != l.readd => {
                warnings.push(format!(
                    "link {} is in the config file (mode {}, admins {}, readd {}) and in the ledger (mode {}, admins {}, readd {}); the config file wins",
                    l.id(), f.mode, f.admins, f.readd, l.mode, l.admins, l.readd
                ));
            }
            Some(_) => {}
            None => {
                by_key.insert(key, l);
            }
        }
    }
    if cfg.defaults.auto_link {
        let naming = cfg.naming()?;
        for cn in directory.groups.keys() {
            match cfg.convention_link(&naming, cn) {
                Ok(Some(l)) => {
                    by_key
                        .entry((l.group.clone(), l.target.clone()))
                        .or_insert(l);
                }
                Ok(None) => {}
                Err(why) => warnings.push(why),
            }
        }
    }
    Ok((by_key.into_values().collect(), warnings))
}

/// The link sources, for `links`.
pub fn source_name(s: LinkSource) -> &'static str {
    match s {
        LinkSource::Config => "config",
        LinkSource::Convention => "convention",
        LinkSource::Ledger => "ledger",
    }
}
