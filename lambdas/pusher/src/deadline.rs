//! Time left in the invocation, and how long to back off.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::Rng;

/// When the invocation must have finished.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    at: Option<Instant>,
}

impl Deadline {
    /// From the Lambda context's deadline (epoch milliseconds). 0 means "unknown" (a test's
    /// `Context::default()`): no limit.
    pub fn from_epoch_ms(deadline_ms: u64) -> Deadline {
        if deadline_ms == 0 {
            return Deadline::none();
        }
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Deadline::after(Duration::from_millis(deadline_ms.saturating_sub(now_ms)))
    }

    pub fn after(remaining: Duration) -> Deadline {
        Deadline {
            at: Some(Instant::now() + remaining),
        }
    }

    pub fn none() -> Deadline {
        Deadline { at: None }
    }

    pub fn remaining(&self) -> Duration {
        match self.at {
            Some(at) => at.saturating_duration_since(Instant::now()),
            None => Duration::MAX,
        }
    }

    /// Whether something taking `duration` would still end `margin` before the deadline.
    pub fn allows(&self, duration: Duration, margin: Duration) -> bool {
        self.remaining() > duration.saturating_add(margin)
    }
}

/// "Full jitter" backoff: a uniformly random wait in `[0, min(cap, base * 2^attempt)]`, so
/// throttled senders spread out instead of retrying in lockstep.
pub fn full_jitter(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let ceiling = base
        .saturating_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX))
        .min(cap);
    let ceiling_us = ceiling.as_micros().min(u64::MAX as u128) as u64;
    Duration::from_micros(rand::rng().random_range(0..=ceiling_us))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let base = Duration::from_millis(10);
        let cap = Duration::from_millis(100);
        for _ in 0..200 {
            assert!(full_jitter(0, base, cap) <= base);
            assert!(full_jitter(2, base, cap) <= base * 4);
            assert!(full_jitter(40, base, cap) <= cap);
        }
    }

    #[test]
    fn an_unknown_deadline_never_runs_out_and_a_past_one_has_no_time() {
        assert!(
            Deadline::from_epoch_ms(0).allows(Duration::from_secs(3600), Duration::from_secs(1))
        );
        let past = Deadline::from_epoch_ms(1_000);
        assert_eq!(past.remaining(), Duration::ZERO);
        assert!(!past.allows(Duration::ZERO, Duration::ZERO));
    }
}
