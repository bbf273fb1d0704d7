//! The release artefact as an operator runs it: the binary as a process, with its socket, health
//! and metrics endpoints, a real mount through the fake, and SIGTERM. Every Azure call goes to the
//! in-repo fake (`--test-redirect-url`); `scripts/test.sh` also runs this inside `unshare -n`.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use serde_json::json;
use support::driver::Driver;
use support::fake::FakeAzure;
use support::process::{BIN, ProviderProcess, http_get as get, under_attack};

/// The service principal of these tests (client ids are GUIDs).
const SP: &str = "5b000000-0000-4000-8000-000000000002";

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
    fake.add_client_secret("tid", SP, "sp-secret-9f1");
    fake.grant("procvault", SP);
    fake.add_secret("procvault", "s", "v3", "value", None, None, 100, true);
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("azure.sock");
    let mut provider = ProviderProcess::start_with_fake(&socket, &fake.url(), &[]);

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
    let secrets = json!({"clientid": SP, "clientsecret": "sp-secret-9f1"});
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
        body.lines().any(|l| l.starts_with("grpc_request_count{grpc_code=\"OK\",grpc_message=\"\",grpc_method=\"/v1alpha1.CSIDriverProvider/Mount\",")
            && l.ends_with("} 1")),
        "{body}"
    );
    let metrics = provider.metrics.clone();
    let (status, _) = tokio::task::spawn_blocking(move || get(&metrics, "/debug/pprof/"))
        .await
        .unwrap();
    assert_eq!(status, 404);

    drop(driver);
    let status = provider.terminate();
    assert!(status.success(), "clean exit after SIGTERM: {status:?}");
    assert!(!socket.exists(), "the socket file is removed on shutdown");
    let logs = provider.drain_logs().join("\n");
    assert!(!logs.contains("sp-secret-9f1"), "no client secret in logs");
}

/// The isolation tests' harness on a harmless "attack" (one good mount): the probes answer, the
/// figures are sane. Every isolation test builds on this.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_harness_measures_an_ordinary_mount() {
    let fake = FakeAzure::start().await;
    fake.add_client_secret("tid", SP, "sp-secret-9f1");
    fake.grant("procvault", SP);
    fake.add_secret("procvault", "s", "v3", "value", None, None, 100, true);
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("azure.sock");
    let provider = ProviderProcess::start_with_fake(&socket, &fake.url(), &[]);
    let attributes = json!({
        "keyvaultName": "procvault", "tenantId": "tid",
        "objects": "array:\n  - |\n    objectName: s\n    objectType: secret\n",
        "csi.storage.k8s.io/pod.name": "p", "csi.storage.k8s.io/pod.namespace": "n",
    });
    let secrets = json!({"clientid": SP, "clientsecret": "sp-secret-9f1"});
    let (report, mounted) = under_attack("ordinary mount (harness check)", &provider, async {
        let mut driver = Driver::connect(&socket).await;
        driver.mount(&attributes, Some(&secrets), "420").await
    })
    .await;
    assert_eq!(mounted.expect("mount").files[0].contents, b"value");
    report.assert_isolated(std::time::Duration::from_secs(2));
    assert!(provider.rss_kib() > 0 && provider.open_fds() > 0);
}

/// Manifests written for the Go provider pass klog flags, often in Go's one-dash spelling: the
/// binary starts and says once that they have no effect.
#[test]
fn klog_flags_of_the_go_provider_start_with_one_warning() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("azure.sock");
    let mut provider = ProviderProcess::start(
        &socket,
        &[
            "-logtostderr=true".into(),
            "--alsologtostderr".into(),
            "-vmodule=provider=4".into(),
            "--log_file_max_size=1800".into(),
            "-stderrthreshold=INFO".into(),
        ],
    );
    std::thread::sleep(std::time::Duration::from_millis(200));
    let status = provider.terminate();
    assert!(status.success(), "{status:?}");
    let logs = provider.drain_logs().join("\n");
    let warnings = logs.matches("klog flags of the Go provider").count();
    assert_eq!(warnings, 1, "{logs}");
    assert!(logs.contains("--vmodule"), "{logs}");
}

/// A rolling update on one node: the new provider starts while the old one still serves the
/// socket. The new one waits (the old one keeps serving, its socket untouched), takes over when
/// the old one exits, and the socket is there for the driver throughout, but for the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_hand_over_between_two_providers() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("azure.sock");
    let mut old = ProviderProcess::start(&socket, &[]);
    let new = std::thread::spawn({
        let socket = socket.clone();
        move || ProviderProcess::start(&socket, &["--socket-handover-timeout=30s".into()])
    });
    // The old provider keeps serving while the new one waits.
    for _ in 0..5 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let mut driver = Driver::connect(&socket).await;
        driver
            .version()
            .await
            .expect("the old provider still serves");
    }
    assert!(!new.is_finished(), "the new provider waits for the socket");
    assert!(old.terminate().success());
    let mut new = tokio::task::spawn_blocking(move || new.join().expect("new provider"))
        .await
        .unwrap();
    let mut driver = Driver::connect(&socket).await;
    driver.version().await.expect("the new provider serves");
    let logs = new.drain_logs().join("\n");
    assert!(logs.contains("waiting for it to exit"), "{logs}");
    assert!(new.terminate().success());
    assert!(!socket.exists(), "the last provider removes its own socket");
}
