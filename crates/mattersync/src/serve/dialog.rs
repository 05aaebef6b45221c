//! Forms instead of syntax: `/mattersync link` (or `unlink`, `explain`) with nothing after
//! it opens a Mattermost interactive dialog (`POST /actions/dialogs/open` with the trigger
//! id of the invocation). The submission comes back to `POST /slash/dialog` and goes through
//! the same look-ups and the same permission checks as a typed command.
//!
//! A submission carries no token. What vouches for it is the dialog's `state`: the form,
//! the team, channel and user of the invocation that opened it and an expiry, signed
//! (HMAC-SHA256) with that team's command token. A submission is taken only when its state
//! verifies under one team's token, has not expired, and names the same user, channel and
//! team as the submission Mattermost sends (Mattermost fills `user_id` from the session of
//! whoever pressed Submit). The dialog offers only what the permission model allows the
//! person, and the submission is checked again all the same.

use super::escape::Clean;
use super::permission::{self, Ask};
use super::slash::{self, Answer, Command, Ctx};
use super::state::Shared;
use anyhow::Result;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use hmac::{Hmac, Mac};
use mattersync_core::{Admins, Mode, Readd};
use mattersync_mattermost::{is_id, trigger_user};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing::warn;

/// How long a dialog may stay open before its submission is refused.
pub const FORM_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// Most groups a dropdown lists.
const MAX_OPTIONS: usize = 250;

/// Which form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Link,
    Unlink,
    Explain,
    /// A typed command with privileged options, asked again (the command is in the state).
    Confirm,
}

impl Form {
    pub fn name(self) -> &'static str {
        match self {
            Form::Link => "link",
            Form::Unlink => "unlink",
            Form::Explain => "explain",
            Form::Confirm => "confirm",
        }
    }

    fn parse(s: &str) -> Option<Form> {
        match s {
            "link" => Some(Form::Link),
            "unlink" => Some(Form::Unlink),
            "explain" => Some(Form::Explain),
            "confirm" => Some(Form::Confirm),
            _ => None,
        }
    }
}

/// What a dialog's state vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub form: Form,
    pub team_id: String,
    pub channel_id: String,
    pub user_id: String,
    /// Seconds since the epoch.
    pub expires: u64,
    /// The typed command a confirmation runs (empty for the other forms).
    pub text: String,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn mac(key: &str, payload: &str) -> Option<Hmac<sha2::Sha256>> {
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).ok()?;
    m.update(payload.as_bytes());
    Some(m)
}

impl Sealed {
    fn payload(&self) -> String {
        format!(
            "v1.{}.{}.{}.{}.{}.{}",
            self.form.name(),
            self.team_id,
            self.channel_id,
            self.user_id,
            self.expires,
            hex::encode(self.text.as_bytes())
        )
    }

    /// The state string: the fields and their signature under `key` (the team's token).
    pub fn seal(&self, key: &str) -> String {
        let payload = self.payload();
        let sig = mac(key, &payload)
            .map(|m| hex::encode(m.finalize().into_bytes()))
            .unwrap_or_default();
        format!("{payload}.{sig}")
    }

    /// The fields of `state` if its signature verifies under `key` (in constant time).
    pub fn open(key: &str, state: &str) -> Option<Sealed> {
        let (payload, sig) = state.rsplit_once('.')?;
        let sig = hex::decode(sig).ok()?;
        mac(key, payload)?.verify_slice(&sig).ok()?;
        let parts: Vec<&str> = payload.split('.').collect();
        let [v, form, team_id, channel_id, user_id, expires, text] = parts.as_slice() else {
            return None;
        };
        if *v != "v1" || ![team_id, channel_id, user_id].iter().all(|i| is_id(i)) {
            return None;
        }
        Some(Sealed {
            form: Form::parse(form)?,
            team_id: team_id.to_string(),
            channel_id: channel_id.to_string(),
            user_id: user_id.to_string(),
            expires: expires.parse().ok()?,
            text: String::from_utf8(hex::decode(text).ok()?).ok()?,
        })
    }
}

fn option(text: &str, value: &str) -> Value {
    json!({"text": text, "value": value})
}

/// Forms submitted already, until they expire: a form is taken once.
static USED: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());

/// Whether a form's state was submitted (and done) before.
fn used(state: &str) -> bool {
    let mut used = match USED.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    let now = now();
    used.retain(|_, exp| *exp >= now);
    used.contains_key(state)
}

/// Marks a form done: it is not taken again. (A refused submission leaves it open, as
/// Mattermost does: the person corrects it and submits again.)
fn mark_used(state: &str, expires: u64) {
    let mut used = match USED.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    used.insert(state.to_string(), expires);
}

/// `Some(refusal)` unless the trigger id was made for the caller: Mattermost shows a dialog
/// to the user its trigger id names (and checks the trigger's signature), so a form is only
/// ever opened for the person the request names.
fn not_for_caller(ctx: &Ctx, trigger_id: &str) -> Option<Answer> {
    if trigger_user(trigger_id).as_deref() == Some(ctx.caller.id.as_str()) {
        return None;
    }
    warn!(
        user_id = %ctx.caller.id,
        "a form was asked for one person with another person's trigger; refused"
    );
    Some(Answer::Refused(
        "Nothing was changed: the request's trigger belongs to someone else.".to_string(),
    ))
}

/// Asks a typed privileged command again, in a form only its author sees; the command
/// itself travels in the signed state.
pub async fn open_confirm(
    shared: &Arc<Shared>,
    ctx: &Ctx,
    typed: &str,
    what: &str,
    token: &str,
    trigger_id: &str,
    url: &str,
) -> Result<Option<Answer>> {
    if let Some(refusal) = not_for_caller(ctx, trigger_id) {
        return Ok(Some(refusal));
    }
    let sealed = Sealed {
        form: Form::Confirm,
        team_id: ctx.team.id.clone(),
        channel_id: ctx.channel.id.clone(),
        user_id: ctx.caller.id.clone(),
        expires: now() + FORM_LIFETIME.as_secs(),
        text: typed.to_string(),
    };
    let dialog = json!({
        "callback_id": "mattersync-confirm",
        "title": "Confirm",
        "introduction_text": what,
        "elements": [],
        "submit_label": "Confirm",
        "notify_on_cancel": false,
        "state": sealed.seal(token),
    });
    shared.mm.open_dialog(trigger_id, url, &dialog).await?;
    Ok(None)
}

/// Opens the form for `ctx`'s caller: only what the permission model lets them choose.
/// `Ok(None)`: the dialog is open (the slash answer says nothing); `Ok(Some(answer))`: no
/// dialog, this instead.
pub async fn open_form(
    shared: &Arc<Shared>,
    ctx: &Ctx,
    form: Form,
    token: &str,
    trigger_id: &str,
    url: &str,
) -> Result<Option<Answer>> {
    if let Some(refusal) = not_for_caller(ctx, trigger_id) {
        return Ok(Some(refusal));
    }
    let privileged = ctx.roles.privileged(&shared.cfg.serve.slash_privileged);
    let cfg = &shared.cfg;
    let (title, elements) = match form {
        Form::Confirm => {
            return Ok(Some(Answer::Refused(
                "Nothing was changed: nothing to confirm.".to_string(),
            )))
        }
        Form::Link => {
            let ask = Ask::Link {
                in_area: true,
                privileged: false,
            };
            if let Some(why) = slash::refused(shared, ctx, ask) {
                return Ok(Some(Answer::Refused(format!("Not linked: {why}"))));
            }
            let dir = slash::directory(shared).await?;
            let naming = cfg.naming()?;
            let groups: Vec<Value> = dir
                .groups
                .keys()
                .filter(|g| {
                    privileged
                        || naming
                            .parse(g)
                            .is_ok_and(|n| cfg.areas.get(&n.area) == Some(&ctx.team.name))
                })
                .take(MAX_OPTIONS)
                .map(|g| option(g, g))
                .collect();
            if groups.is_empty() {
                return Ok(Some(Answer::Refused(
                    "No directory group of this team's area can be linked here.".to_string(),
                )));
            }
            let mut modes = vec![option("sync", "sync"), option("add", "add")];
            if privileged || cfg.defaults.mode == Mode::Exclusive {
                modes.push(option("exclusive", "exclusive"));
            }
            let mut elements = vec![
                json!({"display_name": "Directory group", "name": "group", "type": "select",
                       "options": groups,
                       "help_text": "Its members follow into this channel (and its team)."}),
                json!({"display_name": "Mode", "name": "mode", "type": "select",
                       "options": modes, "default": cfg.defaults.mode.to_string(),
                       "help_text": "add: never removes; sync: removes those mattersync added once they leave the group; exclusive: removes anyone not in a linked group."}),
            ];
            if privileged {
                elements.push(json!({"display_name": "Channel admins", "name": "admins",
                    "type": "text", "default": cfg.defaults.admins.to_string(),
                    "help_text": "none, managers, or group:<name>"}));
                elements.push(
                    json!({"display_name": "Re-add those who leave", "name": "readd",
                    "type": "select", "default": cfg.defaults.readd.to_string(),
                    "options": [option("never", "never"), option("always", "always")]}),
                );
            }
            ("Link a directory group", elements)
        }
        Form::Unlink => {
            if let Some(why) = slash::refused(shared, ctx, Ask::Unlink { privileged: false }) {
                return Ok(Some(Answer::Refused(format!("Not unlinked: {why}"))));
            }
            let here: Vec<Value> = slash::ledger_links_here(&*shared.ledger.lock().await, ctx)?
                .into_iter()
                .filter(|l| privileged || !permission::privileged_link(l, &cfg.defaults))
                .take(MAX_OPTIONS)
                .map(|l| option(&l.group, &l.group))
                .collect();
            if here.is_empty() {
                return Ok(Some(Answer::Refused(
                    "No link made with `/mattersync link` here that you may remove.".to_string(),
                )));
            }
            (
                "Unlink a directory group",
                vec![
                    json!({"display_name": "Directory group", "name": "group", "type": "select",
                    "options": here,
                    "help_text": "mattersync stops following it here; nobody is removed."}),
                ],
            )
        }
        Form::Explain => (
            "Why is someone (not) here?",
            vec![
                json!({"display_name": "User", "name": "user", "type": "text",
                "default": ctx.caller.username,
                "help_text": "Only admins may ask about someone else."}),
            ],
        ),
    };
    let sealed = Sealed {
        form,
        team_id: ctx.team.id.clone(),
        channel_id: ctx.channel.id.clone(),
        user_id: ctx.caller.id.clone(),
        expires: now() + FORM_LIFETIME.as_secs(),
        text: String::new(),
    };
    let dialog = json!({
        "callback_id": format!("mattersync-{}", form.name()),
        "title": title,
        "elements": elements,
        "submit_label": match form { Form::Link => "Link", Form::Unlink => "Unlink", Form::Explain | Form::Confirm => "Explain" },
        "notify_on_cancel": false,
        "state": sealed.seal(token),
    });
    shared.mm.open_dialog(trigger_id, url, &dialog).await?;
    Ok(None)
}

/// What Mattermost posts when a dialog is submitted (unknown fields ignored).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Submission {
    pub state: String,
    pub user_id: String,
    pub channel_id: String,
    pub team_id: String,
    pub cancelled: bool,
    pub submission: BTreeMap<String, Value>,
}

/// A refusal shown in the dialog. Always HTTP 200: Mattermost shows the `error` of a 200
/// answer to the person, and turns any other status into "Action integration error".
fn error(text: &str) -> Response {
    Json(json!({"error": text})).into_response()
}

fn field<'a>(s: &'a Submission, name: &str) -> Option<&'a str> {
    s.submission
        .get(name)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The command a submission asks for, or the field that is wrong.
fn command(form: Form, s: &Submission) -> Result<Command, (&'static str, String)> {
    let need = |name: &'static str| {
        field(s, name)
            .map(str::to_string)
            .ok_or((name, "required".to_string()))
    };
    Ok(match form {
        Form::Link => Command::Link {
            group: need("group")?,
            mode: field(s, "mode")
                .map(|v| v.parse::<Mode>().map_err(|e| ("mode", e)))
                .transpose()?,
            admins: field(s, "admins")
                .map(|v| v.parse::<Admins>().map_err(|e| ("admins", e)))
                .transpose()?,
            readd: field(s, "readd")
                .map(|v| v.parse::<Readd>().map_err(|e| ("readd", e)))
                .transpose()?,
        },
        Form::Unlink => Command::Unlink {
            group: need("group")?,
        },
        Form::Explain => Command::Explain {
            user: need("user")?.trim_start_matches('@').to_string(),
        },
        Form::Confirm => return Err(("", "nothing to confirm".to_string())),
    })
}

/// `POST /slash/dialog`.
pub async fn submit(State(shared): State<Arc<Shared>>, Json(s): Json<Submission>) -> Response {
    if s.cancelled {
        return Json(json!({})).into_response();
    }
    let mut found = None;
    for (team, file) in shared.cfg.slash_token_files() {
        if !file.exists() {
            continue;
        }
        let Ok(Some(token)) = mattersync_engine::config::secret("", Some(&file), "slash token")
        else {
            continue;
        };
        if let Some(sealed) = Sealed::open(&token, &s.state) {
            found = Some((team, sealed));
        }
    }
    let Some((team, sealed)) = found else {
        shared.metrics.slash_command("form", "bad_token");
        warn!(user_id = %Clean(&s.user_id), "dialog submission with a state this service did not sign refused");
        return error("This form did not come from mattersync (or its command token was rotated); type the command again.",
        );
    };
    if sealed.expires < now() {
        return error("This form expired; type the command again.");
    }
    if sealed.user_id != s.user_id
        || sealed.channel_id != s.channel_id
        || sealed.team_id != s.team_id
    {
        shared.metrics.slash_command(sealed.form.name(), "refused");
        warn!(
            user_id = %Clean(&s.user_id),
            form_user_id = %Clean(&sealed.user_id),
            "dialog submitted by someone other than the person it was opened for, or elsewhere; refused"
        );
        return error(
            "This form was opened for someone else or another channel. Nothing was changed.",
        );
    }
    if used(&s.state) {
        shared.metrics.slash_command(sealed.form.name(), "refused");
        return error("This form was submitted already; type the command again.");
    }
    let parsed = match sealed.form {
        Form::Confirm => slash::parse(&sealed.text).map_err(|e| ("", e)),
        form => command(form, &s),
    };
    let command = match parsed {
        Ok(c) => c,
        Err(("", why)) => return error(&super::escape::md(&why)),
        Err((name, why)) => {
            return Json(json!({"errors": {name: super::escape::md(&why)}})).into_response()
        }
    };
    let ctx = match Ctx::resolve(
        &shared,
        &team,
        &sealed.team_id,
        &sealed.channel_id,
        &sealed.user_id,
    )
    .await
    {
        Ok(Ok(ctx)) => ctx,
        Ok(Err(refusal)) => {
            shared.metrics.slash_command(command.name(), "refused");
            return error(&format!("{refusal} Nothing was changed."));
        }
        Err(e) => {
            shared.metrics.slash_command(command.name(), "error");
            warn!(error = %Clean(&format!("{e:#}")), "dialog: cannot look the caller up");
            return error(&format!("Nothing was changed: {}", slash::short_error(&e)));
        }
    };
    match slash::answer_text(&shared, &ctx, &command, slash::Via::Form).await {
        Answer::Refused(text) | Answer::Confirm(text) => error(&text),
        Answer::Done(text) => {
            mark_used(&s.state, sealed.expires);
            if let Err(e) = shared
                .mm
                .post_ephemeral(&ctx.caller.id, &ctx.channel.id, &text)
                .await
            {
                warn!(error = %Clean(&e.to_string()), "dialog: cannot post the answer");
            }
            Json(json!({})).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEAM: &str = "team1team1team1team1team1t";
    const CHANNEL: &str = "chan1chan1chan1chan1chan1c";
    const USER: &str = "user1user1user1user1user1u";

    fn sealed() -> Sealed {
        Sealed {
            form: Form::Confirm,
            team_id: TEAM.into(),
            channel_id: CHANNEL.into(),
            user_id: USER.into(),
            expires: 1_900_000_000,
            text: "link mm_rl_infra mode=exclusive".into(),
        }
    }

    #[test]
    fn a_state_opens_only_with_the_key_it_was_sealed_with_and_unaltered() {
        let s = sealed().seal("token-a");
        assert_eq!(Sealed::open("token-a", &s), Some(sealed()));
        assert_eq!(Sealed::open("token-b", &s), None);
        // Any field changed: the signature no longer matches.
        let text_hex = hex::encode("link mm_rl_infra mode=exclusive");
        let other_hex = hex::encode("link mm_rl_infra mode=add");
        for (from, to) in [
            ("user1", "user2"),
            ("chan1", "chan2"),
            (".confirm.", ".link."),
            ("1900000000", "1999999999"),
            (text_hex.as_str(), other_hex.as_str()),
        ] {
            let forged = s.replacen(from, to, 1);
            assert_ne!(forged, s);
            assert_eq!(Sealed::open("token-a", &forged), None, "{forged}");
        }
        assert_eq!(Sealed::open("token-a", ""), None);
        assert_eq!(Sealed::open("token-a", "v1.link.t.c.u.1..zz"), None);
        // Ids that are not ids never come out, even signed.
        let odd = Sealed {
            user_id: "me".into(),
            ..sealed()
        };
        assert_eq!(Sealed::open("token-a", &odd.seal("token-a")), None);
    }

    #[test]
    fn submissions_become_the_typed_commands() {
        let sub = |pairs: &[(&str, &str)]| Submission {
            submission: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
                .collect(),
            ..Default::default()
        };
        assert_eq!(
            command(
                Form::Link,
                &sub(&[("group", "mm_rl_infra"), ("mode", "add")])
            ),
            Ok(Command::Link {
                group: "mm_rl_infra".into(),
                mode: Some(Mode::Add),
                admins: None,
                readd: None
            })
        );
        assert_eq!(
            command(Form::Explain, &sub(&[("user", " @neil ")])),
            Ok(Command::Explain {
                user: "neil".into()
            })
        );
        assert_eq!(
            command(Form::Unlink, &sub(&[])).map_err(|e| e.0),
            Err("group")
        );
        assert_eq!(
            command(Form::Link, &sub(&[("group", "g"), ("mode", "mirror")])).map_err(|e| e.0),
            Err("mode")
        );
    }
}
