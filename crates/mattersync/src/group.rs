//! `mattersync group …`: create and manage directory groups the way the SOP says.

use crate::config::Config;
use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum GroupCommand {
    /// List the groups the filter selects.
    List,
}

pub async fn run(_cfg: &Config, _json: bool, cmd: GroupCommand) -> Result<u8> {
    match cmd {
        GroupCommand::List => anyhow::bail!("not implemented yet"),
    }
}
