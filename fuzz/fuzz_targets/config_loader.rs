//! The configuration loader (`mattersync_engine::config`, linked as a crate): any text,
//! with any environment overrides, is a configuration or an error, never a panic; an
//! accepted configuration's links and convention links resolve without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mattersync_engine::config;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // Lines after a line `---` are environment overrides `KEY=value`.
    let (file, env) = match text.split_once("\n---\n") {
        Some((f, e)) => (f, e),
        None => (&*text, ""),
    };
    let env: Vec<(String, String)> = env
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (format!("MATTERSYNC__{k}"), v.to_string()))
        .collect();
    let Ok(cfg) = config::parse(file, &env) else {
        return;
    };
    let links = cfg.file_links().expect("validated links resolve");
    let naming = cfg.naming().expect("validated naming");
    for l in &links {
        let _ = cfg.convention_link(&naming, &l.group);
    }
    for area in cfg.areas.keys() {
        let _ = cfg.convention_link(&naming, &naming.format(area, "x-y_z"));
    }
    assert!((0.0..=1.0).contains(&cfg.guards.max_removal_ratio));
    let _ = config::humantime(&cfg.serve.full_reconcile).expect("validated duration");
});
