//! Bounded exponential backoff with full jitter, shared by the vendor clients (safe reads) and the
//! background workers (status follow-up). Jitter keeps many tenants' retries from synchronising
//! after a vendor outage.

use std::time::Duration;

use rand::Rng;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay scale of the first retry.
    pub base: Duration,
    /// Upper bound of any single delay.
    pub max: Duration,
    /// Attempts in all, the first included; `1` means no retry.
    pub attempts: u32,
}

impl Backoff {
    pub const fn new(base: Duration, max: Duration, attempts: u32) -> Self {
        Self { base, max, attempts }
    }

    /// No retries at all: for mutations, which are never blindly retried.
    pub const NONE: Backoff = Backoff::new(Duration::ZERO, Duration::ZERO, 1);

    /// The ceiling of the delay before retry number `retry` (1-based): base * 2^(retry-1), capped.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.saturating_sub(1)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// A random delay in `[ceiling/2, ceiling]` before retry number `retry`: jittered, but never so
    /// short that a struggling vendor is hammered.
    pub fn delay(&self, retry: u32) -> Duration {
        let ceiling = self.ceiling(retry);
        if ceiling.is_zero() {
            return ceiling;
        }
        let half = ceiling / 2;
        let nanos = u64::try_from((ceiling - half).as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(rand::rng().random_range(0..=nanos))
    }

    /// Whether another attempt is allowed after `made` attempts.
    pub fn allows(&self, made: u32) -> bool {
        made < self.attempts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_and_stay_within_bounds() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1), 5);
        assert_eq!(b.ceiling(1), Duration::from_millis(100));
        assert_eq!(b.ceiling(2), Duration::from_millis(200));
        assert_eq!(b.ceiling(4), Duration::from_millis(800));
        assert_eq!(b.ceiling(5), Duration::from_secs(1));
        assert_eq!(b.ceiling(60), Duration::from_secs(1));
        for retry in 1..8 {
            let d = b.delay(retry);
            assert!(d >= b.ceiling(retry) / 2 && d <= b.ceiling(retry), "{d:?}");
        }
    }

    #[test]
    fn attempts_are_bounded() {
        let b = Backoff::new(Duration::from_millis(1), Duration::from_millis(1), 3);
        assert!(b.allows(1) && b.allows(2) && !b.allows(3));
        assert!(!Backoff::NONE.allows(1));
    }
}
