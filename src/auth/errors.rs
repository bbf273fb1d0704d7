//! Turning failures into [`AuthError`]s that are safe to show.
//!
//! Every message names the identity mode, the HTTP status and Entra ID's `AADSTS` code when there
//! is one, fits on one line, and has every sensitive string we hold (client secret, presented
//! service-account token) and anything shaped like a JWT replaced by `<redacted>` before it is
//! built, so SDK or service text can never carry secret material into a log or a gRPC status.
//! Service text (Entra ID's description, an SDK error chain) is scrubbed first and then cut by the
//! crate's one truncation rule, [`crate::text::echo`].

use std::error::Error as StdError;

use azure_core::error::ErrorKind;

use super::{AuthError, AuthErrorKind};
use crate::sensitive::Sensitive;
use crate::text::echo;

const REDACTED: &str = "<redacted>";

/// A failure with a fixed, non-sensitive description, of kind [`AuthErrorKind::Rejected`]: what
/// the mount presented was refused or is unusable. Beside it, one constructor per other kind.
pub(crate) fn auth_error(mode: &str, problem: impl std::fmt::Display) -> AuthError {
    auth_error_of(AuthErrorKind::Rejected, mode, problem)
}

/// The identity service is unreachable, failing or throttling ([`AuthErrorKind::Unavailable`]).
pub(crate) fn unavailable(mode: &str, problem: impl std::fmt::Display) -> AuthError {
    auth_error_of(AuthErrorKind::Unavailable, mode, problem)
}

/// The request or the cluster is set up wrong ([`AuthErrorKind::Misconfigured`]).
pub(crate) fn misconfigured(mode: &str, problem: impl std::fmt::Display) -> AuthError {
    auth_error_of(AuthErrorKind::Misconfigured, mode, problem)
}

/// `<mode>: <problem>` on one line, of `kind`.
pub(crate) fn auth_error_of(
    kind: AuthErrorKind,
    mode: &str,
    problem: impl std::fmt::Display,
) -> AuthError {
    AuthError::new(kind, one_line(&format!("{mode}: {problem}")))
}

/// The kind of a token endpoint's HTTP answer: a server error, throttling or a timeout is the
/// service's trouble; anything else (400 and 401 with an `AADSTS` code, 403) is a rejection.
pub(crate) fn http_kind(status: u16) -> AuthErrorKind {
    match status {
        408 | 429 | 500..=599 => AuthErrorKind::Unavailable,
        _ => AuthErrorKind::Rejected,
    }
}

/// Wraps an [`AuthError`] as the `azure_core::Error` a `TokenCredential` returns; the message is
/// the AuthError's and the AuthError can be recovered with `downcast_ref::<AuthError>()`.
pub(crate) fn to_core_error(error: AuthError) -> azure_core::Error {
    azure_core::Error::new(ErrorKind::Credential, error)
}

/// The kind of the [`AuthError`] inside an SDK error chain, if one is there.
pub fn error_kind_in(error: &azure_core::Error) -> Option<AuthErrorKind> {
    find_in_chain::<AuthError>(error).map(AuthError::kind)
}

/// Describes a failed token acquisition from an SDK (or our own) error.
pub(crate) fn describe_token_error(
    mode: &str,
    error: &azure_core::Error,
    sensitive: &[&Sensitive],
) -> AuthError {
    if let Some(ours) = find_in_chain::<AuthError>(error) {
        return ours.clone();
    }
    let mut kind = AuthErrorKind::Unavailable;
    let detail = match http_failure(error) {
        Some((status, code, description)) => {
            kind = http_kind(status);
            let code = aadsts_code(&description)
                .or_else(|| code.as_deref().and_then(code_from_error_codes));
            let description = strip_code_prefix(&description);
            let mut text = format!("token request failed: HTTP {status}");
            if let Some(code) = code {
                text.push_str(&format!(", {code}"));
            }
            if !description.is_empty() {
                text.push_str(&format!(": {}", echo(&scrub(&description, sensitive))));
            }
            text
        }
        // No answer at all: the connection failed or timed out (after our retries).
        None => format!("token request failed: {}", chain_summary(error, sensitive)),
    };
    auth_error_of(kind, mode, scrub(&detail, sensitive))
}

/// Replaces every sensitive string and every JWT-looking run in `text`.
pub(crate) fn scrub(text: &str, sensitive: &[&Sensitive]) -> String {
    let mut out = text.to_string();
    for value in sensitive {
        // Very short values would redact ordinary words; the parser rejects empty secrets anyway.
        if value.expose().len() >= 4 {
            out = out.replace(value.expose(), REDACTED);
        }
    }
    redact_jwts(&out)
}

/// Whether text looks like it could hold a token: a JWT, an OAuth token field, or a long
/// unbroken run of token characters (opaque access tokens).
pub(crate) fn looks_token_like(text: &str) -> bool {
    let opaque = |word: &str| {
        word.len() >= 32
            && word.chars().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '=' | '+' | '/')
            })
    };
    text.contains("eyJ") || text.contains("access_token") || text.split_whitespace().any(opaque)
}

fn find_in_chain<'a, T: StdError + 'static>(error: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut current: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}

/// The innermost HTTP response failure: status, service error code and description.
fn http_failure(error: &azure_core::Error) -> Option<(u16, Option<String>, String)> {
    let mut current: Option<&(dyn StdError + 'static)> = Some(error);
    let mut found = None;
    while let Some(e) = current {
        if let Some(core) = e.downcast_ref::<azure_core::Error>()
            && let ErrorKind::HttpResponse {
                status, error_code, ..
            } = core.kind()
        {
            found = Some((
                u16::from(*status),
                error_code.clone(),
                first_line(&core.to_string()),
            ));
        }
        current = e.source();
    }
    found
}

/// First line of the outermost message plus the root cause when it adds something, each
/// scrubbed and cut by [`echo`].
fn chain_summary(error: &azure_core::Error, sensitive: &[&Sensitive]) -> String {
    let cut = |text: &str| echo(&scrub(text, sensitive)).into_owned();
    let top = first_line(&error.to_string());
    let mut root = None;
    let mut current = error.source();
    while let Some(e) = current {
        root = Some(first_line(&e.to_string()));
        current = e.source();
    }
    match root {
        Some(root) if !root.is_empty() && !top.contains(&root) => {
            format!("{}: {}", cut(top.trim_end_matches('.')), cut(&root))
        }
        _ => cut(&top),
    }
}

/// `AADSTS` followed by digits, wherever it appears.
fn aadsts_code(text: &str) -> Option<String> {
    let start = text.find("AADSTS")?;
    let digits: String = text[start + 6..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    (!digits.is_empty()).then(|| format!("AADSTS{digits}"))
}

/// The SDK joins Entra's numeric `error_codes` with commas; the first is the meaningful one.
fn code_from_error_codes(codes: &str) -> Option<String> {
    let first = codes.split(',').next()?.trim();
    (!first.is_empty() && first.chars().all(|c| c.is_ascii_digit()))
        .then(|| format!("AADSTS{first}"))
}

fn strip_code_prefix(description: &str) -> String {
    let trimmed = description.trim();
    match (aadsts_code(trimmed), trimmed.strip_prefix("AADSTS")) {
        (Some(code), Some(_)) => trimmed[code.len()..]
            .trim_start_matches(':')
            .trim()
            .to_string(),
        _ => trimmed.to_string(),
    }
}

fn first_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or_default()
        .to_string()
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Redacts runs that start like a JWT header (`eyJ`) and continue in the JWT alphabet.
fn redact_jwts(text: &str) -> String {
    let is_jwt_char =
        |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '=' | '+' | '/');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("eyJ") {
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        let end = tail.find(|c: char| !is_jwt_char(c)).unwrap_or(tail.len());
        out.push_str(REDACTED);
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use azure_core::http::{RawResponse, StatusCode, headers::Headers};

    fn entra_error(status: StatusCode, codes: &str, description: &str) -> azure_core::Error {
        let inner = azure_core::Error::new(
            ErrorKind::HttpResponse {
                status,
                error_code: Some(codes.to_string()),
                raw_response: Some(Box::new(RawResponse::from_bytes(
                    status,
                    Headers::new(),
                    "{}",
                ))),
            },
            description.to_string(),
        );
        azure_core::Error::with_error(
            ErrorKind::Credential,
            inner,
            format!(
                "ClientSecretCredential authentication failed. {description}\nTo troubleshoot, visit x"
            ),
        )
    }

    #[test]
    fn names_mode_status_and_code() {
        let err = entra_error(
            StatusCode::Unauthorized,
            "7000215",
            "AADSTS7000215: Invalid client secret provided.\r\nTrace ID: 1\r\nCorrelation ID: 2",
        );
        let msg = describe_token_error("service_principal", &err, &[]).0;
        assert_eq!(
            msg,
            "service_principal: token request failed: HTTP 401, AADSTS7000215: Invalid client secret provided."
        );
    }

    #[test]
    fn code_from_error_codes_when_description_has_none() {
        let err = entra_error(StatusCode::BadRequest, "700016,1", "application not found");
        let msg = describe_token_error("workload_identity", &err, &[]).0;
        assert!(
            msg.contains("HTTP 400, AADSTS700016: application not found"),
            "{msg}"
        );
    }

    #[test]
    fn scrubs_secrets_and_jwts() {
        let secret = Sensitive::new("hunter2-secret");
        let err = entra_error(
            StatusCode::BadRequest,
            "1",
            "bad hunter2-secret and eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0. here",
        );
        let msg = describe_token_error("service_principal", &err, &[&secret]).0;
        assert!(!msg.contains("hunter2"), "{msg}");
        assert!(!msg.contains("eyJ"), "{msg}");
        assert!(msg.contains("bad <redacted> and <redacted> here"), "{msg}");
    }

    #[test]
    fn non_http_errors_keep_root_cause_on_one_line() {
        let root = azure_core::Error::with_message(ErrorKind::Io, "connection refused");
        let err = azure_core::Error::with_error(
            ErrorKind::Credential,
            root,
            "X authentication failed.\nmore",
        );
        let msg = describe_token_error("vm_managed_identity", &err, &[]).0;
        assert_eq!(
            msg,
            "vm_managed_identity: token request failed: X authentication failed: connection refused"
        );
    }

    #[test]
    fn long_service_text_is_cut_by_the_shared_rule_after_scrubbing() {
        let secret = Sensitive::new("hunter2-secret");
        let long = format!("{}hunter2-secret{}", "d".repeat(60), "x".repeat(900_000));
        let err = entra_error(StatusCode::BadRequest, "1", &long);
        let msg = describe_token_error("service_principal", &err, &[&secret]).0;
        assert!(msg.len() < 300, "{}", msg.len());
        assert!(!msg.contains("hunter2"), "{msg}");
        assert!(msg.contains("bytes)"), "{msg}");
        let root = azure_core::Error::with_message(ErrorKind::Io, "r".repeat(100_000));
        let err = azure_core::Error::with_error(ErrorKind::Credential, root, "t".repeat(100_000));
        let msg = describe_token_error("vm_managed_identity", &err, &[]).0;
        assert!(msg.len() < 400, "{}", msg.len());
    }

    #[test]
    fn kinds_follow_the_answer() {
        let rejected = entra_error(StatusCode::Unauthorized, "7000215", "AADSTS7000215: bad");
        let kind = |e: &azure_core::Error| describe_token_error("m", e, &[]).kind();
        assert_eq!(kind(&rejected), AuthErrorKind::Rejected);
        let unknown = entra_error(StatusCode::BadRequest, "700016", "AADSTS700016: unknown");
        assert_eq!(kind(&unknown), AuthErrorKind::Rejected);
        for status in [
            StatusCode::ServiceUnavailable,
            StatusCode::TooManyRequests,
            StatusCode::InternalServerError,
            StatusCode::RequestTimeout,
        ] {
            assert_eq!(
                kind(&entra_error(status, "90033", "AADSTS90033: busy")),
                AuthErrorKind::Unavailable,
                "{status:?}"
            );
        }
        let reset = azure_core::Error::with_error(
            ErrorKind::Credential,
            azure_core::Error::with_message(ErrorKind::Io, "connection reset"),
            "X authentication failed.",
        );
        assert_eq!(kind(&reset), AuthErrorKind::Unavailable);
        let ours = to_core_error(auth_error_of(AuthErrorKind::Unsupported, "m", "no"));
        assert_eq!(kind(&ours), AuthErrorKind::Unsupported);
        assert_eq!(error_kind_in(&ours), Some(AuthErrorKind::Unsupported));
        assert_eq!(error_kind_in(&reset), None);
        assert_eq!(misconfigured("m", "x").kind(), AuthErrorKind::Misconfigured);
        assert_eq!(unavailable("m", "x").kind(), AuthErrorKind::Unavailable);
        assert_eq!(auth_error("m", "x").kind(), AuthErrorKind::Rejected);
    }

    #[test]
    fn our_own_errors_pass_through() {
        let err = to_core_error(auth_error("pod_identity", "NMI answered HTTP 403"));
        let wrapped = azure_core::Error::with_error(ErrorKind::Credential, err, "outer");
        assert_eq!(
            describe_token_error("pod_identity", &wrapped, &[]).0,
            "pod_identity: NMI answered HTTP 403"
        );
    }
}
