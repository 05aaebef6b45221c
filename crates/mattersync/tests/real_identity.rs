//! Links by stable ids, end to end against the real 389-ds and Mattermost: a link is
//! declared by names, the ids those names resolve to are recorded on the first run that
//! holds the lock, and from then on the ids decide. A renamed group or channel keeps its
//! link; a new channel that takes an old name gets nothing and loses nobody; a link whose
//! channel is gone is loud on every run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use common::{apply, names, run};
use mattersync_testsupport::Sandbox;

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// `apply --yes --json` that must change nothing, returning the report and stderr.
fn apply_nothing(cfg: &std::path::Path) -> (serde_json::Value, String) {
    let out = run(cfg, &["apply", "--yes", "--json"]);
    assert_eq!(out.code, 0, "{out:?}");
    let v = out.json();
    assert_eq!(v["changed"], false, "{out:?}");
    assert_eq!(v["api_calls"]["writes"], 0, "{out:?}");
    (v, out.stderr)
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_servers_a_group_renamed_in_the_directory_keeps_its_link_and_its_removals() {
    let sb = Sandbox::new("group_renamed").await;
    let alice = sb.user("alice", true, false).await;
    let bob = sb.user("bob", true, false).await;
    let g = sb.create_group("infra", &[&alice, &bob], &[], &[]).await;
    let ch = sb.channel("infra", false).await;
    let cfg = sb.config(&sb.link(&g, "infra"));
    let link = format!("{g}->{}/infra", sb.area);

    // First sight: the names decide, and the ids are recorded.
    let first = apply(&cfg);
    assert_eq!(first["changed"], true, "{first}");
    let both = sorted(vec![alice.uid.clone(), bob.uid.clone()]);
    assert_eq!(names(&sb.members(&ch).await), both);

    // A modrdn: same entry, same ids, another name (still inside the configured filter).
    let before = sb.group_unique_id(&g).await;
    let renamed = sb.group("platform");
    sb.rename_group(&g, &renamed).await;
    assert_eq!(sb.group_unique_id(&renamed).await, before);

    // The link follows the group: it says so, and changes nothing (no remove-and-re-add).
    let (v, stderr) = apply_nothing(&cfg);
    assert!(
        stderr.contains(&format!(
            "note: link {link}: the group was renamed from {g} to {renamed}"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("BROKEN"), "{stderr}");
    let issues = v["link_issues"].as_array().expect("link_issues");
    assert_eq!(issues.len(), 1, "{v}");
    assert_eq!(issues[0]["kind"], "group_renamed", "{v}");
    assert_eq!(issues[0]["from"], g.as_str(), "{v}");
    assert_eq!(issues[0]["to"], renamed.as_str(), "{v}");
    assert_eq!(names(&sb.members(&ch).await), both);

    // The plan says it too, and a followed rename is not a broken link.
    let plan = run(&cfg, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{plan:?}");
    assert!(
        plan.stdout
            .contains(&format!("the group was renamed from {g} to {renamed}")),
        "{plan:?}"
    );
    let plan = run(&cfg, &["plan", "--json", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{plan:?}");
    let p = plan.json();
    assert_eq!(p["broken_links"], 0, "{p}");
    assert_eq!(p["changed"], false, "{p}");
    assert_eq!(p["link_issues"][0]["kind"], "group_renamed", "{p}");

    // Membership changes of the renamed group still reach the channel: a removal too.
    sb.remove_member(&renamed, &bob).await;
    let v = apply(&cfg);
    assert_eq!(v["changed"], true, "{v}");
    assert_eq!(v["report"]["users_failed"], 0, "{v}");
    assert_eq!(names(&sb.members(&ch).await), vec![alice.uid.clone()]);
    let audit = run(&cfg, &["audit", "--json", "--user", &bob.uid]);
    let events = audit.json();
    let events = events["events"].as_array().expect("events");
    assert!(
        events.iter().any(|e| e["action"] == "remove_channel_member"
            && e["outcome"] == "ok"
            && e["scope"] == format!("{}/infra", sb.area)),
        "{events:?}"
    );
    // And it stays settled, still saying the rename.
    let (_, stderr) = apply_nothing(&cfg);
    assert!(stderr.contains("the group was renamed"), "{stderr}");

    // A new group that takes the old name is not adopted: its member gets nothing, and the
    // link keeps following the renamed group.
    let eve = sb.user("eve", true, false).await;
    sb.create_raw_group(&g, &[&eve], &[], &[], true).await;
    assert_ne!(sb.group_unique_id(&g).await, before);
    let (v, stderr) = apply_nothing(&cfg);
    assert!(
        stderr.contains(&format!("the group was renamed from {g} to {renamed}")),
        "{stderr}"
    );
    assert!(!stderr.contains("BROKEN"), "{stderr}");
    assert_eq!(v["link_issues"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(names(&sb.members(&ch).await), vec![alice.uid.clone()]);
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_servers_a_renamed_channel_keeps_its_exclusive_link_and_a_new_channel_with_the_old_name_is_untouched(
) {
    let sb = Sandbox::new("channel_renamed").await;
    let alice = sb.user("alice", true, false).await;
    let bob = sb.user("bob", true, false).await;
    let dave = sb.user("dave", true, false).await;
    let carol = sb.user("carol", true, false).await;
    let mallory = sb.user("mallory", true, false).await;
    let g = sb.create_group("ops", &[&alice, &bob], &[], &[]).await;
    let ch = sb.channel("ops", false).await;
    let cfg = sb.config(&format!(
        "[[link]]\ngroup = \"{g}\"\nchannel = \"{a}/ops\"\nmode = \"exclusive\"\n\n[guards]\nmax_removal_ratio = 1.0\n",
        a = sb.area
    ));
    let link = format!("{g}->{}/ops", sb.area);
    apply(&cfg);
    assert_eq!(
        names(&sb.members(&ch).await),
        sorted(vec![alice.uid.clone(), bob.uid.clone()])
    );

    // The channel is renamed, and a new channel takes the old name, with a member of its own.
    sb.rename_channel(&ch, "ops-renamed").await;
    let newer = sb.channel("ops", false).await;
    assert_ne!(newer, ch);
    sb.add_by_hand(&newer, carol.mm_id.as_deref().expect("account"))
        .await;
    // Someone not in the group is put in the renamed channel by hand: exclusive removes them.
    sb.add_by_hand(&ch, mallory.mm_id.as_deref().expect("account"))
        .await;
    sb.add_member(&g, &dave).await;

    let out = run(&cfg, &["apply", "--yes", "--json"]);
    assert_eq!(out.code, 0, "{out:?}");
    let v = out.json();
    assert_eq!(v["changed"], true, "{out:?}");
    assert_eq!(v["report"]["users_failed"], 0, "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "note: link {link}: the channel was renamed from {a}/ops to {a}/ops-renamed",
            a = sb.area
        )),
        "{out:?}"
    );
    assert!(!out.stderr.contains("BROKEN"), "{out:?}");
    // The link works on the renamed channel: dave added, mallory removed.
    assert_eq!(
        names(&sb.members(&ch).await),
        sorted(vec![alice.uid.clone(), bob.uid.clone(), dave.uid.clone()])
    );
    // The new channel with the old name gets nobody and loses nobody.
    assert_eq!(names(&sb.members(&newer).await), vec![carol.uid.clone()]);

    // Settled: nothing more to do, on either channel.
    let (v, stderr) = apply_nothing(&cfg);
    assert!(stderr.contains("the channel was renamed"), "{stderr}");
    assert_eq!(v["link_issues"][0]["kind"], "channel_renamed", "{v}");
    assert_eq!(names(&sb.members(&newer).await), vec![carol.uid.clone()]);
    let plan = run(&cfg, &["plan", "--json", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{plan:?}");
    let p = plan.json();
    assert_eq!(p["broken_links"], 0, "{p}");
    // No action of the plan names the new channel.
    assert!(!p["plan"].to_string().contains(&newer), "{p}");

    // A group member leaving is removed from the renamed channel only.
    sb.remove_member(&g, &bob).await;
    apply(&cfg);
    assert_eq!(
        names(&sb.members(&ch).await),
        sorted(vec![alice.uid.clone(), dave.uid.clone()])
    );
    assert_eq!(names(&sb.members(&newer).await), vec![carol.uid.clone()]);
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_servers_a_team_display_name_change_is_no_rename_and_the_link_keeps_working() {
    // Mattermost's API cannot change a team's name (the handle in its URL): neither
    // `PUT /teams/{id}` nor `PUT /teams/{id}/patch` takes one. The display name can change,
    // and mattersync, which links by name, must not notice.
    let sb = Sandbox::new("team_display_name").await;
    let alice = sb.user("alice", true, false).await;
    let bob = sb.user("bob", true, false).await;
    let g = sb.create_group("web", &[&alice], &[], &[]).await;
    let ch = sb.channel("web", false).await;
    let team_link = format!("[[link]]\ngroup = \"{g}\"\nteam = \"{}\"\n", sb.area);
    let cfg = sb.config(&format!("{}\n{team_link}", sb.link(&g, "web")));
    apply(&cfg);
    assert_eq!(names(&sb.members(&ch).await), vec![alice.uid.clone()]);

    let t = sb
        .mm
        .set_team_display_name(&sb.team_id, "Another display name")
        .await
        .expect("patch the team");
    assert_eq!(t.name, sb.area);
    sb.add_member(&g, &bob).await;
    let out = run(&cfg, &["apply", "--yes", "--json"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!out.stderr.contains("renamed"), "{out:?}");
    assert!(!out.stderr.contains("BROKEN"), "{out:?}");
    assert_eq!(
        names(&sb.members(&ch).await),
        sorted(vec![alice.uid.clone(), bob.uid.clone()])
    );
    let team = sb.mm.team_members(&sb.team_id).await.expect("team members");
    assert!(team.contains_key(bob.mm_id.as_deref().expect("account")));
    let (v, _) = apply_nothing(&cfg);
    assert_eq!(v["link_issues"], serde_json::json!([]), "{v}");
}

/// Case 2 up to the rename, then the renamed channel is archived: the link is broken, and
/// says so on an otherwise empty plan and apply; the new channel with the old name is still
/// not adopted.
#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_servers_a_link_whose_channel_was_archived_is_broken_and_loud_on_an_empty_plan() {
    let sb = Sandbox::new("channel_archived").await;
    let alice = sb.user("alice", true, false).await;
    let carol = sb.user("carol", true, false).await;
    let g = sb.create_group("ops", &[&alice], &[], &[]).await;
    let ch = sb.channel("ops", false).await;
    let cfg = sb.config(&format!(
        "[[link]]\ngroup = \"{g}\"\nchannel = \"{a}/ops\"\nmode = \"exclusive\"\n\n[guards]\nmax_removal_ratio = 1.0\n",
        a = sb.area
    ));
    let link = format!("{g}->{}/ops", sb.area);
    apply(&cfg);
    assert_eq!(names(&sb.members(&ch).await), vec![alice.uid.clone()]);

    sb.rename_channel(&ch, "ops-renamed").await;
    let newer = sb.channel("ops", false).await;
    sb.add_by_hand(&newer, carol.mm_id.as_deref().expect("account"))
        .await;
    sb.mm.archive_channel(&ch).await.expect("archive");

    let plan = run(&cfg, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 8, "{plan:?}");
    assert!(
        plan.stdout.contains(&format!("BROKEN link {link}")),
        "{plan:?}"
    );
    let plan = run(&cfg, &["plan", "--json", "--detailed-exitcode"]);
    assert_eq!(plan.code, 8, "{plan:?}");
    let p = plan.json();
    assert_eq!(p["broken_links"], 1, "{p}");
    assert_eq!(p["changed"], false, "{p}");

    let (v, stderr) = apply_nothing(&cfg);
    assert!(
        stderr.contains(&format!("error: BROKEN link {link}")),
        "{stderr}"
    );
    assert_eq!(
        v["link_issues"]
            .as_array()
            .expect("link_issues")
            .iter()
            .filter(|i| i["kind"] != "channel_renamed")
            .count(),
        1,
        "{v}"
    );
    // The text apply says it too.
    let out = run(&cfg, &["apply", "--yes"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("BROKEN link"), "{out:?}");
    assert!(out.stdout.contains("No changes."), "{out:?}");
    assert_eq!(names(&sb.members(&newer).await), vec![carol.uid.clone()]);
}

/// The plainest broken link: the linked channel is archived, nothing was renamed.
#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_servers_an_archived_linked_channel_is_a_broken_link() {
    let sb = Sandbox::new("plain_archived").await;
    let alice = sb.user("alice", true, false).await;
    let g = sb.create_group("docs", &[&alice], &[], &[]).await;
    let ch = sb.channel("docs", false).await;
    let cfg = sb.config(&sb.link(&g, "docs"));
    apply(&cfg);
    sb.mm.archive_channel(&ch).await.expect("archive");
    let plan = run(&cfg, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 8, "{plan:?}");
    assert!(
        plan.stdout.contains(&format!(
            "BROKEN link {g}->{a}/docs: {a}/docs is archived in Mattermost",
            a = sb.area
        )),
        "{plan:?}"
    );
    let (v, stderr) = apply_nothing(&cfg);
    assert!(stderr.contains("error: BROKEN link"), "{stderr}");
    assert_eq!(v["link_issues"][0]["kind"], "target_archived", "{v}");
    // Restored, the link works again by the id it always had.
    sb.mm.restore_channel(&ch).await.expect("restore");
    let bob = sb.user("bob", true, false).await;
    sb.add_member(&g, &bob).await;
    let out = run(&cfg, &["apply", "--yes", "--json"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!out.stderr.contains("BROKEN"), "{out:?}");
    assert_eq!(
        names(&sb.members(&ch).await),
        sorted(vec![alice.uid.clone(), bob.uid.clone()])
    );
}

/// The linked group is deleted and a new one takes its name: the new group is not adopted
/// (its member gets nothing), the old members stay (the link is add-only while broken), and
/// the link is loud.
#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_servers_a_new_group_with_a_deleted_groups_name_is_not_adopted() {
    let sb = Sandbox::new("group_replaced").await;
    let alice = sb.user("alice", true, false).await;
    let eve = sb.user("eve", true, false).await;
    let g = sb.create_group("sec", &[&alice], &[], &[]).await;
    let ch = sb.channel("sec", false).await;
    let cfg = sb.config(&sb.link(&g, "sec"));
    let link = format!("{g}->{}/sec", sb.area);
    apply(&cfg);
    assert_eq!(names(&sb.members(&ch).await), vec![alice.uid.clone()]);

    sb.delete_group(&g).await;
    let plan = run(&cfg, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 8, "{plan:?}");
    assert!(
        plan.stdout.contains(&format!(
            "BROKEN link {link}: the group {g} it was made for is gone"
        )),
        "{plan:?}"
    );

    sb.create_raw_group(&g, &[&eve], &[], &[], true).await;
    let plan = run(&cfg, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 8, "{plan:?}");
    assert!(
        plan.stdout
            .contains(&format!("BROKEN link {link}: {g} is now another group")),
        "{plan:?}"
    );
    let (v, stderr) = apply_nothing(&cfg);
    assert!(stderr.contains("error: BROKEN link"), "{stderr}");
    assert_eq!(v["link_issues"][0]["kind"], "group_replaced", "{v}");
    assert_eq!(names(&sb.members(&ch).await), vec![alice.uid.clone()]);
}

/// Many links followed by id at once: their channels come from one listing (`GET
/// /channels`, a page per 200) instead of a call each, with the same answers — a renamed
/// channel is followed, an archived one is a broken link, a new channel with the old name
/// gets nothing.
#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_servers_many_links_are_followed_by_id_from_one_channel_listing() {
    let sb = Sandbox::new("many_links").await;
    let alice = sb.user("alice", true, false).await;
    let bob = sb.user("bob", true, false).await;
    let mut links = String::new();
    let mut channels = Vec::new();
    for i in 0..9 {
        let g = sb.create_group(&format!("g{i}"), &[&alice], &[], &[]).await;
        channels.push((g.clone(), sb.channel(&format!("c{i}"), false).await));
        links.push_str(&sb.link(&g, &format!("c{i}")));
        links.push('\n');
    }
    let cfg = sb.config(&links);
    apply(&cfg);
    let (renamed_g, renamed) = channels[4].clone();
    let (_, archived) = channels[6].clone();
    sb.rename_channel(&renamed, "c4-renamed").await;
    let newer = sb.channel("c4", false).await;
    sb.mm.archive_channel(&archived).await.expect("archive");
    sb.add_member(&renamed_g, &bob).await;
    let out = run(&cfg, &["apply", "--yes", "--json"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "the channel was renamed from {a}/c4 to {a}/c4-renamed",
            a = sb.area
        )),
        "{out:?}"
    );
    assert!(
        out.stderr
            .contains(&format!("{a}/c6 is archived in Mattermost", a = sb.area)),
        "{out:?}"
    );
    assert_eq!(
        names(&sb.members(&renamed).await),
        sorted(vec![alice.uid.clone(), bob.uid.clone()])
    );
    assert!(sb.members(&newer).await.is_empty());
    // The others are untouched and settled.
    for (_, ch) in channels
        .iter()
        .filter(|(_, c)| *c != renamed && *c != archived)
    {
        assert_eq!(names(&sb.members(ch).await), vec![alice.uid.clone()]);
    }
}
