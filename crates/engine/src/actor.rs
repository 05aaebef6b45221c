//! Who does something, as the audit trail names them: `cli:<unix user>`,
//! `slash:<mattermost user>`, `approval:<approver>`, `serve:<host>/<pid>`.
//!
//! One place builds these strings, so every entry point names its actor the same way.

/// The person running the CLI: `cli:<user>` from `USER` (or `LOGNAME`), else the numeric
/// uid from `/proc/self/status`, else `cli:unknown`. What the environment says, not a proof.
pub fn cli() -> String {
    format!("cli:{}", clean(&unix_user()))
}

/// Someone who typed the slash command in Mattermost (the name Mattermost sent).
pub fn slash(username: &str) -> String {
    format!("slash:{}", clean(username))
}

/// Who approved a held plan: a name the approver gave (e.g. `cli:neil`, from
/// `mattersync approve`), or `api` for a bare API call.
pub fn approval(who: Option<&str>) -> String {
    let who = who.map(clean).filter(|w| !w.is_empty());
    format!("approval:{}", who.as_deref().unwrap_or("api"))
}

/// This service instance: `serve:<host>/<pid>`.
pub fn serve() -> String {
    format!("serve:{}/{}", clean(&hostname()), std::process::id())
}

fn unix_user() -> String {
    for var in ["USER", "LOGNAME"] {
        if let Ok(u) = std::env::var(var) {
            if !u.trim().is_empty() {
                return u;
            }
        }
    }
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().next().map(|u| format!("uid{u}")))
        })
        .unwrap_or_else(|| "unknown".to_string())
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.trim().is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Printable, short, no spaces or control characters: an actor is one word in a column.
fn clean(s: &str) -> String {
    s.trim()
        .chars()
        .filter(|c| !c.is_control())
        .map(|c| if c.is_whitespace() { '_' } else { c })
        .take(64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actors_are_one_clean_word_with_their_kind_first() {
        assert_eq!(slash("neil"), "slash:neil");
        assert_eq!(slash("ne il\n\u{1b}[31m"), "slash:ne_il[31m");
        assert_eq!(approval(None), "approval:api");
        assert_eq!(approval(Some("  ")), "approval:api");
        assert_eq!(approval(Some("cli:neil")), "approval:cli:neil");
        assert!(cli().starts_with("cli:") && cli().len() > 4);
        let s = serve();
        assert!(
            s.starts_with("serve:") && s.ends_with(&format!("/{}", std::process::id())),
            "{s}"
        );
        assert_eq!(clean(&"x".repeat(100)).len(), 64);
    }
}
