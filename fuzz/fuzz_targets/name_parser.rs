//! Group names as the directory returns them: any string. The parser must never panic, and
//! whatever it accepts must be exactly the template filled with a configured area and a
//! name of the allowed characters, whose conventional channel is a valid channel name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mattersync_core::{Naming, Target};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // The first line may be a template (mostly it is not one), the rest is the name.
    let (template, name) = match text.split_once('\n') {
        Some((t, n)) if t.contains("{area}") => (t.to_string(), n.to_string()),
        _ => ("mm_{area}_{name}".to_string(), text.to_string()),
    };
    let areas = ["rl", "resf", "a1"].map(String::from);
    let Ok(naming) = Naming::new(&template, areas.clone()) else {
        return;
    };
    let Ok(g) = naming.parse(&name) else {
        return;
    };
    assert_eq!(naming.format(&g.area, &g.name), name, "parse is format's inverse");
    assert!(areas.contains(&g.area), "{g:?}: area not configured");
    assert!(
        g.name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-'),
        "{g:?}: name with other characters"
    );
    // With the default template, no LDAP filter or DN metacharacter, no NUL and nothing
    // non-ASCII gets through.
    if template == "mm_{area}_{name}" {
        assert!(
            name.is_ascii() && !name.contains(['*', '(', ')', '\\', '\0', ',', '=', '+', ' ']),
            "{name:?} accepted"
        );
    }
    let channel = g.conventional_channel();
    assert!(
        format!("team/{channel}").parse::<Target>().is_ok(),
        "{g:?}: conventional channel {channel:?} is not a valid channel name"
    );
});
