//! A per-try pipeline policy that records every HTTP exchange with Key Vault, challenge round
//! trips included: object type, status class and duration. It sits after the SDK's auth policy,
//! next to the transport, so it sees each request actually sent.

use std::sync::Arc;
use std::time::Instant;

use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{Context, Request};

use crate::request::ObjectType;
use crate::telemetry::metrics;

#[derive(Debug)]
pub(crate) struct ExchangeMetrics {
    object_type: &'static str,
}

impl ExchangeMetrics {
    pub fn policy(object_type: ObjectType) -> Arc<dyn Policy> {
        Arc::new(Self {
            object_type: object_type.as_str(),
        })
    }
}

#[async_trait::async_trait]
impl Policy for ExchangeMetrics {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        let mut record = Record {
            object_type: self.object_type,
            started: Instant::now(),
            class: "error",
        };
        let result = next[0].send(ctx, request, &next[1..]).await;
        if let Ok(response) = &result {
            record.class = status_class(u16::from(response.status()));
        }
        result
    }
}

/// Recorded on drop, so an exchange cut short by the caller's deadline counts as `error`.
struct Record {
    object_type: &'static str,
    started: Instant,
    class: &'static str,
}

impl Drop for Record {
    fn drop(&mut self) {
        metrics().keyvault_request(
            self.object_type,
            self.class,
            self.started.elapsed().as_secs_f64(),
        );
    }
}

/// The bounded status label: `2xx`, `4xx`, `429`, `5xx`, or `error` for anything else.
pub(crate) fn status_class(status: u16) -> &'static str {
    match status {
        429 => "429",
        200..=299 => "2xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::status_class;

    #[test]
    fn status_classes_are_bounded() {
        let classes: Vec<_> = [200, 204, 401, 404, 429, 500, 503, 302, 0]
            .into_iter()
            .map(status_class)
            .collect();
        assert_eq!(
            classes,
            [
                "2xx", "2xx", "4xx", "4xx", "429", "5xx", "5xx", "error", "error"
            ]
        );
    }
}
