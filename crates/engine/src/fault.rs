//! Fault hooks for the tests. With the `fault-injection` feature (enabled only by the
//! binary's dev-dependency, so only in test builds) they read their settings from the
//! environment; in a release build they do nothing.

/// `MATTERSYNC_FAULT_LOSE_NOTIFICATIONS=N`: the change source loses the next N notifications
/// that name entries, as a notification lost in transit would be. True when this one is lost.
pub fn lose_notification() -> bool {
    #[cfg(feature = "fault-injection")]
    {
        use std::sync::atomic::{AtomicI64, Ordering};
        use std::sync::OnceLock;
        static LEFT: OnceLock<AtomicI64> = OnceLock::new();
        let left = LEFT.get_or_init(|| {
            AtomicI64::new(
                std::env::var("MATTERSYNC_FAULT_LOSE_NOTIFICATIONS")
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
            )
        });
        if left.load(Ordering::SeqCst) > 0 {
            return left.fetch_sub(1, Ordering::SeqCst) > 0;
        }
    }
    false
}
