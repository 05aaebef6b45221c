//! The one retry policy: waits double from a start to a cap, and reset on success.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    start: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// 1 s doubling to 60 s: directory sessions, failed cycles.
    pub fn standard() -> Backoff {
        Backoff::new(Duration::from_secs(1), Duration::from_secs(60))
    }

    pub fn new(start: Duration, max: Duration) -> Backoff {
        Backoff {
            start,
            max,
            next: start,
        }
    }

    /// The wait before the next try; the one after it is twice as long, up to the cap.
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        wait
    }

    /// The wait the next failure would get, without counting one.
    pub fn peek(&self) -> Duration {
        self.next
    }

    pub fn reset(&mut self) {
        self.next = self.start;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_to_the_cap_and_reset() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(5));
        let waits: Vec<u64> = (0..5).map(|_| b.next_wait().as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 5, 5]);
        b.reset();
        assert_eq!(b.next_wait().as_secs(), 1);
        assert_eq!(b.peek().as_secs(), 2);
    }
}
