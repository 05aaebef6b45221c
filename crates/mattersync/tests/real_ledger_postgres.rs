//! The PostgreSQL ledger from the command line, on the real servers: an embedded ledger
//! moved to PostgreSQL keeps what mattersync owns, and a run cannot start beside a leader.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use common::run;
use mattersync_ledger::Leadership;
use mattersync_testsupport::Sandbox;

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

    let pg = sb.pg_ledger("MATTERSYNC_LEDGER_PG", "cli", None);
    let (url, target, pw_file) = (pg.url.clone(), pg.target.clone(), pg.password_file.clone());
    // A mistyped ledger.path is not an empty ledger to copy: refused, and not created.
    let typo = sb.dir.path().join("typo").join("ledger.db");
    let text = std::fs::read_to_string(&sqlite).expect("config");
    let wrong = sb.dir.path().join("typo.toml");
    let real = sb.dir.path().join("ledger.db").display().to_string();
    assert!(text.contains(&real), "{text}");
    std::fs::write(&wrong, text.replace(&real, &typo.display().to_string())).expect("config");
    let out = run(
        &wrong,
        &[
            "ledger",
            "migrate",
            "--to",
            &url,
            "--password-file",
            &pw_file,
        ],
    );
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("there is no ledger at"), "{out:?}");
    assert!(!typo.exists());
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
    let pg = sb.config(&format!("{}{}", pg.config_lines(), sb.link(&g, "infra")));
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
