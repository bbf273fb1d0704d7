//! The `v1alpha1.CSIDriverProvider` service: `Version` answers by itself, `Mount` hands the request
//! and the caller's deadline (from `grpc-timeout`) to the [`MountHandler`].
//!
//! This is where every status of ours leaves the provider, so the one size rule for status
//! messages ([`crate::text::status_message`], at most 4 KiB) is applied here, whatever produced
//! the status, and where each call is recorded in `grpc_request` with its full method name and
//! code, as upstream's unary interceptor does (`pkg/utils/grpc.go`, v1.8.2).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tonic::{Request, Response, Status};

use super::MountHandler;
use crate::pb;

/// The API version the driver speaks and every provider reports.
const API_VERSION: &str = "v1alpha1";

/// Full method names, the `grpc_method` label values.
pub(crate) const VERSION_METHOD: &str = "/v1alpha1.CSIDriverProvider/Version";
pub(crate) const MOUNT_METHOD: &str = "/v1alpha1.CSIDriverProvider/Mount";

/// Records a call in `grpc_request` when dropped: with the code it ended with, or `Cancelled`
/// when the caller went away first (tonic drops the handler's future).
struct CallRecord {
    method: &'static str,
    started: Instant,
    code: tonic::Code,
}

impl CallRecord {
    fn start(method: &'static str) -> Self {
        Self {
            method,
            started: Instant::now(),
            code: tonic::Code::Cancelled,
        }
    }

    fn finish<T>(mut self, result: Result<T, Status>) -> Result<T, Status> {
        self.code = match &result {
            Ok(_) => tonic::Code::Ok,
            Err(status) => status.code(),
        };
        result
    }
}

impl Drop for CallRecord {
    fn drop(&mut self) {
        crate::telemetry::metrics().grpc_request(
            self.method,
            self.code,
            self.started.elapsed().as_secs_f64(),
        );
    }
}

pub(super) struct ProviderService {
    handler: Arc<dyn MountHandler>,
}

impl ProviderService {
    pub(super) fn new(handler: Arc<dyn MountHandler>) -> Self {
        ProviderService { handler }
    }
}

#[tonic::async_trait]
impl pb::csi_driver_provider_server::CsiDriverProvider for ProviderService {
    async fn version(
        &self,
        _request: Request<pb::VersionRequest>,
    ) -> Result<Response<pb::VersionResponse>, Status> {
        CallRecord::start(VERSION_METHOD).finish(Ok(Response::new(pb::VersionResponse {
            version: API_VERSION.to_owned(),
            runtime_name: crate::RUNTIME_NAME.to_owned(),
            runtime_version: crate::RUNTIME_VERSION.to_owned(),
        })))
    }

    async fn mount(
        &self,
        request: Request<pb::MountRequest>,
    ) -> Result<Response<pb::MountResponse>, Status> {
        let record = CallRecord::start(MOUNT_METHOD);
        let deadline = request
            .metadata()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout)
            .and_then(|timeout| Instant::now().checked_add(timeout));
        let result = self
            .handler
            .mount(request.into_inner(), deadline)
            .await
            .map(Response::new)
            .map_err(|status| capped(&status));
        record.finish(result)
    }
}

/// `status` with its message cut to [`crate::text::MAX_STATUS_BYTES`] (code kept; details and
/// metadata, which we never set, dropped).
pub(crate) fn capped(status: &Status) -> Status {
    match crate::text::status_message(status.message()) {
        std::borrow::Cow::Borrowed(_) => status.clone(),
        std::borrow::Cow::Owned(message) => Status::new(status.code(), message),
    }
}

/// Parses a `grpc-timeout` header value: 1 to 8 ASCII digits and a unit among `H M S m u n`
/// (gRPC over HTTP/2 spec). Anything else is `None` (no deadline).
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let digits = value.get(..value.len().checked_sub(1)?)?;
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // At most 8 digits: always fits a u64.
    let amount: u64 = digits.parse().ok()?;
    Some(match value.as_bytes().last()? {
        b'H' => Duration::from_secs(amount * 3600),
        b'M' => Duration::from_secs(amount * 60),
        b'S' => Duration::from_secs(amount),
        b'm' => Duration::from_millis(amount),
        b'u' => Duration::from_micros(amount),
        b'n' => Duration::from_nanos(amount),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_messages_leave_within_4_kib() {
        let huge = Status::invalid_argument(format!("tenantId {}", "x".repeat(900_000)));
        let out = capped(&huge);
        assert_eq!(out.code(), tonic::Code::InvalidArgument);
        assert!(out.message().len() <= crate::text::MAX_STATUS_BYTES);
        assert!(out.message().starts_with("tenantId xxx"));
        let small = Status::not_found("object secret/a: not found");
        assert_eq!(capped(&small).message(), small.message());
    }

    #[test]
    fn grpc_timeout_units() {
        assert_eq!(
            parse_grpc_timeout("119999m"),
            Some(Duration::from_millis(119_999))
        );
        assert_eq!(parse_grpc_timeout("2M"), Some(Duration::from_secs(120)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_grpc_timeout("7u"), Some(Duration::from_micros(7)));
        assert_eq!(
            parse_grpc_timeout("99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
    }

    #[test]
    fn grpc_timeout_rejects_malformed() {
        for bad in [
            "",
            "S",
            "123",
            "123456789S",
            "1.5S",
            "-1S",
            "10x",
            "1 S",
            "é",
            "1é",
        ] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
    }
}
