//! Saved plans (`plan --out`), possibly truncated or edited: loading never panics, and a
//! plan that loads saves and loads back to the same plan (so `apply`'s comparison with a
//! fresh plan is exact).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mattersync_core::Plan;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(plan) = Plan::from_saved_json(text) else {
        return;
    };
    let again = Plan::from_saved_json(&plan.to_saved_json()).expect("a saved plan loads");
    assert_eq!(again, plan, "a plan changed on a save/load round trip");
    let _ = plan.summary();
    let _ = plan.writes();
});
