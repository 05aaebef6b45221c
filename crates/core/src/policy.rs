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
    /// `team` or `team/channel`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
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
}

impl Default for Guards {
    fn default() -> Self {
        Guards {
            max_removals: 50,
            max_removal_ratio: 0.2,
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
}
