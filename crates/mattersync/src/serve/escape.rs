//! Values from outside (a slash command's user and channel names, group and user names,
//! error texts) on their way into a log line or a Markdown answer.
//!
//! - [`Clean`] shows control characters as escapes (`\n`, `\u{1b}`), so a name cannot end
//!   a text log line and forge the next one (the JSON format escapes already).
//! - [`md`] escapes Markdown, so a name cannot turn an answer into links, headings or tables;
//!   [`code`] and [`mention`] are its forms for code spans and `@user`.

use std::fmt;

/// Shows `value` with its control characters escaped (for text logs).
pub struct Clean<'a>(pub &'a str);

impl fmt::Display for Clean<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            push_char(f, c)?;
        }
        Ok(())
    }
}

/// Characters that move or reorder text: line and paragraph separators, bidi controls.
fn invisible(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn push_char(out: &mut impl fmt::Write, c: char) -> fmt::Result {
    match c {
        '\n' => out.write_str("\\n"),
        '\r' => out.write_str("\\r"),
        '\t' => out.write_str("\\t"),
        c if invisible(c) => write!(out, "\\u{{{:x}}}", c as u32),
        c => out.write_char(c),
    }
}

/// `value` as Markdown text that renders as itself, on one line. An underscore inside a word
/// (`mm_rl_infra`) is left alone: it cannot start or end emphasis.
pub fn md(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    let mut out = String::with_capacity(value.len() + 8);
    for (i, &c) in chars.iter().enumerate() {
        let inside_word = |j: Option<usize>| {
            j.and_then(|j| chars.get(j))
                .is_some_and(|c| c.is_alphanumeric())
        };
        let special = match c {
            '_' => !(inside_word(i.checked_sub(1)) && inside_word(Some(i + 1))),
            '\\' | '`' | '*' | '~' | '[' | ']' | '(' | ')' | '#' | '>' | '<' | '|' | '!' | '&'
            | '$' | ':' => true,
            _ => false,
        };
        if special {
            out.push('\\');
            out.push(c);
        } else {
            let _ = push_char(&mut out, c);
        }
    }
    out
}

/// `value` in a code span, or escaped text when a code span cannot hold it.
pub fn code(value: &str) -> String {
    if value.is_empty() || value.contains('`') || value.chars().any(invisible) {
        md(value)
    } else {
        format!("`{value}`")
    }
}

/// `@name` for a name Mattermost would accept as a username (so the mention works);
/// anything else escaped, without the `@`.
pub fn mention(name: &str) -> String {
    let plain = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if plain {
        format!("@{name}")
    } else {
        md(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_cannot_end_a_log_line() {
        let forged = "neil\n2026-01-01T00:00:00Z  INFO forged\r\t\u{1b}[31m\u{2028}\u{202e}";
        let shown = Clean(forged).to_string();
        assert!(!shown.chars().any(invisible), "{shown}");
        assert_eq!(
            shown,
            "neil\\n2026-01-01T00:00:00Z  INFO forged\\r\\t\\u{1b}[31m\\u{2028}\\u{202e}"
        );
        assert_eq!(
            Clean("rocky-linux/infra é").to_string(),
            "rocky-linux/infra é"
        );
    }

    #[test]
    fn markdown_renders_as_itself() {
        assert_eq!(
            md("**x** [a](http://e.org) `c` _i_ ~s~ # |t| <b> ! & $ :y:"),
            "\\*\\*x\\*\\* \\[a\\]\\(http\\://e.org\\) \\`c\\` \\_i\\_ \\~s\\~ \\# \\|t\\| \\<b\\> \\! \\& \\$ \\:y\\:"
        );
        assert_eq!(md("a\nb\\"), "a\\nb\\\\");
        assert_eq!(md("mm_rl_infra _x_ y_"), "mm_rl_infra \\_x\\_ y\\_");
        assert_eq!(code("mm_rl_infra"), "`mm_rl_infra`");
        assert_eq!(code("a`b"), "a\\`b");
        assert_eq!(mention("neil.g_2"), "@neil.g_2");
        assert_eq!(mention("[x](y)"), "\\[x\\]\\(y\\)");
        assert_eq!(mention("Neil"), "Neil");
    }
}
