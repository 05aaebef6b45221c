//! The endpoint of a Mattermost custom slash command (`/mattersync …` typed in a channel):
//! `link <group>`, `unlink <group>`, `status`, `explain @user`, `help`.
//!
//! Mattermost POSTs the command as a form with the verification token of the team's command.
//! Each team has its own token, compared in constant time; the team an invocation acts in is
//! the token's, and the channel and the user are looked up by the ids Mattermost sent,
//! never by the names in the form. What each role may do is `permission.rs`. Answers are
//! ephemeral (only the person who typed sees them) and say what the change will do before
//! the worker does it.
//!
//! This module knows the one Mattermost wire shape the REST adapter does not cover: the
//! slash-command request and response (Mattermost calls us). "Is this a system admin?"
//! goes through the Mattermost client like every other call.

use super::dialog::{self, Form};
use super::escape::{code, md, mention, Clean};
use super::permission::{self, Ask, Roles};
use super::state::{Request, Shared};
use super::worker::read_directory;
use crate::output;
use anyhow::Result;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use mattersync_core::scope;
use mattersync_core::{
    Action, Admins, Directory, Link, LinkSource, Mode, Note, Plan, Readd, Target,
};
use mattersync_engine::{self as engine, config, LedgerView};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::sync::Arc;
use subtle::ConstantTimeEq;
use tracing::{info, warn};

/// Constant-time string comparison (for tokens).
pub fn same_secret(given: &str, expected: &str) -> bool {
    given.as_bytes().ct_eq(expected.as_bytes()).into()
}

/// A parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Link {
        group: String,
        mode: Option<Mode>,
        admins: Option<Admins>,
        readd: Option<Readd>,
    },
    Unlink {
        group: String,
    },
    Status,
    Explain {
        user: String,
    },
    Help,
    /// `link`, `unlink` or `explain` with nothing after it: open the form.
    Form(Form),
}

impl Command {
    pub fn name(&self) -> &'static str {
        match self {
            Command::Link { .. } => "link",
            Command::Unlink { .. } => "unlink",
            Command::Status => "status",
            Command::Explain { .. } => "explain",
            Command::Help => "help",
            Command::Form(_) => "form",
        }
    }
}

pub const USAGE: &str = "Usage (in the channel to change):\n\
* `/mattersync link <group> [mode=add|sync|exclusive] [admins=none|managers|group:<name>] [readd=never|always]` — members of the directory group follow into this channel\n\
* `/mattersync unlink <group>` — stop following the group here\n\
* `/mattersync status` — the links of this channel and the last sync\n\
* `/mattersync explain @user` — why someone is (not) in this channel\n\
`link`, `unlink` or `explain` alone opens a form. Linking and unlinking is for channel admins, team admins and system admins; see the README for who may do what.";

/// Parses the text after the trigger word.
pub fn parse(text: &str) -> Result<Command, String> {
    let mut words = text.split_whitespace();
    let Some(verb) = words.next() else {
        return Ok(Command::Help);
    };
    let rest: Vec<&str> = words.collect();
    match verb.to_ascii_lowercase().as_str() {
        "help" => Ok(Command::Help),
        "status" if rest.is_empty() => Ok(Command::Status),
        "status" => Err("`status` takes no arguments".to_string()),
        "link" | "unlink" | "explain" if rest.is_empty() => {
            Ok(Command::Form(match verb.to_ascii_lowercase().as_str() {
                "link" => Form::Link,
                "unlink" => Form::Unlink,
                _ => Form::Explain,
            }))
        }
        "explain" => match rest.as_slice() {
            [user] => {
                let user = user.trim_start_matches('@');
                if user.is_empty() {
                    Err("`explain` needs a user: `/mattersync explain @user`".to_string())
                } else {
                    Ok(Command::Explain {
                        user: user.to_string(),
                    })
                }
            }
            _ => Err("`explain` needs one user: `/mattersync explain @user`".to_string()),
        },
        "unlink" => match rest.as_slice() {
            [group] => Ok(Command::Unlink {
                group: group.to_string(),
            }),
            _ => Err("`unlink` needs one group: `/mattersync unlink <group>`".to_string()),
        },
        "link" => {
            let Some((group, options)) = rest.split_first() else {
                return Err("`link` needs a group: `/mattersync link <group>`".to_string());
            };
            let (mut mode, mut admins, mut readd) = (None, None, None);
            for o in options {
                let (key, value) = o
                    .trim_start_matches("--")
                    .split_once('=')
                    .ok_or_else(|| format!("{}: options are key=value, e.g. mode=add", code(o)))?;
                match key {
                    "mode" => mode = Some(value.parse::<Mode>().map_err(|e| md(&e))?),
                    "admins" => admins = Some(value.parse::<Admins>().map_err(|e| md(&e))?),
                    "readd" => readd = Some(value.parse::<Readd>().map_err(|e| md(&e))?),
                    _ => {
                        return Err(format!(
                            "unknown option {}: use mode, admins or readd",
                            code(key)
                        ))
                    }
                }
            }
            Ok(Command::Link {
                group: group.to_string(),
                mode,
                admins,
                readd,
            })
        }
        other => Err(format!("unknown command {}", code(other))),
    }
}

/// The form Mattermost posts (unknown fields are ignored). Only `token`, `team_id`,
/// `channel_id`, `user_id`, `trigger_id` and `text` are used: `team_domain`,
/// `channel_name` and `user_name` are names anyone holding a token could write anything
/// into, so the team, channel and user are looked up by id instead.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SlashRequest {
    pub token: String,
    pub team_id: String,
    pub team_domain: String,
    pub channel_id: String,
    pub channel_name: String,
    pub user_id: String,
    pub user_name: String,
    pub trigger_id: String,
    pub text: String,
}

fn ephemeral(text: impl Into<String>) -> Response {
    Json(serde_json::json!({
        "response_type": "ephemeral",
        "text": text.into(),
    }))
    .into_response()
}

/// Which team's command `given` is the token of: each team of `[areas]` has its own
/// (`serve.slash_command_token_dir/<team>.token`). Every file is compared (in constant
/// time), so the answer's timing does not tell which team's token was close.
fn token_team(shared: &Shared, given: &str) -> Result<String, (StatusCode, &'static str)> {
    let files = shared.cfg.slash_token_files();
    if files.is_empty() {
        return Err((
            StatusCode::NOT_FOUND,
            "the slash command is not enabled: set serve.slash_command_token_dir",
        ));
    }
    let mut found = None;
    let mut unreadable = 0;
    for (team, file) in &files {
        if !file.exists() {
            continue;
        }
        match config::secret(
            "",
            Some(file),
            &format!("slash command token of team {team}"),
        ) {
            Ok(Some(expected)) => {
                if same_secret(given, &expected) && !given.is_empty() {
                    found = Some(team.clone());
                }
            }
            Ok(None) => {}
            Err(e) => {
                unreadable += 1;
                warn!(error = %Clean(&format!("{e:#}")), "cannot read a slash command token");
            }
        }
    }
    match found {
        Some(team) => Ok(team),
        None if unreadable > 0 => Err((
            StatusCode::SERVICE_UNAVAILABLE,
            "a slash command token is unreadable; see the service log",
        )),
        None => Err((StatusCode::UNAUTHORIZED, "wrong slash command token")),
    }
}

pub async fn handle(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    axum::extract::Form(req): axum::extract::Form<SlashRequest>,
) -> Response {
    let team = match token_team(&shared, &req.token) {
        Ok(t) => t,
        Err(resp) => {
            shared.metrics.slash_command("unknown", "bad_token");
            warn!(claimed_user = %Clean(&req.user_name), "slash command with a wrong token refused");
            return resp.into_response();
        }
    };
    let command = match parse(&req.text) {
        Ok(c) => c,
        Err(e) => {
            shared.metrics.slash_command("invalid", "bad_request");
            return ephemeral(format!("{e}.\n{USAGE}"));
        }
    };
    if command == Command::Help {
        shared.metrics.slash_command("help", "ok");
        return ephemeral(USAGE);
    }
    if let super::state::Role::Standby { leader, .. } = shared.read_status(|s| s.role.clone()) {
        shared.metrics.slash_command(command.name(), "refused");
        return ephemeral(format!(
            "This mattersync instance is a standby (the leader is {}); nothing was changed. Point the command at the leader (a load balancer that checks /readyz does).",
            code(&leader)
        ));
    }
    let ctx = match Ctx::resolve(&shared, &team, &req.team_id, &req.channel_id, &req.user_id).await
    {
        Ok(Ok(ctx)) => ctx,
        Ok(Err(refusal)) => {
            shared.metrics.slash_command(command.name(), "refused");
            warn!(
                team = %team,
                claimed_user = %Clean(&req.user_name),
                user_id = %Clean(&req.user_id),
                channel_id = %Clean(&req.channel_id),
                command = command.name(),
                refusal = %refusal,
                "slash command refused before it ran"
            );
            return ephemeral(format!("{refusal} Nothing was changed."));
        }
        Err(e) => {
            shared.metrics.slash_command(command.name(), "error");
            warn!(command = command.name(), error = %Clean(&format!("{e:#}")), "slash command: cannot look the caller up");
            return ephemeral(format!("Nothing was changed: {}", short_error(&e)));
        }
    };
    if let Command::Form(form) = command {
        if req.trigger_id.is_empty() {
            return ephemeral(format!(
                "`{}` needs more: see the usage.\n{USAGE}",
                form.name()
            ));
        }
        let url = dialog_url(&shared, &headers);
        return match dialog::open_form(&shared, &ctx, form, &req.token, &req.trigger_id, &url).await
        {
            Ok(None) => {
                shared.metrics.slash_command("form", "ok");
                Json(serde_json::json!({})).into_response()
            }
            Ok(Some(Answer::Refused(t) | Answer::Confirm(t))) => {
                shared.metrics.slash_command("form", "refused");
                ephemeral(t)
            }
            Ok(Some(Answer::Done(t))) => ephemeral(t),
            Err(e) => {
                shared.metrics.slash_command("form", "error");
                warn!(error = %Clean(&format!("{e:#}")), "slash command: cannot open the form");
                ephemeral(format!("Could not open the form: {}", short_error(&e)))
            }
        };
    }
    match answer_text(&shared, &ctx, &command, Via::Typed).await {
        Answer::Done(t) | Answer::Refused(t) => ephemeral(t),
        Answer::Confirm(what) => {
            if req.trigger_id.is_empty() {
                return ephemeral("Nothing was changed: this needs a confirmation form, and the request has no trigger id.");
            }
            let url = dialog_url(&shared, &headers);
            match dialog::open_confirm(
                &shared,
                &ctx,
                &req.text,
                &what,
                &req.token,
                &req.trigger_id,
                &url,
            )
            .await
            {
                Ok(None) => {
                    shared.metrics.slash_command(command.name(), "confirm");
                    Json(serde_json::json!({})).into_response()
                }
                Ok(Some(Answer::Refused(t) | Answer::Done(t) | Answer::Confirm(t))) => {
                    shared.metrics.slash_command(command.name(), "refused");
                    ephemeral(t)
                }
                Err(e) => {
                    shared.metrics.slash_command(command.name(), "error");
                    warn!(error = %Clean(&format!("{e:#}")), "slash command: cannot open the confirmation");
                    ephemeral(format!(
                        "Nothing was changed: could not open the confirmation ({})",
                        short_error(&e)
                    ))
                }
            }
        }
    }
}

/// Where Mattermost posts a dialog's submission: `serve.slash_command_url` + `/dialog`, or
/// else this request's own host (fine on loopback; behind a proxy, set the URL).
fn dialog_url(shared: &Shared, headers: &HeaderMap) -> String {
    match &shared.cfg.serve.slash_command_url {
        Some(url) => format!("{}/dialog", url.trim_end_matches('/')),
        None => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .filter(|h| {
                    h.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b".:-[]".contains(&b))
                })
                .unwrap_or("127.0.0.1");
            format!("http://{host}/slash/dialog")
        }
    }
}

/// Runs a command for a resolved caller (typed, or submitted from a dialog).
pub(super) async fn answer_text(
    shared: &Arc<Shared>,
    ctx: &Ctx,
    command: &Command,
    via: Via,
) -> Answer {
    info!(
        user = %Clean(&ctx.caller.username),
        channel = %ctx.target,
        command = command.name(),
        via = via.name(),
        "slash command"
    );
    let (outcome, text) = match run(shared, ctx, command, via).await {
        Ok(Answer::Done(t)) => ("ok", t),
        Ok(Answer::Refused(t)) => ("refused", t),
        Ok(Answer::Confirm(t)) => return Answer::Confirm(t),
        Err(e) => {
            warn!(
                user = %Clean(&ctx.caller.username),
                command = command.name(),
                error = %Clean(&format!("{e:#}")),
                "slash command failed"
            );
            ("error", format!("Nothing was changed: {}", short_error(&e)))
        }
    };
    shared.metrics.slash_command(command.name(), outcome);
    match outcome {
        "refused" => Answer::Refused(text),
        _ => Answer::Done(text),
    }
}

pub(super) enum Answer {
    Done(String),
    Refused(String),
    /// Typed with options only a privileged role may use: asked again in a form, which
    /// Mattermost shows only to the person its trigger was made for (a request with another
    /// person's id and the team's token cannot get past it).
    Confirm(String),
}

/// How a command came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Via {
    Typed,
    Form,
}

impl Via {
    fn name(self) -> &'static str {
        match self {
            Via::Typed => "slash",
            Via::Form => "dialog",
        }
    }
}

/// Where a command was typed and by whom, as Mattermost knows it: all looked up by id.
pub struct Ctx {
    pub team: mattersync_mattermost::Team,
    pub channel: mattersync_mattermost::Channel,
    /// `team/channel` by the names Mattermost has now.
    pub target: Target,
    pub caller: mattersync_mattermost::Caller,
    pub roles: Roles,
}

impl Ctx {
    /// The team of the token, the channel and the caller by id. `Ok(Err(why))` when the
    /// request does not hold together (another team's channel, an unknown or deactivated
    /// user, a direct message).
    pub async fn resolve(
        shared: &Shared,
        team_name: &str,
        team_id: &str,
        channel_id: &str,
        user_id: &str,
    ) -> Result<Result<Ctx, String>> {
        let mm = &shared.mm;
        let Some(team) = mm.team_by_name(team_name).await? else {
            return Ok(Err(format!(
                "This command belongs to team {}, which Mattermost does not know.",
                code(team_name)
            )));
        };
        if team_id != team.id {
            return Ok(Err(format!(
                "This command belongs to team {}; it cannot act in another team.",
                code(team_name)
            )));
        }
        if !is_id(channel_id) {
            return Ok(Err("The request names no channel.".to_string()));
        }
        let Some(channel) = mm.channel_by_id(channel_id).await? else {
            return Ok(Err("Mattermost does not know this channel.".to_string()));
        };
        if channel.direct {
            return Ok(Err(
                "This is a direct or group message, not a team's channel; type the command in the channel to change."
                    .to_string(),
            ));
        }
        if channel.team_id != team.id {
            return Ok(Err(format!(
                "This channel is not in team {}; the command of a team acts only in its own channels.",
                code(team_name)
            )));
        }
        let target: Target = match format!("{}/{}", team.name, channel.name).parse() {
            Ok(t) => t,
            Err(_) => {
                return Ok(Err(format!(
                    "The channel's name {} cannot be a link target.",
                    code(&channel.name)
                )))
            }
        };
        let caller = match mm.caller(user_id).await? {
            Some(c) if !c.inactive && !c.bot => c,
            Some(_) => {
                return Ok(Err(
                    "The account is deactivated or a bot; it cannot use this command.".to_string(),
                ))
            }
            None => return Ok(Err("Mattermost does not know this user.".to_string())),
        };
        // Mattermost runs a command only for a member of the channel it is typed in (so of
        // the team): a request for anyone else did not come from Mattermost.
        let Some(in_team) = mm.team_membership(&team.id, &caller.id).await? else {
            return Ok(Err(format!(
                "{} is not a member of team {}.",
                code(&caller.username),
                code(team_name)
            )));
        };
        let Some(in_channel) = mm.channel_membership(&channel.id, &caller.id).await? else {
            return Ok(Err(format!(
                "{} is not a member of this channel.",
                code(&caller.username)
            )));
        };
        let (in_team, in_channel) = (Some(in_team), Some(in_channel));
        let roles = Roles {
            system_admin: caller.system_admin,
            team_admin: in_team.is_some_and(|m| m.admin),
            channel_admin: in_channel.is_some_and(|m| m.admin),
            channel_member: in_channel.is_some(),
        };
        Ok(Ok(Ctx {
            team,
            channel,
            target,
            caller,
            roles,
        }))
    }

    fn actor(&self) -> String {
        format!("slash:{}", self.caller.username)
    }
}

use mattersync_mattermost::is_id;

/// `Some(refusal)` when the permission model says no.
pub(super) fn refused(shared: &Shared, ctx: &Ctx, ask: Ask) -> Option<String> {
    permission::check(&ctx.roles, &shared.cfg.serve.slash_privileged, ask)
        .err()
        .map(|why| format!("{why} Nothing was changed."))
}

/// Whether a declared link points at this channel: by its name now, or by the channel id
/// recorded for it (a link declared under the channel's old name, before a rename).
///
/// Once a channel id is recorded for a link, only that id counts: a new channel that takes
/// a renamed channel's old name does not get its links.
fn is_here(l: &Link, ids: &[mattersync_core::LinkIdentity], ctx: &Ctx) -> bool {
    let recorded = ids
        .iter()
        .find(|i| i.group == l.group && i.target == l.target)
        .and_then(|i| i.channel_id.as_deref());
    match recorded {
        Some(id) => id == ctx.channel.id,
        None => l.target == ctx.target,
    }
}

/// The ledger's links (slash or `mattersync link`) to this channel, as declared.
pub(super) fn ledger_links_here(
    ledger: &mattersync_ledger::Ledger,
    ctx: &Ctx,
) -> Result<Vec<Link>> {
    let ids = ledger.identities()?;
    Ok(ledger
        .links()?
        .into_iter()
        .filter(|l| is_here(l, &ids, ctx))
        .collect())
}

/// The link the ledger has for this group here, if any.
fn ledger_link(ledger: &mattersync_ledger::Ledger, group: &str, ctx: &Ctx) -> Result<Option<Link>> {
    Ok(ledger_links_here(ledger, ctx)?
        .into_iter()
        .find(|l| l.group == group))
}

async fn run(shared: &Arc<Shared>, ctx: &Ctx, command: &Command, via: Via) -> Result<Answer> {
    let target = ctx.target.clone();
    match command {
        Command::Help | Command::Form(_) => Ok(Answer::Done(USAGE.to_string())),
        Command::Link {
            group,
            mode,
            admins,
            readd,
        } => {
            if ctx.channel.archived {
                return Ok(Answer::Refused(
                    "Not linked: this channel is archived. Nothing was changed.".to_string(),
                ));
            }
            let cfg = &shared.cfg;
            let naming = cfg.naming()?;
            let name = match naming.parse(group) {
                Ok(n) => n,
                Err(e) => {
                    return Ok(Answer::Refused(format!(
                        "Not linked: {}",
                        md(&e.to_string())
                    )))
                }
            };
            let in_area = cfg.areas.get(&name.area) == Some(&ctx.team.name);
            let link = Link {
                group: group.clone(),
                target: target.clone(),
                mode: mode.unwrap_or(cfg.defaults.mode),
                admins: admins
                    .clone()
                    .unwrap_or_else(|| cfg.defaults.admins.clone()),
                readd: readd.unwrap_or(cfg.defaults.readd),
                source: LinkSource::Ledger,
            };
            let existing = {
                let ledger = shared.ledger.lock().await;
                ledger_link(&ledger, group, ctx)?
            };
            let privileged = permission::privileged_link(&link, &cfg.defaults)
                || existing.as_ref().is_some_and(|e| {
                    permission::privileged_link(e, &cfg.defaults) && !same_settings(e, &link)
                });
            if let Some(why) = refused(
                shared,
                ctx,
                Ask::Link {
                    in_area,
                    privileged,
                },
            ) {
                return Ok(Answer::Refused(format!("Not linked: {why}")));
            }
            if via == Via::Typed && (privileged || !in_area) {
                return Ok(Answer::Confirm(format!(
                    "Link **{}** to this channel with mode {}, admins {}, readd {}{}?",
                    md(group),
                    code(&link.mode.to_string()),
                    code(&link.admins.to_string()),
                    code(&link.readd.to_string()),
                    if in_area {
                        ""
                    } else {
                        " (a group of another team's area)"
                    }
                )));
            }
            // A link declared under the channel's old name stays declared so (its recorded
            // ids follow the rename): change that one rather than add a second.
            let mut link = link;
            if let Some(e) = &existing {
                link.target = e.target.clone();
            } else if shared
                .ledger
                .lock()
                .await
                .links()?
                .iter()
                .any(|l| l.group == *group && l.target == target)
            {
                // Declared by this channel's name, but for the channel that had the name
                // before (renamed since): not this channel's to change.
                return Ok(Answer::Refused(format!(
                    "Not linked: **{}** is linked by the name {} to another channel, which has been renamed since. Nothing was changed; an admin can change it with `mattersync link`.",
                    md(group),
                    code(&target.to_string())
                )));
            }
            let dir = directory(shared).await?;
            if !dir.groups.contains_key(group) {
                return Ok(Answer::Refused(format!(
                    "Not linked: the directory has no group **{}** (as of the last read).",
                    md(group)
                )));
            }
            if let Some(f) = cfg
                .file_links()?
                .into_iter()
                .find(|f| f.group == link.group && f.target == link.target)
            {
                return Ok(Answer::Refused(format!(
                    "**{}** is already linked here by the configuration file (mode {}, admins {}, readd {}); change it there.",
                    md(group),
                    code(&f.mode.to_string()),
                    code(&f.admins.to_string()),
                    code(&f.readd.to_string())
                )));
            }
            let changed = {
                // Checked against the link as it was; written only if it still is.
                let ledger = shared.ledger.lock().await;
                if ledger_link(&ledger, group, ctx)? != existing {
                    return Ok(Answer::Refused(
                        "Not linked: the link changed while this was checked. Nothing was changed; try again.".to_string(),
                    ));
                }
                ledger.put_link(&link, &ctx.actor())?
            };
            let head = link_head(&link, changed);
            let preview = match preview(shared, dir, &target).await {
                Ok(p) => what_happens(
                    &p,
                    &target,
                    Some(group),
                    ctx.roles.system_admin || ctx.roles.team_admin,
                ),
                Err(e) => {
                    warn!(error = %Clean(&format!("{e:#}")), "slash command: no preview");
                    format!(
                        "Could not preview the sync ({}); it runs shortly.",
                        short_error(&e)
                    )
                }
            };
            let mode_note = match link.mode {
                Mode::Add => "In `add` mode nobody is ever removed.",
                Mode::Sync => "In `sync` mode, people mattersync added leave again when they leave every group linked here; people it did not add are never removed.",
                Mode::Exclusive => "In `exclusive` mode, anyone not in a group linked here is removed (bots and the allow-list excepted).",
            };
            ask_sync(shared, &target).await;
            Ok(Answer::Done(format!("{head}\n{preview}\n{mode_note}")))
        }
        Command::Unlink { group } => {
            let existing = {
                let ledger = shared.ledger.lock().await;
                ledger_link(&ledger, group, ctx)?
            };
            let privileged = existing
                .as_ref()
                .is_some_and(|e| permission::privileged_link(e, &shared.cfg.defaults));
            if let Some(why) = refused(shared, ctx, Ask::Unlink { privileged }) {
                return Ok(Answer::Refused(format!("Not unlinked: {why}")));
            }
            if via == Via::Typed && privileged {
                return Ok(Answer::Confirm(format!(
                    "Unlink **{}** from this channel (a link with options that remove people or grant roles)?",
                    md(group)
                )));
            }
            let removed = match &existing {
                // Only a link of this channel (by id once one is recorded); a link declared
                // by this name for a channel since renamed is not this channel's.
                None => false,
                Some(e) => {
                    let ledger = shared.ledger.lock().await;
                    if ledger_link(&ledger, group, ctx)?.as_ref() != Some(e) {
                        return Ok(Answer::Refused(
                            "Not unlinked: the link changed while this was checked. Nothing was changed; try again.".to_string(),
                        ));
                    }
                    ledger.remove_link_by(group, &e.target, &ctx.actor())?
                }
            };
            if !removed {
                let cfg = &shared.cfg;
                let in_file = cfg
                    .file_links()?
                    .iter()
                    .any(|f| f.group == *group && f.target == target);
                let conventional = cfg.defaults.auto_link
                    && cfg
                        .naming()
                        .ok()
                        .and_then(|n| cfg.convention_link(&n, group).ok().flatten())
                        .is_some_and(|l| l.target == target);
                return Ok(Answer::Refused(if in_file {
                    format!(
                        "**{}** is linked here by the configuration file; remove it there.",
                        md(group)
                    )
                } else if conventional {
                    format!("**{}** is linked here by the naming convention (`auto_link`); it cannot be unlinked from Mattermost.", md(group))
                } else {
                    format!(
                        "**{}** is not linked to this channel; nothing changed.",
                        md(group)
                    )
                }));
            }
            info!(user = %Clean(&ctx.caller.username), group = %Clean(group), channel = %target, "unlinked by slash command");
            let dir = directory(shared).await?;
            let preview = match preview(shared, dir, &target).await {
                Ok(p) if p.links.is_empty() => "No group is linked here any more: mattersync leaves the channel's members as they are.".to_string(),
                Ok(p) => what_happens(&p, &target, None, ctx.roles.system_admin || ctx.roles.team_admin),
                Err(e) => {
                    warn!(error = %Clean(&format!("{e:#}")), "slash command: no preview");
                    format!(
                        "Could not preview the sync ({}); it runs shortly.",
                        short_error(&e)
                    )
                }
            };
            ask_sync(shared, &target).await;
            Ok(Answer::Done(format!(
                "Unlinked **{}** from this channel.\n{preview}",
                md(group)
            )))
        }
        Command::Status => {
            if let Some(why) = refused(shared, ctx, Ask::Status) {
                return Ok(Answer::Refused(why));
            }
            let dir = directory(shared).await?;
            let (links, ids) = {
                let ledger = shared.ledger.lock().await;
                let (links, _) = engine::resolve_links(&shared.cfg, &dir, ledger.links()?)?;
                (links, ledger.identities()?)
            };
            let here: Vec<&Link> = links.iter().filter(|l| is_here(l, &ids, ctx)).collect();
            let mut out = vec![format!("**mattersync** in {}:", code(&target.to_string()))];
            if here.is_empty() {
                out.push("No group is linked to this channel.".to_string());
            }
            let (pending, last, guard, why) = shared.read_status(|s| {
                (
                    s.pending.clone(),
                    s.cycles.front().cloned(),
                    s.guard_trips.clone(),
                    s.not_ready(shared.source_active()),
                )
            });
            for l in here {
                let members = dir.effective_members(&l.group);
                let waiting = pending.values().filter(|g| g.contains(&l.group)).count();
                out.push(format!(
                    "* **{}** — mode {}, admins {}, readd {}, from the {}; {} member(s) in the directory, {} without a Mattermost account",
                    md(&l.group),
                    code(&l.mode.to_string()),
                    code(&l.admins.to_string()),
                    code(&l.readd.to_string()),
                    match l.source {
                        LinkSource::Config => "configuration file",
                        LinkSource::Convention => "naming convention",
                        LinkSource::Ledger => "`link` command",
                    },
                    members.len(),
                    waiting
                ));
            }
            if let Some(c) = last {
                out.push(format!(
                    "Last sync: {} ({}), {}, {} action(s).",
                    c.started_at, c.kind, c.outcome, c.actions
                ));
            }
            // Service-wide matters (other channels' groups, raw errors) are for admins; the
            // rest see that there is one.
            let admin = ctx.roles.system_admin || ctx.roles.team_admin;
            match guard {
                Some((at, trips)) if admin => out.push(format!(
                    "⚠ A guard stopped a sync at {at}: {}. Nothing was changed.",
                    md(&trips.join("; "))
                )),
                Some(_) => out.push(
                    "⚠ A guard is holding a sync until an admin reviews it; nothing was changed."
                        .to_string(),
                ),
                None => {}
            }
            if !why.is_empty() && admin {
                out.push(format!(
                    "The service is not ready: {}.",
                    md(&why.join("; "))
                ));
            } else if !why.is_empty() {
                out.push(
                    "The service is not ready; its admins can see why on its status page."
                        .to_string(),
                );
            }
            Ok(Answer::Done(out.join("\n")))
        }
        Command::Explain { user } => {
            let is_self = user.eq_ignore_ascii_case(&ctx.caller.username);
            if let Some(why) = refused(shared, ctx, Ask::Explain { is_self }) {
                return Ok(Answer::Refused(why));
            }
            let dir = directory(shared).await?;
            let p = preview(shared, dir, &target).await?;
            let why = match p.state.explain(&p.plan, user, Some(&target)) {
                Ok(w) => w,
                Err(e) => return Ok(Answer::Refused(md(&e.to_string()))),
            };
            let account = why.account.as_ref().map(|(id, _)| id.as_str());
            if is_self && account != Some(ctx.caller.id.as_str()) {
                // The name is the caller's, but the directory user it names is matched to
                // another account (or none): that person's groups are not the caller's.
                return Ok(Answer::Refused(
                    "mattersync does not match your account to a directory user of that name, so it has nothing of yours to explain.".to_string(),
                ));
            }
            if !is_self {
                // Admins ask about people this channel concerns: in a group linked here, or
                // in this team.
                let in_linked_group = why.links.iter().any(|l| l.in_group);
                let in_team = match account {
                    Some(id) => shared.mm.team_membership(&ctx.team.id, id).await?.is_some(),
                    None => false,
                };
                // System admins too: over a team's token the command vouches for no more
                // than the team (`mattersync explain` on the server shows anyone).
                if !in_linked_group && !in_team {
                    return Ok(Answer::Refused(format!(
                        "{} is neither in a group linked here nor in this team; ask about people this channel concerns.",
                        code(user)
                    )));
                }
            }
            let ledger = shared.ledger.lock().await;
            let lines = output::explain_text(user, &why, &ledger)?;
            // Plain text for a terminal: every line shown as it is.
            let lines: Vec<String> = lines.iter().map(|l| md(l)).collect();
            Ok(Answer::Done(lines.join("\n")))
        }
    }
}

fn same_settings(a: &Link, b: &Link) -> bool {
    a.mode == b.mode && a.admins == b.admins && a.readd == b.readd
}

async fn ask_sync(shared: &Shared, target: &Target) {
    let req = Request::Targets {
        targets: [target.clone()].into(),
    };
    if shared.requests.send(req).await.is_err() {
        warn!("the sync worker is gone; the change waits for a restart");
    }
}

/// The latest directory read, or a fresh one.
pub(super) async fn directory(shared: &Shared) -> Result<Arc<Directory>> {
    if let Some(d) = shared.read_status(|s| s.directory_snapshot.clone()) {
        return Ok(d);
    }
    Ok(Arc::new(read_directory(&shared.ldap).await?))
}

struct Preview {
    links: Vec<Link>,
    state: engine::State,
    plan: Plan,
}

/// The plan for one channel as things stand (links from the ledger included).
async fn preview(shared: &Shared, dir: Arc<Directory>, target: &Target) -> Result<Preview> {
    let view = LedgerView::read(&*shared.ledger.lock().await)?;
    let state = engine::gather_selected(&shared.cfg, &shared.mm, (*dir).clone(), view, |links| {
        scope::affected_links(links, &BTreeSet::new(), &[target.clone()].into())
    })
    .await?;
    let here: Vec<Link> = state
        .policy
        .links
        .iter()
        .filter(|l| l.target == *target)
        .cloned()
        .collect();
    let plan = state.plan();
    Ok(Preview {
        links: here,
        state,
        plan,
    })
}

/// The first line of a `link` answer.
fn link_head(link: &Link, changed: bool) -> String {
    format!(
        "{} **{}** to this channel (mode {}, admins {}, readd {}).",
        if changed { "Linked" } else { "Already linked:" },
        md(&link.group),
        code(&link.mode.to_string()),
        code(&link.admins.to_string()),
        code(&link.readd.to_string())
    )
}

fn names(mut v: Vec<String>) -> String {
    v.sort();
    v.dedup();
    let shown: Vec<String> = v.iter().take(20).map(|n| mention(n)).collect();
    let more = v.len().saturating_sub(shown.len());
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

/// What the plan will do in this channel, in words.
/// `admin`: the directory uids of people without an account are shown (to others, only how
/// many: a uid with no account yet is a name someone could register).
fn what_happens(p: &Preview, target: &Target, group: Option<&str>, admin: bool) -> String {
    let path = target.to_string();
    let (mut adds, mut removals, mut promote, mut demote) = (vec![], vec![], vec![], vec![]);
    for a in &p.plan.actions {
        match a {
            Action::AddChannelMembers { channel, users, .. } if *channel == path => {
                adds.extend(users.iter().map(|u| u.username.clone()))
            }
            Action::RemoveChannelMember { channel, user, .. } if *channel == path => {
                removals.push(user.username.clone())
            }
            Action::SetChannelAdmin {
                channel,
                user,
                admin,
                ..
            } if *channel == path => {
                if *admin {
                    promote.push(user.username.clone())
                } else {
                    demote.push(user.username.clone())
                }
            }
            _ => {}
        }
    }
    let linked: BTreeSet<&str> = p.links.iter().map(|l| l.group.as_str()).collect();
    let mut pending = Vec::new();
    let mut not_readded = Vec::new();
    for n in &p.plan.notes {
        match n {
            Note::PendingUser { uid, groups }
                if groups.iter().any(|g| linked.contains(g.as_str()))
                    && group.is_none_or(|g| groups.iter().any(|x| x == g)) =>
            {
                pending.push(uid.clone())
            }
            Note::NotReadded { channel, username } if *channel == path => {
                not_readded.push(username.clone())
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    if !adds.is_empty() {
        out.push(format!("{} will be added: {}.", adds.len(), names(adds)));
    }
    if !removals.is_empty() {
        out.push(format!(
            "{} will be removed (mattersync added them and no group linked here wants them): {}.",
            removals.len(),
            names(removals)
        ));
    }
    if !promote.is_empty() {
        out.push(format!("Made channel admin: {}.", names(promote)));
    }
    if !demote.is_empty() {
        out.push(format!("No longer channel admin: {}.", names(demote)));
    }
    if !pending.is_empty() && admin {
        out.push(format!(
            "{} without a Mattermost account yet, added when the account appears: {}.",
            pending.len(),
            pending.iter().map(|u| md(u)).collect::<Vec<_>>().join(", ")
        ));
    } else if !pending.is_empty() {
        out.push(format!(
            "{} without a Mattermost account yet, added when the account appears.",
            pending.len()
        ));
    }
    if !not_readded.is_empty() {
        out.push(format!(
            "Not added again because they left on their own (readd = never): {}.",
            names(not_readded)
        ));
    }
    if let engine::Verdict::Held(trips) = engine::verdict(&p.plan, &engine::Approval::None) {
        out.push(format!(
            "⚠ A guard will stop this sync: {}. Nothing will change until an admin confirms.",
            md(&engine::describe_trips(&trips))
        ));
    }
    if out.is_empty() {
        "Nothing to change: the channel already matches.".to_string()
    } else {
        format!("What happens now: {}", out.join(" "))
    }
}

/// What an answer says of a failure: a short sentence; the details go to the service log.
/// (Raw API errors carry URLs, ids and server texts that are no business of the channel and
/// would render as Markdown.)
pub(super) fn short_error(e: &anyhow::Error) -> String {
    for cause in e.chain() {
        if let Some(mm) = cause.downcast_ref::<mattersync_mattermost::MmError>() {
            return mm_short(mm);
        }
        if cause
            .downcast_ref::<mattersync_directory::DirectoryError>()
            .is_some()
        {
            return "the directory could not be read; see the service log".to_string();
        }
    }
    "the command failed; see the service log".to_string()
}

fn mm_short(e: &mattersync_mattermost::MmError) -> String {
    match e.status() {
        Some(status) => {
            format!("Mattermost refused the request (HTTP {status}); see the service log")
        }
        None => "Mattermost did not answer as expected; see the service log".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse() {
        assert_eq!(parse(""), Ok(Command::Help));
        assert_eq!(parse("  help "), Ok(Command::Help));
        assert_eq!(parse("status"), Ok(Command::Status));
        assert_eq!(parse("link"), Ok(Command::Form(Form::Link)));
        assert_eq!(parse(" Unlink "), Ok(Command::Form(Form::Unlink)));
        assert_eq!(parse("explain"), Ok(Command::Form(Form::Explain)));
        assert_eq!(
            parse("explain @neil"),
            Ok(Command::Explain {
                user: "neil".into()
            })
        );
        assert_eq!(
            parse("unlink mm_rl_infra"),
            Ok(Command::Unlink {
                group: "mm_rl_infra".into()
            })
        );
        assert_eq!(
            parse("link mm_rl_infra mode=add admins=managers readd=always"),
            Ok(Command::Link {
                group: "mm_rl_infra".into(),
                mode: Some(Mode::Add),
                admins: Some(Admins::Managers),
                readd: Some(Readd::Always),
            })
        );
        assert_eq!(
            parse("LINK mm_rl_infra --admins=group:mm_rl_leads"),
            Ok(Command::Link {
                group: "mm_rl_infra".into(),
                mode: None,
                admins: Some(Admins::Group("mm_rl_leads".into())),
                readd: None,
            })
        );
    }

    #[test]
    fn bad_commands_say_what_is_wrong() {
        for (text, needle) in [
            ("link mm_x mode=mirror", "not a mode"),
            ("link mm_x colour=red", "unknown option"),
            ("link mm_x add", "key=value"),
            ("unlink a b", "needs one group"),
            ("explain @", "needs a user"),
            ("status now", "no arguments"),
            ("frobnicate", "unknown command"),
        ] {
            match parse(text) {
                Err(e) => assert!(e.contains(needle), "{text}: {e}"),
                Ok(c) => panic!("{text}: parsed as {c:?}"),
            }
        }
    }

    #[test]
    fn secrets_compare_exactly() {
        assert!(same_secret("abc123", "abc123"));
        assert!(!same_secret("abc124", "abc123"));
        assert!(!same_secret("abc12", "abc123"));
        assert!(!same_secret("", "abc123"));
    }

    #[test]
    fn answers_show_names_as_text_not_markdown() {
        let link = Link {
            group: "mm_rl_[click](https://evil.example)**x**".into(),
            target: "rocky-linux/infra".parse().expect("target"),
            mode: Mode::Sync,
            admins: Admins::Group("a`b".into()),
            readd: Readd::Never,
            source: LinkSource::Ledger,
        };
        let head = link_head(&link, true);
        assert_eq!(
            head,
            "Linked **mm_rl\\_\\[click\\]\\(https\\://evil.example\\)\\*\\*x\\*\\*** to this channel \
             (mode `sync`, admins group\\:a\\`b, readd `never`)."
        );
        let shown = names(vec!["neil".into(), "# big".into(), "eve\n> quote".into()]);
        assert_eq!(shown, "\\# big, eve\\n\\> quote, @neil");
        match parse("frobnicate") {
            Err(e) => assert_eq!(e, "unknown command `frobnicate`"),
            Ok(c) => panic!("{c:?}"),
        }
        match parse("link g **x**=1") {
            Err(e) => assert!(e.starts_with("unknown option `**x**`:"), "{e}"),
            Ok(c) => panic!("{c:?}"),
        }
    }

    #[test]
    fn failures_are_summed_up_not_echoed() {
        let e = anyhow::anyhow!("GET https://chat.example.org/api/v4/x: [boom](http://e)")
            .context("cannot check your channel role");
        assert_eq!(short_error(&e), "the command failed; see the service log");
    }
}
