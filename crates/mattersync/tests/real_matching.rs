//! Account matching on the real servers: by default an account is matched by the
//! `auth_data` its auth service set, so an account someone registered with a directory
//! user's name (a squatter) receives nothing; matching by username has to be asked for, and
//! `check` warns about it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use common::{apply, run};
use mattersync_testsupport::Sandbox;

const BY_USERNAME: &str = "match = { by = \"username\" }";

/// The sandbox's config with its explicit username matching replaced by `with`.
fn matching(path: &std::path::Path, with: &str) {
    let text = std::fs::read_to_string(path).expect("config");
    assert!(text.contains(BY_USERNAME), "{text}");
    std::fs::write(path, text.replace(BY_USERNAME, with)).expect("config");
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_matching_a_squatting_account_gets_nothing_by_default_and_check_warns_about_username()
{
    let sb = Sandbox::new("matching_squatter").await;
    // alice signed in through the auth service; carol has no account yet, but someone
    // registered one with her name and address.
    let alice = sb.user("alice", true, false).await;
    let alice_id = alice.mm_id.clone().expect("account");
    sb.mm
        .set_user_auth(&alice_id, "gitlab", &alice.uid)
        .await
        .expect("alice signs in with gitlab");
    let carol = sb.user("carol", false, false).await;
    let squatter = sb.account(&carol.uid).await;
    let g = sb.create_group("infra", &[&alice, &carol], &[], &[]).await;
    let ch = sb.channel("infra", false).await;
    let cfg = sb.config(&sb.link(&g, "infra"));
    matching(&cfg, "auth_service = \"gitlab\"");

    let item = |v: &serde_json::Value, id: &str| {
        v["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|i| i["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no {id}: {v:#}"))
    };
    // Whether the server shows auth_data (11.4) or blanks it in every answer (9.9), as
    // the adapter tells from what it reads.
    let users = sb.mm.all_users().await.expect("users");
    let hidden = mattersync_mattermost::hides_auth_data(&users, "gitlab");
    let out = run(&cfg, &["check", "--json"]);
    let v = out.json();
    assert_eq!(item(&v, "matching")["status"], "ok", "{v:#}");
    let seen = item(&v, "mattermost.auth_data");
    if hidden {
        // check says matching by auth_data cannot work here, and apply says so too and
        // hands alice nothing rather than guessing.
        assert_ne!(out.code, 0, "{out:?}");
        assert_eq!(seen["status"], "fail", "{v:#}");
        let applied = apply(&cfg);
        let warnings = applied["warnings"].to_string();
        assert!(warnings.contains("shows no auth_data"), "{applied:#}");
        assert!(sb.members(&ch).await.is_empty());
    } else {
        assert_eq!(out.code, 0, "{out:?}");
        assert_eq!(seen["status"], "ok", "{v:#}");
        apply(&cfg);
        let members = sb.members(&ch).await;
        assert!(members.contains_key(&alice.uid), "{members:?}");
    }
    let members = sb.members(&ch).await;
    assert!(
        !members.contains_key(&carol.uid),
        "the squatter got carol's channel: {members:?}"
    );
    let plan = run(&cfg, &["plan", "--json"]).json();
    assert!(
        plan["plan"]["notes"]
            .as_array()
            .expect("notes")
            .iter()
            .any(|n| n["type"] == "pending_user" && n["uid"] == carol.uid.as_str()),
        "carol is pending: {plan:#}"
    );
    let team = sb.mm.team_members(&sb.team_id).await.expect("team");
    assert!(!team.contains_key(&squatter), "not even in the team");

    // Asked for explicitly, username matching hands the squatter carol's channel: that is
    // what check warns about.
    let text = std::fs::read_to_string(&cfg).expect("config");
    std::fs::write(&cfg, text.replace("auth_service = \"gitlab\"", BY_USERNAME)).expect("config");
    let out = run(&cfg, &["check", "--json"]);
    assert_eq!(out.code, 0, "a warning is not a failure: {out:?}");
    let v = out.json();
    let m = item(&v, "matching");
    assert_eq!(m["status"], "warn", "{v:#}");
    assert!(
        m["summary"]
            .as_str()
            .is_some_and(|s| s.contains("self-registered")),
        "{v:#}"
    );
    apply(&cfg);
    assert!(sb.members(&ch).await.contains_key(&carol.uid));

    // Neither: the configuration says why it cannot choose.
    let text = std::fs::read_to_string(&cfg).expect("config");
    std::fs::write(&cfg, text.replace(BY_USERNAME, "")).expect("config");
    let out = run(&cfg, &["plan"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("auth_service") && out.stderr.contains("by = \"username\""),
        "{out:?}"
    );
}
