//! Distinguished names (RFC 4514): parsing, comparison and escaping.
//!
//! The directory hands back DNs as the people who wrote them typed them:
//! `uid=neil,cn=users,cn=accounts,dc=rockylinux,dc=org`, `UID=Neil, CN=Users, …`, or with
//! escapes (`cn=a\,b`, `cn=\23x`, `cn=#04…`). Two DNs name the same entry when their RDNs
//! match attribute by attribute, with attribute types compared case-insensitively and values
//! compared the way `caseIgnoreMatch` does (case folded, insignificant spaces removed).
//! [`Dn::key`] is that comparison form; [`Dn`]'s `Eq`/`Ord`/`Hash` use it.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

/// A DN that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid DN {dn:?}: {reason}")]
pub struct DnError {
    pub dn: String,
    pub reason: String,
}

/// One `type=value` in an RDN. The value is unescaped (the string as the directory means it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ava {
    pub attr: String,
    pub value: String,
    /// The value was written as `#<hex of BER>` (kept as written, lowercased).
    pub hex: bool,
}

/// A parsed distinguished name: RDNs from the entry itself up to the root, as RFC 4514
/// writes them.
#[derive(Debug, Clone)]
pub struct Dn {
    rdns: Vec<Vec<Ava>>,
    /// Comparison form of each RDN (type lowercased, value folded, AVAs sorted).
    keys: Vec<String>,
}

impl Dn {
    /// Parse an RFC 4514 string. The empty string is the root DN (no RDNs).
    pub fn parse(s: &str) -> Result<Dn, DnError> {
        let err = |reason: &str| DnError {
            dn: s.to_string(),
            reason: reason.to_string(),
        };
        let mut rdns: Vec<Vec<Ava>> = Vec::new();
        if s.trim().is_empty() {
            return Ok(Dn::from_rdns(rdns));
        }
        let mut rdn: Vec<Ava> = Vec::new();
        let mut chars = s.chars().peekable();
        loop {
            // attributeType: descr or numericoid, surrounded by optional spaces.
            let mut attr = String::new();
            while chars.peek() == Some(&' ') {
                chars.next();
            }
            while let Some(&c) = chars.peek() {
                if c == '=' {
                    break;
                }
                if !(c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == ' ') {
                    return Err(err(&format!("unexpected {c:?} in an attribute type")));
                }
                attr.push(c);
                chars.next();
            }
            let attr = attr.trim_end().to_string();
            if attr.is_empty() || attr.contains(' ') {
                return Err(err("missing or malformed attribute type"));
            }
            if chars.next() != Some('=') {
                return Err(err(&format!(
                    "attribute type {attr:?} is not followed by '='"
                )));
            }
            while chars.peek() == Some(&' ') {
                chars.next();
            }
            // attributeValue: #hexstring or string with escapes.
            let hex = chars.peek() == Some(&'#');
            let value = if hex {
                chars.next();
                let mut text = String::from("#");
                while let Some(&c) = chars.peek() {
                    if c == ',' || c == '+' || c == ' ' {
                        break;
                    }
                    if !c.is_ascii_hexdigit() {
                        return Err(err("a value starting with '#' must be a hex string"));
                    }
                    text.push(c.to_ascii_lowercase());
                    chars.next();
                }
                if text.len() < 3 || text.len() % 2 == 0 {
                    return Err(err("malformed hex string value"));
                }
                while chars.peek() == Some(&' ') {
                    chars.next();
                }
                text
            } else {
                let mut bytes: Vec<u8> = Vec::new();
                // Length of `bytes` up to the last character that was escaped or not a
                // space: unescaped trailing spaces are not part of the value.
                let mut significant = 0;
                while let Some(&c) = chars.peek() {
                    match c {
                        ',' | '+' => break,
                        '\\' => {
                            chars.next();
                            let Some(e) = chars.next() else {
                                return Err(err("a '\\' ends the DN"));
                            };
                            if e.is_ascii_hexdigit() {
                                let Some(e2) = chars.next().filter(char::is_ascii_hexdigit) else {
                                    return Err(err("'\\' must be followed by two hex digits or a special character"));
                                };
                                let pair = [e as u8, e2 as u8];
                                let text = std::str::from_utf8(&pair)
                                    .map_err(|_| err("bad hex escape"))?;
                                let byte = u8::from_str_radix(text, 16)
                                    .map_err(|_| err("bad hex escape"))?;
                                bytes.push(byte);
                            } else if matches!(
                                e,
                                '"' | '+' | ',' | ';' | '<' | '>' | '\\' | ' ' | '#' | '='
                            ) {
                                let mut buf = [0u8; 4];
                                bytes.extend_from_slice(e.encode_utf8(&mut buf).as_bytes());
                            } else {
                                return Err(err(&format!("invalid escape '\\{e}'")));
                            }
                            significant = bytes.len();
                        }
                        '"' | ';' | '<' | '>' | '\0' => {
                            return Err(err(&format!("unescaped {c:?} in a value")));
                        }
                        _ => {
                            chars.next();
                            let mut buf = [0u8; 4];
                            bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                            if c != ' ' {
                                significant = bytes.len();
                            }
                        }
                    }
                }
                bytes.truncate(significant);
                String::from_utf8(bytes).map_err(|_| err("value is not UTF-8"))?
            };
            rdn.push(Ava { attr, value, hex });
            match chars.next() {
                None => {
                    rdns.push(rdn);
                    break;
                }
                Some(',') => {
                    rdns.push(std::mem::take(&mut rdn));
                }
                Some('+') => {}
                Some(c) => return Err(err(&format!("unexpected {c:?}"))),
            }
        }
        Ok(Dn::from_rdns(rdns))
    }

    fn from_rdns(rdns: Vec<Vec<Ava>>) -> Dn {
        let keys = rdns.iter().map(|rdn| rdn_key(rdn)).collect();
        Dn { rdns, keys }
    }

    /// The comparison form: `uid=neil,cn=users,…` lowercased, spaces normalized, escaped.
    pub fn key(&self) -> String {
        self.keys.join(",")
    }

    /// The RDNs, the entry's own first.
    pub fn rdns(&self) -> &[Vec<Ava>] {
        &self.rdns
    }

    pub fn is_root(&self) -> bool {
        self.rdns.is_empty()
    }

    /// True when `self` is strictly below `base` (not `base` itself).
    pub fn is_descendant_of(&self, base: &Dn) -> bool {
        self.keys.len() > base.keys.len() && self.keys.ends_with(&base.keys)
    }

    /// The entry's own RDN value for `attr` (case-insensitive type), e.g. `cn` of
    /// `cn=mm_rl_infra,cn=groups,…`.
    pub fn rdn_value(&self, attr: &str) -> Option<&str> {
        self.rdns
            .first()?
            .iter()
            .find(|a| a.attr.eq_ignore_ascii_case(attr))
            .map(|a| a.value.as_str())
    }

    /// `attr=value,<parent>` with the value escaped.
    pub fn child(&self, attr: &str, value: &str) -> Dn {
        let mut rdns = Vec::with_capacity(self.rdns.len() + 1);
        rdns.push(vec![Ava {
            attr: attr.to_string(),
            value: value.to_string(),
            hex: false,
        }]);
        rdns.extend(self.rdns.iter().cloned());
        Dn::from_rdns(rdns)
    }
}

/// `cn=Foo  Bar` → `cn=foo bar`; multi-valued RDNs sorted so `a=1+b=2` equals `b=2+a=1`.
fn rdn_key(rdn: &[Ava]) -> String {
    let mut avas: Vec<String> = rdn
        .iter()
        .map(|a| {
            let folded: String = a
                .value
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .to_lowercase();
            let value = if a.hex {
                a.value.clone()
            } else {
                escape_dn_value(&folded)
            };
            format!("{}={}", a.attr.to_ascii_lowercase(), value)
        })
        .collect();
    avas.sort();
    avas.join("+")
}

impl fmt::Display for Dn {
    /// RFC 4514 string with the original case and escaped values.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, rdn) in self.rdns.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            for (j, ava) in rdn.iter().enumerate() {
                if j > 0 {
                    f.write_str("+")?;
                }
                if ava.hex {
                    write!(f, "{}={}", ava.attr, ava.value)?;
                } else {
                    write!(f, "{}={}", ava.attr, escape_dn_value(&ava.value))?;
                }
            }
        }
        Ok(())
    }
}

impl PartialEq for Dn {
    fn eq(&self, other: &Self) -> bool {
        self.keys == other.keys
    }
}
impl Eq for Dn {}
impl Hash for Dn {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.keys.hash(state);
    }
}
impl PartialOrd for Dn {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Dn {
    fn cmp(&self, other: &Self) -> Ordering {
        self.keys.cmp(&other.keys)
    }
}

/// Escape a string for use as an attribute value in a DN (RFC 4514 section 2.4):
/// `" + , ; < > \` and `=` get a backslash, NUL becomes `\00`, a leading space or `#` and a
/// trailing space are escaped. Other characters (including non-ASCII) are kept as UTF-8.
pub fn escape_dn_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' | '=' => {
                out.push('\\');
                out.push(c);
            }
            '\0' => out.push_str("\\00"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            '#' if i == 0 => out.push_str("\\#"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dn(s: &str) -> Dn {
        match Dn::parse(s) {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn escape_dn_value_escapes_rfc4514_specials() {
        assert_eq!(escape_dn_value("plain"), "plain");
        assert_eq!(escape_dn_value("a,b"), "a\\,b");
        assert_eq!(escape_dn_value("a=b"), "a\\=b");
        assert_eq!(escape_dn_value("a+b"), "a\\+b");
        assert_eq!(escape_dn_value("<x>"), "\\<x\\>");
        assert_eq!(escape_dn_value("#x"), "\\#x");
        assert_eq!(escape_dn_value("x#"), "x#");
        assert_eq!(escape_dn_value("a;b"), "a\\;b");
        assert_eq!(escape_dn_value("back\\slash"), "back\\\\slash");
        assert_eq!(escape_dn_value("say \"hi\""), "say \\\"hi\\\"");
        assert_eq!(escape_dn_value(" lead"), "\\ lead");
        assert_eq!(escape_dn_value("trail "), "trail\\ ");
        assert_eq!(escape_dn_value("in side"), "in side");
        assert_eq!(escape_dn_value(" "), "\\ ");
        assert_eq!(escape_dn_value("nul\0"), "nul\\00");
        assert_eq!(escape_dn_value("Zoë"), "Zoë");
        assert_eq!(escape_dn_value(""), "");
    }

    #[test]
    fn escaped_values_round_trip_through_the_parser() {
        let base = dn("cn=groups,cn=accounts,dc=rockylinux,dc=org");
        for v in [
            "a,b", "a=b", "#lead", " both ", "x\\y", "q\"q", "a+b;c<d>", "Zoë", "nul\0x",
        ] {
            let child = base.child("cn", v);
            let text = child.to_string();
            let back = dn(&text);
            assert_eq!(back.rdn_value("cn"), Some(v), "{text}");
            assert_eq!(back, child);
            assert!(back.is_descendant_of(&base));
        }
    }

    #[test]
    fn comparison_ignores_case_and_insignificant_spaces() {
        let a = dn("uid=neil,cn=users,cn=accounts,dc=rockylinux,dc=org");
        let b = dn("UID=Neil, CN=Users , cn=accounts,DC=RockyLinux,dc=org");
        assert_eq!(a, b);
        assert_eq!(a.key(), b.key());
        assert_eq!(
            a.key(),
            "uid=neil,cn=users,cn=accounts,dc=rockylinux,dc=org"
        );
        assert_eq!(dn("cn=Foo   Bar,dc=x"), dn("cn=foo bar,dc=x"));
        assert_ne!(dn("cn=foobar,dc=x"), dn("cn=foo bar,dc=x"));
        // A hex-escaped character equals the character.
        assert_eq!(dn("cn=a\\2cb,dc=x"), dn("cn=a\\,b,dc=x"));
        assert_eq!(dn("cn=\\4e\\65il,dc=x"), dn("cn=neil,dc=x"));
        // UTF-8 through hex escapes.
        assert_eq!(dn("cn=Zo\\C3\\AB,dc=x").rdn_value("cn"), Some("Zoë"));
        // Multi-valued RDNs compare as sets.
        assert_eq!(dn("cn=a+uid=b,dc=x"), dn("UID=B+CN=A,dc=x"));
        // Escaped trailing space is kept, unescaped is not.
        assert_eq!(dn("cn=a\\ ,dc=x").rdn_value("cn"), Some("a "));
        assert_eq!(dn("cn=a ,dc=x").rdn_value("cn"), Some("a"));
    }

    #[test]
    fn escaped_separators_do_not_split() {
        let d = dn("cn=mm\\,evil\\+x,cn=groups,dc=x");
        assert_eq!(d.rdns().len(), 3);
        assert_eq!(d.rdn_value("CN"), Some("mm,evil+x"));
        assert!(!d.is_descendant_of(&dn("cn=evil,cn=groups,dc=x")));
    }

    #[test]
    fn descendants_are_strictly_below() {
        let base = dn("cn=groups,cn=accounts,dc=rockylinux,dc=org");
        assert!(
            dn("cn=mm_rl_infra,cn=groups,cn=accounts,dc=rockylinux,dc=org").is_descendant_of(&base)
        );
        assert!(
            dn("cn=x,cn=sub,CN=Groups,cn=accounts,dc=rockylinux,dc=org").is_descendant_of(&base)
        );
        assert!(!base.is_descendant_of(&base));
        assert!(!dn("uid=neil,cn=users,cn=accounts,dc=rockylinux,dc=org").is_descendant_of(&base));
        // A suffix of the string is not a suffix of the RDN sequence.
        assert!(!dn("cn=x,xcn=groups,cn=accounts,dc=rockylinux,dc=org").is_descendant_of(&base));
        assert!(dn("dc=org").is_descendant_of(&dn("")));
    }

    #[test]
    fn hex_string_values_are_kept_and_compared_case_insensitively() {
        let a = dn("cn=#04024869,dc=x");
        assert_eq!(a, dn("CN=#04024869,DC=X"));
        assert_eq!(a.to_string(), "cn=#04024869,dc=x");
        // A string that merely starts with '#' stays a string.
        let s = dn("cn=\\#abc,dc=x");
        assert_eq!(s.rdn_value("cn"), Some("#abc"));
        assert_eq!(s.to_string(), "cn=\\#abc,dc=x");
        assert_ne!(s, dn("cn=#abcd,dc=x"));
    }

    #[test]
    fn malformed_dns_are_rejected() {
        for bad in [
            "uid",
            "=x,dc=x",
            "cn=a,",
            "cn=a\\",
            "cn=a\\zz",
            "cn=a\\4",
            "cn=a\"b",
            "cn=a;dc=x",
            "c n=a",
            "cn=#zz",
            "cn=#123",
        ] {
            assert!(Dn::parse(bad).is_err(), "{bad:?} should not parse");
        }
        assert!(Dn::parse("").is_ok_and(|d| d.is_root()));
    }
}
