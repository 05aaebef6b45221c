//! The status page: what an admin looks at first — is it working, what needs attention, what
//! is linked, what changed, who is waiting for an account. Server-rendered HTML, no script.

use super::state::{CycleReport, Hold, Shared};
use mattersync_core::LinkSource;
use mattersync_ledger::{Event, Run};
use std::fmt::Write as _;

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// `2026-11-29T06:07:11.123Z` → `2026-11-29 06:07:11Z`.
fn when(rfc3339: &str) -> String {
    let s = rfc3339.replacen('T', " ", 1);
    match (s.find('.'), s.ends_with('Z')) {
        (Some(dot), true) => format!("{}Z", &s[..dot]),
        _ => s,
    }
}

/// `900` → `15 min`.
fn every(secs: u64) -> String {
    match secs {
        s if s % 3600 == 0 => format!("{} h", s / 3600),
        s if s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

fn badge(outcome: &str) -> String {
    let class = match outcome {
        "ok" | "no_changes" => "good",
        "partial" | "stopped" | "running" => "warn",
        _ => "bad",
    };
    format!(
        "<span class=\"badge {class}\">{}</span>",
        esc(&outcome.replace('_', " "))
    )
}

const STYLE: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#1d2330;background:#f4f6f9}
header{background:#1e325c;color:#fff;padding:14px 24px;display:flex;gap:18px;align-items:center;flex-wrap:wrap}
header h1{font-size:19px;margin:0 8px 0 0}
header .meta{opacity:.85}
main{padding:8px 24px 32px;max-width:1400px}
section{background:#fff;border:1px solid #dde2ea;border-radius:6px;margin:16px 0;padding:4px 16px 12px}
h2{font-size:15px;margin:12px 0 8px}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eef0f4;vertical-align:top}
th{font-weight:600;color:#555e70;font-size:12px;text-transform:uppercase;letter-spacing:.03em}
td.num{text-align:right;font-variant-numeric:tabular-nums}
code{font:12px ui-monospace,monospace;background:#f0f2f6;padding:1px 4px;border-radius:3px}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600}
.good{background:#d8f3e1;color:#14612f}.warn{background:#fff1cc;color:#7a5600}.bad{background:#fbdada;color:#8a1c1c}
header .badge{font-size:13px}
.attention{border-color:#e0a4a4;background:#fff8f8}
.muted{color:#7a8394}
.err{color:#8a1c1c;font-size:12px}
";

pub fn render(shared: &Shared, runs: &[Run], events: &[Event]) -> String {
    let source_active = shared.source_active();
    let s = &mut String::new();
    shared.read_status(|st| {
        let why = st.not_ready(source_active);
        let _ = write!(
            s,
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta http-equiv=\"refresh\" content=\"30\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>mattersync — {}</title><style>{STYLE}</style></head><body>",
            if why.is_empty() { "ready" } else { "NOT READY" }
        );
        let _ = write!(
            s,
            "<header><h1>mattersync</h1>{}\
             <span class=\"meta\">directory changes: <b>{}</b> — {}</span>\
             <span class=\"meta\">last successful sync: <b>{}</b></span>\
             <span class=\"meta\">full reconcile every {} · up since {}</span></header><main>",
            match &st.role {
                super::state::Role::Standby {
                    leader,
                    epoch,
                    since,
                } => format!(
                    "<span id=\"ready\" class=\"badge\">standby</span>\
                     <span class=\"meta\" id=\"role\">standby, leader is <b>{}</b> (epoch {epoch}) since {}</span>",
                    esc(leader),
                    esc(&when(since))
                ),
                role => format!(
                    "{}{}",
                    if why.is_empty() {
                        "<span id=\"ready\" class=\"badge good\">ready</span>"
                    } else {
                        "<span id=\"ready\" class=\"badge bad\">not ready</span>"
                    },
                    match role {
                        super::state::Role::Leader { epoch, since } => format!(
                            "<span class=\"meta\" id=\"role\">leader (epoch {epoch}) since {}</span>",
                            esc(&when(since))
                        ),
                        _ => String::new(),
                    }
                ),
            },
            esc(&st.source.mode),
            esc(&st.source.detail),
            esc(&st.last_success.as_deref().map(when).unwrap_or_else(|| "never".into())),
            every(shared.settings.full_reconcile.as_secs()),
            esc(&when(&st.started_at)),
        );

        // What needs attention first.
        if !why.is_empty()
            || st.guard_trips.is_some()
            || !st.errors.is_empty()
            || !st.warnings.is_empty()
            || !st.link_issues.is_empty()
        {
            s.push_str("<section class=\"attention\" id=\"attention\"><h2>Needs attention</h2><ul>");
            for w in &why {
                let _ = write!(s, "<li>Not ready: {}</li>", esc(w));
            }
            if let Some(h) = &st.hold {
                let _ = write!(
                    s,
                    "<li><b>A guard holds {} change(s)</b> ({} additions, {} removals) since {}: nothing of it was changed. See <a href=\"#holds\">Held</a> below.</li>",
                    h.summary.held_changes(),
                    h.summary.additions,
                    h.summary.removals,
                    esc(&when(&h.since))
                );
            }
            for i in &st.link_issues {
                if i.broken() {
                    let _ = write!(s, "<li class=\"err\"><b>{}</b></li>", esc(&i.to_string()));
                } else {
                    let _ = write!(s, "<li>{}</li>", esc(&i.to_string()));
                }
            }
            for w in &st.warnings {
                let _ = write!(s, "<li>Warning: {}</li>", esc(w));
            }
            s.push_str("</ul>");
            if !st.errors.is_empty() {
                s.push_str("<h2>Recent errors</h2><table><tr><th>when</th><th>where</th><th>error</th></tr>");
                for e in st.errors.iter().take(10) {
                    let _ = write!(
                        s,
                        "<tr><td>{}</td><td>{}</td><td class=\"err\">{}</td></tr>",
                        esc(&when(&e.at)),
                        esc(&e.what),
                        esc(&e.message)
                    );
                }
                s.push_str("</table>");
            }
            s.push_str("</section>");
        }

        if let Some(h) = &st.hold {
            hold_section(s, h, &shared.settings.listen);
        }

        // Links.
        let _ = write!(s, "<section id=\"links\"><h2>Links ({})</h2>", st.links.len());
        if st.links.is_empty() {
            s.push_str("<p class=\"muted\">No links yet: add <code>[[link]]</code> to the configuration, turn on <code>auto_link</code>, or type <code>/mattersync link &lt;group&gt;</code> in a channel.</p>");
        } else {
            s.push_str("<table><tr><th>group</th><th>team/channel</th><th>mode</th><th>admins</th><th>readd</th><th>from</th><th class=\"num\">members</th><th class=\"num\">pending</th></tr>");
            for l in &st.links {
                let members = st
                    .directory_snapshot
                    .as_ref()
                    .map(|d| {
                        if d.groups.contains_key(&l.group) {
                            d.effective_members(&l.group).len().to_string()
                        } else {
                            "not in directory".to_string()
                        }
                    })
                    .unwrap_or_else(|| "?".into());
                let pending = st.pending.values().filter(|g| g.contains(&l.group)).count();
                let _ = write!(
                    s,
                    "<tr><td><b>{}</b></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                    esc(&l.group),
                    esc(&l.target.to_string()),
                    esc(&l.mode.to_string()),
                    esc(&l.admins.to_string()),
                    esc(&l.readd.to_string()),
                    match l.source {
                        LinkSource::Config => "config file",
                        LinkSource::Convention => "convention",
                        LinkSource::Ledger => "link command",
                    },
                    esc(&members),
                    pending
                );
            }
            s.push_str("</table>");
        }
        s.push_str("</section>");

        // This service's sync cycles.
        s.push_str("<section id=\"runs\"><h2>Recent syncs</h2>");
        if st.cycles.is_empty() {
            s.push_str("<p class=\"muted\">No sync has run yet.</p>");
        } else {
            s.push_str("<table><tr><th>started</th><th>kind</th><th>outcome</th><th>scope</th><th class=\"num\">actions</th><th class=\"num\">users ok</th><th class=\"num\">failed</th><th class=\"num\">API calls</th><th class=\"num\">ms</th><th>detail</th></tr>");
            for c in &st.cycles {
                cycle_row(s, c);
            }
            s.push_str("</table>");
        }
        if st.quiet_cycles > 0 {
            let _ = write!(
                s,
                "<p class=\"muted\">And {} directory change(s) that touched no linked group (read, compared, nothing to do).</p>",
                st.quiet_cycles
            );
        }
        s.push_str("</section>");

        // Pending users.
        let _ = write!(
            s,
            "<section id=\"pending\"><h2>Waiting for a Mattermost account ({})</h2>",
            st.pending.len()
        );
        if st.pending.is_empty() {
            s.push_str("<p class=\"muted\">Every member of a linked group has an account.</p>");
        } else {
            s.push_str("<p class=\"muted\">Added as soon as their account appears (at the latest with the next full reconcile).</p><table><tr><th>directory user</th><th>groups</th></tr>");
            for (uid, groups) in &st.pending {
                let g: Vec<&str> = groups.iter().map(String::as_str).collect();
                let _ = write!(
                    s,
                    "<tr><td>{}</td><td>{}</td></tr>",
                    esc(uid),
                    esc(&g.join(", "))
                );
            }
            s.push_str("</table>");
        }
        s.push_str("</section>");
    });

    // The audit trail.
    s.push_str("<section id=\"changes\"><h2>Recent changes</h2>");
    if events.is_empty() {
        s.push_str("<p class=\"muted\">Nothing changed yet.</p>");
    } else {
        s.push_str("<table><tr><th>when</th><th>by</th><th>action</th><th>where</th><th>user</th><th>because of</th><th>outcome</th></tr>");
        for e in events {
            let _ = write!(
                s,
                "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}{}</td></tr>",
                esc(&when(&e.at)),
                esc(&e.actor),
                esc(&e.action.replace('_', " ")),
                esc(&e.scope),
                esc(&e.username),
                esc(&e.groups.join(", ")),
                badge(&e.outcome),
                e.detail
                    .as_deref()
                    .map(|d| format!(" <span class=\"err\">{}</span>", esc(d)))
                    .unwrap_or_default()
            );
        }
        s.push_str("</table>");
    }
    s.push_str("</section>");

    // Every run the ledger knows (the CLI's too).
    s.push_str("<section id=\"ledger-runs\"><h2>Runs in the ledger</h2>");
    if runs.is_empty() {
        s.push_str("<p class=\"muted\">None yet.</p>");
    } else {
        s.push_str("<table><tr><th>started</th><th>kind</th><th>by</th><th>outcome</th><th class=\"num\">ok</th><th class=\"num\">failed</th><th class=\"num\">API calls</th><th>run</th></tr>");
        for r in runs {
            let _ = write!(
                s,
                "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td><code>{}</code></td></tr>",
                esc(&when(&r.started_at)),
                esc(&r.kind),
                esc(r.actor.as_deref().unwrap_or("-")),
                badge(r.outcome.as_deref().unwrap_or("running")),
                r.actions_ok,
                r.actions_failed,
                r.api_calls,
                esc(r.id.get(..8).unwrap_or(&r.id))
            );
        }
        s.push_str("</table>");
    }
    s.push_str(
        "</section><p class=\"muted\">Also: <a href=\"/metrics\">/metrics</a> · \
         <a href=\"/readyz\">/readyz</a> · <code>POST /sync</code>, <code>GET /plan</code>, \
         <code>GET /holds</code> and <code>POST /approve/&lt;fingerprint&gt;</code> with the API token. This page refreshes every 30 s.</p></main></body></html>",
    );
    std::mem::take(s)
}

/// How many held changes the page lists (GET /holds pages through all of them).
const PAGE_CHANGES: usize = 50;

/// `3725` → `1 h 2 min`.
fn age(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min", s / 60),
        s => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

/// A hold: why, since when, the cause, where and who, and the exact ways to approve it.
fn hold_section(s: &mut String, h: &Hold, listen: &str) {
    let sum = &h.summary;
    let how = h.how_to_approve(listen);
    let _ = write!(
        s,
        "<section class=\"attention\" id=\"holds\"><h2>Held: {} change(s) wait for an approval</h2>\
         <p>Fingerprint <code id=\"hold-fingerprint\">{}</code> · held for {} (since {}; this set since {}) · \
         {} additions, {} removals{} in {} team(s)/channel(s){}.</p><ul>",
        sum.held_changes(),
        esc(&sum.fingerprint),
        age(h.age_secs()),
        esc(&when(&h.since)),
        esc(&when(&h.changed_at)),
        sum.additions,
        sum.removals,
        if sum.role_changes > 0 {
            format!(", {} admin role changes", sum.role_changes)
        } else {
            String::new()
        },
        sum.scopes.len(),
        if h.full { ", planned by a full reconcile" } else { "" }
    );
    for w in &sum.why {
        let _ = write!(s, "<li>Guard: {}</li>", esc(w));
    }
    for c in &sum.causes {
        let _ = write!(
            s,
            "<li>Cause: directory group <b>{}</b> — {} addition(s), {} removal(s)</li>",
            esc(&c.group),
            c.additions,
            c.removals
        );
    }
    if !h.directory_changes.is_empty() {
        let _ = write!(
            s,
            "<li>Directory changes that led here: {}</li>",
            esc(&h.directory_changes.join(", "))
        );
    }
    s.push_str("</ul><table><tr><th>team/channel</th><th>kind</th><th class=\"num\">additions</th><th class=\"num\">removals</th><th class=\"num\">roles</th><th>groups</th></tr>");
    for sc in &sum.scopes {
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            esc(&sc.scope),
            esc(&sc.kind),
            sc.additions,
            sc.removals,
            sc.role_changes,
            esc(&sc.groups.join(", "))
        );
    }
    s.push_str("</table><h2>Who</h2><table><tr><th>change</th><th>team/channel</th><th>user</th><th>groups</th></tr>");
    for c in sum.changes.iter().take(PAGE_CHANGES) {
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}{}</td><td>{}</td><td>{}</td></tr>",
            esc(&c.change.replace('_', " ")),
            esc(&c.scope),
            c.with_team
                .as_ref()
                .map(|t| format!(" <span class=\"muted\">(with the team {})</span>", esc(t)))
                .unwrap_or_default(),
            esc(&c.username),
            esc(&c.groups.join(", "))
        );
    }
    s.push_str("</table>");
    if sum.changes_total > PAGE_CHANGES {
        let _ = write!(
            s,
            "<p class=\"muted\">And {} more: <code>GET /holds?offset={PAGE_CHANGES}</code> lists them.</p>",
            sum.changes_total - PAGE_CHANGES
        );
    }
    let _ = write!(
        s,
        "<h2>How to approve</h2><p>If the directory really changed this much, apply exactly this set (nothing else, and only while it is still what is held):</p>\
         <p>CLI: <code>{}</code><br>HTTP: <code>{}</code></p>\
         <p class=\"muted\">If the directory changes back, the hold clears by itself and nothing is applied. \
         An approval of a set that is no longer held is refused with the new summary.</p></section>",
        esc(how["cli"].as_str().unwrap_or_default()),
        esc(how["http"].as_str().unwrap_or_default())
    );
}

fn cycle_row(s: &mut String, c: &CycleReport) {
    let mut detail = String::new();
    // A held cycle's error already says which guards tripped.
    if !c.guard_trips.is_empty() && c.error.is_none() {
        detail.push_str(&c.guard_trips.join("; "));
    }
    if let Some(e) = &c.error {
        if !detail.is_empty() {
            detail.push_str("; ");
        }
        detail.push_str(e);
    }
    let _ = write!(
        s,
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"err\">{}</td></tr>",
        esc(&when(&c.started_at)),
        esc(c.kind),
        badge(c.outcome.as_str()),
        esc(&c.scope),
        c.actions,
        c.users_ok,
        c.users_failed,
        c.api_calls,
        c.duration_ms,
        esc(&detail)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc("<b a=\"x\">&'</b>"),
            "&lt;b a=&quot;x&quot;&gt;&amp;&#39;&lt;/b&gt;"
        );
    }

    #[test]
    fn intervals_read_short() {
        assert_eq!(every(900), "15 min");
        assert_eq!(every(7200), "2 h");
        assert_eq!(every(90), "90 s");
    }

    #[test]
    fn times_read_short() {
        assert_eq!(when("2026-11-29T06:07:11.123456Z"), "2026-11-29 06:07:11Z");
        assert_eq!(when("2026-11-29T06:07:11Z"), "2026-11-29 06:07:11Z");
    }
}
