//! Holds in Mattermost: one message per hold in `serve.alerts_channel`, posted as the
//! token's account, with **Show** / **Approve** / **Dismiss** buttons that call back into
//! `POST /alerts/action`; the message is updated in place when the hold is approved,
//! dismissed or clears by itself.
//!
//! What vouches for a button press: its `context` (the action and the hold's fingerprint)
//! carries an HMAC keyed by a secret derived from the Mattermost token, so it survives
//! restarts and cannot be forged; the person is the `user_id` Mattermost sends, looked up
//! through the API (`serve.approvers`, or system admins), never a name from the request.
//! Approve applies nothing itself (whoever reaches the URL can send any `user_id`): it opens
//! a confirmation dialog with the trigger id, which Mattermost only shows to the user the
//! trigger was made for, and only that dialog's submission (`POST /alerts/dialog`, its state
//! signed with the fingerprint and the user) asks the worker to apply exactly that
//! fingerprint, as `POST /approve/<fp>` does, with the actor `approval:<username>`.
//!
//! A posted hold is remembered (fingerprint → post id) in memory and in the ledger's cursors
//! (`alert:<fingerprint>`), so neither another cycle nor a restart posts it twice.

use super::escape::{code, md, mention, Clean};
use super::state::{Outcome, Request, Role, Shared};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use hmac::{Hmac, Mac};
use mattersync_mattermost::{trigger_user, Caller};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};
use tracing::{info, warn};

/// How often the alert task looks at what is held.
const TICK: Duration = Duration::from_secs(1);
/// How long the alert task waits after Mattermost failed a post.
const QUIET: Duration = Duration::from_secs(60);
/// How long a confirmation dialog stays good.
const DIALOG_LIFETIME: u64 = 15 * 60;
/// How long a dialog submission waits for the approval's cycle (Mattermost gives up on an
/// integration after 30 s by default); the message is updated by the alert task after.
const APPROVE_WAIT: Duration = Duration::from_secs(25);
/// Changes listed in an alert's Show answer.
const SHOW_CHANGES: usize = 20;
/// At most this many problem messages within `serve.alerts_problem_interval`.
pub const PROBLEM_BURST: usize = 5;

/// One posted alert.
#[derive(Debug, Clone)]
struct Posted {
    post_id: String,
    /// Who dismissed it, if someone did (the hold stays).
    dismissed_by: Option<String>,
}

/// The alerts' state: the key of the buttons and dialogs, where they go, what was posted.
pub struct Alerts {
    key: Vec<u8>,
    channel_id: Mutex<Option<String>>,
    /// Fingerprint → the message not yet closed.
    open: Mutex<BTreeMap<String, Posted>>,
    problems: Mutex<Problems>,
    /// After Mattermost refused or failed a post (or the channel look-up), nothing is tried
    /// again before then, so a missing permission is not retried (and logged) every second.
    quiet_until: Mutex<Option<Instant>>,
}

/// The problems posted: each distinct one at most once per interval, and at most
/// [`PROBLEM_BURST`] messages per interval.
#[derive(Debug, Default)]
struct Problems {
    /// Problem text → when it was posted.
    posted: BTreeMap<String, Instant>,
    /// When the recent problem messages went out.
    sent: VecDeque<Instant>,
    /// Problems not posted because of the rate limit (yet), counted in the next message.
    waiting: std::collections::BTreeSet<String>,
}

impl Problems {
    /// The problems of `now_seen` to post now, and how many others wait for the limit.
    fn due(
        &mut self,
        now_seen: &[String],
        interval: Duration,
        now: Instant,
    ) -> (Vec<String>, usize) {
        self.posted
            .retain(|_, at| now.duration_since(*at) < interval);
        while self
            .sent
            .front()
            .is_some_and(|at| now.duration_since(*at) >= interval)
        {
            self.sent.pop_front();
        }
        let mut out = Vec::new();
        for p in now_seen {
            if self.posted.contains_key(p) || out.contains(p) {
                continue;
            }
            if self.sent.len() >= PROBLEM_BURST {
                self.waiting.insert(p.clone());
                continue;
            }
            self.waiting.remove(p);
            self.sent.push_back(now);
            self.posted.insert(p.clone(), now);
            out.push(p.clone());
        }
        // What waits and is still a problem.
        self.waiting.retain(|p| now_seen.contains(p));
        (out, self.waiting.len())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

fn mac(key: &[u8], payload: &str) -> Option<Hmac<sha2::Sha256>> {
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(key).ok()?;
    m.update(payload.as_bytes());
    Some(m)
}

fn sign(key: &[u8], payload: &str) -> String {
    mac(key, payload)
        .map(|m| hex::encode(m.finalize().into_bytes()))
        .unwrap_or_default()
}

fn verify(key: &[u8], payload: &str, sig: &str) -> bool {
    let Ok(sig) = hex::decode(sig) else {
        return false;
    };
    mac(key, payload).is_some_and(|m| m.verify_slice(&sig).is_ok())
}

fn is_fingerprint(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The actions a button can ask for.
const ACTIONS: [&str; 3] = ["show", "approve", "dismiss"];

impl Alerts {
    /// `token`: the Mattermost token; the key is derived from it (HMAC-SHA256 of a label).
    pub fn new(token: &str) -> Alerts {
        let key = mac(token.as_bytes(), "mattersync alerts v1")
            .map(|m| m.finalize().into_bytes().to_vec())
            .unwrap_or_default();
        Alerts {
            key,
            channel_id: Mutex::new(None),
            open: Mutex::new(BTreeMap::new()),
            problems: Mutex::new(Problems::default()),
            quiet_until: Mutex::new(None),
        }
    }

    /// A button's context: the action, the fingerprint and their signature.
    pub fn context(&self, action: &str, fingerprint: &str) -> Value {
        json!({
            "action": action,
            "fingerprint": fingerprint,
            "mac": sign(&self.key, &format!("v1.action.{action}.{fingerprint}")),
        })
    }

    /// `(action, fingerprint)` of a context this service signed.
    pub fn open_context(&self, ctx: &Value) -> Option<(&'static str, String)> {
        let action = ctx.get("action")?.as_str()?;
        let fp = ctx.get("fingerprint")?.as_str()?;
        let sig = ctx.get("mac")?.as_str()?;
        let action = ACTIONS.into_iter().find(|a| *a == action)?;
        (is_fingerprint(fp) && verify(&self.key, &format!("v1.action.{action}.{fp}"), sig))
            .then(|| (action, fp.to_string()))
    }

    /// A confirmation dialog's state: the fingerprint, the user it was opened for, expiry.
    pub fn seal(&self, fingerprint: &str, user_id: &str, expires: u64) -> String {
        let payload = format!("v1.approve.{fingerprint}.{user_id}.{expires}");
        let sig = sign(&self.key, &payload);
        format!("{payload}.{sig}")
    }

    /// `(fingerprint, user id, expires)` of a state this service sealed.
    pub fn unseal(&self, state: &str) -> Option<(String, String, u64)> {
        let (payload, sig) = state.rsplit_once('.')?;
        if !verify(&self.key, payload, sig) {
            return None;
        }
        let parts: Vec<&str> = payload.split('.').collect();
        let ["v1", "approve", fp, user, expires] = parts.as_slice() else {
            return None;
        };
        Some((fp.to_string(), user.to_string(), expires.parse().ok()?))
    }
}

/// Where Mattermost calls back: `serve.slash_command_url`'s base, or the listen address.
fn base_url(shared: &Shared) -> String {
    match &shared.cfg.serve.slash_command_url {
        Some(url) => url
            .trim_end_matches('/')
            .trim_end_matches("/slash")
            .to_string(),
        None => format!("http://{}", shared.settings.listen),
    }
}

/// Whether the person may approve or dismiss: a listed approver, or (no list) a system
/// admin; never a bot or a deactivated account.
fn may_approve(approvers: &[String], caller: &Caller) -> bool {
    if caller.bot || caller.inactive {
        return false;
    }
    if approvers.is_empty() {
        caller.system_admin
    } else {
        approvers.iter().any(|a| a == &caller.username)
    }
}

/// The alert's text: what is held and why, names escaped.
fn message(h: &super::state::Hold) -> String {
    let s = &h.summary;
    let mut out = format!(
        "#### :warning: mattersync holds {} changes: {} additions, {} removals{}\nNothing was changed. Since {}.\n",
        s.held_changes(),
        s.additions,
        s.removals,
        if s.role_changes > 0 {
            format!(", {} admin role changes", s.role_changes)
        } else {
            String::new()
        },
        md(&h.since),
    );
    for w in &s.why {
        out.push_str(&format!("- guard: {}\n", md(w)));
    }
    for c in &s.causes {
        out.push_str(&format!(
            "- cause: directory group **{}** (+{} −{})\n",
            md(&c.group),
            c.additions,
            c.removals
        ));
    }
    for sc in &s.scopes {
        out.push_str(&format!(
            "- {} **{}**: +{} −{}\n",
            md(&sc.kind),
            md(&sc.scope),
            sc.additions,
            sc.removals
        ));
    }
    out.push_str(&format!("Fingerprint {}", code(&s.fingerprint)));
    out
}

fn show_text(h: &super::state::Hold) -> String {
    let s = &h.summary;
    let mut out = message(h);
    out.push_str("\n\n");
    for c in s.changes.iter().take(SHOW_CHANGES) {
        let sign = match c.change.as_str() {
            "add" => "+",
            "remove" => "−",
            other => other,
        };
        out.push_str(&format!(
            "- {sign} {} in {}\n",
            mention(&c.username),
            md(&c.scope)
        ));
    }
    if s.changes_total > SHOW_CHANGES.min(s.changes.len()) {
        out.push_str(&format!(
            "… and {} more (GET /holds, the status page)\n",
            s.changes_total - SHOW_CHANGES.min(s.changes.len())
        ));
    }
    out
}

/// The buttons of a hold's message.
fn buttons(shared: &Shared, fp: &str) -> Value {
    let url = format!("{}/alerts/action", base_url(shared));
    let action = |id: &str, name: &str, style: &str| {
        json!({"id": id, "name": name, "style": style, "type": "button",
               "integration": {"url": url, "context": shared.alerts.context(id, fp)}})
    };
    json!({"attachments": [{
        "fallback": "mattersync holds changes",
        "actions": [
            action("show", "Show", "default"),
            action("approve", "Approve", "primary"),
            action("dismiss", "Dismiss", "danger"),
        ],
    }]})
}

/// The message closed: its text, and a last line; no buttons.
async fn close(shared: &Shared, fp: &str, post_id: &str, first: &str, last: &str) {
    let text = format!("{first}\n{last}");
    if let Err(e) = shared.mm.patch_post(post_id, &text, &json!({})).await {
        warn!(error = %Clean(&e.to_string()), fingerprint = fp, "alerts: cannot update the message");
    }
}

async fn channel_id(shared: &Shared) -> Option<String> {
    if let Some(id) = lock(&shared.alerts.channel_id).clone() {
        return Some(id);
    }
    let spec = shared.cfg.serve.alerts_channel.as_deref()?;
    let (team, channel) = spec.split_once('/')?;
    match shared.mm.channel_by_name(team, channel).await {
        Ok(Some(c)) if !c.archived => {
            *lock(&shared.alerts.channel_id) = Some(c.id.clone());
            Some(c.id)
        }
        Ok(_) => {
            warn!(channel = %Clean(spec), "alerts: serve.alerts_channel does not exist (or is archived)");
            quiet(shared);
            None
        }
        Err(e) => {
            warn!(error = %Clean(&e.to_string()), "alerts: cannot look serve.alerts_channel up");
            quiet(shared);
            None
        }
    }
}

fn cursor(fp: &str) -> String {
    format!("alert:{fp}")
}

/// A closed message is forgotten: the same set held again later is a new hold, with a
/// message of its own.
async fn forget(shared: &Shared, fp: &str) {
    if let Err(e) = shared.ledger.lock().await.set_cursor(&cursor(fp), None) {
        warn!(error = %e, "alerts: cannot forget a closed alert in the ledger");
    }
}

/// The alert task: posts a message for a new hold, and closes the message of a hold that
/// is no longer held. Does nothing on a standby, or without `serve.alerts_channel`.
pub async fn run(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    if shared.cfg.serve.alerts_channel.is_none() {
        return;
    }
    loop {
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            r = stop.changed() => if r.is_err() || *stop.borrow() { return },
        }
        tick(&shared).await;
    }
}

/// Failures during apply and broken links, as the status has them now: `kind: text`.
fn problems_now(s: &super::state::Status) -> Vec<String> {
    let mut out: Vec<String> = s
        .link_issues
        .iter()
        .filter(|i| i.broken())
        .map(|i| format!("broken link: {i}"))
        .collect();
    if let Some(c) = s.failed.as_ref().filter(|c| c.outcome == Outcome::Partial) {
        for f in c.error.as_deref().unwrap_or_default().split("; ") {
            if !f.trim().is_empty() {
                out.push(format!("failed during apply: {}", f.trim()));
            }
        }
    }
    out
}

/// Posts the problems that are due (`serve.alerts_problems`).
async fn post_problems(shared: &Arc<Shared>) {
    if !shared.cfg.serve.alerts_problems {
        return;
    }
    let seen = shared.read_status(problems_now);
    if seen.is_empty() {
        return;
    }
    let interval = mattersync_engine::config::humantime(&shared.cfg.serve.alerts_problem_interval)
        .unwrap_or(Duration::from_secs(3600));
    let (due, held_back) = lock(&shared.alerts.problems).due(&seen, interval, Instant::now());
    if due.is_empty() {
        return;
    }
    let Some(channel) = channel_id(shared).await else {
        return;
    };
    for (i, p) in due.iter().enumerate() {
        let (kind, text) = p.split_once(": ").unwrap_or(("problem", p));
        let mut message = format!(":rotating_light: **mattersync: {kind}**: {}", md(text));
        if i + 1 == due.len() && held_back > 0 {
            message.push_str(&format!(
                "\n({held_back} other problems are not posted yet: at most {PROBLEM_BURST} messages per serve.alerts_problem_interval; the status page lists them)"
            ));
        }
        match shared.mm.create_post(&channel, &message, &json!({})).await {
            Ok(id) => info!(post_id = %id, problem = %Clean(p), "alerts: problem posted"),
            Err(e) => {
                warn!(error = %Clean(&e.to_string()), "alerts: cannot post a problem");
                // Not posted: tried again once the quiet minute is over.
                let mut log = lock(&shared.alerts.problems);
                for q in &due[i..] {
                    log.posted.remove(q);
                }
                drop(log);
                quiet(shared);
                return;
            }
        }
    }
}

/// Nothing is posted for a while (see [`QUIET`]).
fn quiet(shared: &Shared) {
    *lock(&shared.alerts.quiet_until) = Some(Instant::now() + QUIET);
}

async fn tick(shared: &Arc<Shared>) {
    if lock(&shared.alerts.quiet_until).is_some_and(|t| Instant::now() < t) {
        return;
    }
    if !shared.read_status(|s| matches!(s.role, Role::Standby { .. })) {
        post_problems(shared).await;
    }
    let (standby, hold, last_approved) = shared.read_status(|s| {
        (
            matches!(s.role, Role::Standby { .. }),
            s.hold.clone(),
            s.cycles
                .front()
                .filter(|c| c.approved)
                .and_then(|c| c.run_id.clone()),
        )
    });
    if standby {
        return;
    }
    let current = hold.as_ref().map(|h| h.summary.fingerprint.clone());
    // What is no longer held: closed, saying how.
    let gone: Vec<(String, Posted)> = lock(&shared.alerts.open)
        .iter()
        .filter(|(fp, _)| Some(*fp) != current.as_ref())
        .map(|(fp, p)| (fp.clone(), p.clone()))
        .collect();
    for (fp, p) in gone {
        lock(&shared.alerts.open).remove(&fp);
        let last = match (&last_approved, &current) {
            (Some(run), None) => format!("**Approved** and applied (run {})", code(run)),
            (_, Some(_)) => "**No longer held as it was**: what is held changed (a new message follows); nothing was applied for this set.".to_string(),
            (None, None) => "**Cleared**: no longer held (the directory changed it back); nothing was applied for it.".to_string(),
        };
        let first = match &p.dismissed_by {
            Some(who) => format!(
                "mattersync held changes (fingerprint {}), dismissed by {}.",
                code(&fp),
                mention(who)
            ),
            None => format!("mattersync held changes (fingerprint {}).", code(&fp)),
        };
        close(shared, &fp, &p.post_id, &first, &last).await;
        forget(shared, &fp).await;
        info!(fingerprint = %fp, "alerts: message closed");
    }
    let Some(h) = hold else {
        return;
    };
    let fp = h.summary.fingerprint.clone();
    if lock(&shared.alerts.open).contains_key(&fp) {
        return;
    }
    // Posted before (another instance, or before a restart): taken up, not posted again.
    let known = shared.ledger.lock().await.cursor(&cursor(&fp));
    match known {
        Ok(Some(id)) => {
            let post_id = String::from_utf8_lossy(&id).into_owned();
            lock(&shared.alerts.open).insert(
                fp,
                Posted {
                    post_id,
                    dismissed_by: None,
                },
            );
            return;
        }
        Ok(None) => {}
        Err(e) => {
            warn!(error = %e, "alerts: cannot read the ledger; nothing posted");
            return;
        }
    }
    let Some(channel) = channel_id(shared).await else {
        return;
    };
    match shared
        .mm
        .create_post(&channel, &message(&h), &buttons(shared, &fp))
        .await
    {
        Ok(post_id) => {
            info!(fingerprint = %fp, post_id = %post_id, "alerts: hold posted");
            if let Err(e) = shared
                .ledger
                .lock()
                .await
                .set_cursor(&cursor(&fp), Some(post_id.as_bytes()))
            {
                warn!(error = %e, "alerts: cannot record the posted alert in the ledger");
            }
            lock(&shared.alerts.open).insert(
                fp,
                Posted {
                    post_id,
                    dismissed_by: None,
                },
            );
        }
        Err(e) => {
            warn!(error = %Clean(&e.to_string()), "alerts: cannot post the hold; tried again in a minute");
            quiet(shared);
        }
    }
}

/// What Mattermost posts when a button is pressed (unknown fields ignored).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Press {
    pub user_id: String,
    pub channel_id: String,
    pub post_id: String,
    pub trigger_id: String,
    pub context: Value,
}

fn ephemeral(text: &str) -> Response {
    Json(json!({"ephemeral_text": text})).into_response()
}

/// The caller, looked up by id, if they may approve; else the refusal.
async fn approver(shared: &Shared, user_id: &str) -> Result<Caller, String> {
    match shared.mm.caller(user_id).await {
        Ok(Some(c)) if may_approve(&shared.cfg.serve.approvers, &c) => Ok(c),
        Ok(Some(c)) => {
            warn!(user = %Clean(&c.username), "alerts: a non-approver pressed a button; refused");
            Err(format!(
                "Only {} may approve or dismiss what mattersync holds; nothing was changed.",
                if shared.cfg.serve.approvers.is_empty() {
                    "system admins".to_string()
                } else {
                    "the approvers of serve.approvers".to_string()
                }
            ))
        }
        Ok(None) => Err("Unknown user; nothing was changed.".to_string()),
        Err(e) => {
            warn!(error = %Clean(&e.to_string()), "alerts: cannot look the user up");
            Err("mattersync cannot look you up in Mattermost now; nothing was changed.".to_string())
        }
    }
}

fn now() -> u64 {
    super::state::unix_now()
}

/// `POST /alerts/action`: a button of an alert was pressed.
pub async fn action(State(shared): State<Arc<Shared>>, Json(p): Json<Press>) -> Response {
    let Some((action, fp)) = shared.alerts.open_context(&p.context) else {
        warn!(user_id = %Clean(&p.user_id), "alerts: a button press this service did not sign refused");
        return ephemeral("This button did not come from mattersync; nothing was changed.");
    };
    let hold = shared
        .read_status(|s| s.hold.clone())
        .filter(|h| h.summary.fingerprint == fp);
    if action == "show" {
        return match (&hold, shared.mm.caller(&p.user_id).await) {
            (_, Ok(None)) | (_, Err(_)) => ephemeral("Unknown user."),
            (Some(h), Ok(Some(_))) => ephemeral(&show_text(h)),
            (None, Ok(Some(_))) => ephemeral("This set is no longer held."),
        };
    }
    let caller = match approver(&shared, &p.user_id).await {
        Ok(c) => c,
        Err(why) => return ephemeral(&why),
    };
    let Some(h) = hold else {
        let now = shared.read_status(|s| s.hold.clone());
        return ephemeral(&match now {
            Some(n) => format!(
                "What is held changed; nothing was changed. Held now:\n{}",
                message(&n)
            ),
            None => "Nothing is held now; nothing was changed.".to_string(),
        });
    };
    match action {
        "approve" => {
            if trigger_user(&p.trigger_id).as_deref() != Some(caller.id.as_str()) {
                warn!(user = %Clean(&caller.username), "alerts: an approval with someone else's trigger refused");
                return ephemeral(
                    "Nothing was changed: the request's trigger belongs to someone else.",
                );
            }
            let dialog = json!({
                "callback_id": "mattersync-approve",
                "title": "Approve held changes",
                "introduction_text": format!("{}\n\nApply exactly this set? If what is held changes before you confirm, nothing is applied.", message(&h)),
                "elements": [],
                "submit_label": "Approve",
                "notify_on_cancel": false,
                "state": shared.alerts.seal(&fp, &caller.id, now() + DIALOG_LIFETIME),
            });
            let url = format!("{}/alerts/dialog", base_url(&shared));
            match shared.mm.open_dialog(&p.trigger_id, &url, &dialog).await {
                Ok(()) => Json(json!({})).into_response(),
                Err(e) => {
                    warn!(error = %Clean(&e.to_string()), "alerts: cannot open the dialog");
                    ephemeral("mattersync could not open the confirmation; nothing was changed.")
                }
            }
        }
        _ => {
            // Dismiss: the hold stays; the message says who dismissed it.
            let post_id = {
                let mut open = lock(&shared.alerts.open);
                open.get_mut(&fp).map(|posted| {
                    posted.dismissed_by = Some(caller.username.clone());
                    posted.post_id.clone()
                })
            };
            let post_id = post_id.unwrap_or(p.post_id);
            let text = format!(
                "{}\n**Dismissed** by {}: still held; approve it with `mattersync approve {}` or on the status page's instructions.",
                message(&h),
                mention(&caller.username),
                fp
            );
            if let Err(e) = shared.mm.patch_post(&post_id, &text, &json!({})).await {
                warn!(error = %Clean(&e.to_string()), "alerts: cannot update the message");
            }
            info!(user = %Clean(&caller.username), fingerprint = %fp, "alerts: dismissed");
            ephemeral("Dismissed; the changes stay held.")
        }
    }
}

/// What Mattermost posts when the confirmation is submitted.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Submission {
    pub state: String,
    pub user_id: String,
    pub cancelled: bool,
}

fn error(text: &str) -> Response {
    Json(json!({"error": text})).into_response()
}

/// `POST /alerts/dialog`: the confirmation of an approval.
pub async fn submit(State(shared): State<Arc<Shared>>, Json(s): Json<Submission>) -> Response {
    if s.cancelled {
        return Json(json!({})).into_response();
    }
    let Some((fp, user_id, expires)) = shared.alerts.unseal(&s.state) else {
        return error("This form did not come from mattersync; nothing was changed.");
    };
    if expires < now() {
        return error("This form expired; press Approve again.");
    }
    if user_id != s.user_id {
        warn!(user_id = %Clean(&s.user_id), "alerts: an approval form submitted by someone else; refused");
        return error("This form was opened for someone else. Nothing was changed.");
    }
    let caller = match approver(&shared, &user_id).await {
        Ok(c) => c,
        Err(why) => return error(&why),
    };
    let (tx, rx) = oneshot::channel();
    let req = Request::Approve {
        fingerprint: fp.clone(),
        actor: format!("approval:{}", caller.username),
        reply: Some(tx),
    };
    if shared.requests.send(req).await.is_err() {
        return error("mattersync is stopping; nothing was changed.");
    }
    let report = match tokio::time::timeout(APPROVE_WAIT, rx).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => return error("This instance does not sync now; nothing was changed."),
        // Still running: the message is updated when it ends.
        Err(_) => return Json(json!({})).into_response(),
    };
    match report.outcome {
        Outcome::Ok | Outcome::Partial if report.approved => {
            let posted = lock(&shared.alerts.open).remove(&fp);
            if let Some(p) = posted {
                let first = format!("mattersync held changes (fingerprint {}).", code(&fp));
                let last = format!(
                    "**Approved** by {} and applied{} (run {}).",
                    mention(&caller.username),
                    if report.outcome == Outcome::Partial {
                        ", some changes failed and are retried"
                    } else {
                        ""
                    },
                    code(report.run_id.as_deref().unwrap_or("-"))
                );
                close(&shared, &fp, &p.post_id, &first, &last).await;
                forget(&shared, &fp).await;
            }
            Json(json!({})).into_response()
        }
        Outcome::GuardTripped => {
            let now = shared.read_status(|s| s.hold.clone());
            error(&format!(
                "What is held changed; nothing was applied. Held now: {}",
                now.map(|h| h.summary.text(5))
                    .unwrap_or_else(|| "nothing".to_string())
            ))
        }
        Outcome::Ok | Outcome::NoChanges => {
            error("Nothing is held now (the directory changed it back); nothing was applied.")
        }
        Outcome::DirectoryError | Outcome::MattermostError => error(
            "The held scopes could not be read; the approval is kept and tried again until serve.approval_ttl.",
        ),
        Outcome::Stopped | Outcome::Partial | Outcome::Error => error(&format!(
            "The approval did not go through: {}",
            report.error.as_deref().unwrap_or("see the status page")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approvers_are_the_listed_usernames_or_else_system_admins_never_bots() {
        let who = |username: &str, system_admin: bool, bot: bool| Caller {
            id: "user1user1user1user1user1u".into(),
            username: username.into(),
            system_admin,
            bot,
            inactive: false,
        };
        assert!(may_approve(&[], &who("root", true, false)));
        assert!(!may_approve(&[], &who("neil", false, false)));
        assert!(!may_approve(&[], &who("robot", true, true)));
        let listed = ["neil".to_string()];
        assert!(may_approve(&listed, &who("neil", false, false)));
        assert!(!may_approve(&listed, &who("root", true, false)));
        let gone = Caller {
            inactive: true,
            ..who("neil", false, false)
        };
        assert!(!may_approve(&listed, &gone));
    }

    #[test]
    fn each_problem_is_posted_once_per_interval_and_a_burst_is_capped() {
        let mut p = Problems::default();
        let t0 = Instant::now();
        let hour = Duration::from_secs(3600);
        let a = vec!["broken link: x".to_string()];
        assert_eq!(p.due(&a, hour, t0), (a.clone(), 0));
        assert_eq!(p.due(&a, hour, t0), (vec![], 0));
        let many: Vec<String> = (0..8)
            .map(|i| format!("failed during apply: {i}"))
            .collect();
        let (due, waiting) = p.due(&many, hour, t0);
        assert_eq!((due.len(), waiting), (PROBLEM_BURST - 1, 4));
        // An hour on: the limit and the memory start again.
        let later = t0 + hour;
        assert_eq!(p.due(&a, hour, later).0, a);
        let (due, waiting) = p.due(&many, hour, later);
        assert_eq!((due.len(), waiting), (PROBLEM_BURST - 1, 4));
        // A problem that went away no longer waits.
        assert_eq!(p.due(&many[..1], hour, later), (vec![], 0));
    }

    #[test]
    fn contexts_and_states_open_only_as_signed() {
        let a = Alerts::new("token-a");
        let b = Alerts::new("token-b");
        let fp = "ab".repeat(32);
        let ctx = a.context("approve", &fp);
        assert_eq!(a.open_context(&ctx), Some(("approve", fp.clone())));
        assert_eq!(b.open_context(&ctx), None);
        let mut forged = ctx.clone();
        forged["action"] = json!("dismiss");
        assert_eq!(a.open_context(&forged), None);
        forged = ctx.clone();
        forged["fingerprint"] = json!("cd".repeat(32));
        assert_eq!(a.open_context(&forged), None);
        let state = a.seal(&fp, "user1user1user1user1user1u", 1_900_000_000);
        assert_eq!(
            a.unseal(&state),
            Some((
                fp.clone(),
                "user1user1user1user1user1u".into(),
                1_900_000_000
            ))
        );
        assert_eq!(b.unseal(&state), None);
        assert_eq!(a.unseal(&state.replacen("user1", "user2", 1)), None);
    }
}
