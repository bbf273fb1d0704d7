//! Back-off arithmetic shared by the Key Vault client and the identity retries: how long to wait
//! before the next attempt: jittered exponential back-off, or the service's
//! `Retry-After` plus a little jitter so throttled callers do not return in lockstep; Key Vault
//! throttling spreads its callers over one more window (`spread_retry`).

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

/// Longest extra wait added to a throttled caller's wait: Key Vault's throttling window.
pub(crate) const MAX_SPREAD: Duration = Duration::from_secs(10);

/// A throttled Key Vault caller's wait: what the vault asked (`Retry-After`, or until the
/// vault's back-off ends), then a uniformly random share of as long again (at most
/// [`MAX_SPREAD`]), so the callers one window turned away, on every node, come back spread over
/// the next window rather than all at its start (no retry storm). The extra share is cut to
/// half of what `room` (the time to the deadline) leaves after `wait`.
pub(crate) fn spread_retry(wait: Duration, room: Duration) -> Duration {
    let spread = wait.min(MAX_SPREAD).min(room.saturating_sub(wait) / 2);
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
    fn throttled_waits_spread_over_one_more_window_within_the_deadline() {
        let asked = Duration::from_secs(2);
        for _ in 0..100 {
            let d = spread_retry(asked, Duration::from_secs(60));
            assert!(d >= asked && d <= asked * 2, "{d:?}");
            let d = spread_retry(asked, Duration::from_secs(3));
            assert!(d >= asked && d <= Duration::from_millis(2500), "{d:?}");
            assert_eq!(spread_retry(asked, Duration::from_secs(1)), asked);
        }
        let d = spread_retry(Duration::from_secs(30), Duration::from_secs(600));
        assert!(d <= Duration::from_secs(30) + MAX_SPREAD);
        assert_eq!(
            spread_retry(Duration::ZERO, Duration::from_secs(5)),
            Duration::ZERO
        );
    }

    #[test]
    fn jitter_is_small() {
        let d = with_jitter(Duration::from_secs(2));
        assert!(d >= Duration::from_secs(2) && d <= Duration::from_millis(2200));
        assert_eq!(with_jitter(Duration::ZERO), Duration::ZERO);
    }
}
