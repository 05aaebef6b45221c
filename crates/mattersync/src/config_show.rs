//! `mattersync config show`: the configuration as every command uses it — each key with
//! its effective value and where it came from (the file, an environment override, or the
//! default), the links resolved (file, ledger, convention), and the secrets by source only.

use anyhow::Result;
use mattersync_engine::{self as engine, config};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// Where each secret comes from; never its value.
fn secrets(cfg: &config::Config) -> Value {
    let one = |env: &str, file: Option<&Path>| -> Value {
        if std::env::var(env).is_ok_and(|v| !v.is_empty()) {
            json!(format!("from the environment ({env})"))
        } else if let Some(p) = config::credential_path(env) {
            json!(format!("from the systemd credential {}", p.display()))
        } else if let Some(f) = file {
            json!(format!("from the file {}", f.display()))
        } else {
            json!("not set")
        }
    };
    json!({
        "mattermost.token": one("MATTERSYNC_MATTERMOST_TOKEN", cfg.mattermost.token_file.as_deref()),
        "directory.bind_password": one("MATTERSYNC_LDAP_PASSWORD", cfg.directory.ldap.bind_password_file.as_deref()),
        "directory.freeipa.password": one("MATTERSYNC_IPA_PASSWORD", cfg.directory.freeipa.as_ref().and_then(|f| f.password_file.as_deref())),
        "serve.api_token": one("MATTERSYNC_API_TOKEN", cfg.serve.api_token_file.as_deref()),
        "serve.slash_command_token": one("MATTERSYNC_SLASH_TOKEN", cfg.serve.slash_command_token_file.as_deref()),
    })
}

/// Which of `key`'s sources wins: an override of it (or of a section above it), the file, or
/// the default.
fn source(
    key: &str,
    file: &std::collections::BTreeSet<String>,
    env: &std::collections::BTreeSet<String>,
) -> &'static str {
    let covers = |set: &std::collections::BTreeSet<String>| {
        set.iter().any(|k| {
            k == key
                || key.starts_with(&format!("{k}."))
                || k.starts_with(&format!("{key}."))
                || (key == "areas.<area>" && k.starts_with("areas."))
                || (key.starts_with("link[]") && k.starts_with("link"))
        })
    };
    if covers(env) {
        "environment"
    } else if covers(file) {
        "file"
    } else {
        "default"
    }
}

/// The value at a key path of `v` (`link[]` keys have none of their own).
fn at<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    let mut cur = v;
    for part in key.split('.') {
        cur = cur.get(part)?;
    }
    Some(cur)
}

pub async fn run(path: &Path, cfg: &config::Config, json: bool) -> Result<u8> {
    let effective = serde_json::to_value(cfg)?;
    let env: Vec<(String, String)> = std::env::vars().collect();
    let env_keys = config::env_keys(&env);
    let file_keys = config::file_keys(path)?;
    let keys = config::key_paths(&effective);
    let sources: BTreeMap<String, &str> = keys
        .iter()
        .map(|k| (k.clone(), source(k, &file_keys, &env_keys)))
        .collect();
    // Links as a run resolves them: the convention needs the directory's groups.
    let ledger_links = match crate::read_ledger(cfg).and_then(|l| Ok(l.links()?)) {
        Ok(l) => l,
        Err(e) => {
            crate::report::warning("ledger", format!("ledger links left out: {e:#}"));
            Vec::new()
        }
    };
    let directory = if cfg.defaults.auto_link {
        let mut dir = engine::Ldap::new(engine::ldap_config(cfg)?);
        match engine::DirectorySource::snapshot(&mut dir).await {
            Ok(d) => d,
            Err(e) => {
                crate::report::warning(
                    "directory",
                    format!("convention links (auto_link) left out: {e:#}"),
                );
                Default::default()
            }
        }
    } else {
        Default::default()
    };
    let (links, warnings) = engine::resolve_links(cfg, &directory, ledger_links)?;
    for w in &warnings {
        crate::report::warning("links", w.as_str());
    }
    let mut config_value = effective.clone();
    if let Value::Object(m) = &mut config_value {
        m.insert("secrets".into(), secrets(cfg));
    }
    if json {
        crate::report::data(
            "config",
            json!({"config": config_value, "sources": sources, "links": links}),
        );
        return Ok(crate::exit::OK);
    }
    println!(
        "# {} (effective: defaults filled in, environment overrides applied)",
        path.display()
    );
    let mut section = String::new();
    for key in &keys {
        if key.starts_with("link[]") || key == "areas.<area>" {
            continue;
        }
        let (sec, rest) = key.split_once('.').unwrap_or(("", key.as_str()));
        if sec != section {
            println!("\n[{sec}]");
            section = sec.to_string();
        }
        let value = at(&effective, key).cloned().unwrap_or(Value::Null);
        println!("{rest} = {}  # {}", toml_text(&value), sources[key]);
    }
    if let Some(Value::Object(areas)) = effective.get("areas") {
        println!(
            "\n[areas]  # {}",
            sources.get("areas.<area>").copied().unwrap_or("file")
        );
        for (a, t) in areas {
            println!("{a} = {}", toml_text(t));
        }
    }
    println!("\n# secrets (never shown)");
    if let Value::Object(m) = secrets(cfg) {
        for (k, v) in m {
            println!("# {k}: {}", v.as_str().unwrap_or_default());
        }
    }
    println!("\n# links, resolved ({}):", links.len());
    for l in &links {
        println!(
            "#   {} -> {}  mode {}, admins {}, readd {}  ({})",
            l.group,
            l.target,
            l.mode,
            l.admins,
            l.readd,
            engine::source_name(l.source)
        );
    }
    Ok(crate::exit::OK)
}

/// A JSON value as TOML would write it (null: not set).
fn toml_text(v: &Value) -> String {
    match v {
        Value::Null => "(not set)".to_string(),
        Value::Object(m) => {
            let inner: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{k} = {}", toml_text(v)))
                .collect();
            format!("{{ {} }}", inner.join(", "))
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(toml_text).collect::<Vec<_>>().join(", ")
        ),
        other => other.to_string(),
    }
}
