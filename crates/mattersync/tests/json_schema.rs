//! Every `--json` command prints exactly one JSON object on stdout, errors included, and
//! that object is what `docs/schema/<command>.json` says: checked on the real outputs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use common::{run, Out};
use mattersync_testsupport::{Sandbox, Servers};
use serde_json::Value;

/// The one JSON value on stdout (a second value, or text around it, fails).
fn one_object(out: &Out) -> Value {
    let mut values = serde_json::Deserializer::from_str(&out.stdout).into_iter::<Value>();
    let first = values
        .next()
        .unwrap_or_else(|| panic!("no JSON on stdout: {out:?}"))
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {out:?}"));
    assert!(values.next().is_none(), "more than one JSON value: {out:?}");
    assert!(first.is_object(), "not an object: {out:?}");
    first
}

/// Validates `v` against `docs/schema/<schema>` (which refers to `envelope.json`).
fn validate(schema: &str, v: &Value) {
    let dir = Servers::root().join("docs/schema");
    let mut schemas = boon::Schemas::new();
    let mut compiler = boon::Compiler::new();
    for entry in std::fs::read_dir(&dir).expect("docs/schema") {
        let path = entry.expect("entry").path();
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("schema"))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .to_string();
        compiler
            .add_resource(&format!("https://mattersync.invalid/schema/{name}"), doc)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let index = compiler
        .compile(
            &format!("https://mattersync.invalid/schema/{schema}"),
            &mut schemas,
        )
        .unwrap_or_else(|e| panic!("{schema} does not compile: {e:#}"));
    if let Err(e) = schemas.validate(v, index) {
        panic!("{schema}: {e:#}\n{v:#}");
    }
}

/// Runs a command, checks the one-object rule and the schema, returns the object.
fn checked(config: &std::path::Path, args: &[&str], schema: &str, code: i32) -> Value {
    let out = run(config, args);
    assert_eq!(out.code, code, "{args:?}: {out:?}");
    let v = one_object(&out);
    validate(schema, &v);
    assert_eq!(v["exit_code"], code, "{v:#}");
    assert_eq!(v["ok"], code == 0 || code == 2, "{v:#}");
    v
}

#[test]
fn every_schema_compiles_and_a_failure_without_a_config_is_still_one_object() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing.toml");
    for (args, schema) in [
        (&["plan", "--json"][..], "plan.json"),
        (&["apply", "--json", "--yes"], "apply.json"),
        (&["status", "--json"], "status.json"),
        (&["explain", "--json", "neil"], "explain.json"),
        (&["audit", "--json"], "audit.json"),
        (&["links", "--json"], "links.json"),
        (&["unlink", "--json", "mm_rl_x", "rl/x"], "link.json"),
        (&["group", "--json", "list"], "group.json"),
        (&["config", "show", "--json"], "config-show.json"),
    ] {
        let v = checked(&missing, args, schema, 1);
        assert_eq!(v["errors"][0]["code"], "config", "{v:#}");
        assert!(
            v["errors"][0]["message"]
                .as_str()
                .is_some_and(|m| m.contains("missing.toml")),
            "{v:#}"
        );
    }
    // check says it in its items too, and still prints one object.
    let v = checked(&missing, &["check", "--json"], "check.json", 1);
    assert_eq!(v["items"][0]["id"], "config");
    assert_eq!(v["items"][0]["status"], "fail");
    // A file that is not TOML.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[directory\nuri = 1\n").expect("write");
    let v = checked(&bad, &["plan", "--json"], "plan.json", 1);
    assert_eq!(v["errors"][0]["code"], "config", "{v:#}");
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_json_every_command_prints_one_object_its_schema_describes() {
    let sb = Sandbox::new("json_schema").await;
    let alice = sb.user("alice", true, false).await;
    let bob = sb.user("bob", true, false).await;
    let g = sb
        .create_group("infra", &[&alice, &bob], &[], &[&alice])
        .await;
    sb.channel("infra", false).await;
    let link = sb.link(&g, "infra");
    let cfg = sb.config(&link);

    let v = checked(&cfg, &["check", "--json"], "check.json", 0);
    assert!(v["items"].as_array().is_some_and(|i| i.len() > 10), "{v:#}");
    let v = checked(&cfg, &["plan", "--json"], "plan.json", 0);
    assert_eq!(v["changed"], true, "{v:#}");
    assert!(v["run_id"].is_null(), "plan records no run: {v:#}");
    checked(
        &cfg,
        &["plan", "--json", "--detailed-exitcode"],
        "plan.json",
        2,
    );
    let v = checked(&cfg, &["apply", "--json", "--yes"], "apply.json", 0);
    assert_eq!(v["changed"], true, "{v:#}");
    let run_id = v["run_id"].as_str().expect("run_id").to_string();
    assert_eq!(v["report"]["run_id"], run_id.as_str());
    let v = checked(&cfg, &["apply", "--json", "--yes"], "apply.json", 0);
    assert_eq!(v["changed"], false, "{v:#}");
    let v = checked(&cfg, &["explain", "--json", &bob.uid], "explain.json", 0);
    assert_eq!(v["uid"], bob.uid.as_str(), "{v:#}");
    assert_eq!(v["groups"], serde_json::json!([g]), "{v:#}");
    assert_eq!(v["links"][0]["member"], true, "{v:#}");
    assert_eq!(v["links"][0]["ledger"]["origin"], "added", "{v:#}");
    assert_eq!(v["links"][0]["ledger"]["run_id"], run_id.as_str(), "{v:#}");
    checked(&cfg, &["status", "--json"], "status.json", 0);
    let v = checked(
        &cfg,
        &["audit", "--json", "--run", &run_id],
        "audit.json",
        0,
    );
    assert!(
        v["events"].as_array().is_some_and(|e| !e.is_empty()),
        "{v:#}"
    );
    checked(&cfg, &["links", "--json"], "links.json", 0);
    let team = sb.area.clone();
    let v = checked(&cfg, &["link", "--json", &g, &team], "link.json", 0);
    assert_eq!(v["changed"], true, "{v:#}");
    let v = checked(&cfg, &["unlink", "--json", &g, &team], "link.json", 0);
    assert_eq!(v["changed"], true, "{v:#}");
    checked(&cfg, &["config", "show", "--json"], "config-show.json", 0);
    checked(&cfg, &["group", "--json", "show", &g], "group.json", 0);

    // A guard holds the plan: exit 4, the error's code, the held plan and its fingerprint.
    sb.remove_member(&g, &bob).await;
    let held = sb.config(&format!("{link}\n[guards]\nmax_removals = 0\n"));
    let v = checked(&held, &["apply", "--json", "--yes"], "apply.json", 4);
    assert_eq!(v["errors"][0]["code"], "guard_tripped", "{v:#}");
    assert_eq!(v["changed"], false, "{v:#}");
    assert!(v["held_fingerprint"].is_string(), "{v:#}");
    // Another run holds the lock: exit 6, and who holds it.
    let lock = mattersync_ledger::RunLock::acquire(&sb.dir.path().join("ledger.db")).expect("lock");
    let v = checked(&cfg, &["apply", "--json", "--yes"], "apply.json", 6);
    assert_eq!(v["errors"][0]["code"], "locked", "{v:#}");
    drop(lock);
    // A token Mattermost refuses: exit 1, mattermost_unauthorized.
    let out = common::run_env(
        &cfg,
        &["plan", "--json"],
        &[("MATTERSYNC_MATTERMOST_TOKEN", "not-a-token-1234567890")],
    );
    assert_eq!(out.code, 1, "{out:?}");
    let v = one_object(&out);
    validate("plan.json", &v);
    assert_eq!(v["errors"][0]["code"], "mattermost_unauthorized", "{v:#}");
}
