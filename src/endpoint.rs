//! Where the provider's gRPC API listens (`--endpoint`): `unix:///path/azure.sock` or
//! `tcp://host:port`, read as the Go provider v1.8.2 reads its `--endpoint` flag.
//!
//! Both the server (which binds it) and telemetry (whose health check dials it) use this type,
//! so neither depends on the other for it.

use std::fmt;
use std::path::PathBuf;

/// Where to listen: `unix:///path/azure.sock` or `tcp://host:port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Unix(std::path::PathBuf),
    Tcp(String),
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(path) => write!(f, "unix://{}", path.display()),
            Endpoint::Tcp(addr) => write!(f, "tcp://{addr}"),
        }
    }
}

/// `--endpoint` is neither `unix://<path>` nor `tcp://<address>`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid endpoint: {0}")]
pub struct InvalidEndpoint(pub String);

/// Parses `--endpoint` like the Go provider: a case-insensitive `unix://` or `tcp://` prefix and a
/// non-empty address. A relative Unix path is made absolute by prefixing `/`, as the Go provider
/// does (`unix://tmp/azure.sock` → `/tmp/azure.sock`).
pub fn parse_endpoint(s: &str) -> Result<Endpoint, InvalidEndpoint> {
    let invalid = || InvalidEndpoint(s.to_owned());
    let (scheme, address) = s.split_once("://").ok_or_else(invalid)?;
    if address.is_empty() {
        return Err(invalid());
    }
    if scheme.eq_ignore_ascii_case("unix") {
        let path = if address.starts_with('/') {
            address.to_owned()
        } else {
            format!("/{address}")
        };
        Ok(Endpoint::Unix(PathBuf::from(path)))
    } else if scheme.eq_ignore_ascii_case("tcp") {
        Ok(Endpoint::Tcp(address.to_owned()))
    } else {
        Err(invalid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_like_upstream() {
        assert_eq!(
            parse_endpoint("unix:///provider/azure.sock").unwrap(),
            Endpoint::Unix("/provider/azure.sock".into())
        );
        assert_eq!(
            parse_endpoint("tcp://:7777").unwrap(),
            Endpoint::Tcp(":7777".into())
        );
        assert_eq!(
            parse_endpoint("TCP://127.0.0.1:1").unwrap(),
            Endpoint::Tcp("127.0.0.1:1".into())
        );
        assert_eq!(
            parse_endpoint("UNIX:///a.sock").unwrap(),
            Endpoint::Unix("/a.sock".into())
        );
        assert_eq!(
            parse_endpoint("unix://tmp/azure.sock").unwrap(),
            Endpoint::Unix("/tmp/azure.sock".into())
        );
        for bad in [
            "udp:///provider/azure.sock",
            "unix://",
            "tcp://",
            "",
            "/provider/azure.sock",
            "unix:/a",
            "http://x:1",
        ] {
            let err = parse_endpoint(bad).unwrap_err();
            assert_eq!(err.to_string(), format!("invalid endpoint: {bad}"));
        }
    }

    #[test]
    fn endpoint_display_round_trips() {
        for s in ["unix:///provider/azure.sock", "tcp://127.0.0.1:7777"] {
            assert_eq!(parse_endpoint(s).unwrap().to_string(), s);
        }
    }
}
