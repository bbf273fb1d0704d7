//! The one truncation rule for text that leaves the process: values echoed in error messages and
//! logs, gRPC status messages, log lines.
//!
//! - a value taken from a request, a Secret, a token or a response and quoted back ([`echo`]) is
//!   cut to [`MAX_ECHOED_CHARS`] characters, and the cut is marked with `...` and the full length;
//! - a whole gRPC status message ([`status_message`]) is at most [`MAX_STATUS_BYTES`];
//! - a whole log line ([`log_line`]) is at most [`MAX_LOG_LINE_BYTES`].
//!
//! Cuts fall on character boundaries. Truncation is about volume, not secrecy: secret material
//! must never be echoed at all (see [`crate::sensitive`]).

use std::borrow::Cow;

/// Longest user value echoed in an error message or log field; longer ones are cut.
pub const MAX_ECHOED_CHARS: usize = 64;
/// Longest gRPC status message sent to the driver.
pub const MAX_STATUS_BYTES: usize = 4 * 1024;
/// Longest log line written.
pub const MAX_LOG_LINE_BYTES: usize = 16 * 1024;

/// A value cut to [`MAX_ECHOED_CHARS`] characters for an error message or a log field.
pub fn echo(value: &str) -> Cow<'_, str> {
    match value.char_indices().nth(MAX_ECHOED_CHARS) {
        Some((cut, _)) => Cow::Owned(format!("{}... ({} bytes)", &value[..cut], value.len())),
        None => Cow::Borrowed(value),
    }
}

/// `text` cut to at most `max_bytes` bytes (marker included) on a character boundary.
pub fn clip(text: &str, max_bytes: usize) -> Cow<'_, str> {
    const MARKER: &str = "... (truncated)";
    if text.len() <= max_bytes {
        return Cow::Borrowed(text);
    }
    let mut cut = max_bytes.saturating_sub(MARKER.len());
    while cut > 0 && !text.is_char_boundary(cut) {
        cut -= 1;
    }
    Cow::Owned(format!("{}{MARKER}", &text[..cut]))
}

/// A gRPC status message within [`MAX_STATUS_BYTES`].
pub fn status_message(text: &str) -> Cow<'_, str> {
    clip(text, MAX_STATUS_BYTES)
}

/// A log line within [`MAX_LOG_LINE_BYTES`].
pub fn log_line(text: &str) -> Cow<'_, str> {
    clip(text, MAX_LOG_LINE_BYTES)
}

/// The innermost non-empty message of an error's source chain (a refused connection, a
/// certificate the TLS name does not match, a timeout): what is worth showing of an HTTP client's
/// error, whose top-level message alone says little. Cut it with [`echo`] before showing it.
pub(crate) fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut current = error.source();
    while let Some(e) = current {
        let part = e.to_string();
        if !part.is_empty() {
            text = part;
        }
        current = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_are_kept() {
        assert_eq!(echo("tenant-a"), "tenant-a");
        assert_eq!(clip("abc", 3), "abc");
    }

    #[test]
    fn long_values_are_cut_on_char_boundaries() {
        let long = "é".repeat(100);
        let cut = echo(&long);
        assert!(cut.starts_with(&"é".repeat(64)));
        assert!(cut.ends_with("... (200 bytes)"), "{cut}");
        let huge = "x".repeat(900_000);
        assert!(status_message(&huge).len() <= MAX_STATUS_BYTES);
        assert!(log_line(&huge).len() <= MAX_LOG_LINE_BYTES);
        let multi = "€".repeat(5000);
        let clipped = clip(&multi, 100);
        assert!(clipped.len() <= 100 && clipped.ends_with("(truncated)"));
    }
}
