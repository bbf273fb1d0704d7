//! The release artefact as an operator runs it: the binary as a process, with its socket, health
//! and metrics endpoints, a real mount through the fake, and SIGTERM. Every Azure call goes to the
//! in-repo fake (`--test-redirect-url`); `scripts/test.sh` also runs this inside `unshare -n`.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use support::driver::Driver;
use support::fake::FakeAzure;

const BIN: &str = env!("CARGO_BIN_EXE_akv-csi-provider");

/// The started binary, its stderr lines, and the addresses it reported.
struct Provider {
    child: Child,
    metrics: String,
    health: String,
    logs: std::sync::mpsc::Receiver<String>,
}

fn start(socket: &Path, extra: &[String]) -> Provider {
    let mut child = Command::new(BIN)
        .arg(format!("--endpoint=unix://{}", socket.display()))
        .args(["--healthz-port=0", "--prometheus-port=0", "-v=5"])
        .args(extra)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start the binary");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, logs) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let Ok(line) = logs.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        if line.contains("akv-csi-provider started") {
            let field = |name: &str| {
                line.split_whitespace()
                    .find_map(|w| w.strip_prefix(&format!("{name}=")))
                    .map(|v| v.replace("0.0.0.0", "127.0.0.1"))
                    .expect("address in the startup line")
            };
            return Provider {
                metrics: field("metrics"),
                health: field("health"),
                child,
                logs,
            };
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the provider did not start");
}

/// A plain HTTP/1.1 GET on loopback; returns (status, body).
fn get(address: &str, path: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn terminate(provider: &mut Provider) -> std::process::ExitStatus {
    let pid = provider.child.id() as i32;
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = provider.child.try_wait().expect("wait") {
            return status;
        }
        assert!(Instant::now() < deadline, "did not stop after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn version_flag_prints_json() {
    let out = Command::new(BIN).arg("--version").output().expect("run");
    assert!(out.status.success());
    let version: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(version["version"], env!("CARGO_PKG_VERSION"));
}

#[test]
fn bad_flags_are_startup_errors() {
    let dir = tempfile::tempdir().unwrap();
    let busy = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let socket = dir.path().join("azure.sock");
    for args in [
        vec![
            format!("--endpoint=unix://{}", socket.display()),
            format!("--healthz-port={port}"),
            "--prometheus-port=0".into(),
        ],
        vec![
            format!("--endpoint=unix://{}", socket.display()),
            "--healthz-port=0".into(),
            "--metrics-backend=statsd".into(),
        ],
        vec!["--endpoint=udp:///x.sock".into()],
        vec![
            format!("--endpoint=unix://{}", socket.display()),
            "--cloud-name=AzureCloud1".into(),
        ],
    ] {
        let out = Command::new(BIN).args(&args).output().expect("run");
        assert!(!out.status.success(), "{args:?} must fail");
        assert!(
            !String::from_utf8_lossy(&out.stderr).is_empty(),
            "{args:?} says why"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_health_metrics_and_mounts_then_stops_on_sigterm() {
    let fake = FakeAzure::start().await;
    fake.add_client_secret("tid", "sp", "sp-secret-9f1");
    fake.grant("procvault", "sp");
    fake.add_secret("procvault", "s", "v3", "value", None, None, 100, true);
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("azure.sock");
    let mut provider = start(&socket, &[format!("--test-redirect-url={}", fake.url())]);

    let mode = std::fs::metadata(&socket)
        .expect("socket exists")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode & 0o077, 0, "socket is owner-only: {mode:o}");
    let health = provider.health.clone();
    let (status, body) = tokio::task::spawn_blocking(move || get(&health, "/healthz"))
        .await
        .unwrap();
    assert_eq!((status, body.trim()), (200, "ok"));

    let mut driver = Driver::connect(&socket).await;
    let attributes = json!({
        "keyvaultName": "procvault", "tenantId": "tid",
        "objects": "array:\n  - |\n    objectName: s\n    objectType: secret\n",
        "csi.storage.k8s.io/pod.name": "p", "csi.storage.k8s.io/pod.namespace": "n",
    });
    let secrets = json!({"clientid": "sp", "clientsecret": "sp-secret-9f1"});
    let response = driver
        .mount(&attributes, Some(&secrets), "420")
        .await
        .expect("mount through the binary");
    assert_eq!(response.files[0].contents, b"value");
    assert_eq!(response.object_version[0].version, "v3");

    let metrics = provider.metrics.clone();
    let (status, body) = tokio::task::spawn_blocking(move || get(&metrics, "/metrics"))
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(
        body.contains("grpc_request_count{grpc_method=\"Mount\",result=\"ok\"} 1"),
        "{body}"
    );
    let metrics = provider.metrics.clone();
    let (status, _) = tokio::task::spawn_blocking(move || get(&metrics, "/debug/pprof/"))
        .await
        .unwrap();
    assert_eq!(status, 404);

    drop(driver);
    let status = terminate(&mut provider);
    assert!(status.success(), "clean exit after SIGTERM: {status:?}");
    assert!(!socket.exists(), "the socket file is removed on shutdown");
    let logs: Vec<String> = provider.logs.try_iter().collect();
    let logs = logs.join("\n");
    assert!(!logs.contains("sp-secret-9f1"), "no client secret in logs");
}
