//! Who may do what with the slash command. One table, pure, enforced here and written out in
//! the README ("Slash command: who may do what"). The roles come from Mattermost, looked up
//! through the API by the ids the command's team token vouches for, never from the form's
//! names.

use mattersync_core::{Admins, Link, Mode, Readd};
use mattersync_engine::config::{Defaults, SlashRole};

/// The caller's roles where the command was typed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Roles {
    pub system_admin: bool,
    pub team_admin: bool,
    pub channel_admin: bool,
    pub channel_member: bool,
}

impl Roles {
    /// May use the options that remove people or grant roles, and link any area's group.
    /// System admins always may; `serve.slash_privileged` can add team admins.
    pub fn privileged(&self, extra: &[SlashRole]) -> bool {
        self.system_admin || (self.team_admin && extra.contains(&SlashRole::TeamAdmin))
    }

    /// May link and unlink in this channel at all.
    fn manages_links(&self) -> bool {
        self.system_admin || self.team_admin || (self.channel_admin && self.channel_member)
    }
}

/// What is asked, with the facts the rules need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    Status,
    /// `is_self`: the person asked about is the caller.
    Explain {
        is_self: bool,
    },
    /// `in_area`: the group's area maps to this channel's team. `privileged`: the link as it
    /// would be (or the one it replaces) removes people or grants roles beyond the
    /// configured defaults.
    Link {
        in_area: bool,
        privileged: bool,
    },
    /// `privileged`: the link being removed has privileged settings.
    Unlink {
        privileged: bool,
    },
}

/// `Ok` when allowed, else the refusal in words (without "Nothing was changed", which the
/// caller adds).
pub fn check(roles: &Roles, extra: &[SlashRole], ask: Ask) -> Result<(), String> {
    let privileged_who = if extra.contains(&SlashRole::TeamAdmin) {
        "system admins and team admins"
    } else {
        "system admins"
    };
    let admin = roles.system_admin || roles.team_admin;
    match ask {
        Ask::Status | Ask::Explain { is_self: true } if roles.channel_member || admin => Ok(()),
        Ask::Status | Ask::Explain { is_self: true } => {
            Err("Only members of this channel can ask about it.".to_string())
        }
        Ask::Explain { is_self: false } if admin => Ok(()),
        Ask::Explain { is_self: false } => Err(
            "Only system admins and team admins may see another person's groups; `/mattersync explain @you` shows your own."
                .to_string(),
        ),
        Ask::Link { .. } | Ask::Unlink { .. } if !roles.manages_links() => Err(
            "Only channel admins, team admins and system admins may link or unlink groups."
                .to_string(),
        ),
        Ask::Link { in_area: false, .. } if !roles.privileged(extra) => Err(format!(
            "The group's area belongs to another team; only {privileged_who} may link it here."
        )),
        Ask::Link {
            privileged: true, ..
        }
        | Ask::Unlink { privileged: true }
            if !roles.privileged(extra) =>
        {
            Err(format!(
                "`mode=exclusive`, `admins=…` and `readd=always` remove people or grant roles beyond this server's defaults; only {privileged_who} may set them or change a link that has them."
            ))
        }
        Ask::Link { .. } | Ask::Unlink { .. } => Ok(()),
    }
}

/// Whether a link removes people or grants roles beyond what the configuration's defaults
/// already do everywhere: `exclusive`, channel admin roles, re-adding those who left.
pub fn privileged_link(link: &Link, defaults: &Defaults) -> bool {
    (link.mode == Mode::Exclusive && defaults.mode != Mode::Exclusive)
        || (link.admins != Admins::None && link.admins != defaults.admins)
        || (link.readd == Readd::Always && defaults.readd != Readd::Always)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mattersync_core::LinkSource;

    const NOBODY: Roles = Roles {
        system_admin: false,
        team_admin: false,
        channel_admin: false,
        channel_member: false,
    };
    const MEMBER: Roles = Roles {
        channel_member: true,
        ..NOBODY
    };
    const CHANNEL_ADMIN: Roles = Roles {
        channel_admin: true,
        channel_member: true,
        ..NOBODY
    };
    const TEAM_ADMIN: Roles = Roles {
        team_admin: true,
        ..NOBODY
    };
    const SYSTEM_ADMIN: Roles = Roles {
        system_admin: true,
        ..NOBODY
    };

    /// The README's table, row by row: (ask, [nobody, member, channel admin, team admin,
    /// system admin]) with the default `slash_privileged`. (`help` needs only the team's
    /// token and is answered before any role is looked up.)
    #[test]
    fn the_table_as_documented() {
        let plain = Ask::Link {
            in_area: true,
            privileged: false,
        };
        let other_area = Ask::Link {
            in_area: false,
            privileged: false,
        };
        let privileged = Ask::Link {
            in_area: true,
            privileged: true,
        };
        let rows: [(Ask, [bool; 5]); 8] = [
            (Ask::Status, [false, true, true, true, true]),
            (
                Ask::Explain { is_self: true },
                [false, true, true, true, true],
            ),
            (
                Ask::Explain { is_self: false },
                [false, false, false, true, true],
            ),
            (plain, [false, false, true, true, true]),
            (other_area, [false, false, false, false, true]),
            (privileged, [false, false, false, false, true]),
            (
                Ask::Unlink { privileged: false },
                [false, false, true, true, true],
            ),
            (
                Ask::Unlink { privileged: true },
                [false, false, false, false, true],
            ),
        ];
        let who = [NOBODY, MEMBER, CHANNEL_ADMIN, TEAM_ADMIN, SYSTEM_ADMIN];
        let defaults = [SlashRole::SystemAdmin];
        for (ask, expected) in rows {
            let got: Vec<bool> = who
                .iter()
                .map(|r| check(r, &defaults, ask).is_ok())
                .collect();
            assert_eq!(got, expected.to_vec(), "{ask:?}");
        }
    }

    #[test]
    fn team_admins_can_be_made_privileged() {
        let extra = [SlashRole::SystemAdmin, SlashRole::TeamAdmin];
        for ask in [
            Ask::Link {
                in_area: false,
                privileged: true,
            },
            Ask::Unlink { privileged: true },
        ] {
            assert!(check(&TEAM_ADMIN, &extra, ask).is_ok(), "{ask:?}");
            assert!(check(&CHANNEL_ADMIN, &extra, ask).is_err(), "{ask:?}");
        }
        let e = check(
            &CHANNEL_ADMIN,
            &extra,
            Ask::Link {
                in_area: true,
                privileged: true,
            },
        )
        .expect_err("refused");
        assert!(e.contains("system admins and team admins"), "{e}");
    }

    #[test]
    fn a_channel_admin_role_without_membership_manages_nothing() {
        // A left-over admin flag of someone who left the channel is not a role there.
        let stale = Roles {
            channel_admin: true,
            ..NOBODY
        };
        let ask = Ask::Link {
            in_area: true,
            privileged: false,
        };
        assert!(check(&stale, &[], ask).is_err());
    }

    #[test]
    fn privileged_means_beyond_the_defaults() {
        let link = |mode, admins, readd| Link {
            group: "mm_rl_infra".into(),
            target: "rocky-linux/infra".parse().expect("target"),
            mode,
            admins,
            readd,
            source: LinkSource::Ledger,
        };
        let defaults = Defaults::default();
        assert_eq!(
            defaults.mode,
            Mode::Sync,
            "the test assumes the shipped defaults"
        );
        assert_eq!(defaults.admins, Admins::None);
        assert_eq!(defaults.readd, Readd::Never);
        assert!(!privileged_link(
            &link(Mode::Sync, Admins::None, Readd::Never),
            &defaults
        ));
        assert!(!privileged_link(
            &link(Mode::Add, Admins::None, Readd::Never),
            &defaults
        ));
        assert!(privileged_link(
            &link(Mode::Exclusive, Admins::None, Readd::Never),
            &defaults
        ));
        assert!(privileged_link(
            &link(Mode::Sync, Admins::Managers, Readd::Never),
            &defaults
        ));
        assert!(privileged_link(
            &link(Mode::Sync, Admins::None, Readd::Always),
            &defaults
        ));
        // What the admin made the default is no privilege.
        let managers = Defaults {
            admins: Admins::Managers,
            ..Defaults::default()
        };
        assert!(!privileged_link(
            &link(Mode::Sync, Admins::Managers, Readd::Never),
            &managers
        ));
        assert!(privileged_link(
            &link(Mode::Sync, Admins::Group("mm_rl_x".into()), Readd::Never),
            &managers
        ));
    }
}
