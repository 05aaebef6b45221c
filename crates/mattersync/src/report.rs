//! The one JSON object a `--json` command prints, whatever happened: the envelope
//! (`schema_version`, `command`, `ok`, `exit_code`, `changed`, `run_id`, `errors`,
//! `warnings`) with the command's own fields beside it. Commands hand their data, warnings,
//! `changed` and `run_id` here while they run; `main` prints the envelope once, at the end,
//! errors included. `docs/schema/` describes it (one schema per command).

use serde::Serialize;
use serde_json::{Map, Value};
use std::sync::Mutex;

/// Bumped when a field changes meaning or goes away (adding one does not).
pub const SCHEMA_VERSION: u32 = 1;

/// An error or a warning, with a machine-readable code.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Message {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Default)]
struct Collected {
    data: Map<String, Value>,
    changed: bool,
    run_id: Option<String>,
    warnings: Vec<Message>,
    errors: Vec<Message>,
}

static COLLECTED: Mutex<Option<Collected>> = Mutex::new(None);

fn with<R>(f: impl FnOnce(&mut Collected) -> R) -> R {
    let mut guard = COLLECTED.lock().unwrap_or_else(|p| p.into_inner());
    f(guard.get_or_insert_with(Collected::default))
}

/// The command's own fields. An object's keys are merged in (a later call wins); anything
/// else is kept under `key`.
pub fn data(key: &str, value: Value) {
    with(|c| match value {
        Value::Object(m) => {
            for (k, v) in m {
                if k == "changed" {
                    if let Value::Bool(b) = v {
                        c.changed |= b;
                    }
                    continue;
                }
                c.data.insert(k, v);
            }
        }
        v => {
            c.data.insert(key.to_string(), v);
        }
    })
}

/// The ledger run the command recorded (`audit --run`).
pub fn run_id(id: &str) {
    with(|c| c.run_id = Some(id.to_string()))
}

/// A warning: said on stderr at once, and kept for the JSON.
pub fn warning(code: &str, message: impl Into<String>) {
    let message = message.into();
    eprintln!("warning: {message}");
    with(|c| {
        c.warnings.push(Message {
            code: code.into(),
            message,
        })
    })
}

/// An error that does not end the command (one failed action among many).
pub fn error(code: &str, message: impl Into<String>) {
    with(|c| {
        c.errors.push(Message {
            code: code.into(),
            message: message.into(),
        })
    })
}

/// Whether an exit code means the command did what it was asked: 0, or 2 (`plan
/// --detailed-exitcode`: changes pending).
pub fn ok(exit_code: u8) -> bool {
    exit_code == crate::exit::OK || exit_code == crate::exit::CHANGES_PENDING
}

/// The envelope, with `error` (the command's failure, if any) first among the errors.
pub fn envelope(command: &str, exit_code: u8, error: Option<Message>) -> Value {
    let c = with(std::mem::take);
    let mut out = Map::new();
    out.insert("schema_version".into(), SCHEMA_VERSION.into());
    out.insert("command".into(), command.into());
    out.insert("ok".into(), ok(exit_code).into());
    out.insert("exit_code".into(), exit_code.into());
    out.insert("changed".into(), c.changed.into());
    out.insert(
        "run_id".into(),
        c.run_id.map(Value::from).unwrap_or(Value::Null),
    );
    let errors: Vec<Message> = error.into_iter().chain(c.errors).collect();
    out.insert(
        "errors".into(),
        serde_json::to_value(errors).unwrap_or_default(),
    );
    out.insert(
        "warnings".into(),
        serde_json::to_value(c.warnings).unwrap_or_default(),
    );
    for (k, v) in c.data {
        out.entry(k).or_insert(v);
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_carries_its_fields_the_data_and_the_error() {
        data(
            "x",
            serde_json::json!({"changed": true, "plan": {"actions": []}}),
        );
        data("events", serde_json::json!([1, 2]));
        run_id("r1");
        warning("links", "a warning");
        let v = envelope(
            "apply",
            4,
            Some(Message {
                code: "guard_tripped".into(),
                message: "held".into(),
            }),
        );
        assert_eq!(v["schema_version"], SCHEMA_VERSION);
        assert_eq!(v["ok"], false);
        assert_eq!(v["exit_code"], 4);
        assert_eq!(v["changed"], true);
        assert_eq!(v["run_id"], "r1");
        assert_eq!(v["errors"][0]["code"], "guard_tripped");
        assert_eq!(v["warnings"][0]["code"], "links");
        assert_eq!(v["events"], serde_json::json!([1, 2]));
        assert!(v["plan"]["actions"].is_array());
        // Taken: the next envelope starts empty.
        let v = envelope("plan", 2, None);
        assert_eq!(v["ok"], true);
        assert_eq!(v["changed"], false);
        assert!(v["run_id"].is_null());
        assert_eq!(v["errors"], serde_json::json!([]));
    }
}
