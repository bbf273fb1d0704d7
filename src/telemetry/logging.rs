//! Log setup: `tracing` events to stderr, as text or JSON lines (`--log-format-json`).
//!
//! The level of this crate follows klog's `-v`: 0–1 `info`, 2–3 `debug`, 4 and above `trace`.
//! Everything else logs at `warn`, and the HTTP, TLS, gRPC and Azure SDK crates are pinned to
//! `warn` by name at every `-v`, because at debug/trace some of them print request headers, i.e.
//! bearer tokens. `RUST_LOG`, when set, replaces the `-v` levels; the pins still apply to it unless
//! it names one of those crates explicitly (`RUST_LOG=debug` does not open them, `h2=trace` does:
//! an operator's deliberate choice). Records of the `log` crate (used by a few dependencies) are not
//! bridged into `tracing`, so they are never printed.
//!
//! Every line written is at most [`crate::text::MAX_LOG_LINE_BYTES`] ([`LineCap`]): a longer
//! text line is cut (marked `... (truncated)`); a longer JSON line stays one valid JSON object,
//! its long string fields cut instead of its bytes.

use std::io::Write;

use tracing::Subscriber;
use tracing_subscriber::filter::{EnvFilter, ParseError};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;

/// Crates held at `warn` whatever `-v` says.
pub const QUIET_CRATES: [&str; 10] = [
    "h2",
    "hyper",
    "hyper_util",
    "reqwest",
    "rustls",
    "tonic",
    "tower",
    "azure_core",
    "azure_identity",
    "typespec_client_core",
];

/// Logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("invalid RUST_LOG: {0}")]
    Filter(#[from] ParseError),
    #[error("a global logger is already installed: {0}")]
    AlreadySet(#[from] tracing::subscriber::SetGlobalDefaultError),
}

/// The level of this crate for a klog `-v`.
fn own_level(verbosity: u8) -> &'static str {
    match verbosity {
        0..=1 => "info",
        2..=3 => "debug",
        _ => "trace",
    }
}

/// The filter for `rust_log` (the value of `RUST_LOG`, if set and not empty) or `verbosity`.
pub fn filter_for(rust_log: Option<&str>, verbosity: u8) -> Result<EnvFilter, ParseError> {
    let pins = QUIET_CRATES.map(|name| format!("{name}=warn")).join(",");
    let levels = match rust_log {
        Some(rust_log) => rust_log.to_owned(),
        None => format!("warn,{}={}", env!("CARGO_CRATE_NAME"), own_level(verbosity)),
    };
    // Later directives replace earlier ones for the same target, so RUST_LOG can reopen a pinned
    // crate only by naming it.
    EnvFilter::builder().parse(format!("{pins},{levels}"))
}

/// The filter from the `RUST_LOG` environment variable if set, else from `verbosity`.
pub fn log_filter(verbosity: u8) -> Result<EnvFilter, ParseError> {
    let rust_log = std::env::var(EnvFilter::DEFAULT_ENV)
        .ok()
        .filter(|value| !value.trim().is_empty());
    filter_for(rust_log.as_deref(), verbosity)
}

/// A [`MakeWriter`] whose writers hold each event's line and write it, within
/// [`crate::text::MAX_LOG_LINE_BYTES`], when dropped (the formatter writes one event per writer).
#[derive(Clone, Debug)]
pub struct LineCap<M> {
    inner: M,
    json: bool,
    max_bytes: usize,
}

impl<M> LineCap<M> {
    /// Caps the lines `inner` writes; `json` says they are JSON objects.
    pub fn new(inner: M, json: bool) -> Self {
        Self {
            inner,
            json,
            max_bytes: crate::text::MAX_LOG_LINE_BYTES,
        }
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for LineCap<M> {
    type Writer = CappedLine<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        CappedLine {
            inner: self.inner.make_writer(),
            line: Vec::new(),
            json: self.json,
            max_bytes: self.max_bytes,
        }
    }
}

/// One event's output, written (capped) on drop.
pub struct CappedLine<W: Write> {
    inner: W,
    line: Vec<u8>,
    json: bool,
    max_bytes: usize,
}

impl<W: Write> Write for CappedLine<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<W: Write> Drop for CappedLine<W> {
    fn drop(&mut self) {
        if self.line.is_empty() {
            return;
        }
        let line = std::mem::take(&mut self.line);
        let out = if line.len() <= self.max_bytes {
            line
        } else {
            cap_line(&line, self.json, self.max_bytes)
        };
        // Nowhere to report a failed log write.
        let _ = self.inner.write_all(&out);
        let _ = self.inner.flush();
    }
}

/// `line` (one event, newline-terminated) within `max_bytes`, newline included.
fn cap_line(line: &[u8], json: bool, max_bytes: usize) -> Vec<u8> {
    let text = String::from_utf8_lossy(line);
    let body = text.trim_end_matches('\n');
    if json && let Ok(mut value) = serde_json::from_str::<serde_json::Value>(body) {
        // Cut long string fields, tighter each round, until the object fits.
        for field_max in [max_bytes / 8, 512, 128] {
            clip_strings(&mut value, field_max);
            let mut out = value.to_string().into_bytes();
            if out.len() < max_bytes {
                out.push(b'\n');
                return out;
            }
        }
        let mut out = serde_json::json!({
            "level": value.get("level").cloned().unwrap_or_default(),
            "timestamp": value.get("timestamp").cloned().unwrap_or_default(),
            "fields": { "message": "log line over the size limit, dropped" },
        })
        .to_string()
        .into_bytes();
        out.push(b'\n');
        return out;
    }
    let mut out = crate::text::clip(body, max_bytes.saturating_sub(1))
        .into_owned()
        .into_bytes();
    out.push(b'\n');
    out
}

/// Cuts every string in `value` (keys excepted) longer than `max_bytes`.
fn clip_strings(value: &mut serde_json::Value, max_bytes: usize) {
    match value {
        serde_json::Value::String(text) if text.len() > max_bytes => {
            *text = crate::text::clip(text, max_bytes).into_owned();
        }
        serde_json::Value::Array(items) => {
            for item in items {
                clip_strings(item, max_bytes);
            }
        }
        serde_json::Value::Object(fields) => {
            for (_, item) in fields.iter_mut() {
                clip_strings(item, max_bytes);
            }
        }
        _ => {}
    }
}

/// The provider's subscriber writing to `writer` (tests capture logs with it). Every line is
/// capped by [`LineCap`].
pub fn subscriber_with_writer<W>(
    json: bool,
    filter: EnvFilter,
    writer: W,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let format = tracing_subscriber::fmt::layer()
        .with_writer(LineCap::new(writer, json))
        .with_ansi(false);
    let registry = tracing_subscriber::registry().with(filter);
    if json {
        Box::new(registry.with(format.json().with_current_span(true).with_span_list(false)))
    } else {
        Box::new(registry.with(format))
    }
}

/// Installs the process-wide subscriber: stderr, text or JSON, filtered as [`log_filter`].
pub fn init_logging(json: bool, verbosity: u8) -> Result<(), LoggingError> {
    let subscriber = subscriber_with_writer(json, log_filter(verbosity)?, std::io::stderr);
    tracing::subscriber::set_global_default(subscriber)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbosity_levels() {
        assert_eq!(own_level(0), "info");
        assert_eq!(own_level(1), "info");
        assert_eq!(own_level(2), "debug");
        assert_eq!(own_level(3), "debug");
        assert_eq!(own_level(4), "trace");
        assert_eq!(own_level(9), "trace");
    }

    #[test]
    fn long_text_lines_are_cut() {
        let line = format!("WARN mount failed error={}\n", "x".repeat(900_000));
        let out = cap_line(line.as_bytes(), false, 16 * 1024);
        assert!(out.len() <= 16 * 1024 && out.ends_with(b"(truncated)\n"));
    }

    #[test]
    fn long_json_lines_stay_valid_json() {
        let line = serde_json::json!({
            "level": "WARN",
            "fields": { "message": "mount failed", "error": "y".repeat(900_000), "pod": "p" },
        })
        .to_string()
            + "\n";
        let out = cap_line(line.as_bytes(), true, 16 * 1024);
        assert!(out.len() <= 16 * 1024, "{}", out.len());
        let value: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
        assert_eq!(value["fields"]["message"], "mount failed");
        assert_eq!(value["fields"]["pod"], "p");
        let many = serde_json::json!({
            "fields": (0..200).map(|i| (format!("f{i}"), "z".repeat(600).into())).collect::<serde_json::Map<_, _>>(),
        })
        .to_string();
        let out = cap_line(many.as_bytes(), true, 16 * 1024);
        assert!(out.len() <= 16 * 1024);
        serde_json::from_slice::<serde_json::Value>(&out).expect("valid JSON");
    }

    #[test]
    fn the_writer_caps_each_event() {
        #[derive(Clone, Default)]
        struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl Write for Sink {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink::default();
        let subscriber = subscriber_with_writer(false, filter_for(None, 0).unwrap(), {
            let sink = sink.clone();
            move || sink.clone()
        });
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(value = %"v".repeat(100_000), "huge");
            tracing::info!("small");
        });
        let written = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = written.lines().collect();
        assert_eq!(lines.len(), 2, "{written:.200}");
        assert!(lines[0].len() < 16 * 1024 && lines[0].ends_with("(truncated)"));
        assert!(lines[1].ends_with("small"));
    }

    #[test]
    fn filters_parse() {
        for verbosity in 0..6 {
            assert!(filter_for(None, verbosity).is_ok());
        }
        assert!(filter_for(Some("debug"), 0).is_ok());
        assert!(filter_for(Some("akv_csi_provider=notalevel"), 0).is_err());
    }
}
