//! Golden plans: each file in `tests/plans/` holds the planner's whole input and the whole
//! plan it must produce. `MATTERSYNC_BLESS=1 cargo test -p mattersync-core --test golden`
//! rewrites the expected plans; review the diff before committing it.

use mattersync_core::{plan, Directory, LedgerFacts, Mattermost, Plan, PlanInput, Policy};
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixture {
    /// The behaviour pinned, in one sentence.
    about: String,
    #[serde(default)]
    directory: Directory,
    #[serde(default)]
    mattermost: Mattermost,
    #[serde(default)]
    ledger: LedgerFacts,
    #[serde(default)]
    policy: Policy,
    expected: Option<Plan>,
}

#[test]
fn every_fixture_gives_exactly_its_expected_plan() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/plans");
    let bless = std::env::var_os("MATTERSYNC_BLESS").is_some();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/plans exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(
        bless || files.len() >= 30,
        "expected at least 30 fixtures, found {}",
        files.len()
    );
    let mut failures = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).expect("readable fixture");
        let mut fx: Fixture =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let got = plan(PlanInput {
            directory: &fx.directory,
            mattermost: &fx.mattermost,
            ledger: &fx.ledger,
            policy: &fx.policy,
        });
        // The same input twice gives the same plan.
        let again = plan(PlanInput {
            directory: &fx.directory,
            mattermost: &fx.mattermost,
            ledger: &fx.ledger,
            policy: &fx.policy,
        });
        assert_eq!(
            got,
            again,
            "{}: planner is not deterministic",
            path.display()
        );
        if bless {
            fx.expected = Some(got);
            let mut out = serde_json::to_string_pretty(&fx).expect("serializable");
            out.push('\n');
            std::fs::write(path, out).expect("writable fixture");
            continue;
        }
        match &fx.expected {
            Some(want) if *want == got => {}
            Some(want) => failures.push(format!(
                "{}: {}\n--- expected\n{}\n--- got\n{}",
                path.display(),
                fx.about,
                serde_json::to_string_pretty(want).unwrap_or_default(),
                serde_json::to_string_pretty(&got).unwrap_or_default()
            )),
            None => failures.push(format!("{}: no expected plan", path.display())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
