//! Per-vault back-off shared by every client and identity: once a vault throttles, every request
//! to it waits until the vault's "throttled until" time, so all mounts slow down together instead
//! of hammering a vault that already said no.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::time::Instant;

use super::KvError;
use super::errors::deadline_exceeded;
use crate::backoff::spread_retry;

/// Vault host → the time before which no request should be sent.
#[derive(Debug, Default)]
pub(crate) struct VaultBackoff {
    until: Mutex<HashMap<String, Instant>>,
}

impl VaultBackoff {
    /// Records that `vault` asked for quiet until `until` (the later time wins).
    pub(crate) fn throttle(&self, vault: &str, until: Instant) {
        let mut map = self.lock();
        let now = Instant::now();
        map.retain(|_, t| *t > now);
        let entry = map.entry(vault.to_string()).or_insert(until);
        *entry = (*entry).max(until);
    }

    /// When `vault` may be called again, if it is still backing off.
    pub(crate) fn until(&self, vault: &str) -> Option<Instant> {
        self.lock()
            .get(vault)
            .copied()
            .filter(|t| *t > Instant::now())
    }

    /// Waits until `vault` may be called; fails at once if that is past `deadline`.
    pub(crate) async fn wait(&self, vault: &str, deadline: Instant) -> Result<(), KvError> {
        let Some(until) = self.until(vault) else {
            return Ok(());
        };
        if until > deadline {
            let wait = until.saturating_duration_since(Instant::now());
            return Err(KvError {
                kind: super::KvErrorKind::Throttled,
                ..deadline_exceeded(&format!(
                    "before {vault} accepts requests again: Key Vault throttled this vault and asked to wait {:.1}s more",
                    wait.as_secs_f64()
                ))
            });
        }
        // Spread the waiters a little so they do not all return at the same instant.
        let now = Instant::now();
        let wait = spread_retry(
            until.saturating_duration_since(now),
            deadline.saturating_duration_since(now),
        );
        crate::telemetry::metrics().backoff(wait.as_secs_f64());
        tokio::time::sleep_until((now + wait).min(deadline)).await;
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        // A panic while holding this lock cannot leave the map inconsistent; keep using it.
        self.until
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn waits_until_the_vault_is_quiet_or_fails_fast() {
        let b = VaultBackoff::default();
        let start = Instant::now();
        b.throttle("v.vault.azure.net", start + Duration::from_millis(200));
        b.throttle("v.vault.azure.net", start + Duration::from_millis(100)); // earlier: ignored
        b.wait("v.vault.azure.net", start + Duration::from_secs(5))
            .await
            .expect("within deadline");
        assert!(start.elapsed() >= Duration::from_millis(200));
        b.wait("other.vault.azure.net", start)
            .await
            .expect("other vaults are not affected");

        b.throttle(
            "v.vault.azure.net",
            Instant::now() + Duration::from_secs(60),
        );
        let err = b
            .wait("v.vault.azure.net", Instant::now() + Duration::from_secs(1))
            .await
            .unwrap_err();
        assert_eq!(err.kind, super::super::KvErrorKind::Throttled);
        assert!(err.message.contains("throttled"), "{}", err.message);
    }
}
