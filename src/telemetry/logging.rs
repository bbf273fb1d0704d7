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
//! # JSON lines
//!
//! With `--log-format-json` each line is one JSON object in the shape of the Go provider's logger
//! (v1.8.2 `cmd/main.go` uses the JSON format of `k8s.io/component-base` v0.34.2,
//! `logs/json/json.go`: zap's JSON encoder with `ts`, `caller`, `msg`, no level key, `v` for the
//! verbosity of info lines and `err` for the error of error lines, key/value pairs at top level):
//!
//! ```text
//! {"ts":1765157219123.4568,"caller":"provider/mount.rs:42","msg":"mount","v":0,"pod":"p","namespace":"ns"}
//! {"ts":1765157219123.4568,"caller":"server/mod.rs:201","msg":"mount failed","pod":"p","err":"..."}
//! ```
//!
//! - `ts`: Unix time in milliseconds, a JSON number with a fraction (as component-base's
//!   epoch-milliseconds encoder).
//! - `caller`: the source file of ours as its last directory and file name, then `:line` (zap's
//!   short caller encoding).
//! - `msg`: the event's message.
//! - `v`: on info lines only, the klog verbosity the line needs: `info` 0, `debug` 2, `trace` 4
//!   (the lowest `-v` at which it shows, see above).
//! - Error lines (`warn` and `error` events) carry no `v`, as klog error lines; the Go provider logs
//!   failures (a failed mount, a socket that cannot be removed) with `ErrorS`, and our failures log
//!   at `warn`, so both levels are error lines here.
//! - `err`: our `error` field (the error text), last, as zapr's error key; on any line.
//! - Every other field of the event and of the spans it is in is flattened at top level with our
//!   names (`pod`, `namespace`, `spc`, `duration_ms`, ...); the event's fields override those of
//!   its spans, inner spans those of outer ones, so no key appears twice. A field named like a key
//!   above (`ts`, `caller`, `msg`, `v`, `err`) is written as `field.<name>`.
//!
//! Stream: everything goes to stderr, as upstream does. Upstream passes stdout as the info stream,
//! but component-base splits streams only when the `json.splitStream` option is set, which the Go
//! provider never sets, so its JSON logger writes info and errors to stderr. Kubelet's log
//! collection reads both streams anyway; one stream keeps the order of lines.
//!
//! Every line written is at most [`crate::text::MAX_LOG_LINE_BYTES`] ([`LineCap`]): a longer
//! text line is cut (marked `... (truncated)`); a longer JSON line stays one valid JSON object,
//! its long string fields cut instead of its bytes.

use std::io::Write;

use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::{EnvFilter, ParseError};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormattedFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;

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

/// The keys component-base's JSON logger writes itself; a field with one of these names is
/// renamed (see the module doc).
const RESERVED_KEYS: [&str; 5] = ["ts", "caller", "msg", "v", "err"];

/// The klog verbosity of an info line at `level`, or `None` for an error line.
fn klog_verbosity(level: Level) -> Option<u8> {
    match level {
        Level::ERROR | Level::WARN => None,
        Level::INFO => Some(0),
        Level::DEBUG => Some(2),
        Level::TRACE => Some(4),
    }
}

/// `file` as zap's short caller: its last directory and file name (`src/server/mod.rs` →
/// `server/mod.rs`), then `:line`.
fn short_caller(file: &str, line: u32) -> String {
    let file = file.replace('\\', "/");
    let mut cut = file.rsplitn(3, '/');
    let name = cut.next().unwrap_or_default();
    match cut.next() {
        Some(dir) => format!("{dir}/{name}:{line}"),
        None => format!("{name}:{line}"),
    }
}

/// Unix time in milliseconds as a JSON number (`1765157219123.4568`): what component-base's
/// epoch-milliseconds encoder writes (Go's shortest `'f'` format of a float64; Rust's `Display`
/// of an `f64` is the same shortest form, never with an exponent).
fn epoch_millis(since_epoch: std::time::Duration) -> String {
    let millis = since_epoch.as_nanos() as f64 / 1_000_000.0;
    format!("{millis}")
}

/// The fields of one line, in order, each key once.
#[derive(Debug, Default)]
struct LineFields {
    message: Option<String>,
    error: Option<Value>,
    fields: Vec<(String, Value)>,
}

impl LineFields {
    /// Sets `name` (our field name) to `value`, replacing an earlier value of the same name.
    fn set(&mut self, name: &str, value: Value) {
        match name {
            "message" => {
                self.message = Some(match value {
                    Value::String(text) => text,
                    other => other.to_string(),
                });
            }
            "error" => self.error = Some(value),
            _ => {
                let key = if RESERVED_KEYS.contains(&name) {
                    format!("field.{name}")
                } else {
                    name.to_owned()
                };
                match self.fields.iter_mut().find(|(k, _)| *k == key) {
                    Some(slot) => slot.1 = value,
                    None => self.fields.push((key, value)),
                }
            }
        }
    }
}

impl Visit for LineFields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.set(field.name(), Value::String(format!("{value:?}")));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field.name(), Value::String(value.to_owned()));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.set(field.name(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.set(field.name(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.set(field.name(), value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // NaN and infinities have no JSON number: written as text.
        let value = serde_json::Number::from_f64(value)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(value.to_string()));
        self.set(field.name(), value);
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.set(field.name(), Value::String(value.to_string()));
    }
}

/// One JSON line (newline included) of the upstream shape; see the module doc.
fn render_line(ts: &str, caller: Option<&str>, level: Level, fields: LineFields) -> String {
    let text = |value: &str| Value::String(value.to_owned()).to_string();
    let mut line = format!("{{\"ts\":{ts}");
    if let Some(caller) = caller {
        line.push_str(",\"caller\":");
        line.push_str(&text(caller));
    }
    line.push_str(",\"msg\":");
    line.push_str(&text(fields.message.as_deref().unwrap_or_default()));
    if let Some(v) = klog_verbosity(level) {
        line.push_str(&format!(",\"v\":{v}"));
    }
    for (key, value) in &fields.fields {
        line.push(',');
        line.push_str(&text(key));
        line.push(':');
        line.push_str(&value.to_string());
    }
    if let Some(error) = &fields.error {
        line.push_str(",\"err\":");
        line.push_str(&error.to_string());
    }
    line.push_str("}\n");
    line
}

/// The `--log-format-json` event format: one JSON object per line with the Go provider's keys
/// (see the module doc). Span fields come from [`JsonFields`], which stores them as a JSON object.
#[derive(Clone, Copy, Debug, Default)]
pub struct KlogJson;

impl<S> FormatEvent<S, JsonFields> for KlogJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let mut fields = LineFields::default();
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                let Some(stored) = extensions.get::<FormattedFields<JsonFields>>() else {
                    continue;
                };
                if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(stored) {
                    for (name, value) in map {
                        fields.set(&name, value);
                    }
                }
            }
        }
        event.record(&mut fields);
        let metadata = event.metadata();
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let caller = metadata
            .file()
            .map(|file| short_caller(file, metadata.line().unwrap_or(0)));
        let line = render_line(
            &epoch_millis(since_epoch),
            caller.as_deref(),
            *metadata.level(),
            fields,
        );
        writer.write_str(&line)
    }
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
        // Keep the line's time, caller and kind (`v` or none).
        let mut kept = serde_json::Map::new();
        for key in ["ts", "caller", "v"] {
            if let Some(item) = value.get(key) {
                kept.insert(key.to_owned(), item.clone());
            }
        }
        kept.insert(
            "msg".to_owned(),
            "log line over the size limit, dropped".into(),
        );
        let mut out = Value::Object(kept).to_string().into_bytes();
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
        Box::new(registry.with(format.fmt_fields(JsonFields::new()).event_format(KlogJson)))
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
            "ts": 1.5, "caller": "provider.rs:1", "msg": "mount failed",
            "pod": "p", "err": "y".repeat(900_000),
        })
        .to_string()
            + "\n";
        let out = cap_line(line.as_bytes(), true, 16 * 1024);
        assert!(out.len() <= 16 * 1024, "{}", out.len());
        let value: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
        assert_eq!(value["msg"], "mount failed");
        assert_eq!(value["pod"], "p");
        let mut many: serde_json::Map<_, _> = (0..200)
            .map(|i| (format!("f{i}"), "z".repeat(600).into()))
            .collect();
        many.insert("ts".into(), 2.5.into());
        many.insert("v".into(), 4.into());
        let out = cap_line(Value::Object(many).to_string().as_bytes(), true, 16 * 1024);
        assert!(out.len() <= 16 * 1024);
        let value: Value = serde_json::from_slice(&out).expect("valid JSON");
        assert_eq!(value["msg"], "log line over the size limit, dropped");
        assert_eq!(
            (value["ts"].as_f64(), value["v"].as_u64()),
            (Some(2.5), Some(4))
        );
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

    /// Runs `emit` under the JSON subscriber and returns the lines written.
    fn json_lines(emit: impl FnOnce()) -> Vec<String> {
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
        let subscriber = subscriber_with_writer(true, filter_for(None, 9).unwrap(), {
            let sink = sink.clone();
            move || sink.clone()
        });
        tracing::subscriber::with_default(subscriber, emit);
        let written = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        written.lines().map(str::to_owned).collect()
    }

    #[test]
    fn json_lines_have_the_upstream_byte_shape() {
        let mut fields = LineFields::default();
        fields.set("message", "mount".into());
        fields.set("pod", "p\"1".into());
        fields.set("duration_ms", 12u64.into());
        fields.set("pod", "p2".into());
        assert_eq!(
            render_line(
                "1765157219123.4568",
                Some("src/provider.rs:7"),
                Level::INFO,
                fields
            ),
            "{\"ts\":1765157219123.4568,\"caller\":\"src/provider.rs:7\",\"msg\":\"mount\",\"v\":0,\
             \"pod\":\"p2\",\"duration_ms\":12}\n"
        );
        let mut fields = LineFields::default();
        fields.set("error", "denied".into());
        fields.set("message", "mount failed".into());
        fields.set("v", "x".into());
        fields.set("namespace", "ns".into());
        assert_eq!(
            render_line("1.5", Some("server/mod.rs:9"), Level::WARN, fields),
            "{\"ts\":1.5,\"caller\":\"server/mod.rs:9\",\"msg\":\"mount failed\",\
             \"field.v\":\"x\",\"namespace\":\"ns\",\"err\":\"denied\"}\n"
        );
        let debug = render_line("2", None, Level::DEBUG, LineFields::default());
        assert_eq!(debug, "{\"ts\":2,\"msg\":\"\",\"v\":2}\n");
        let trace = render_line("2", None, Level::TRACE, LineFields::default());
        assert_eq!(trace, "{\"ts\":2,\"msg\":\"\",\"v\":4}\n");
        let error = render_line("2", None, Level::ERROR, LineFields::default());
        assert_eq!(error, "{\"ts\":2,\"msg\":\"\"}\n");
    }

    #[test]
    fn callers_and_times_are_encoded_as_upstream() {
        assert_eq!(short_caller("src/server/mod.rs", 12), "server/mod.rs:12");
        assert_eq!(short_caller("src/main.rs", 3), "src/main.rs:3");
        assert_eq!(short_caller("main.rs", 3), "main.rs:3");
        assert_eq!(short_caller("C:\\a\\b\\c.rs", 1), "b/c.rs:1");
        let at = std::time::Duration::new(1_765_157_219, 123_456_789);
        assert_eq!(epoch_millis(at), "1765157219123.4568");
        assert_eq!(
            epoch_millis(std::time::Duration::from_secs(1_765_157_219)),
            "1765157219000"
        );
    }

    #[test]
    fn json_events_flatten_span_and_event_fields() {
        let lines = json_lines(|| {
            let outer = tracing::info_span!("mount", pod = "p1", namespace = "ns", spc = "outer");
            let _outer = outer.enter();
            let inner = tracing::info_span!("object", spc = "inner", object = "secret/a");
            let _inner = inner.enter();
            tracing::debug!(attempt = 2u64, ok = false, ratio = 0.5, "fetched");
            tracing::warn!(error = %"vault said no", object = "secret/b", "mount failed");
            tracing::info!(msg = "not the message", "with a reserved field");
        });
        assert_eq!(lines.len(), 3, "{lines:?}");
        let parsed: Vec<Value> = lines
            .iter()
            .map(|line| serde_json::from_str(line).expect("valid JSON"))
            .collect();
        let first = &parsed[0];
        assert!(first["ts"].as_f64().unwrap() > 1.7e12, "{first}");
        let caller = first["caller"].as_str().unwrap();
        assert!(caller.starts_with("telemetry/logging.rs:"), "{caller}");
        assert_eq!(first["msg"], "fetched");
        assert_eq!(first["v"], 2);
        assert_eq!(first["pod"], "p1");
        assert_eq!(first["namespace"], "ns");
        assert_eq!(first["spc"], "inner");
        assert_eq!(first["object"], "secret/a");
        assert_eq!(first["attempt"], 2);
        assert_eq!(first["ok"], false);
        assert_eq!(first["ratio"], 0.5);
        assert!(first.get("err").is_none() && first.get("level").is_none());
        let second = &parsed[1];
        assert!(second.get("v").is_none(), "{second}");
        assert_eq!(second["err"], "vault said no");
        assert_eq!(second["object"], "secret/b");
        assert!(
            lines[1].ends_with(",\"err\":\"vault said no\"}"),
            "{}",
            lines[1]
        );
        // Each key once, in the upstream order.
        assert!(lines[0].starts_with("{\"ts\":"), "{}", lines[0]);
        assert_eq!(lines[0].matches("\"spc\":").count(), 1, "{}", lines[0]);
        assert_eq!(parsed[2]["msg"], "with a reserved field");
        assert_eq!(parsed[2]["field.msg"], "not the message");
    }

    #[test]
    fn long_json_events_stay_valid_json_with_upstream_keys() {
        let lines = json_lines(|| {
            tracing::warn!(pod = "p", error = %"e".repeat(900_000), "mount failed");
            let many: String = (0..100).map(|i| format!("{i}")).collect();
            tracing::info!(a = %many.repeat(400), b = %many.repeat(400), "wide");
        });
        assert_eq!(lines.len(), 2, "{lines:?}");
        for line in &lines {
            assert!(line.len() < 16 * 1024, "{}", line.len());
            let value: Value = serde_json::from_str(line).expect("valid JSON");
            assert!(
                value["ts"].is_number() && value["caller"].is_string(),
                "{value}"
            );
        }
        let first: Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(first["msg"], "mount failed");
        assert_eq!(first["pod"], "p");
        assert!(first["err"].as_str().unwrap().starts_with("eee"));
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
