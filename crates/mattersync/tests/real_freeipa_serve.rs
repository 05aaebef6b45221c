//! `mattersync serve` over the live FreeIPA test server's directory (FreeIPA's own schema,
//! tree and default ACIs, plus `packaging/freeipa-syncrepl.ldif`, which scripts/freeipa.sh
//! applies as the packaging says a RAS admin should): the sync reads as a system account,
//! follows changes with syncrepl, and a member manager's `group_add_member` through
//! FreeIPA's JSON-RPC API reaches the Mattermost channel.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod real_serve_support;

use mattersync_testsupport::freeipa::IpaSandbox;
use mattersync_testsupport::Sandbox;
use real_serve_support::{serve_section, wait_until, Service, PROPAGATION};
use std::time::Instant;

async fn members(sb: &Sandbox, channel_id: &str) -> Vec<String> {
    sb.members(channel_id).await.into_keys().collect()
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_freeipa_serve_follows_a_member_managers_json_rpc_change_with_syncrepl() {
    let sb = Sandbox::new("freeipa_serve").await;
    let ipa = IpaSandbox::new("freeipa_serve").await;
    let alice = ipa.user("alice").await;
    let bob = ipa.user("bob").await;
    sb.account(&alice).await;
    sb.account(&bob).await;
    // The seed's neil manages the group, as the SOP's ipa_group_manager_user would.
    let g = ipa.make_group("infra", true, &[&alice], &["neil"]).await;
    let ch = sb.channel("infra", false).await;

    let i = &ipa.ipa;
    let cfg = ipa.dir.path().join("serve.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[directory]
kind = "freeipa"
uri = "{uri}"
bind_dn = "{bind}"
bind_password_file = "{bindpw}"
base_dn = "{base}"
group_filter = "(&(objectClass=fasGroup)(cn=mm_{area}_*))"
timeout_secs = 10

[areas]
{area} = "{team}"

[mattermost]
url = "{mm}"
token_file = "{token}"
# Test accounts have passwords, not an auth service: match by username, explicitly.
match = {{ by = "username" }}

[ledger]
path = "{ledger}"

{link}
{serve}
"#,
            uri = i.get("MATTERSYNC_IPA_LDAP_URL"),
            bind = i.get("MATTERSYNC_IPA_SYSACCOUNT_DN"),
            bindpw = i.get("MATTERSYNC_IPA_SYSACCOUNT_PASSWORD_FILE"),
            base = i.get("MATTERSYNC_IPA_LDAP_BASE_DN"),
            area = ipa.area,
            team = sb.area,
            mm = i.get("MATTERSYNC_MM_URL"),
            token = i.get("MATTERSYNC_MM_TOKEN_FILE"),
            ledger = ipa.dir.path().join("ledger.db").display(),
            link = sb.link(&g, "infra"),
            serve = serve_section(ipa.dir.path(), ""),
        ),
    )
    .expect("write config");

    let svc = Service::start(&cfg, &["--changes", "syncrepl"], "serve.log").await;
    svc.wait_ready().await;
    assert_eq!(
        members(&sb, &ch).await,
        vec![alice.clone()],
        "{}",
        svc.logs()
    );
    let m = svc.metrics().await;
    assert_eq!(
        m.get("mattersync_directory_sessions_total{refresh=\"full\"}"),
        1.0,
        "one syncrepl session as the system account: {m:?}\n{}",
        svc.logs()
    );

    // neil, a member manager, adds bob through FreeIPA's API (no administrator involved).
    let t = Instant::now();
    let out = i
        .client("neil", "neil")
        .group_add_member(&g, std::slice::from_ref(&bob), &[])
        .await
        .expect("group_add_member as the member manager");
    assert_eq!(out.completed, 1, "{out:?}");
    let arrived = wait_until(PROPAGATION, || async {
        members(&sb, &ch).await.contains(&bob)
    })
    .await;
    assert!(arrived, "bob never arrived:\n{}", svc.logs());
    eprintln!(
        "FreeIPA group_add_member -> Mattermost member: {:?}",
        t.elapsed()
    );
    let m = svc
        .wait_metrics("the change cycle", |m| {
            m.get("mattersync_directory_notifications_total{source=\"syncrepl\"}") >= 1.0
                && m.get("mattersync_runs_total{kind=\"changes\",outcome=\"ok\"}") >= 1.0
        })
        .await;
    assert!(
        m.get("mattersync_change_latency_seconds_count") >= 1.0,
        "{m:?}"
    );
}
