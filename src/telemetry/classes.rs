//! The one place where failures become metric label values.
//!
//! Upstream (Azure/secrets-store-csi-driver-provider-azure v1.8.2, `pkg/metrics/stats_reporter.go`
//! and `pkg/utils/grpc.go`) puts the raw error string into `keyvault_request{error}` and the raw
//! status message into `grpc_request{grpc_message}`. We keep the label names but put a class there:
//! a short, fixed word chosen by [`error_class`], never text that came from a request or a reply,
//! so the number of series stays bounded and no secret material can reach `/metrics`. Success is
//! the empty string in both labels, as upstream.
//!
//! The gRPC code name ([`grpc_code_name`]) is printed as Go's `codes.Code.String()` prints it
//! (google.golang.org/grpc/codes, `code_string.go`), so alerts on `grpc_code!="OK"` keep working.

use tonic::Code;

use crate::keyvault::KvErrorKind;

/// What a call site knows about how a call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A gRPC call ended with this code (`Code::Ok` for success).
    Grpc(Code),
    /// A Key Vault call succeeded (`None`) or failed with this kind.
    KeyVault(Option<KvErrorKind>),
    /// The caller stopped waiting before the call ended (its future was dropped).
    Abandoned,
}

/// The bounded class of an outcome: `""` for success, else one of `invalid_request`,
/// `not_found`, `forbidden`, `unauthenticated`, `throttled`, `limit_exceeded`,
/// `deadline_exceeded`, `unavailable`, `invalid_response`, `failed_precondition`,
/// `unimplemented`, `canceled`, `internal`, `other`. Used for `grpc_message` and `error`.
pub fn error_class(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Grpc(code) => match code {
            Code::Ok => "",
            Code::InvalidArgument | Code::OutOfRange => "invalid_request",
            Code::NotFound => "not_found",
            Code::PermissionDenied => "forbidden",
            Code::Unauthenticated => "unauthenticated",
            Code::ResourceExhausted => "limit_exceeded",
            Code::DeadlineExceeded => "deadline_exceeded",
            Code::Unavailable => "unavailable",
            Code::FailedPrecondition | Code::AlreadyExists | Code::Aborted => "failed_precondition",
            Code::Unimplemented => "unimplemented",
            Code::Cancelled => "canceled",
            Code::Unknown | Code::Internal | Code::DataLoss => "internal",
        },
        Outcome::KeyVault(None) => "",
        Outcome::KeyVault(Some(kind)) => match kind {
            KvErrorKind::NotFound => "not_found",
            KvErrorKind::Forbidden => "forbidden",
            KvErrorKind::Unauthenticated => "unauthenticated",
            KvErrorKind::Throttled => "throttled",
            KvErrorKind::DeadlineExceeded => "deadline_exceeded",
            KvErrorKind::Unavailable => "unavailable",
            KvErrorKind::InvalidResponse => "invalid_response",
            KvErrorKind::Other => "other",
        },
        Outcome::Abandoned => "canceled",
    }
}

/// A gRPC code as Go's `codes.Code.String()` prints it (`OK`, `InvalidArgument`, `Canceled`, ...).
pub fn grpc_code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

/// The status class of one HTTP exchange with Key Vault (`keyvault_http_request_duration_seconds`):
/// `challenge` for the 401 that answers a request sent without a token (the normal first round
/// trip that tells the client which tenant and scope to ask a token for: not an error), else
/// `2xx`, `429`, `4xx`, `5xx`, or `error` (no answer, or any other status).
pub fn exchange_class(status: Option<u16>, sent_token: bool) -> &'static str {
    match status {
        Some(401) if !sent_token => "challenge",
        Some(429) => "429",
        Some(200..=299) => "2xx",
        Some(400..=499) => "4xx",
        Some(500..=599) => "5xx",
        _ => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CODES: [Code; 17] = [
        Code::Ok,
        Code::Cancelled,
        Code::Unknown,
        Code::InvalidArgument,
        Code::DeadlineExceeded,
        Code::NotFound,
        Code::AlreadyExists,
        Code::PermissionDenied,
        Code::ResourceExhausted,
        Code::FailedPrecondition,
        Code::Aborted,
        Code::OutOfRange,
        Code::Unimplemented,
        Code::Internal,
        Code::Unavailable,
        Code::DataLoss,
        Code::Unauthenticated,
    ];

    #[test]
    fn grpc_code_names_are_gos() {
        let names: Vec<_> = CODES.into_iter().map(grpc_code_name).collect();
        assert_eq!(
            names,
            [
                "OK",
                "Canceled",
                "Unknown",
                "InvalidArgument",
                "DeadlineExceeded",
                "NotFound",
                "AlreadyExists",
                "PermissionDenied",
                "ResourceExhausted",
                "FailedPrecondition",
                "Aborted",
                "OutOfRange",
                "Unimplemented",
                "Internal",
                "Unavailable",
                "DataLoss",
                "Unauthenticated",
            ]
        );
    }

    #[test]
    fn grpc_classes_are_bounded_and_empty_only_for_ok() {
        let classes: Vec<_> = CODES
            .into_iter()
            .map(|c| error_class(Outcome::Grpc(c)))
            .collect();
        assert_eq!(
            classes,
            [
                "",
                "canceled",
                "internal",
                "invalid_request",
                "deadline_exceeded",
                "not_found",
                "failed_precondition",
                "forbidden",
                "limit_exceeded",
                "failed_precondition",
                "failed_precondition",
                "invalid_request",
                "unimplemented",
                "internal",
                "unavailable",
                "internal",
                "unauthenticated",
            ]
        );
    }

    #[test]
    fn key_vault_classes() {
        let kinds = [
            None,
            Some(KvErrorKind::NotFound),
            Some(KvErrorKind::Forbidden),
            Some(KvErrorKind::Unauthenticated),
            Some(KvErrorKind::Throttled),
            Some(KvErrorKind::DeadlineExceeded),
            Some(KvErrorKind::Unavailable),
            Some(KvErrorKind::InvalidResponse),
            Some(KvErrorKind::Other),
        ];
        let classes: Vec<_> = kinds
            .into_iter()
            .map(|k| error_class(Outcome::KeyVault(k)))
            .collect();
        assert_eq!(
            classes,
            [
                "",
                "not_found",
                "forbidden",
                "unauthenticated",
                "throttled",
                "deadline_exceeded",
                "unavailable",
                "invalid_response",
                "other",
            ]
        );
        assert_eq!(error_class(Outcome::Abandoned), "canceled");
    }

    #[test]
    fn the_challenge_is_not_an_error() {
        let classes: Vec<_> = [
            (Some(401), false),
            (Some(401), true),
            (Some(200), true),
            (Some(204), true),
            (Some(404), true),
            (Some(429), true),
            (Some(500), true),
            (Some(503), false),
            (Some(302), true),
            (None, true),
        ]
        .into_iter()
        .map(|(status, token)| exchange_class(status, token))
        .collect();
        assert_eq!(
            classes,
            [
                "challenge",
                "4xx",
                "2xx",
                "2xx",
                "4xx",
                "429",
                "5xx",
                "5xx",
                "error",
                "error"
            ]
        );
    }
}
