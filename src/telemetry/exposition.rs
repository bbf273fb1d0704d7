//! The two text formats `/metrics` speaks, and which one a scraper gets.
//!
//! The registry encodes OpenMetrics 1.0.0 text. The Prometheus text format 0.0.4
//! (<https://prometheus.io/docs/instrumenting/exposition_formats/>), what upstream's Go client
//! serves and what every Prometheus-compatible scraper reads, differs from that output in few
//! places, and [`to_prometheus_text`] makes exactly those changes:
//!
//! - no `# EOF` line and no `# UNIT` lines (0.0.4 has neither);
//! - a counter family's `# HELP` and `# TYPE` name the sample name `<name>_total`, since 0.0.4
//!   has no family name apart from the sample name;
//! - the type `unknown` is called `untyped`.
//!
//! Sample lines are the same in both formats for what we export (no exemplars, no `_created`).
//! [`wants_openmetrics`] reads the scraper's `Accept` header: OpenMetrics only when it is asked
//! for, Prometheus text otherwise (also with no header at all).

/// Content type of the Prometheus text format 0.0.4.
pub const PROMETHEUS_TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Content type of OpenMetrics text 1.0.0.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Longest `Accept` header read; the rest is ignored (a scraper's is about 150 bytes).
const MAX_ACCEPT_LEN: usize = 4096;

/// Whether an `Accept` header asks for OpenMetrics: some entry names
/// `application/openmetrics-text` with a `q` above zero (and a `version`, when given, of
/// `1.0.0`, the one we write) and no entry for `text/plain` is preferred to it.
pub fn wants_openmetrics(accept: Option<&str>) -> bool {
    let Some(accept) = accept else { return false };
    let accept = accept.get(..MAX_ACCEPT_LEN).unwrap_or(accept);
    let mut openmetrics: Option<f32> = None;
    let mut text: Option<f32> = None;
    for entry in accept.split(',') {
        let mut parts = entry.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let mut q = 1.0f32;
        let mut version_ok = true;
        for param in parts {
            let Some((key, value)) = param.split_once('=') else {
                continue;
            };
            let value = value.trim().trim_matches('"');
            match key.trim().to_ascii_lowercase().as_str() {
                "q" => {
                    q = value
                        .parse()
                        .ok()
                        .filter(|q: &f32| q.is_finite())
                        .unwrap_or(0.0)
                }
                "version" => version_ok = value == "1.0.0",
                _ => {}
            }
        }
        let best = |slot: &mut Option<f32>| *slot = Some(slot.map_or(q, |old| old.max(q)));
        match media.as_str() {
            "application/openmetrics-text" if version_ok => best(&mut openmetrics),
            "text/plain" => best(&mut text),
            _ => {}
        }
    }
    match (openmetrics, text) {
        (Some(om), None) => om > 0.0,
        (Some(om), Some(text)) => om > 0.0 && om >= text,
        _ => false,
    }
}

/// OpenMetrics text as the registry writes it → Prometheus text 0.0.4 (see the module docs).
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let lines: Vec<&str> = openmetrics.lines().collect();
    let mut counter_family: Option<&str> = None;
    for (index, line) in lines.iter().enumerate() {
        if *line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or("");
            // The registry writes each family's HELP right before its TYPE.
            let is_counter = lines
                .get(index + 1)
                .and_then(|next| next.strip_prefix("# TYPE "))
                .is_some_and(|t| t == format!("{name} counter"));
            counter_family = is_counter.then_some(name);
            if is_counter {
                out.push_str("# HELP ");
                out.push_str(name);
                out.push_str("_total");
                out.push_str(&rest[name.len()..]);
                out.push('\n');
                continue;
            }
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            let name = match (kind, counter_family) {
                ("counter", Some(family)) if family == name => format!("{name}_total"),
                _ => name.to_owned(),
            };
            let kind = if kind == "unknown" { "untyped" } else { kind };
            out.push_str("# TYPE ");
            out.push_str(&name);
            out.push(' ');
            out.push_str(kind);
            out.push('\n');
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversion_is_exact() {
        let om = "# HELP a_requests Requests.\n\
                  # TYPE a_requests counter\n\
                  a_requests_total{x=\"1\"} 2\n\
                  # HELP h Latency.\n\
                  # TYPE h histogram\n\
                  h_sum 0.5\n\
                  h_count 1\n\
                  h_bucket{le=\"0.1\"} 0\n\
                  h_bucket{le=\"+Inf\"} 1\n\
                  # HELP g_seconds Time.\n\
                  # TYPE g_seconds gauge\n\
                  # UNIT g_seconds seconds\n\
                  g_seconds 7\n\
                  # HELP u Unknown.\n\
                  # TYPE u unknown\n\
                  u 1\n\
                  # EOF\n";
        let text = "# HELP a_requests_total Requests.\n\
                    # TYPE a_requests_total counter\n\
                    a_requests_total{x=\"1\"} 2\n\
                    # HELP h Latency.\n\
                    # TYPE h histogram\n\
                    h_sum 0.5\n\
                    h_count 1\n\
                    h_bucket{le=\"0.1\"} 0\n\
                    h_bucket{le=\"+Inf\"} 1\n\
                    # HELP g_seconds Time.\n\
                    # TYPE g_seconds gauge\n\
                    g_seconds 7\n\
                    # HELP u Unknown.\n\
                    # TYPE u untyped\n\
                    u 1\n";
        assert_eq!(to_prometheus_text(om), text);
        assert_eq!(to_prometheus_text("# EOF\n"), "");
    }

    #[test]
    fn openmetrics_only_when_asked() {
        // Prometheus 2.x and 3.x scrapers.
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert!(wants_openmetrics(Some(prometheus)));
        assert!(wants_openmetrics(Some("application/openmetrics-text")));
        assert!(wants_openmetrics(Some(
            "Application/OpenMetrics-Text; version=\"1.0.0\"; charset=utf-8"
        )));
        for no in [
            None,
            Some(""),
            Some("*/*"),
            Some("text/plain;version=0.0.4;q=0.5,*/*;q=0.1"),
            Some("application/openmetrics-text;q=0"),
            Some("application/openmetrics-text;q=nonsense"),
            Some("application/openmetrics-text;version=0.0.1"),
            Some("application/openmetrics-text;q=0.4,text/plain;q=0.9"),
            Some("application/json"),
        ] {
            assert!(!wants_openmetrics(no), "{no:?}");
        }
        let huge = format!(
            "{},application/openmetrics-text",
            "x".repeat(MAX_ACCEPT_LEN)
        );
        assert!(!wants_openmetrics(Some(&huge)));
    }
}
