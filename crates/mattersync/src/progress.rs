//! A progress bar for `apply` on a terminal: the Mattermost seam wrapped so that every
//! executed action moves the bar. It appears only on a terminal (and not with `--json`), and
//! only once an apply has taken more than a couple of seconds, so a short apply prints
//! nothing extra.

use anyhow::Result;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mattersync_core::{
    Action, ChannelInfo, ChannelMember, Mattermost, MmUser, ScopeKind, TeamInfo,
};
use mattersync_engine::MattermostApi;
use mattersync_ledger::UserOutcome;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// An apply shorter than this shows no bar.
const SHOW_AFTER: Duration = Duration::from_secs(2);

pub struct Progress<'a, M> {
    inner: &'a M,
    bar: ProgressBar,
    started: Instant,
    terminal: bool,
}

impl<'a, M: MattermostApi> Progress<'a, M> {
    /// A bar over `actions` actions; drawn on stderr only when `terminal`.
    pub fn new(inner: &'a M, actions: usize, terminal: bool) -> Progress<'a, M> {
        let bar = ProgressBar::with_draw_target(Some(actions as u64), ProgressDrawTarget::hidden());
        if let Ok(style) =
            ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} actions, {msg}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        Progress {
            inner,
            bar,
            started: Instant::now(),
            terminal,
        }
    }

    /// Done: the bar is cleared (the run's summary follows).
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }

    fn step(&self, action: &Action) {
        self.bar.inc(1);
        self.bar.set_message(action.scope().2.to_string());
        if self.terminal && self.bar.is_hidden() && self.started.elapsed() > SHOW_AFTER {
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
        }
    }
}

impl<M: MattermostApi> MattermostApi for Progress<'_, M> {
    async fn me(&self) -> Result<MmUser> {
        self.inner.me().await
    }
    async fn read_state(
        &self,
        teams: &[String],
        channels: &[(String, String)],
        usernames: &[String],
    ) -> Result<Mattermost> {
        self.inner.read_state(teams, channels, usernames).await
    }
    async fn all_users(&self) -> Result<Vec<MmUser>> {
        self.inner.all_users().await
    }
    async fn apply(&self, action: &Action) -> Result<Vec<UserOutcome>> {
        let out = self.inner.apply(action).await;
        self.step(action);
        out
    }
    fn api_calls(&self) -> u64 {
        self.inner.api_calls()
    }
    async fn users_by_usernames(&self, usernames: &[String]) -> Result<Vec<MmUser>> {
        self.inner.users_by_usernames(usernames).await
    }
    async fn members_of(
        &self,
        kind: ScopeKind,
        id: &str,
        user_ids: &[String],
    ) -> Result<BTreeMap<String, ChannelMember>> {
        self.inner.members_of(kind, id, user_ids).await
    }
    async fn team_by_id(&self, id: &str) -> Result<Option<TeamInfo>> {
        self.inner.team_by_id(id).await
    }
    async fn team_by_name(&self, name: &str) -> Result<Option<TeamInfo>> {
        self.inner.team_by_name(name).await
    }
    async fn all_channels(&self) -> Result<Option<Vec<ChannelInfo>>> {
        self.inner.all_channels().await
    }
    async fn channel_by_id(&self, id: &str) -> Result<Option<ChannelInfo>> {
        self.inner.channel_by_id(id).await
    }
    async fn channel_by_name(&self, team: &str, name: &str) -> Result<Option<ChannelInfo>> {
        self.inner.channel_by_name(team, name).await
    }
    async fn user_team_channels(&self, user_id: &str, team_id: &str) -> Result<Vec<ChannelInfo>> {
        self.inner.user_team_channels(user_id, team_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_a_terminal_the_bar_is_never_drawn() {
        struct Nothing;
        impl MattermostApi for Nothing {
            async fn me(&self) -> Result<MmUser> {
                anyhow::bail!("unused")
            }
            async fn read_state(
                &self,
                _: &[String],
                _: &[(String, String)],
                _: &[String],
            ) -> Result<Mattermost> {
                anyhow::bail!("unused")
            }
            async fn all_users(&self) -> Result<Vec<MmUser>> {
                Ok(Vec::new())
            }
            async fn apply(&self, _: &Action) -> Result<Vec<UserOutcome>> {
                Ok(Vec::new())
            }
            fn api_calls(&self) -> u64 {
                0
            }
            async fn users_by_usernames(&self, _: &[String]) -> Result<Vec<MmUser>> {
                Ok(Vec::new())
            }
            async fn members_of(
                &self,
                _: ScopeKind,
                _: &str,
                _: &[String],
            ) -> Result<BTreeMap<String, ChannelMember>> {
                Ok(BTreeMap::new())
            }
            async fn team_by_id(&self, _: &str) -> Result<Option<TeamInfo>> {
                Ok(None)
            }
            async fn team_by_name(&self, _: &str) -> Result<Option<TeamInfo>> {
                Ok(None)
            }
            async fn all_channels(&self) -> Result<Option<Vec<ChannelInfo>>> {
                Ok(None)
            }
            async fn channel_by_id(&self, _: &str) -> Result<Option<ChannelInfo>> {
                Ok(None)
            }
            async fn channel_by_name(&self, _: &str, _: &str) -> Result<Option<ChannelInfo>> {
                Ok(None)
            }
            async fn user_team_channels(&self, _: &str, _: &str) -> Result<Vec<ChannelInfo>> {
                Ok(Vec::new())
            }
        }
        let p = Progress::new(&Nothing, 3, false);
        // Long past the threshold, still not a terminal: hidden.
        let p = Progress {
            started: Instant::now() - Duration::from_secs(10),
            ..p
        };
        p.step(&Action::AddTeamMembers {
            team: "rl".into(),
            team_id: "t".into(),
            users: vec![],
        });
        assert!(p.bar.is_hidden());
        assert_eq!(p.bar.position(), 1);
        // On a terminal, the same apply shows it.
        let p = Progress {
            terminal: true,
            ..p
        };
        p.step(&Action::AddTeamMembers {
            team: "rl".into(),
            team_id: "t".into(),
            users: vec![],
        });
        assert_eq!(p.bar.position(), 2);
    }
}
