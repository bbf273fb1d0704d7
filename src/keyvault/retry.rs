//! How long to wait before the next attempt: jittered exponential back-off, or the service's
//! `Retry-After` plus a little jitter so throttled callers do not return in lockstep.

use std::time::Duration;

use rand::Rng;

/// First back-off step.
pub(crate) const BASE_DELAY: Duration = Duration::from_millis(200);
/// Longest back-off step.
pub(crate) const MAX_DELAY: Duration = Duration::from_secs(10);

/// The wait after failed attempt number `attempt` (1-based): "full jitter" over an exponential
/// ceiling, never below a quarter of the ceiling so a retry is not immediate.
pub(crate) fn backoff(attempt: u32) -> Duration {
    let ceiling = BASE_DELAY
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(MAX_DELAY);
    let floor = ceiling / 4;
    floor + rand::rng().random_range(Duration::ZERO..=ceiling - floor)
}

/// A service-requested wait plus up to 10 % (at most 1 s) of jitter.
pub(crate) fn with_jitter(wait: Duration) -> Duration {
    let spread = (wait / 10).min(Duration::from_secs(1));
    wait + rand::rng().random_range(Duration::ZERO..=spread)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 1..40 {
            let ceiling = BASE_DELAY
                .saturating_mul(1 << (attempt - 1).min(16))
                .min(MAX_DELAY);
            let d = backoff(attempt);
            assert!(d >= ceiling / 4 && d <= ceiling, "{attempt}: {d:?}");
        }
        assert!(backoff(30) <= MAX_DELAY);
    }

    #[test]
    fn jitter_is_small() {
        let d = with_jitter(Duration::from_secs(2));
        assert!(d >= Duration::from_secs(2) && d <= Duration::from_millis(2200));
        assert_eq!(with_jitter(Duration::ZERO), Duration::ZERO);
    }
}
