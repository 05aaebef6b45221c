//! Links and the policy that governs them.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// How a link treats people who are not (or no longer) in its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Members are added; nobody is ever removed.
    Add,
    /// Members are added; users mattersync added are removed when they leave every linked group.
    #[default]
    Sync,
    /// Anyone not in a linked group is removed, except bots and the allow-list.
    Exclusive,
}

/// Who becomes channel admin through a link.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Admins {
    #[default]
    None,
    /// The group's member managers.
    Managers,
    /// The members of another group.
    Group(String),
}

/// Whether a user who left a channel on their own is added again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Readd {
    #[default]
    Never,
    Always,
}

/// Mattermost's limits on the names a target is made of, from mattermost/mattermost
/// `server/public/model`: `team.go` declares `TeamNameMinLength = 2` and
/// `TeamNameMaxLength = 64` (checked by `Team.IsValid` and `IsValidTeamName`), `channel.go`
/// declares `ChannelNameMinLength = 1` and `ChannelNameMaxLength = 64` (checked through
/// `IsValidChannelIdentifier`). A longer name can never exist in Mattermost. The names are
/// ASCII here, so characters and bytes are the same count.
pub const TEAM_NAME_MIN: usize = 2;
pub const TEAM_NAME_MAX: usize = 64;
pub const CHANNEL_NAME_MIN: usize = 1;
pub const CHANNEL_NAME_MAX: usize = 64;

/// What a link points at.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    Team { team: String },
    Channel { team: String, channel: String },
}

impl Target {
    pub fn team(&self) -> &str {
        match self {
            Target::Team { team } | Target::Channel { team, .. } => team,
        }
    }

    /// `team` or `team/channel` by syntax only, without Mattermost's length limits: for
    /// targets recorded before the limits were enforced (the ledger), so that such a link
    /// still loads, is reported as broken, and can be unlinked. Everything new goes
    /// through [`FromStr`], which adds [`Target::check_bounds`].
    pub fn parse_recorded(s: &str) -> Result<Target, String> {
        let ok = |p: &str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        };
        match s.split_once('/') {
            None if ok(s) => Ok(Target::Team {
                team: s.to_string(),
            }),
            Some((t, c)) if ok(t) && ok(c) => Ok(Target::Channel {
                team: t.to_string(),
                channel: c.to_string(),
            }),
            _ => Err(format!(
                "{s:?} is not a team or team/channel name (lowercase a-z, 0-9, '-', '_')"
            )),
        }
    }

    /// Whether the names fit Mattermost's limits ([`TEAM_NAME_MAX`], [`CHANNEL_NAME_MAX`]).
    pub fn check_bounds(&self) -> Result<(), String> {
        let team = self.team();
        let n = team.chars().count();
        if !(TEAM_NAME_MIN..=TEAM_NAME_MAX).contains(&n) {
            return Err(format!(
                "team name {team:?} is {n} character(s) long; Mattermost team names are {TEAM_NAME_MIN} to {TEAM_NAME_MAX} characters"
            ));
        }
        if let Target::Channel { channel, .. } = self {
            let n = channel.chars().count();
            if !(CHANNEL_NAME_MIN..=CHANNEL_NAME_MAX).contains(&n) {
                return Err(format!(
                    "channel name {channel:?} is {n} character(s) long; Mattermost channel names are {CHANNEL_NAME_MIN} to {CHANNEL_NAME_MAX} characters (choose a shorter one)"
                ));
            }
        }
        Ok(())
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Team { team } => write!(f, "{team}"),
            Target::Channel { team, channel } => write!(f, "{team}/{channel}"),
        }
    }
}

impl FromStr for Target {
    type Err = String;
    /// `team` or `team/channel`, within Mattermost's name lengths.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = Target::parse_recorded(s)?;
        t.check_bounds()?;
        Ok(t)
    }
}

/// Where a link was declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LinkSource {
    #[default]
    Config,
    /// `auto_link`: `mm_<area>_<name>` → `<area's team>/<name>`.
    Convention,
    /// Made with `mattersync link` or the slash command; kept in the ledger.
    Ledger,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    pub group: String,
    pub target: Target,
    #[serde(default)]
    pub mode: Mode,
    #[serde(default)]
    pub admins: Admins,
    #[serde(default)]
    pub readd: Readd,
    #[serde(default)]
    pub source: LinkSource,
}

impl Link {
    /// A short, stable name for the link, as the ledger and reports show it.
    pub fn id(&self) -> String {
        format!("{}->{}", self.group, self.target)
    }
}

/// How a directory user is matched to a Mattermost account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "by", rename_all = "snake_case", deny_unknown_fields)]
pub enum Matching {
    AuthData {
        auth_service: String,
    },
    #[default]
    Username,
    Email,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Guards {
    /// At most this many removals (channel and team) in one run.
    pub max_removals: usize,
    /// At most this share of a channel's current members removed in one run.
    pub max_removal_ratio: f64,
    /// At most this many additions (channel and team memberships) in one run.
    #[serde(skip_serializing_if = "is_default_max_additions")]
    pub max_additions: usize,
    /// At most this many times a channel's current size added to it in one run (channels
    /// with fewer than 10 members, such as a new link's empty channel, are exempt).
    #[serde(skip_serializing_if = "is_default_max_addition_ratio")]
    pub max_addition_ratio: f64,
}

/// Defaults of the addition guards. Left out of a serialized policy when unchanged, so
/// that the fingerprints of plans made before they existed stay the same.
pub const DEFAULT_MAX_ADDITIONS: usize = 1000;
pub const DEFAULT_MAX_ADDITION_RATIO: f64 = 1.0;

fn is_default_max_additions(v: &usize) -> bool {
    *v == DEFAULT_MAX_ADDITIONS
}

fn is_default_max_addition_ratio(v: &f64) -> bool {
    *v == DEFAULT_MAX_ADDITION_RATIO
}

impl Default for Guards {
    fn default() -> Self {
        Guards {
            max_removals: 50,
            max_removal_ratio: 0.2,
            max_additions: DEFAULT_MAX_ADDITIONS,
            max_addition_ratio: DEFAULT_MAX_ADDITION_RATIO,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    pub links: Vec<Link>,
    pub matching: Matching,
    pub guards: Guards,
    /// Usernames `exclusive` links never remove (bots are always exempt).
    pub allow: BTreeSet<String>,
}

impl fmt::Display for Admins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Admins::None => f.write_str("none"),
            Admins::Managers => f.write_str("managers"),
            Admins::Group(g) => write!(f, "group:{g}"),
        }
    }
}

impl FromStr for Admins {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(Admins::None),
            "managers" => Ok(Admins::Managers),
            _ => match s.strip_prefix("group:") {
                Some(g) if !g.is_empty() => Ok(Admins::Group(g.to_string())),
                _ => Err(format!(
                    "{s:?} is not an admins policy: use \"none\", \"managers\" or \"group:<name>\""
                )),
            },
        }
    }
}

impl Serialize for Admins {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Admins {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "add" => Ok(Mode::Add),
            "sync" => Ok(Mode::Sync),
            "exclusive" => Ok(Mode::Exclusive),
            _ => Err(format!("{s:?} is not a mode: use add, sync or exclusive")),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Add => "add",
            Mode::Sync => "sync",
            Mode::Exclusive => "exclusive",
        })
    }
}

impl FromStr for Readd {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "never" => Ok(Readd::Never),
            "always" => Ok(Readd::Always),
            _ => Err(format!("{s:?} is not a readd policy: use never or always")),
        }
    }
}

impl fmt::Display for Readd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Readd::Never => "never",
            Readd::Always => "always",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_policies_parse_and_print_back() {
        for s in ["rocky-linux", "rocky-linux/infra_ops"] {
            let t: Target = s.parse().expect("target");
            assert_eq!(t.to_string(), s);
        }
        for bad in ["", "a/b/c", "Rocky/x", "a/", "/b", "a b"] {
            assert!(bad.parse::<Target>().is_err(), "{bad:?}");
        }
        for s in ["none", "managers", "group:mm_rl_leads"] {
            assert_eq!(s.parse::<Admins>().expect("admins").to_string(), s);
        }
        assert!("group:".parse::<Admins>().is_err());
        assert!("owners".parse::<Admins>().is_err());
        assert_eq!("exclusive".parse::<Mode>(), Ok(Mode::Exclusive));
        assert!("Sync".parse::<Mode>().is_err());
    }

    #[test]
    fn targets_are_within_mattermosts_name_lengths() {
        let at = |team: usize, channel: Option<usize>| match channel {
            None => "t".repeat(team),
            Some(c) => format!("{}/{}", "t".repeat(team), "c".repeat(c)),
        };
        // Teams: 2 to 64.
        assert!(at(2, None).parse::<Target>().is_ok());
        assert!(at(64, None).parse::<Target>().is_ok());
        let e = at(1, None).parse::<Target>().expect_err("1-character team");
        assert!(e.contains("2 to 64"), "{e}");
        let e = at(65, None)
            .parse::<Target>()
            .expect_err("65-character team");
        assert!(
            e.contains("65 character(s)") && e.contains("2 to 64"),
            "{e}"
        );
        assert!(at(65, Some(3)).parse::<Target>().is_err());
        // Channels: 1 to 64.
        assert!(at(5, Some(1)).parse::<Target>().is_ok());
        assert!(at(5, Some(64)).parse::<Target>().is_ok());
        let e = at(5, Some(65))
            .parse::<Target>()
            .expect_err("65-character channel");
        assert!(e.contains("channel name") && e.contains("1 to 64"), "{e}");
        // What the ledger recorded before the limits still reads, and still prints back.
        let old = at(5, Some(65));
        let t = Target::parse_recorded(&old).expect("recorded");
        assert_eq!(t.to_string(), old);
        assert!(t.check_bounds().is_err());
        assert!(Target::parse_recorded("Rocky/x").is_err());
    }
}
