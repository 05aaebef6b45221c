//! The slash command end to end: `mattersync slash install` registers the command on the
//! real Mattermost, pointing at `mattersync serve` on loopback; people type it in channels
//! (Mattermost then calls serve with the ids it vouches for), and forged requests go to
//! serve directly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod real_serve_support;

use mattersync_ledger::Ledger;
use mattersync_testsupport::Sandbox;
use real_serve_support::slash::{install, slash_lines, text, token_file, Mm, Person, Socket};
use real_serve_support::{serve_section, wait_until, Service, PROPAGATION};
use serde_json::json;

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_serve_slash_command_links_and_unlinks_only_for_admins_and_says_what_happens() {
    let sb = Sandbox::new("serve_slash").await;
    let alice = sb.user("alice", true, false).await;
    let bob = sb.user("bob", true, false).await;
    let g = sb.create_group("infra", &[&alice, &bob], &[], &[]).await;
    let ch = sb.channel("infra", false).await;
    let cfg = sb.config(&serve_section(sb.dir.path(), &slash_lines(sb.dir.path())));
    let svc = slash_service(&cfg).await;
    let mm = Mm::new(&sb);
    let admin_token = sb.servers.mm_token();

    // A system admin links the group: the answer says who will be added, then they are.
    let answer = text(
        &mm.type_command(&admin_token, &sb.team_id, &ch, &format!("link {g}"))
            .await,
    );
    assert!(answer.contains(&format!("Linked **{g}**")), "{answer}");
    assert!(answer.contains("2 will be added"), "{answer}");
    assert!(
        answer.contains(&format!("@{}", alice.uid)) && answer.contains(&format!("@{}", bob.uid)),
        "{answer}"
    );
    let arrived = wait_until(PROPAGATION, || async { sb.members(&ch).await.len() == 2 }).await;
    assert!(arrived, "{:?}\n{}", sb.members(&ch).await, svc.logs());
    let ledger = Ledger::open(&sb.dir.path().join("ledger.db")).expect("ledger");
    let links = ledger.links().expect("links");
    assert_eq!(links.len(), 1, "{links:?}");
    assert_eq!(links[0].target.to_string(), format!("{}/infra", sb.area));

    let status = text(
        &mm.type_command(&admin_token, &sb.team_id, &ch, "status")
            .await,
    );
    assert!(
        status.contains(&g) && status.contains("2 member(s)"),
        "{status}"
    );
    let explain = text(
        &mm.type_command(
            &admin_token,
            &sb.team_id,
            &ch,
            &format!("explain @{}", alice.uid),
        )
        .await,
    );
    assert!(explain.contains(&g), "{explain}");
    let help = text(
        &mm.type_command(&admin_token, &sb.team_id, &ch, "frobnicate")
            .await,
    );
    assert!(
        help.contains("unknown command") && help.contains("Usage"),
        "{help}"
    );

    // A plain member may look but not change.
    let carol = Person::new(&sb, &mm, "carol").await;
    sb.add_by_hand(&ch, &carol.id).await;
    let carol_token = carol.token.clone();
    let refused = text(
        &mm.type_command(&carol_token, &sb.team_id, &ch, &format!("unlink {g}"))
            .await,
    );
    assert!(
        refused.contains("Only channel admins, team admins and system admins"),
        "{refused}"
    );
    assert_eq!(ledger.links().expect("links").len(), 1);

    // Made channel admin, she may: the answer says nobody is removed.
    sb.mm
        .set_channel_admin(&ch, &carol.id, true)
        .await
        .expect("make carol channel admin");
    let unlinked = text(
        &mm.type_command(&carol_token, &sb.team_id, &ch, &format!("unlink {g}"))
            .await,
    );
    assert!(
        unlinked.contains(&format!("Unlinked **{g}**")),
        "{unlinked}"
    );
    assert!(
        unlinked.contains("leaves the channel's members as they are"),
        "{unlinked}"
    );
    assert!(ledger.links().expect("links").is_empty());

    // A request without the command's token is refused.
    let forged = reqwest::Client::new()
        .post(format!("{}/slash", svc.base))
        .form(&[
            ("token", "forged"),
            ("text", "status"),
            ("channel_id", ch.as_str()),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(forged.status().as_u16(), 401);

    let m = svc
        .wait_metrics("slash commands", |m| {
            m.get("mattersync_slash_commands_total{command=\"link\",outcome=\"ok\"}") == 1.0
        })
        .await;
    assert_eq!(
        m.get("mattersync_slash_commands_total{command=\"unlink\",outcome=\"refused\"}"),
        1.0
    );
    assert_eq!(
        m.get("mattersync_slash_commands_total{command=\"unlink\",outcome=\"ok\"}"),
        1.0
    );
    assert_eq!(
        m.get("mattersync_slash_commands_total{command=\"unknown\",outcome=\"bad_token\"}"),
        1.0
    );
    // Unlinking removed nobody.
    let left = sb.members(&ch).await;
    assert!(
        left.contains_key(&alice.uid) && left.contains_key(&bob.uid),
        "{left:?}"
    );
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_serve_slash_link_typed_in_a_direct_message_is_refused_and_records_nothing() {
    let sb = Sandbox::new("serve_slash_dm").await;
    let alice = sb.user("alice", true, false).await;
    let g = sb.create_group("infra", &[&alice], &[], &[]).await;
    let cfg = sb.config(&serve_section(sb.dir.path(), &slash_lines(sb.dir.path())));
    let svc = slash_service(&cfg).await;
    let mm = Mm::new(&sb);
    let admin_token = sb.servers.mm_token();

    // A system admin types the command in a direct message with alice, and in a group
    // message: Mattermost sends the team they were looking at and the DM's name, which
    // reads as a channel name; only the channel's type tells.
    let me = sb.mm.me().await.expect("me");
    let dm = sb
        .mm
        .create_direct_channel(&me.id, alice.mm_id.as_deref().expect("account"))
        .await
        .expect("direct channel");
    let bob = sb.user("bob", true, false).await;
    let gm = mm
        .call(
            &admin_token,
            reqwest::Method::POST,
            "/channels/group",
            json!([me.id, alice.mm_id, bob.mm_id]),
        )
        .await;
    let gm = gm["id"].as_str().expect("group message id").to_string();
    for channel in [dm.id.as_str(), gm.as_str()] {
        let answer = text(
            &mm.type_command(&admin_token, &sb.team_id, channel, &format!("link {g}"))
                .await,
        );
        assert!(
            answer.contains("direct or group message") && answer.contains("Nothing was changed"),
            "{answer}"
        );
    }
    let ledger = Ledger::open(&sb.dir.path().join("ledger.db")).expect("ledger");
    assert!(ledger.links().expect("links").is_empty());
    let m = svc
        .wait_metrics("slash commands", |m| {
            m.get("mattersync_slash_commands_total{command=\"link\",outcome=\"refused\"}") == 2.0
        })
        .await;
    assert_eq!(
        m.get("mattersync_slash_commands_total{command=\"link\",outcome=\"ok\"}"),
        0.0
    );
    // Nobody was put in the DM's "channel" by a sync either.
    let members = sb.mm.channel_members(&dm.id).await.expect("dm members");
    assert_eq!(members.len(), 2, "{members:?}");
}

/// `serve` started on `cfg`, and `/mattersync` registered in its teams once it listens
/// (the command's URL has serve's port; serve reads the token files at every request).
async fn slash_service(cfg: &std::path::Path) -> Service {
    let svc = Service::start(cfg, &[], "serve.log").await;
    svc.wait_ready().await;
    let (code, out, err) = install(cfg, &format!("{}/slash", svc.base), &[]);
    assert_eq!(code, 0, "{out}{err}");
    svc
}

/// Two teams (areas a and b), alice in a group of each (`g` in a's area, `other` in b's),
/// serve with the slash command registered in both.
struct Linked {
    a: Sandbox,
    b: Sandbox,
    alice: mattersync_testsupport::TestUser,
    g: String,
    other: String,
    svc: Service,
    mm: Mm,
    ledger: Ledger,
}

async fn linked(name: &str) -> Linked {
    let a = Sandbox::new(&format!("{name}_a")).await;
    let b = Sandbox::new(&format!("{name}_b")).await;
    let alice = a.user("alice", true, false).await;
    let g = a.create_group("infra", &[&alice], &[], &[]).await;
    let other = b.create_group("board", &[&alice], &[], &[]).await;
    let cfg = two_teams(
        &a,
        &b,
        &serve_section(a.dir.path(), &slash_lines(a.dir.path())),
    );
    let svc = slash_service(&cfg).await;
    let mm = Mm::new(&a);
    let ledger = Ledger::open(&a.dir.path().join("ledger.db")).expect("ledger");
    Linked {
        a,
        b,
        alice,
        g,
        other,
        svc,
        mm,
        ledger,
    }
}

/// A configuration for two sandboxes at once: both areas, each mapped to its own team, and
/// both areas' groups read.
fn two_teams(a: &Sandbox, b: &Sandbox, extra: &str) -> std::path::PathBuf {
    let path = a.config(extra);
    let text = std::fs::read_to_string(&path).expect("config");
    let text = text
        .replace(
            &format!("[areas]\n{0} = \"{0}\"\n", a.area),
            &format!("[areas]\n{0} = \"{0}\"\n{1} = \"{1}\"\n", a.area, b.area),
        )
        .replace(
            &format!("(cn=mm_{}_*)", a.area),
            &format!("(|(cn=mm_{}_*)(cn=mm_{}_*))", a.area, b.area),
        );
    assert!(text.contains(&format!("{0} = \"{0}\"", b.area)), "{text}");
    std::fs::write(&path, text).expect("config");
    path
}

/// A request straight to serve's `/slash`, as whoever holds a token could send it.
async fn forged(svc: &Service, fields: &[(&str, &str)]) -> (u16, String) {
    let r = reqwest::Client::new()
        .post(format!("{}/slash", svc.base))
        .form(fields)
        .send()
        .await
        .expect("post");
    let status = r.status().as_u16();
    let body = r.text().await.unwrap_or_default();
    let text = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["text"].as_str().map(str::to_string))
        .unwrap_or(body);
    (status, text)
}

fn file_mode(p: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .expect("token file")
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_serve_slash_install_is_idempotent_and_each_team_token_acts_only_in_its_own_team() {
    let a = Sandbox::new("slash_team_a").await;
    let b = Sandbox::new("slash_team_b").await;
    let alice = a.user("alice", true, false).await;
    let g = a.create_group("infra", &[&alice], &[], &[]).await;
    let ch_a = a.channel("infra", false).await;
    let ch_b = b.channel("infra", false).await;
    let cfg = two_teams(
        &a,
        &b,
        &serve_section(a.dir.path(), &slash_lines(a.dir.path())),
    );
    let svc = Service::start(&cfg, &[], "serve.log").await;
    svc.wait_ready().await;
    let url = format!("{}/slash", svc.base);

    // Installed in both teams, each with its own token file of mode 600; a second run
    // changes nothing.
    let (code, out, err) = install(&cfg, &url, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.matches(" created ").count(), 2, "{out}");
    let (file_a, file_b) = (
        token_file(a.dir.path(), &a.area),
        token_file(a.dir.path(), &b.area),
    );
    assert_eq!((file_mode(&file_a), file_mode(&file_b)), (0o600, 0o600));
    let token_a = std::fs::read_to_string(&file_a).expect("token a");
    let token_b = std::fs::read_to_string(&file_b).expect("token b");
    assert_ne!(token_a, token_b);
    let (code, out, err) = install(&cfg, &url, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.matches(" unchanged ").count(), 2, "{out}");
    assert_eq!(std::fs::read_to_string(&file_a).expect("token a"), token_a);

    let admin = a.mm.me().await.expect("me");
    let ledger = Ledger::open(&a.dir.path().join("ledger.db")).expect("ledger");
    let link = format!("link {g}");
    // S2: team A's token, team B's ids: refused.
    let (status, answer) = forged(
        &svc,
        &[
            ("token", &token_a),
            ("team_id", &b.team_id),
            ("channel_id", &ch_b),
            ("user_id", &admin.id),
            ("text", &link),
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        answer.contains("cannot act in another team") && answer.contains("Nothing was changed"),
        "{answer}"
    );
    // Team A's id with a channel of team B: refused.
    let (_, answer) = forged(
        &svc,
        &[
            ("token", &token_a),
            ("team_id", &a.team_id),
            ("channel_id", &ch_b),
            ("user_id", &admin.id),
            ("text", &link),
        ],
    )
    .await;
    assert!(
        answer.contains("not in team") && answer.contains("Nothing was changed"),
        "{answer}"
    );
    // An unknown user id, and an id that is not one: refused.
    for user in ["0000000000000000000000000a", "../users/me"] {
        let (_, answer) = forged(
            &svc,
            &[
                ("token", &token_a),
                ("team_id", &a.team_id),
                ("channel_id", &ch_a),
                ("user_id", user),
                ("text", &link),
            ],
        )
        .await;
        assert!(
            answer.contains("does not know this user"),
            "{user}: {answer}"
        );
    }
    assert!(ledger.links().expect("links").is_empty());
    // Names in the form are ignored: the link lands in the channel the ids name.
    let (_, answer) = forged(
        &svc,
        &[
            ("token", &token_a),
            ("team_id", &a.team_id),
            ("team_domain", &b.area),
            ("channel_id", &ch_a),
            ("channel_name", "town-square"),
            ("user_id", &admin.id),
            ("user_name", "someone-else"),
            ("text", &link),
        ],
    )
    .await;
    assert!(answer.contains(&format!("Linked **{g}**")), "{answer}");
    let links = ledger.links().expect("links");
    assert_eq!(links.len(), 1, "{links:?}");
    assert_eq!(links[0].target.to_string(), format!("{}/infra", a.area));
    // The actor is the account the id names, not the form's user_name.
    assert_eq!(
        ledger.link_made_by(&g, &links[0].target).expect("by"),
        Some(format!("slash:{}", admin.username))
    );

    // --rotate: new tokens, and the old one is refused at once (no restart).
    let (code, out, err) = install(&cfg, &url, &["--rotate"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.matches(" rotated ").count(), 2, "{out}");
    let rotated = std::fs::read_to_string(&file_a).expect("token a");
    assert_ne!(rotated, token_a);
    let (status, _) = forged(&svc, &[("token", &token_a), ("text", "help")]).await;
    assert_eq!(status, 401);
    let mm = Mm::new(&a);
    let answer = text(
        &mm.type_command(&a.servers.mm_token(), &a.team_id, &ch_a, "status")
            .await,
    );
    assert!(answer.contains(&g), "{answer}");
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_serve_slash_permission_model_row_by_row() {
    let Linked {
        a,
        b: _b,
        alice,
        g,
        other,
        svc,
        mm,
        ledger,
    } = linked("slash_perm").await;
    let links = || {
        ledger
            .links()
            .expect("links")
            .iter()
            .map(|l| {
                format!(
                    "{} {} {} {} {}",
                    l.group, l.target, l.mode, l.admins, l.readd
                )
            })
            .collect::<Vec<_>>()
    };

    // Dave creates a channel: he is its admin (S3's channel creator). Carol is a plain
    // member of it; Erin is a team admin.
    let dave = Person::new(&a, &mm, "dave").await;
    dave.join_team(&a.team_id).await;
    let ch = dave.create_channel(&mm, &a.team_id, "daves").await;
    let carol = Person::new(&a, &mm, "carol").await;
    a.add_by_hand(&ch, &carol.id).await;
    let erin = Person::new(&a, &mm, "erin").await;
    erin.join_team(&a.team_id).await;
    a.add_by_hand(&ch, &erin.id).await;
    mm.call(
        &a.servers.mm_token(),
        reqwest::Method::PUT,
        &format!("/teams/{}/members/{}/schemeRoles", a.team_id, erin.id),
        json!({"scheme_admin": true, "scheme_user": true}),
    )
    .await;
    let admin = a.servers.mm_token();
    let say = |token: String, words: String| {
        let (mm, team, ch) = (&mm, a.team_id.clone(), ch.clone());
        async move { text(&mm.type_command(&token, &team, &ch, &words).await) }
    };
    let refused = |answer: &str, needle: &str| {
        assert!(
            answer.contains(needle) && answer.contains("Nothing was changed"),
            "expected a refusal with {needle:?}: {answer}"
        );
    };

    // status and explain of oneself: any member; explain of another: admins only.
    let s = say(carol.token.clone(), "status".into()).await;
    assert!(s.contains("No group is linked"), "{s}");
    let s = say(carol.token.clone(), format!("explain @{}", carol.username)).await;
    assert!(!s.contains("Nothing was changed"), "{s}");
    let s = say(carol.token.clone(), format!("explain @{}", alice.uid)).await;
    refused(
        &s,
        "Only system admins and team admins may see another person's groups",
    );
    let s = say(erin.token.clone(), format!("explain @{}", alice.uid)).await;
    assert!(!s.contains("Nothing was changed"), "{s}");

    // link: not for a plain member; for the channel admin, a group of this team's area
    // with the defaults only.
    let s = say(carol.token.clone(), format!("link {g}")).await;
    refused(&s, "Only channel admins, team admins and system admins");
    assert!(links().is_empty());
    let s = say(dave.token.clone(), format!("link {other}")).await;
    refused(&s, "area belongs to another team");
    for option in ["mode=exclusive", "admins=managers", "readd=always"] {
        for who in [&dave, &erin] {
            let s = say(who.token.clone(), format!("link {g} {option}")).await;
            refused(&s, "only system admins may set them");
        }
    }
    assert!(links().is_empty(), "{:?}", links());
    let s = say(dave.token.clone(), format!("link {g}")).await;
    assert!(s.contains(&format!("Linked **{g}**")), "{s}");
    assert_eq!(links(), [format!("{g} {}/daves sync none never", a.area)]);
    let arrived = wait_until(PROPAGATION, || async {
        a.members(&ch).await.contains_key(&alice.uid)
    })
    .await;
    assert!(arrived, "{}", svc.logs());

    // A system admin may do both; then the link is privileged and the channel admin can
    // neither change nor remove it.
    // Typed, either is asked again in a confirmation form that only the person the
    // trigger belongs to sees; confirmed, it is done.
    let me = a.mm.me().await.expect("me");
    a.add_by_hand(&ch, &me.id).await;
    let mut admin_ws = Socket::connect(&mm.url, &admin).await;
    for (words, head) in [
        (format!("link {other}"), format!("Linked **{other}**")),
        (format!("link {g} readd=always"), format!("Linked **{g}**")),
    ] {
        let unconfirmed = links();
        let post = confirmed(&mm, &mut admin_ws, &admin, &a.team_id, &ch, &words, || {
            assert_eq!(links(), unconfirmed, "nothing before the confirmation")
        })
        .await;
        assert!(post.contains(&head), "{post}");
    }
    let before = links();
    assert_eq!(before.len(), 2, "{before:?}");
    let s = say(dave.token.clone(), format!("link {g} mode=add")).await;
    refused(&s, "change a link that has them");
    let s = say(dave.token.clone(), format!("unlink {g}")).await;
    refused(&s, "change a link that has them");
    assert_eq!(links(), before);
    // The plain link of the other area's group, the channel admin may unlink.
    let s = say(dave.token.clone(), format!("unlink {other}")).await;
    assert!(s.contains(&format!("Unlinked **{other}**")), "{s}");
    let post = confirmed(
        &mm,
        &mut admin_ws,
        &admin,
        &a.team_id,
        &ch,
        &format!("unlink {g}"),
        || (),
    )
    .await;
    assert!(post.contains(&format!("Unlinked **{g}**")), "{post}");
    assert!(links().is_empty(), "{:?}", links());
    // Nobody was removed by any of it (Dave, Carol and Alice are still there).
    let members = a.members(&ch).await;
    for u in [&dave.username, &carol.username, &alice.uid] {
        assert!(members.contains_key(u), "{u}: {members:?}");
    }
}

/// Types a command that asks for confirmation, checks `before` while the form is open,
/// confirms it; the answer posted.
async fn confirmed(
    mm: &Mm,
    ws: &mut Socket,
    token: &str,
    team: &str,
    ch: &str,
    words: &str,
    before: impl FnOnce(),
) -> String {
    let answer = mm.type_command(token, team, ch, words).await;
    assert!(
        answer["text"].as_str().unwrap_or_default().is_empty(),
        "{answer}"
    );
    let (url, dialog) = ws.dialog().await;
    assert_eq!(dialog["callback_id"], "mattersync-confirm", "{dialog}");
    before();
    let (status, body) = mm
        .try_call(
            token,
            reqwest::Method::POST,
            "/actions/dialogs/submit",
            json!({"url": url, "callback_id": "mattersync-confirm", "state": dialog["state"],
                   "team_id": team, "channel_id": ch, "submission": {}, "cancelled": false}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains("error"), "{body}");
    let posted = ws.event("ephemeral_message").await;
    posted["data"]["post"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn options(dialog: &serde_json::Value, element: &str) -> Vec<String> {
    dialog["elements"]
        .as_array()
        .expect("elements")
        .iter()
        .find(|e| e["name"] == element)
        .map(|e| {
            e["options"]
                .as_array()
                .expect("options")
                .iter()
                .map(|o| o["value"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_serve_slash_forms_open_through_the_dialog_api_and_submissions_are_checked_again() {
    let Linked {
        a,
        b: _b,
        alice: _,
        g,
        other,
        svc,
        mm,
        ledger,
    } = linked("slash_dialog").await;

    // Dave's own channel: he is its admin. The form offers this team's area's groups and
    // the modes that remove nobody beyond what he added.
    let dave = Person::new(&a, &mm, "dave").await;
    dave.join_team(&a.team_id).await;
    let ch = dave.create_channel(&mm, &a.team_id, "daves").await;
    let mut dave_ws = Socket::connect(&mm.url, &dave.token).await;
    let answer = mm.type_command(&dave.token, &a.team_id, &ch, "link").await;
    assert!(
        answer["text"].as_str().unwrap_or_default().is_empty(),
        "{answer}"
    );
    let (url, dialog) = dave_ws.dialog().await;
    assert_eq!(url, format!("{}/slash/dialog", svc.base));
    assert_eq!(options(&dialog, "group"), vec![g.clone()], "{dialog}");
    assert_eq!(options(&dialog, "mode"), ["sync", "add"], "{dialog}");
    assert!(
        options(&dialog, "readd").is_empty(),
        "no privileged options: {dialog}"
    );
    let state = dialog["state"].as_str().expect("state").to_string();
    let submit = |token: String, state: String, submission: serde_json::Value| {
        let (mm, url, team, ch) = (&mm, url.clone(), a.team_id.clone(), ch.clone());
        async move {
            mm.try_call(
                &token,
                reqwest::Method::POST,
                "/actions/dialogs/submit",
                json!({"url": url, "callback_id": "mattersync-link", "state": state,
                       "team_id": team, "channel_id": ch, "submission": submission,
                       "cancelled": false}),
            )
            .await
        }
    };

    // Submitting a group the form did not offer (another area's) is refused all the same.
    let (status, body) = submit(
        dave.token.clone(),
        state.clone(),
        json!({"group": other, "mode": "sync"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("area belongs to another team"), "{body}");
    // Nor a privileged option typed into the submission by hand.
    let (_, body) = submit(
        dave.token.clone(),
        state.clone(),
        json!({"group": g, "mode": "exclusive"}),
    )
    .await;
    assert!(body.contains("only system admins may set them"), "{body}");
    assert!(ledger.links().expect("links").is_empty());

    // Carol, a plain member, gets no form; submitting Dave's form as herself is refused.
    let carol = Person::new(&a, &mm, "carol").await;
    a.add_by_hand(&ch, &carol.id).await;
    let answer = text(&mm.type_command(&carol.token, &a.team_id, &ch, "link").await);
    assert!(
        answer.contains("Only channel admins, team admins and system admins"),
        "{answer}"
    );
    let (_, body) = submit(carol.token.clone(), state.clone(), json!({"group": g})).await;
    assert!(body.contains("opened for someone else"), "{body}");
    // A state altered by hand does not verify.
    let forged_state = state.replacen(&dave.id, &carol.id, 1);
    let (_, body) = submit(carol.token.clone(), forged_state, json!({"group": g})).await;
    assert!(body.contains("did not come from mattersync"), "{body}");
    assert!(ledger.links().expect("links").is_empty());

    // Dave submits his form: linked, and the answer arrives as an ephemeral post.
    let (status, body) = submit(
        dave.token.clone(),
        state.clone(),
        json!({"group": g, "mode": "add"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains("error"), "{body}");
    let posted = dave_ws.event("ephemeral_message").await;
    let post = posted["data"]["post"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(post.contains(&format!("Linked **{g}**")), "{post}");
    assert_eq!(
        ledger
            .links()
            .expect("links")
            .iter()
            .map(|l| format!("{} {} {}", l.group, l.target, l.mode))
            .collect::<Vec<_>>(),
        [format!("{g} {}/daves add", a.area)]
    );
    assert_eq!(
        ledger
            .link_made_by(&g, &format!("{}/daves", a.area).parse().expect("target"))
            .expect("by"),
        Some(format!("slash:{}", dave.username))
    );

    // The unlink form lists what he may remove; a system admin's form offers more.
    let answer = mm
        .type_command(&dave.token, &a.team_id, &ch, "unlink")
        .await;
    assert!(
        answer["text"].as_str().unwrap_or_default().is_empty(),
        "{answer}"
    );
    let (_, dialog) = dave_ws.dialog().await;
    assert_eq!(options(&dialog, "group"), vec![g.clone()], "{dialog}");
    let admin = a.servers.mm_token();
    let me = a.mm.me().await.expect("me");
    a.add_by_hand(&ch, &me.id).await;
    let mut admin_ws = Socket::connect(&mm.url, &admin).await;
    mm.type_command(&admin, &a.team_id, &ch, "link").await;
    let (_, dialog) = admin_ws.dialog().await;
    let mut groups = options(&dialog, "group");
    groups.sort();
    let mut both = vec![g.clone(), other.clone()];
    both.sort();
    assert_eq!(groups, both, "{dialog}");
    assert_eq!(
        options(&dialog, "mode"),
        ["sync", "add", "exclusive"],
        "{dialog}"
    );
    assert_eq!(options(&dialog, "readd"), ["never", "always"], "{dialog}");
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_serve_slash_follows_a_renamed_channel_by_id() {
    let sb = Sandbox::new("slash_rename").await;
    let alice = sb.user("alice", true, false).await;
    let g = sb.create_group("infra", &[&alice], &[], &[]).await;
    let ch = sb.channel("infra", false).await;
    let cfg = sb.config(&serve_section(sb.dir.path(), &slash_lines(sb.dir.path())));
    let svc = slash_service(&cfg).await;
    let mm = Mm::new(&sb);
    let admin = sb.servers.mm_token();
    let answer = text(
        &mm.type_command(&admin, &sb.team_id, &ch, &format!("link {g}"))
            .await,
    );
    assert!(answer.contains(&format!("Linked **{g}**")), "{answer}");
    // The sync that follows records the channel's id for the link.
    let arrived = wait_until(PROPAGATION, || async {
        sb.members(&ch).await.contains_key(&alice.uid)
    })
    .await;
    assert!(arrived, "{}", svc.logs());

    sb.rename_channel(&ch, "infra-renamed").await;
    let status = text(&mm.type_command(&admin, &sb.team_id, &ch, "status").await);
    assert!(
        status.contains(&g) && status.contains("infra-renamed"),
        "{status}"
    );
    // Changing it changes the one link (still declared by the old name), not a second one.
    let answer = text(
        &mm.type_command(&admin, &sb.team_id, &ch, &format!("link {g} mode=add"))
            .await,
    );
    assert!(answer.contains("mode `add`"), "{answer}");
    let ledger = Ledger::open(&sb.dir.path().join("ledger.db")).expect("ledger");
    let links: Vec<String> = ledger
        .links()
        .expect("links")
        .iter()
        .map(|l| format!("{} {} {}", l.group, l.target, l.mode))
        .collect();
    assert_eq!(links, [format!("{g} {}/infra add", sb.area)]);
    let answer = text(
        &mm.type_command(&admin, &sb.team_id, &ch, &format!("unlink {g}"))
            .await,
    );
    assert!(answer.contains(&format!("Unlinked **{g}**")), "{answer}");
    assert!(ledger.links().expect("links").is_empty());
}

/// The red-team findings against the first per-team version, each now refused.
#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_serve_slash_a_team_token_cannot_borrow_anyone_elses_rights() {
    use base64::Engine;
    let a = Sandbox::new("slash_borrow").await;
    let alice = a.user("alice", true, false).await;
    let pend = a.user("pend", false, false).await;
    let outsider = a.user("outsider", true, false).await;
    let g = a.create_group("infra", &[&alice, &pend], &[], &[]).await;
    // The outsider is in a group of the area that is linked nowhere.
    a.create_group("elsewhere", &[&outsider], &[], &[]).await;
    let ch = a.channel("infra", false).await;
    let cfg = a.config(&serve_section(a.dir.path(), &slash_lines(a.dir.path())));
    let svc = slash_service(&cfg).await;
    let mm = Mm::new(&a);
    let admin_token = a.servers.mm_token();
    let admin = a.mm.me().await.expect("me");
    let ledger = Ledger::open(&a.dir.path().join("ledger.db")).expect("ledger");

    // Erin, a team admin, can read the team's command token (Mattermost's default).
    let erin = Person::new(&a, &mm, "erin").await;
    erin.join_team(&a.team_id).await;
    a.add_by_hand(&ch, &erin.id).await;
    mm.call(
        &admin_token,
        reqwest::Method::PUT,
        &format!("/teams/{}/members/{}/schemeRoles", a.team_id, erin.id),
        json!({"scheme_admin": true, "scheme_user": true}),
    )
    .await;
    let commands = mm
        .call(
            &erin.token,
            reqwest::Method::GET,
            &format!("/commands?team_id={}&custom_only=true", a.team_id),
            json!(null),
        )
        .await;
    let token = commands[0]["token"]
        .as_str()
        .expect("erin reads the token")
        .to_string();

    // With it she claims to be the system admin, for options only a system admin may use:
    // a typed privileged command needs the confirmation form, which a request without a
    // trigger, or with a trigger made for someone else, cannot get.
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let privileged = format!("link {g} mode=exclusive");
    for (trigger, needle) in [
        (String::new(), "needs a confirmation form"),
        (
            b64(&format!("c1:{}:1764633600000:c2ln", erin.id)),
            "belongs to someone else",
        ),
        (
            b64(&format!("c1:{}:1764633600000:c2ln", admin.id)),
            "could not open the confirmation",
        ),
    ] {
        let (status, answer) = forged(
            &svc,
            &[
                ("token", &token),
                ("team_id", &a.team_id),
                ("channel_id", &ch),
                ("user_id", &admin.id),
                ("trigger_id", &trigger),
                ("text", &privileged),
            ],
        )
        .await;
        assert_eq!(status, 200);
        assert!(
            answer.contains(needle) && answer.contains("Nothing was changed"),
            "{needle}: {answer}"
        );
    }
    // `me` is not an id (the API would read it as mattersync's own account).
    let (_, answer) = forged(
        &svc,
        &[
            ("token", &token),
            ("team_id", &a.team_id),
            ("channel_id", &ch),
            ("user_id", "me"),
            ("text", &privileged),
        ],
    )
    .await;
    assert!(answer.contains("does not know this user"), "{answer}");
    // Nor may she name someone who is not in the channel (Mattermost never would).
    let erins = erin.create_channel(&mm, &a.team_id, "erins").await;
    let (_, answer) = forged(
        &svc,
        &[
            ("token", &token),
            ("team_id", &a.team_id),
            ("channel_id", &erins),
            ("user_id", &admin.id),
            ("text", &format!("link {g}")),
        ],
    )
    .await;
    assert!(answer.contains("not a member of this channel"), "{answer}");
    assert!(ledger.links().expect("links").is_empty());
    // She may ask about people this channel concerns, not about anyone.
    let s = text(
        &mm.type_command(
            &erin.token,
            &a.team_id,
            &ch,
            &format!("explain @{}", outsider.uid),
        )
        .await,
    );
    assert!(
        s.contains("neither in a group linked here nor in this team"),
        "{s}"
    );

    // A channel's links stay with its id: a new channel that takes the old name gets none.
    let s = text(
        &mm.type_command(&admin_token, &a.team_id, &ch, &format!("link {g}"))
            .await,
    );
    assert!(s.contains(&format!("Linked **{g}**")), "{s}");
    assert!(
        s.contains(&pend.uid),
        "admins see who has no account yet: {s}"
    );
    let arrived = wait_until(PROPAGATION, || async {
        a.members(&ch).await.contains_key(&alice.uid)
    })
    .await;
    assert!(arrived, "{}", svc.logs());
    a.rename_channel(&ch, "infra-ops").await;
    let carol = Person::new(&a, &mm, "carol").await;
    carol.join_team(&a.team_id).await;
    let squat = carol.create_channel(&mm, &a.team_id, "infra").await;
    let s = text(
        &mm.type_command(&carol.token, &a.team_id, &squat, "status")
            .await,
    );
    assert!(s.contains("No group is linked"), "{s}");
    let s = text(
        &mm.type_command(&carol.token, &a.team_id, &squat, &format!("unlink {g}"))
            .await,
    );
    assert!(s.contains("not linked to this channel"), "{s}");
    assert_eq!(ledger.links().expect("links").len(), 1);
    // Nor can she change it by linking the group again under the name.
    let s = text(
        &mm.type_command(
            &carol.token,
            &a.team_id,
            &squat,
            &format!("link {g} mode=add"),
        )
        .await,
    );
    assert!(
        s.contains("renamed since") && s.contains("Nothing was changed"),
        "{s}"
    );
    let links = ledger.links().expect("links");
    assert_eq!(links.len(), 1, "{links:?}");
    assert_eq!(links[0].mode, mattersync_core::Mode::Sync);
    // Linking it in a channel of her own, she learns how many have no account, not who.
    let hers = carol.create_channel(&mm, &a.team_id, "carols").await;
    let s = text(
        &mm.type_command(&carol.token, &a.team_id, &hers, &format!("link {g}"))
            .await,
    );
    assert!(s.contains("1 without a Mattermost account yet"), "{s}");
    assert!(!s.contains(&pend.uid), "{s}");
}
