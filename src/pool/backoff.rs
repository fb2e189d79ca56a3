//! How long to wait before starting a server again after failures, so a crash-looping server cannot
//! spin the CPU.
//!
//! The streak counts consecutive failures: failed starts, and handles that died soon after starting.
//! The first failure is retried at once (a one-off crash should cost nothing); then 250 ms, doubling,
//! capped at 30 s. A handle that served a call, or lived past `STABLE_AFTER`, ends the streak.

use std::time::Duration;

/// A handle that lived this long before dying was healthy; its death starts a new streak.
pub const STABLE_AFTER: Duration = Duration::from_secs(10);
const FIRST_DELAY: Duration = Duration::from_millis(250);
const MAX_DELAY: Duration = Duration::from_secs(30);

/// Delay before the next start attempt after `streak` consecutive failures.
pub fn delay(streak: u32) -> Duration {
    match streak {
        0 | 1 => Duration::ZERO,
        n => FIRST_DELAY
            .saturating_mul(1u32 << (n - 2).min(16))
            .min(MAX_DELAY),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_caps() {
        assert_eq!(delay(0), Duration::ZERO);
        assert_eq!(delay(1), Duration::ZERO);
        assert_eq!(delay(2), Duration::from_millis(250));
        assert_eq!(delay(3), Duration::from_millis(500));
        assert_eq!(delay(6), Duration::from_secs(4));
        assert_eq!(delay(9), Duration::from_secs(30));
        assert_eq!(delay(u32::MAX), Duration::from_secs(30));
    }
}
