//! Search filters (RFC 4515).

/// Escape a value for use inside a search filter assertion, e.g. `(uid=<value>)`.
///
/// RFC 4515 requires `*`, `(`, `)`, `\` and NUL to be written as `\2a`, `\28`, `\29`, `\5c`
/// and `\00`. Every other byte outside printable ASCII (control characters, DEL and every
/// byte of a non-ASCII UTF-8 sequence) is hex-escaped too, so a filter is plain ASCII and
/// nothing a user typed can change its structure.
pub fn escape_filter_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    for b in value.bytes() {
        match b {
            b'*' | b'(' | b')' | b'\\' | 0 => out.push_str(&format!("\\{b:02x}")),
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\{b:02x}")),
        }
    }
    out
}

/// `(attr=value)` with the value escaped.
pub fn eq(attr: &str, value: &str) -> String {
    format!("({attr}={})", escape_filter_value(value))
}

/// Check that a configured filter parses (so a typo fails at startup, not mid-run).
pub(crate) fn validate(filter: &str) -> Result<(), String> {
    let f = filter.trim();
    if !(f.starts_with('(') && f.ends_with(')')) {
        return Err(format!("filter {filter:?} must be enclosed in parentheses"));
    }
    ldap3::parse_filter(f)
        .map(|_| ())
        .map_err(|_| format!("filter {filter:?} is not a valid RFC 4515 filter"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_filter_value_escapes_the_rfc4515_specials() {
        assert_eq!(escape_filter_value("neil"), "neil");
        assert_eq!(escape_filter_value("*"), "\\2a");
        assert_eq!(escape_filter_value("a*b"), "a\\2ab");
        assert_eq!(escape_filter_value("(x)"), "\\28x\\29");
        assert_eq!(escape_filter_value("back\\slash"), "back\\5cslash");
        assert_eq!(escape_filter_value("nul\0"), "nul\\00");
        assert_eq!(escape_filter_value(""), "");
        // Characters that are special in DNs are ordinary in filters.
        assert_eq!(escape_filter_value("a,b=c+d#"), "a,b=c+d#");
    }

    #[test]
    fn escape_filter_value_hex_escapes_non_ascii_and_control_bytes() {
        assert_eq!(escape_filter_value("Zoë"), "Zo\\c3\\ab");
        assert_eq!(escape_filter_value("Lučić"), "Lu\\c4\\8di\\c4\\87");
        assert_eq!(escape_filter_value("tab\there"), "tab\\09here");
        assert_eq!(escape_filter_value("del\x7f"), "del\\7f");
    }

    #[test]
    fn an_injection_attempt_stays_one_assertion() {
        let evil = "x)(|(uid=*";
        let f = eq("uid", evil);
        assert_eq!(f, "(uid=x\\29\\28|\\28uid=\\2a)");
        // The parsed filter is one equalityMatch ([3]) carrying the whole value, not an OR ([1]).
        let Ok(ldap3::asn1::Tag::Sequence(seq)) = ldap3::parse_filter(&f) else {
            panic!("{f} did not parse as a sequence");
        };
        assert_eq!(seq.id, 3);
        let Some(ldap3::asn1::Tag::OctetString(v)) = seq.inner.get(1) else {
            panic!("no assertion value");
        };
        assert_eq!(v.inner, evil.as_bytes());
    }

    #[test]
    fn escaped_values_are_accepted_by_the_ldap3_filter_parser() {
        for v in ["*", "(", ")", "\\", "\0", "Zoë", "mm_rl_infra", "a b"] {
            assert!(validate(&eq("cn", v)).is_ok(), "{v:?}");
        }
    }

    #[test]
    fn validate_rejects_broken_filters() {
        assert!(validate("(&(objectClass=fasGroup)(cn=mm_*))").is_ok());
        assert!(validate("objectClass=fasGroup").is_err());
        assert!(validate("(&(objectClass=fasGroup)(cn=mm_*)").is_err());
        assert!(validate("(cn=a\\zz)").is_err());
    }
}
