//! A strict parser of the Prometheus text exposition format 0.0.4
//! (<https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format>), for tests
//! that read `/metrics` as a scraper would. It rejects what the format does not allow and what
//! a Prometheus server would reject or silently misread:
//!
//! - anything but `# HELP`, `# TYPE`, other comments, samples and empty lines; no `# EOF`;
//! - a `TYPE` that is not `counter`, `gauge`, `histogram`, `summary` or `untyped`, a second
//!   `TYPE` or `HELP` for one name, or a `TYPE` after the name's first sample;
//! - a sample of a family without a `TYPE` line (stricter than the format: we and upstream
//!   declare every family), a sample whose name is not its family's (`<family>` or, for histograms, `_bucket`, `_sum`,
//!   `_count`), families interleaved, bad names, duplicate label names, bad escapes, bad values;
//! - a histogram series without a `+Inf` bucket, with buckets not increasing in `le` or not
//!   cumulative, or whose `_count` differs from the `+Inf` bucket.

use std::collections::{BTreeMap, HashMap, HashSet};

/// One sample line.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }
}

/// A parsed exposition.
#[derive(Debug, Default)]
pub struct Exposition {
    pub samples: Vec<Sample>,
    /// Family name → type.
    pub types: HashMap<String, String>,
    /// Family name → help text.
    pub help: HashMap<String, String>,
}

impl Exposition {
    /// Samples with this exact name.
    pub fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| s.name == name)
    }
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn parse_value(text: &str) -> Result<f64, String> {
    match text {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        other => {
            // Go's ParseFloat syntax, without Rust's extras ("inf", "infinity", "nan").
            let ok = !other.is_empty()
                && other
                    .bytes()
                    .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
            if !ok {
                return Err(format!("bad value {other:?}"));
            }
            other.parse().map_err(|_| format!("bad value {other:?}"))
        }
    }
}

/// `{k="v",...}` contents (without the braces); a trailing comma is allowed, as in Prometheus.
fn parse_labels(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (key, after) = rest
            .split_once("=\"")
            .ok_or(format!("label without =\": {rest}"))?;
        if !is_label_name(key) {
            return Err(format!("bad label name {key:?}"));
        }
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next().ok_or("unterminated label value")? {
                (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    'n' => value.push('\n'),
                    other => return Err(format!("bad escape \\{other}")),
                },
                (_, '\n') => return Err("newline in label value".into()),
                (i, '"') => break i,
                (_, c) => value.push(c),
            }
        };
        if labels.insert(key.to_owned(), value).is_some() {
            return Err(format!("duplicate label {key}"));
        }
        rest = &after[end + 1..];
        if let Some(next) = rest.strip_prefix(',') {
            rest = next;
        } else if !rest.is_empty() {
            return Err(format!("junk after label value: {rest}"));
        }
    }
    Ok(labels)
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let (series, value) = match line.rfind('}') {
        Some(close) => {
            let (series, rest) = line.split_at(close + 1);
            (
                series,
                rest.strip_prefix(' ').ok_or("no space before value")?,
            )
        }
        None => line.split_once(' ').ok_or("sample without value")?,
    };
    // An optional timestamp (we never write one, and upstream does not either).
    if value.contains(' ') {
        return Err(format!("unexpected timestamp or junk: {value:?}"));
    }
    let value = parse_value(value)?;
    let (name, labels) = match series.split_once('{') {
        Some((name, labels)) => (
            name,
            parse_labels(labels.strip_suffix('}').ok_or("unclosed {")?)?,
        ),
        None => (series, BTreeMap::new()),
    };
    if !is_metric_name(name) {
        return Err(format!("bad metric name {name:?}"));
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// The family a sample name belongs to, given the declared types.
fn family_of<'a>(name: &'a str, types: &HashMap<String, String>) -> &'a str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(family) = name.strip_suffix(suffix)
            && types
                .get(family)
                .is_some_and(|t| t == "histogram" || t == "summary")
        {
            return family;
        }
    }
    name
}

/// Parses `text` strictly (see the module docs).
pub fn parse(text: &str) -> Result<Exposition, String> {
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("the last line does not end with a newline".into());
    }
    let mut out = Exposition::default();
    let mut with_samples: HashSet<String> = HashSet::new();
    let mut finished: HashSet<String> = HashSet::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let fail = |e: String| format!("{e} in line {line:?}");
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let comment = comment.trim_start_matches(' ');
            let mut parts = comment.splitn(3, ' ');
            let keyword = parts.next().unwrap_or("");
            if keyword != "HELP" && keyword != "TYPE" {
                if comment == "EOF" {
                    return Err(fail("# EOF is OpenMetrics, not 0.0.4".into()));
                }
                continue;
            }
            let name = parts.next().unwrap_or("");
            let rest = parts.next().unwrap_or("");
            if !is_metric_name(name) {
                return Err(fail(format!("bad name {name:?}")));
            }
            if keyword == "TYPE" {
                if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&rest) {
                    return Err(fail(format!("bad type {rest:?}")));
                }
                if with_samples.contains(name) {
                    return Err(fail("TYPE after the family's samples".into()));
                }
                if out.types.insert(name.to_owned(), rest.to_owned()).is_some() {
                    return Err(fail("second TYPE".into()));
                }
            } else if out.help.insert(name.to_owned(), rest.to_owned()).is_some() {
                return Err(fail("second HELP".into()));
            }
            continue;
        }
        let sample = parse_sample(line).map_err(fail)?;
        let family = family_of(&sample.name, &out.types).to_owned();
        if current.as_deref() != Some(family.as_str()) {
            if finished.contains(&family) {
                return Err(fail(format!("family {family} interleaved with another")));
            }
            if let Some(previous) = current.replace(family.clone()) {
                finished.insert(previous);
            }
        }
        // Stricter than the format: every family is declared (what we and upstream write), which
        // also catches OpenMetrics-style counters (`# TYPE x counter` with samples `x_total`).
        let kind = out
            .types
            .get(&family)
            .map(String::as_str)
            .ok_or_else(|| fail(format!("sample of undeclared family {family}")))?;
        if kind == "histogram" {
            if sample.name.ends_with("_bucket") && !sample.labels.contains_key("le") {
                return Err(fail("bucket without le".into()));
            }
        } else if kind != "summary" && sample.name != family {
            return Err(fail(format!(
                "sample name differs from its family {family}"
            )));
        }
        with_samples.insert(family);
        out.samples.push(sample);
    }
    check_histograms(&out)?;
    Ok(out)
}

/// A series' labels without `le`.
type SeriesKey = Vec<(String, String)>;

/// Every histogram series: increasing `le`, cumulative counts, a `+Inf` bucket equal to `_count`.
fn check_histograms(out: &Exposition) -> Result<(), String> {
    for (family, kind) in &out.types {
        if kind != "histogram" {
            continue;
        }
        let mut buckets: BTreeMap<SeriesKey, Vec<(f64, f64)>> = BTreeMap::new();
        let mut counts: BTreeMap<SeriesKey, f64> = BTreeMap::new();
        for sample in &out.samples {
            let key = |s: &Sample| {
                s.labels
                    .iter()
                    .filter(|(k, _)| *k != "le")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect::<Vec<_>>()
            };
            if sample.name == format!("{family}_bucket") {
                let le = parse_value(&sample.labels["le"])?;
                buckets
                    .entry(key(sample))
                    .or_default()
                    .push((le, sample.value));
            } else if sample.name == format!("{family}_count") {
                counts.insert(key(sample), sample.value);
            }
        }
        for (series, list) in &buckets {
            let last = list.last().ok_or("empty histogram")?;
            if last.0 != f64::INFINITY {
                return Err(format!("{family} {series:?}: no +Inf bucket last"));
            }
            for pair in list.windows(2) {
                if pair[0].0 >= pair[1].0 || pair[0].1 > pair[1].1 {
                    return Err(format!("{family} {series:?}: buckets out of order"));
                }
            }
            if counts.get(series) != Some(&last.1) {
                return Err(format!(
                    "{family} {series:?}: _count is not the +Inf bucket"
                ));
            }
        }
    }
    Ok(())
}
