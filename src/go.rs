//! Go-style spellings shared by the command line ([`crate::flags`]) and the
//! SecretProviderClass parameters ([`crate::request`]): booleans as Go's `strconv.ParseBool`
//! reads them and durations as Go's `time.ParseDuration` writes them (`5s`, `250ms`, `1m30s`).
//! Both are pure, so neither module depends on the other for them.

use std::time::Duration;

/// Parses a boolean the way Go's `strconv.ParseBool` does.
pub fn parse_go_bool(value: &str) -> Result<bool, String> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        other => Err(format!(
            "strconv.ParseBool: parsing {other:?}: invalid syntax"
        )),
    }
}

/// Parses a Go duration such as `5s`, `250ms`, `1m30s`, `2h`.
pub fn parse_go_duration(value: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {value:?} (examples: 5s, 250ms, 1m30s)");
    let mut rest = value.trim();
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let number: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total += Duration::try_from_secs_f64(number * seconds).map_err(|_| bad())?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_booleans() {
        for value in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_go_bool(value), Ok(true), "{value}");
        }
        for value in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_go_bool(value), Ok(false), "{value}");
        }
        assert_eq!(
            parse_go_bool("yes"),
            Err("strconv.ParseBool: parsing \"yes\": invalid syntax".to_owned())
        );
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(
            parse_go_duration("250ms").unwrap(),
            Duration::from_millis(250)
        );
        assert!(parse_go_duration("5").is_err());
        assert!(parse_go_duration("abc").is_err());
    }
}
