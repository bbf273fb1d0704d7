//! What a failed SDK call means for us: its metric class, whether it is worth another try, how
//! long Key Vault asked us to wait, and the [`KvError`] a caller sees.
//!
//! With SDK retries off, a non-2xx answer reaches us as `ErrorKind::HttpResponse` carrying the
//! raw response, so status, error code and `Retry-After` are read from the error itself.

use std::time::Duration;

use azure_core::error::ErrorKind;
use azure_core::http::StatusCode;
use azure_core::http::headers::{RETRY_AFTER, RETRY_AFTER_MS, X_MS_RETRY_AFTER_MS};
use azure_core::http::policies::get_retry_after;
use azure_core::time::OffsetDateTime;

use super::{KvError, KvErrorKind};

/// One failed attempt, classified.
#[derive(Clone, Debug)]
pub(crate) struct Failure {
    /// Worth another attempt (throttling, server trouble, connection problems).
    pub retryable: bool,
    /// 429, or 503 with `Retry-After`: the vault is shedding load.
    pub throttled: bool,
    /// 401 on an authenticated request: the token was rejected.
    pub unauthorized: bool,
    /// The wait Key Vault asked for (`Retry-After`, `retry-after-ms`, `x-ms-retry-after-ms`).
    pub retry_after: Option<Duration>,
    /// The error a caller sees if this is the last attempt.
    pub error: KvError,
}

impl Failure {
    pub(super) fn classify(err: &azure_core::Error) -> Self {
        match err.kind() {
            ErrorKind::HttpResponse {
                status,
                error_code,
                raw_response,
            } => {
                let retry_after = raw_response.as_ref().and_then(|raw| {
                    get_retry_after(
                        raw.headers(),
                        OffsetDateTime::now_utc,
                        &[X_MS_RETRY_AFTER_MS, RETRY_AFTER_MS, RETRY_AFTER],
                    )
                    .and_then(|d| Duration::try_from(d).ok())
                });
                Self::http(
                    *status,
                    error_code.as_deref(),
                    &http_message(err),
                    retry_after,
                )
            }
            ErrorKind::Connection | ErrorKind::Io => {
                Self::transport(format!("cannot reach Key Vault: {}", chain(err)))
            }
            // The token endpoint's own transient faults were retried already (`auth::retry`).
            ErrorKind::Credential => Self::fatal(
                match crate::auth::error_kind_in(err) {
                    Some(crate::auth::AuthErrorKind::Unavailable) => KvErrorKind::Unavailable,
                    _ => KvErrorKind::Unauthenticated,
                },
                format!("cannot get an access token for Key Vault: {}", chain(err)),
            ),
            ErrorKind::DataConversion => Self::fatal(
                KvErrorKind::InvalidResponse,
                format!("Key Vault answer could not be read: {}", chain(err)),
            ),
            ErrorKind::Other => Self::fatal(
                KvErrorKind::Other,
                format!("Key Vault request failed: {}", chain(err)),
            ),
        }
    }

    fn http(
        status: StatusCode,
        code: Option<&str>,
        message: &str,
        retry_after: Option<Duration>,
    ) -> Self {
        let code_num = u16::from(status);
        let code = code
            .filter(|c| *c != code_num.to_string())
            .map(|c| format!(" {c}"))
            .unwrap_or_default();
        let text = format!("Key Vault returned {code_num}{code}: {message}");
        let (kind, retryable) = match code_num {
            401 => (KvErrorKind::Unauthenticated, false),
            403 => (KvErrorKind::Forbidden, false),
            404 => (KvErrorKind::NotFound, false),
            429 => (KvErrorKind::Throttled, true),
            500 | 502 | 503 | 504 => (KvErrorKind::Unavailable, true),
            408 => (KvErrorKind::Unavailable, true),
            _ => (KvErrorKind::Other, false),
        };
        Self {
            retryable,
            throttled: code_num == 429 || (code_num == 503 && retry_after.is_some()),
            unauthorized: code_num == 401,
            // Only a load-shedding answer's wait is honoured; others use our back-off.
            retry_after: retry_after.filter(|_| matches!(code_num, 429 | 503)),
            error: KvError {
                kind,
                message: text,
            },
        }
    }

    fn transport(message: String) -> Self {
        Self {
            retryable: true,
            throttled: false,
            unauthorized: false,
            retry_after: None,
            error: KvError {
                kind: KvErrorKind::Unavailable,
                message,
            },
        }
    }

    fn fatal(kind: KvErrorKind, message: String) -> Self {
        Self {
            retryable: false,
            ..Self::transport(message)
        }
        .with_kind(kind)
    }

    fn with_kind(mut self, kind: KvErrorKind) -> Self {
        self.error.kind = kind;
        self
    }

    /// The error when the wait before the next attempt would pass the deadline.
    pub(super) fn out_of_time(&self) -> KvError {
        match (self.throttled, self.retry_after) {
            (true, Some(asked)) => KvError {
                kind: KvErrorKind::Throttled,
                message: format!(
                    "Key Vault throttled the request and asked to wait {:.1}s, past the mount deadline ({})",
                    asked.as_secs_f64(),
                    self.error.message
                ),
            },
            (true, None) => KvError {
                kind: KvErrorKind::Throttled,
                message: format!(
                    "Key Vault kept throttling the request until the mount deadline ({})",
                    self.error.message
                ),
            },
            (false, _) => self.timed_out(),
        }
    }

    /// The error when the deadline passes after this failure.
    pub(super) fn timed_out(&self) -> KvError {
        KvError {
            kind: KvErrorKind::DeadlineExceeded,
            message: format!(
                "deadline reached while retrying Key Vault (last failure: {})",
                self.error.message
            ),
        }
    }

    /// The error when Key Vault also rejects the token acquired after a rejection.
    pub(super) fn rejected_again(self) -> KvError {
        KvError {
            kind: KvErrorKind::Unauthenticated,
            message: format!(
                "Key Vault rejected a newly acquired access token too ({})",
                self.error.message
            ),
        }
    }

    /// The error after the last allowed attempt.
    pub(super) fn exhausted(self, attempts: u32) -> KvError {
        if !self.retryable || attempts <= 1 {
            return self.error;
        }
        KvError {
            kind: self.error.kind,
            message: format!("{} (after {attempts} attempts)", self.error.message),
        }
    }
}

/// Longest part of a service's error message kept (Key Vault's own are a sentence or two).
const MAX_SERVICE_MESSAGE_BYTES: usize = 512;

/// The service's message for an HTTP error (the SDK puts Key Vault's `error.message` there),
/// cut to [`MAX_SERVICE_MESSAGE_BYTES`]: the answer comes from the network, not from us.
fn http_message(err: &azure_core::Error) -> String {
    let text = err.to_string();
    if text.is_empty() {
        "(no message)".to_string()
    } else {
        crate::text::clip(&text, MAX_SERVICE_MESSAGE_BYTES).into_owned()
    }
}

/// The error and its sources, joined; credential errors keep the identity provider's reason.
/// Cut to [`MAX_SERVICE_MESSAGE_BYTES`] per part and twice that in all.
fn chain(err: &azure_core::Error) -> String {
    let text = full_chain(err);
    crate::text::clip(&text, 2 * MAX_SERVICE_MESSAGE_BYTES).into_owned()
}

fn full_chain(err: &azure_core::Error) -> String {
    let mut text = crate::text::clip(&err.to_string(), MAX_SERVICE_MESSAGE_BYTES).into_owned();
    let mut source = std::error::Error::source(err);
    while let Some(inner) = source {
        let part = inner.to_string();
        let part = crate::text::clip(&part, MAX_SERVICE_MESSAGE_BYTES);
        if !text.contains(part.as_ref()) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = inner.source();
    }
    text
}

/// A deadline hit while waiting for or talking to Key Vault.
pub(crate) fn deadline_exceeded(what: &str) -> KvError {
    KvError {
        kind: KvErrorKind::DeadlineExceeded,
        message: format!("deadline reached {what}"),
    }
}

/// A Key Vault answer without a field we need.
pub(crate) fn missing(field: &str) -> KvError {
    KvError {
        kind: KvErrorKind::InvalidResponse,
        message: format!("Key Vault answer has no {field}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use azure_core::http::{RawResponse, headers::Headers};

    fn http_error(status: u16, headers: &[(&'static str, &str)], body: &str) -> azure_core::Error {
        let mut h = Headers::new();
        for (name, value) in headers {
            h.insert(*name, value.to_string());
        }
        let raw = RawResponse::from_bytes(StatusCode::from(status), h, body.as_bytes().to_vec());
        let kind = ErrorKind::HttpResponse {
            status: StatusCode::from(status),
            error_code: Some("SecretNotFound".into()),
            raw_response: Some(Box::new(raw)),
        };
        azure_core::Error::with_message(
            kind,
            "A secret with (name/id) x was not found in this key vault",
        )
    }

    #[test]
    fn not_found_message_has_status_code_and_text() {
        let f = Failure::classify(&http_error(404, &[], "{}"));
        assert_eq!(f.error.kind, KvErrorKind::NotFound);
        assert_eq!(
            f.error.message,
            "Key Vault returned 404 SecretNotFound: A secret with (name/id) x was not found in this key vault"
        );
        assert!(!f.retryable);
    }

    #[test]
    fn throttling_reads_retry_after_seconds_and_dates() {
        let f = Failure::classify(&http_error(429, &[("retry-after", "7")], "{}"));
        assert!(f.throttled && f.retryable);
        assert_eq!(f.retry_after, Some(Duration::from_secs(7)));

        let later = OffsetDateTime::now_utc() + azure_core::time::Duration::seconds(30);
        let date = azure_core::time::to_rfc7231(&later);
        let f = Failure::classify(&http_error(503, &[("retry-after", &date)], "{}"));
        assert!(f.throttled);
        let wait = f.retry_after.expect("date parsed");
        assert!(
            wait > Duration::from_secs(25) && wait <= Duration::from_secs(31),
            "{wait:?}"
        );
    }

    #[test]
    fn server_errors_retry_without_retry_after() {
        for status in [500, 502, 503, 504] {
            let f = Failure::classify(&http_error(status, &[], "{}"));
            assert!(f.retryable && !f.throttled, "{status}");
        }
    }

    #[test]
    fn out_of_time_names_throttling_and_wait() {
        let f = Failure::classify(&http_error(429, &[("retry-after", "120")], "{}"));
        let e = f.out_of_time();
        assert_eq!(e.kind, KvErrorKind::Throttled);
        assert!(
            e.message.contains("throttled") && e.message.contains("120.0s"),
            "{}",
            e.message
        );
    }
}
