//! The group naming template (`mm_{area}_{name}` by default) and the channel name a group
//! links to by convention.

use std::collections::BTreeSet;
use std::fmt;

/// A group name that matched the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupName {
    pub area: String,
    pub name: String,
}

/// The longest group name the directory takes. FreeIPA's `group` plugin declares the
/// group's primary key with a maximum length: in freeipa/freeipa `ipaserver/plugins/group.py`,
/// `class group(LDAPObject)`, `takes_params = (Str('cn', pattern=PATTERN_GROUPUSER_NAME, ...,
/// maxlength=255, cli_name='group_name', ...)` (read at commit 09283b71). `ipa group-add`
/// refuses a longer name; plain 389-ds would store one, but a group FreeIPA cannot manage
/// (or a FreeIPA replica cannot take) is not one mattersync should make. Group names that
/// fit the template are ASCII, so characters and bytes are the same count.
pub const GROUP_NAME_MAX: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error(
        "group name {shown:?} is {len} characters long; FreeIPA allows at most {max} (choose a shorter name)"
    )]
    TooLong {
        /// The start of the name (the whole of it may be very long).
        shown: String,
        len: usize,
        max: usize,
    },
    #[error("template {template:?} must contain {{area}} followed by {{name}} exactly once each")]
    BadTemplate { template: String },
    #[error(
        "group name {name:?} does not match the template {template:?} (expected e.g. {example:?})"
    )]
    NoMatch {
        name: String,
        template: String,
        example: String,
    },
    #[error("group name {name:?}: area {area:?} is not configured (configured areas: {known})")]
    UnknownArea {
        name: String,
        area: String,
        known: String,
    },
    #[error("group name {name:?}: {what} {value:?} may only contain {allowed}")]
    BadPart {
        name: String,
        what: &'static str,
        value: String,
        allowed: &'static str,
    },
}

/// The naming template with the configured areas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Naming {
    prefix: String,
    separator: String,
    suffix: String,
    template: String,
    areas: BTreeSet<String>,
}

pub const DEFAULT_TEMPLATE: &str = "mm_{area}_{name}";

impl Naming {
    pub fn new(template: &str, areas: impl IntoIterator<Item = String>) -> Result<Self, NameError> {
        let bad = || NameError::BadTemplate {
            template: template.to_string(),
        };
        if template.matches("{area}").count() != 1 || template.matches("{name}").count() != 1 {
            return Err(bad());
        }
        let (prefix, rest) = template.split_once("{area}").ok_or_else(bad)?;
        let (separator, suffix) = rest.split_once("{name}").ok_or_else(bad)?;
        if separator.is_empty() {
            return Err(bad());
        }
        Ok(Naming {
            prefix: prefix.to_string(),
            separator: separator.to_string(),
            suffix: suffix.to_string(),
            template: template.to_string(),
            areas: areas.into_iter().collect(),
        })
    }

    pub fn template(&self) -> &str {
        &self.template
    }

    pub fn areas(&self) -> &BTreeSet<String> {
        &self.areas
    }

    /// Builds the group name for an area and a name (not validated).
    pub fn format(&self, area: &str, name: &str) -> String {
        format!(
            "{}{}{}{}{}",
            self.prefix, area, self.separator, name, self.suffix
        )
    }

    /// Parses and validates a group name: at most [`GROUP_NAME_MAX`] characters, the
    /// template, a configured area, and the allowed characters (`area`: `a-z0-9`; `name`:
    /// `a-z0-9`, `_` and `-`, starting with a letter or digit).
    pub fn parse(&self, name: &str) -> Result<GroupName, NameError> {
        let len = name.chars().count();
        if len > GROUP_NAME_MAX {
            let mut shown: String = name.chars().take(40).collect();
            shown.push('…');
            return Err(NameError::TooLong {
                shown,
                len,
                max: GROUP_NAME_MAX,
            });
        }
        let no_match = || NameError::NoMatch {
            name: name.to_string(),
            template: self.template.clone(),
            example: self.format(
                self.areas.iter().next().map(String::as_str).unwrap_or("rl"),
                "infra",
            ),
        };
        let inner = name
            .strip_prefix(self.prefix.as_str())
            .and_then(|s| s.strip_suffix(self.suffix.as_str()))
            .ok_or_else(no_match)?;
        let (area, group) = inner
            .split_once(self.separator.as_str())
            .ok_or_else(no_match)?;
        if area.is_empty() || group.is_empty() {
            return Err(no_match());
        }
        if !area
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        {
            return Err(NameError::BadPart {
                name: name.to_string(),
                what: "area",
                value: area.to_string(),
                allowed: "lowercase letters a-z and digits",
            });
        }
        let first_ok = group
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if !first_ok
            || !group
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        {
            return Err(NameError::BadPart {
                name: name.to_string(),
                what: "name",
                value: group.to_string(),
                allowed:
                    "lowercase letters a-z, digits, '_' and '-', starting with a letter or digit",
            });
        }
        if !self.areas.contains(area) {
            return Err(NameError::UnknownArea {
                name: name.to_string(),
                area: area.to_string(),
                known: self.areas.iter().cloned().collect::<Vec<_>>().join(", "),
            });
        }
        Ok(GroupName {
            area: area.to_string(),
            name: group.to_string(),
        })
    }
}

impl GroupName {
    /// The channel a group links to by convention: its name with `_` turned into `-`.
    pub fn conventional_channel(&self) -> String {
        self.name.replace('_', "-")
    }
}

impl fmt::Display for GroupName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.area, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naming() -> Naming {
        Naming::new(DEFAULT_TEMPLATE, ["rl".to_string(), "resf".to_string()]).expect("template")
    }

    #[test]
    fn parses_sop_names_with_underscores_in_the_name() {
        let g = naming().parse("mm_rl_release_eng").expect("valid");
        assert_eq!(g.area, "rl");
        assert_eq!(g.name, "release_eng");
        assert_eq!(g.conventional_channel(), "release-eng");
    }

    #[test]
    fn rejects_unknown_area_and_names_the_known_ones() {
        let err = naming().parse("mm_foo_infra").expect_err("unknown area");
        assert_eq!(
            err.to_string(),
            "group name \"mm_foo_infra\": area \"foo\" is not configured (configured areas: resf, rl)"
        );
    }

    #[test]
    fn rejects_names_outside_the_template() {
        for bad in [
            "infra",
            "mm_rl",
            "mm_rl_",
            "mm__infra",
            "MM_rl_infra",
            "xmm_rl_infra",
        ] {
            assert!(
                matches!(naming().parse(bad), Err(NameError::NoMatch { .. })),
                "{bad} should not match"
            );
        }
    }

    #[test]
    fn rejects_metacharacters_and_uppercase() {
        for bad in [
            "mm_rl_In",
            "mm_rl_a*b",
            "mm_rl_a,b",
            "mm_rl_a=b",
            "mm_rl_(x)",
            "mm_rl_-x",
            "mm_rl_a\\b",
            "mm_rl_a\u{0}",
            "mm_rl_\u{0430}dmins",
            "mm_RL_x",
        ] {
            assert!(
                matches!(naming().parse(bad), Err(NameError::BadPart { .. })),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn group_names_are_at_most_freeipas_255_characters() {
        // "mm_rl_" is 6 characters: the longest accepted name part is 249.
        let longest = format!("mm_rl_{}", "a".repeat(GROUP_NAME_MAX - 6));
        assert_eq!(longest.len(), 255);
        let g = naming()
            .parse(&longest)
            .expect("255 characters is accepted");
        assert_eq!(g.name.len(), 249);
        let over = format!("{longest}a");
        let err = naming()
            .parse(&over)
            .expect_err("256 characters is refused");
        assert!(
            matches!(
                err,
                NameError::TooLong {
                    len: 256,
                    max: 255,
                    ..
                }
            ),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains("256 characters long") && text.contains("at most 255"),
            "{text}"
        );
        // The message shows the start of the name, not all 300 characters of it.
        let err = naming()
            .parse(&format!("mm_rl_{}", "b".repeat(294)))
            .expect_err("300 characters");
        assert!(err.to_string().len() < 160, "{err}");
    }

    #[test]
    fn other_templates_work() {
        let n = Naming::new("{area}-chat-{name}", ["ops".to_string()]).expect("template");
        let g = n.parse("ops-chat-on_call").expect("valid");
        assert_eq!((g.area.as_str(), g.name.as_str()), ("ops", "on_call"));
        assert_eq!(n.format("ops", "x"), "ops-chat-x");
        assert!(Naming::new("mm_{name}", Vec::<String>::new()).is_err());
        assert!(Naming::new("mm_{area}{name}", Vec::<String>::new()).is_err());
    }
}
