//! A per-try pipeline policy that records every HTTP exchange with Key Vault, challenge round
//! trips included: object type, status and whether a token was sent (a 401 to a request without
//! one is the challenge, not an error), and duration. It sits after the SDK's auth policy, next
//! to the transport, so it sees each request actually sent.

use std::sync::Arc;
use std::time::Instant;

use azure_core::http::headers::AUTHORIZATION;
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{Context, Request};

use crate::request::ObjectType;
use crate::telemetry::metrics;

#[derive(Debug)]
pub(crate) struct ExchangeMetrics {
    object_type: &'static str,
}

impl ExchangeMetrics {
    pub(super) fn policy(object_type: ObjectType) -> Arc<dyn Policy> {
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
            status: None,
            sent_token: request.headers().get_optional_str(&AUTHORIZATION).is_some(),
        };
        let result = next[0].send(ctx, request, &next[1..]).await;
        if let Ok(response) = &result {
            record.status = Some(u16::from(response.status()));
        }
        result
    }
}

/// Recorded on drop, so an exchange cut short by the caller's deadline counts as `error`.
struct Record {
    object_type: &'static str,
    started: Instant,
    status: Option<u16>,
    sent_token: bool,
}

impl Drop for Record {
    fn drop(&mut self) {
        metrics().keyvault_exchange(
            self.object_type,
            self.status,
            self.sent_token,
            self.started.elapsed().as_secs_f64(),
        );
    }
}
