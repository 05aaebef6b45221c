//! `mattersync serve`: the long-running form of the sync engine.

use crate::config::Config;
use anyhow::Result;
use clap::Args;

#[derive(Args)]
pub struct ServeArgs {}

pub async fn run(_cfg: Config, _args: ServeArgs) -> Result<u8> {
    anyhow::bail!("not implemented yet")
}
