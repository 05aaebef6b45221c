//! The PostgreSQL ledger from the command line, on the real servers: an embedded ledger
//! moved to PostgreSQL keeps what mattersync owns, and a run cannot start beside a leader.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use common::run;
use mattersync_ledger::{Leadership, PgTarget};
use mattersync_testsupport::Sandbox;

/// A fresh, empty PostgreSQL database schema for this test: (url with search_path, target).
fn fresh_pg(sb: &Sandbox) -> (String, PgTarget) {
    let url = sb.servers.get("MATTERSYNC_LEDGER_PG_URL");
    let pw = std::fs::read_to_string(sb.servers.get("MATTERSYNC_LEDGER_PG_PASSWORD_FILE"))
        .expect("password");
    let mut admin = PgTarget::new(&url);
    admin.password = Some(pw.trim().to_string());
    let schema = format!("cli_{}", sb.area);
    mattersync_ledger::create_schema(&admin, &schema).expect("schema");
    let url = format!("{url}&options=-csearch_path%3D{schema}");
    let mut target = PgTarget::new(&url);
    target.password = admin.password.clone();
    (url, target)
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_ledger_a_sqlite_ledger_moved_to_postgres_keeps_ownership_and_one_run_at_a_time() {
    let sb = Sandbox::new("ledger_pg").await;
    let alice = sb.user("alice", true, false).await;
    let bob = sb.user("bob", true, false).await;
    let g = sb.create_group("infra", &[&alice, &bob], &[], &[]).await;
    let ch = sb.channel("infra", false).await;
    let sqlite = sb.config(&sb.link(&g, "infra"));
    let out = run(&sqlite, &["apply", "--yes"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(sb.members(&ch).await.len(), 2);

    let (url, target) = fresh_pg(&sb);
    let pw_file = sb.servers.get("MATTERSYNC_LEDGER_PG_PASSWORD_FILE");
    let out = run(
        &sqlite,
        &[
            "ledger",
            "migrate",
            "--to",
            &url,
            "--password-file",
            &pw_file,
        ],
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("Copied and verified"), "{out:?}");
    // Again: refused, the target is not empty.
    let again = run(
        &sqlite,
        &[
            "ledger",
            "migrate",
            "--to",
            &url,
            "--password-file",
            &pw_file,
        ],
    );
    assert_eq!(again.code, 1, "{again:?}");
    assert!(again.stderr.contains("not empty"), "{again:?}");

    // The same sandbox on the PostgreSQL ledger: mattersync still owns both memberships, so
    // a plan changes nothing, and removing bob from the group removes him (an owned
    // membership; a pre-existing one would stay).
    let pg = sb.config(&format!(
        "url = \"{url}\"\npassword_file = \"{pw_file}\"\n{}",
        sb.link(&g, "infra")
    ));
    let out = run(&pg, &["plan", "--detailed-exitcode"]);
    assert_eq!(out.code, 0, "no changes after the move: {out:?}");
    sb.remove_member(&g, &bob).await;
    let out = run(&pg, &["apply", "--yes"]);
    assert_eq!(out.code, 0, "{out:?}");
    let members = sb.members(&ch).await;
    assert!(
        members.contains_key(&alice.uid) && !members.contains_key(&bob.uid),
        "{members:?}"
    );

    // While another instance leads the ledger, apply does not run, and says who leads.
    let leader = Leadership::try_take(&target, "ha-test/4242")
        .expect("take")
        .expect("lead");
    sb.add_member(&g, &bob).await;
    let out = run(&pg, &["apply", "--yes"]);
    assert_eq!(out.code, 6, "{out:?}");
    assert!(out.stderr.contains("ha-test/4242"), "{out:?}");
    assert!(!sb.members(&ch).await.contains_key(&bob.uid));
    drop(leader);
    let out = run(&pg, &["apply", "--yes"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(sb.members(&ch).await.contains_key(&bob.uid));
}
