//! `mattersync slash install`: registers the `/mattersync` custom slash command in each
//! team of `[areas]` through the API and stores each team's token, mode 600, where `serve`
//! reads it (`serve.slash_command_token_dir/<team>.token`). Idempotent: a command that is
//! there already is pointed at the URL and keeps its token; `--rotate` makes new tokens.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use mattersync_engine::{self as engine, config};
use mattersync_mattermost::{SlashCommand, SlashCommandIn};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

/// The trigger word of the command.
pub const TRIGGER: &str = "mattersync";

#[derive(Subcommand)]
pub enum SlashCommandArgs {
    /// Register `/mattersync` in each area's team and write each team's token file.
    Install(InstallArgs),
}

#[derive(Args)]
pub struct InstallArgs {
    /// The URL Mattermost calls (default: serve.slash_command_url).
    #[arg(long)]
    url: Option<String>,
    /// Give every team's command a new token (the old one stops working at once).
    #[arg(long)]
    rotate: bool,
}

/// What happened in one team.
#[derive(Debug, serde::Serialize)]
struct TeamResult {
    team: String,
    /// created, updated, rotated, unchanged, or failed
    result: &'static str,
    token_file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

pub async fn run(cfg: &config::Config, json: bool, args: SlashCommandArgs) -> Result<u8> {
    let SlashCommandArgs::Install(a) = args;
    let Some(dir) = &cfg.serve.slash_command_token_dir else {
        bail!("serve.slash_command_token_dir is not set: it says where each team's token goes");
    };
    let url = match a.url.as_ref().or(cfg.serve.slash_command_url.as_ref()) {
        Some(u) if u.starts_with("https://") || u.starts_with("http://") => u.clone(),
        Some(u) => bail!("--url {u:?} is not an http(s) URL"),
        None => bail!(
            "no URL for the command: set serve.slash_command_url (https://<host>/slash) or pass --url"
        ),
    };
    ensure_dir(dir)?;
    let mm = engine::mattermost_client(cfg)?;
    let mut results = Vec::new();
    for (team, file) in cfg.slash_token_files() {
        let r = install_one(&mm, &team, &url, &file, a.rotate).await;
        results.push(match r {
            Ok(result) => TeamResult {
                team,
                result,
                token_file: file.display().to_string(),
                error: None,
            },
            Err(e) => TeamResult {
                team,
                result: "failed",
                token_file: file.display().to_string(),
                error: Some(format!("{e:#}")),
            },
        });
    }
    let failed = results.iter().filter(|r| r.error.is_some()).count();
    if json {
        let changed = results
            .iter()
            .any(|r| matches!(r.result, "created" | "updated" | "rotated" | "written"));
        crate::report::data(
            "slash",
            serde_json::json!({"url": url, "teams": results, "failed": failed, "changed": changed}),
        );
    } else {
        for r in &results {
            match &r.error {
                None => println!("{:<24} {:<9} {}", r.team, r.result, r.token_file),
                Some(e) => println!("{:<24} failed    {e}", r.team),
            }
        }
    }
    Ok(if failed > 0 {
        crate::exit::ERROR
    } else {
        crate::exit::OK
    })
}

async fn install_one(
    mm: &mattersync_mattermost::Client,
    team: &str,
    url: &str,
    file: &Path,
    rotate: bool,
) -> Result<&'static str> {
    let Some(t) = mm.team_by_name(team).await? else {
        bail!("Mattermost has no team {team:?} (see [areas])");
    };
    let wanted = SlashCommandIn {
        team_id: &t.id,
        trigger: TRIGGER,
        url,
        method: "P",
        display_name: "mattersync",
        description: "Directory groups in this channel",
        username: "mattersync",
        auto_complete: true,
        auto_complete_desc: "Link directory groups to this channel, or ask why someone is here",
        auto_complete_hint: "link <group> | unlink <group> | status | explain @user | help",
    };
    let ours: Vec<SlashCommand> = mm
        .slash_commands(&t.id)
        .await
        .context("cannot list the team's slash commands (the token needs to manage them)")?
        .into_iter()
        .filter(|c| c.trigger == TRIGGER)
        .collect();
    let (token, result) = match ours.as_slice() {
        [] => {
            let c = mm.create_slash_command(&wanted).await?;
            (c.token, "created")
        }
        [c] => {
            let mut result = "unchanged";
            let mut token = c.token.clone();
            if c.url != url || c.method != "P" {
                let u = mm.update_slash_command(c, &wanted).await?;
                token = u.token;
                result = "updated";
            }
            if rotate || token.is_empty() {
                token = mm.regenerate_slash_token(&c.id).await?;
                result = "rotated";
            }
            (token, result)
        }
        _ => bail!(
            "the team has {} `/{TRIGGER}` commands; delete all but one (Integrations → Slash Commands)",
            ours.len()
        ),
    };
    if token.is_empty() {
        bail!("Mattermost returned no token for the command");
    }
    let current = std::fs::read_to_string(file).unwrap_or_default();
    if current.trim_end() != token {
        write_secret(file, &token)?;
        if result == "unchanged" {
            return Ok("written");
        }
    }
    Ok(result)
}

fn ensure_dir(dir: &Path) -> Result<()> {
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    Ok(())
}

/// Writes the token to a new file of mode 600 next to `file`, then renames it over `file`:
/// the file is never readable by others, and never half written.
fn write_secret(file: &Path, token: &str) -> Result<()> {
    let tmp = file.with_extension("token.new");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(token.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, file).with_context(|| format!("cannot write {}", file.display()))?;
    Ok(())
}
