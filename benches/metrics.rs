//! `/metrics` encoding at the label caps: `keyvault_request` with `MAX_OBJECT_NAMES` objects in
//! two error classes each, `grpc_request` for both methods in every code, and the certificate-
//! expiry gauges with `MAX_EXPIRY_SERIES` objects: how long one scrape's encoding takes in each
//! format and how large it is. It runs on the bounded blocking pool, so this is the time one
//! scrape holds one of its slots.
//!
//! Run: `cargo bench --bench metrics` (release profile). Prints figures; asserts nothing.

use std::time::Instant;

use akv_csi_provider::keyvault::KvErrorKind;
use akv_csi_provider::telemetry::{
    CertificateObject, MAX_EXPIRY_SERIES, MAX_OBJECT_NAMES, Metrics, Outcome,
};

const CODES: [tonic::Code; 17] = [
    tonic::Code::Ok,
    tonic::Code::Cancelled,
    tonic::Code::Unknown,
    tonic::Code::InvalidArgument,
    tonic::Code::DeadlineExceeded,
    tonic::Code::NotFound,
    tonic::Code::AlreadyExists,
    tonic::Code::PermissionDenied,
    tonic::Code::ResourceExhausted,
    tonic::Code::FailedPrecondition,
    tonic::Code::Aborted,
    tonic::Code::OutOfRange,
    tonic::Code::Unimplemented,
    tonic::Code::Internal,
    tonic::Code::Unavailable,
    tonic::Code::DataLoss,
    tonic::Code::Unauthenticated,
];

fn time<T>(runs: u32, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut last = f();
    let started = Instant::now();
    for _ in 0..runs {
        last = f();
    }
    (
        started.elapsed().as_secs_f64() * 1000.0 / f64::from(runs),
        last,
    )
}

fn main() {
    let m = Metrics::default();
    for method in [
        "/v1alpha1.CSIDriverProvider/Mount",
        "/v1alpha1.CSIDriverProvider/Version",
    ] {
        for code in CODES {
            m.grpc_request(method, code, 0.3);
        }
    }
    for n in 0..MAX_OBJECT_NAMES {
        let name = format!("object-{n:04}");
        m.keyvault_request("secret", &name, Outcome::KeyVault(None), 0.2);
        m.keyvault_request(
            "secret",
            &name,
            Outcome::KeyVault(Some(KvErrorKind::NotFound)),
            0.2,
        );
    }
    let (insert_ms, ()) = time(1, || {
        for n in 0..MAX_EXPIRY_SERIES {
            let object = CertificateObject {
                namespace: format!("team-{}", n % 50),
                secret_provider_class: format!("spc-{}", n % 7),
                vault: "contoso-kv".into(),
                object_type: "cert".into(),
                object_name: format!("tls-{n:05}"),
            };
            m.certificate_expiry(
                &object,
                "0123456789abcdef0123456789abcdef",
                1_900_000_000 + n as i64,
                1_890_000_000,
            );
        }
    });
    let (text_ms, text) = time(10, || m.encode());
    let (om_ms, om) = time(10, || m.encode_openmetrics());
    println!(
        "metrics at the caps: {} keyvault_request objects x 2 classes, {} expiry objects",
        MAX_OBJECT_NAMES, MAX_EXPIRY_SERIES
    );
    println!(
        "  Prometheus text 0.0.4: {:.1} ms per encoding, {:.1} MiB, {} lines",
        text_ms,
        text.len() as f64 / 1048576.0,
        text.lines().count()
    );
    println!(
        "  OpenMetrics 1.0.0:     {:.1} ms per encoding, {:.1} MiB",
        om_ms,
        om.len() as f64 / 1048576.0
    );
    println!(
        "  {MAX_EXPIRY_SERIES} expiry updates (at the cap, each may evict): {insert_ms:.0} ms in all"
    );
}
