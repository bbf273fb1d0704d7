//! The one error model of a mount: [`MountError`], a [`MountErrorKind`] chosen where the failure
//! happens and a message that names the object or identity and the problem.
//!
//! Each module keeps its own error type ([`RequestError`], [`AuthError`] with its
//! [`AuthErrorKind`], [`KvError`] with its [`KvErrorKind`], [`ContentError`]); they become a
//! `MountError` at the provider's edge, and a `MountError` becomes a gRPC status (in
//! `From<MountError> for tonic::Status`) and a metric result class ([`MountError::class`]) in
//! exactly one place each, both through [`MountError::code`].
//!
//! | kind | gRPC code | result class |
//! |---|---|---|
//! | invalid request | `INVALID_ARGUMENT` | `invalid_argument` |
//! | auth: rejected (wrong secret, unknown client, no federated credential) | `UNAUTHENTICATED` | `unauthenticated` |
//! | auth: unavailable (Entra ID, IMDS or NMI unreachable, failing or throttling) | `UNAVAILABLE` | `unavailable` |
//! | auth: misconfigured (missing clientID, no pod info, bad authority); the same code as the request parser gives these problems when it catches them first | `INVALID_ARGUMENT` | `invalid_argument` |
//! | auth: unsupported by this build | `UNIMPLEMENTED` | `unimplemented` |
//! | Key Vault: not found / forbidden / token rejected | `NOT_FOUND` / `PERMISSION_DENIED` / `UNAUTHENTICATED` | the code's name |
//! | Key Vault: throttled / unavailable / deadline | `RESOURCE_EXHAUSTED` / `UNAVAILABLE` / `DEADLINE_EXCEEDED` | the code's name |
//! | Key Vault: unreadable answer, other | `INTERNAL` | `internal` |
//! | content (conversion) | `FAILED_PRECONDITION` | `failed_precondition` |
//! | limit (response budget, blocking pool) | `RESOURCE_EXHAUSTED` | `resource_exhausted` |
//! | busy (no mount slot before the deadline) | `UNAVAILABLE` | `unavailable` |
//! | deadline | `DEADLINE_EXCEEDED` | `deadline_exceeded` |
//! | internal | `INTERNAL` | `internal` |
//!
//! Messages never carry secret material: every module scrubs what it quotes before it builds
//! its error, and nothing here adds anything but fixed text.

use std::fmt;

use tonic::{Code, Status};

use crate::auth::{AuthError, AuthErrorKind};
use crate::content::ContentError;
use crate::keyvault::{KvError, KvErrorKind};
use crate::request::RequestError;

/// What went wrong, in the few classes a driver, an operator and a metric need to tell apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MountErrorKind {
    /// The request (attributes, parameters, objects) is invalid.
    InvalidRequest,
    /// No credential or token for the mount's identity.
    Auth(AuthErrorKind),
    /// Key Vault refused or failed the request.
    KeyVault(KvErrorKind),
    /// The fetched content could not be converted as asked.
    Content,
    /// A per-mount or provider-wide limit was passed (response budget, blocking pool).
    Limit,
    /// The provider is serving its limit of mounts; the driver retries.
    Busy,
    /// The mount's deadline passed.
    Deadline,
    /// A bug or an impossible state.
    Internal,
}

/// A failed mount: its kind and a one-line message naming the object or identity and the problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountError {
    kind: MountErrorKind,
    message: String,
}

impl MountError {
    pub fn new(kind: MountErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(MountErrorKind::InvalidRequest, message)
    }

    pub fn limit(message: impl Into<String>) -> Self {
        Self::new(MountErrorKind::Limit, message)
    }

    pub fn busy(message: impl Into<String>) -> Self {
        Self::new(MountErrorKind::Busy, message)
    }

    pub fn deadline(message: impl Into<String>) -> Self {
        Self::new(MountErrorKind::Deadline, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(MountErrorKind::Internal, message)
    }

    /// A conversion failure of `object` (`objectType/objectName`).
    pub fn content(object: impl fmt::Display, error: &ContentError) -> Self {
        Self::new(MountErrorKind::Content, format!("object {object}: {error}"))
    }

    /// A Key Vault failure; `context` names the object (`failed to get secret/x`) when there is one.
    pub fn key_vault(context: Option<String>, error: &KvError) -> Self {
        let message = match context {
            Some(context) => format!("{context}: {error}"),
            None => error.message.clone(),
        };
        Self::new(MountErrorKind::KeyVault(error.kind), message)
    }

    pub fn kind(&self) -> MountErrorKind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// The gRPC code of each kind: the one mapping.
    pub fn code(&self) -> Code {
        match self.kind {
            MountErrorKind::InvalidRequest => Code::InvalidArgument,
            MountErrorKind::Auth(kind) => match kind {
                AuthErrorKind::Rejected => Code::Unauthenticated,
                AuthErrorKind::Unavailable => Code::Unavailable,
                AuthErrorKind::Misconfigured => Code::InvalidArgument,
                AuthErrorKind::Unsupported => Code::Unimplemented,
            },
            MountErrorKind::KeyVault(kind) => match kind {
                KvErrorKind::NotFound => Code::NotFound,
                KvErrorKind::Forbidden => Code::PermissionDenied,
                KvErrorKind::Unauthenticated => Code::Unauthenticated,
                KvErrorKind::Throttled => Code::ResourceExhausted,
                KvErrorKind::DeadlineExceeded => Code::DeadlineExceeded,
                KvErrorKind::Unavailable => Code::Unavailable,
                KvErrorKind::InvalidResponse | KvErrorKind::Other => Code::Internal,
            },
            MountErrorKind::Content => Code::FailedPrecondition,
            MountErrorKind::Limit => Code::ResourceExhausted,
            MountErrorKind::Busy => Code::Unavailable,
            MountErrorKind::Deadline => Code::DeadlineExceeded,
            MountErrorKind::Internal => Code::Internal,
        }
    }

    /// The bounded result class of the mount log line and of `grpc_request{grpc_message}`: the
    /// class of [`Self::code`] from [`crate::telemetry::classes::error_class`], the one vocabulary
    /// of error classes.
    pub fn class(&self) -> &'static str {
        crate::telemetry::classes::error_class(crate::telemetry::classes::Outcome::Grpc(
            self.code(),
        ))
    }
}

impl fmt::Display for MountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for MountError {}

/// The one conversion to the wire.
impl From<MountError> for Status {
    fn from(error: MountError) -> Self {
        Status::new(error.code(), error.message)
    }
}

impl From<RequestError> for MountError {
    fn from(error: RequestError) -> Self {
        Self::invalid_request(error.0)
    }
}

/// Auth errors already name the mode, the HTTP status and Entra ID's error code.
impl From<AuthError> for MountError {
    fn from(error: AuthError) -> Self {
        Self::new(
            MountErrorKind::Auth(error.kind()),
            format!("failed to authenticate: {}", error.message()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_kinds_map_to_distinct_codes_and_classes() {
        let cases = [
            (
                AuthErrorKind::Rejected,
                Code::Unauthenticated,
                "unauthenticated",
            ),
            (AuthErrorKind::Unavailable, Code::Unavailable, "unavailable"),
            (
                AuthErrorKind::Misconfigured,
                Code::InvalidArgument,
                "invalid_request",
            ),
            (
                AuthErrorKind::Unsupported,
                Code::Unimplemented,
                "unimplemented",
            ),
        ];
        for (kind, code, class) in cases {
            let error = MountError::from(AuthError::new(kind, "m: problem"));
            assert_eq!(error.code(), code);
            assert_eq!(error.class(), class);
            let status = Status::from(error);
            assert_eq!(status.code(), code);
            assert_eq!(status.message(), "failed to authenticate: m: problem");
        }
    }

    #[test]
    fn key_vault_messages_name_the_object() {
        let error = KvError {
            kind: KvErrorKind::Forbidden,
            message: "Key Vault returned 403 Forbidden: no".into(),
        };
        let mounted = MountError::key_vault(Some("failed to get secret/a".into()), &error);
        assert_eq!(
            mounted.message(),
            "failed to get secret/a: Key Vault returned 403 Forbidden: no"
        );
        assert_eq!(mounted.code(), Code::PermissionDenied);
        assert_eq!(mounted.class(), "forbidden");
        assert_eq!(MountError::key_vault(None, &error).message(), error.message);
    }

    #[test]
    fn request_and_content_errors() {
        let error = MountError::from(RequestError("objects: bad".into()));
        assert_eq!(Status::from(error).code(), Code::InvalidArgument);
        let error = MountError::content("secret/a", &ContentError("not PEM".into()));
        assert_eq!(error.message(), "object secret/a: not PEM");
        assert_eq!(error.class(), "failed_precondition");
        assert_eq!(MountError::busy("x").class(), "unavailable");
        assert_eq!(MountError::limit("x").class(), "limit_exceeded");
        assert_eq!(MountError::deadline("x").class(), "deadline_exceeded");
        assert_eq!(MountError::internal("x").class(), "internal");
    }
}
