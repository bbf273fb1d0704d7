//! The driver-facing server over a real Unix socket with real clients: a tonic client like driver
//! v1.6 (`:authority` localhost) and a hand-built HTTP/2 client like driver v1.5 (socket path as
//! `:authority`). The `MountHandler` here is a small echo handler, not a mock of the server.

mod support;

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use akv_csi_provider::pb;
use akv_csi_provider::server::{Endpoint, MountHandler, Server, ServerError, parse_endpoint};
use prost::Message;
use serde_json::json;
use support::driver::{self, Driver, PREFACE, raw_frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::{Mutex, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tonic_health::pb::health_check_response::ServingStatus;

/// Echoes the request back: `object_version` = `echo`/attributes, one file `echo` with the secrets
/// as contents and the permission as mode. Attributes `"fail"` → `InvalidArgument`.
#[derive(Default)]
struct EchoHandler {
    delay: Duration,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    completed: AtomicUsize,
    deadlines: Mutex<Vec<Option<Duration>>>,
}

impl EchoHandler {
    fn slow(delay: Duration) -> Arc<Self> {
        Arc::new(EchoHandler {
            delay,
            ..Default::default()
        })
    }
}

#[async_trait::async_trait]
impl MountHandler for EchoHandler {
    async fn mount(
        &self,
        request: pb::MountRequest,
        deadline: Option<Instant>,
    ) -> Result<pb::MountResponse, tonic::Status> {
        self.deadlines
            .lock()
            .await
            .push(deadline.map(|d| d.saturating_duration_since(Instant::now())));
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.completed.fetch_add(1, Ordering::SeqCst);
        if request.attributes == "fail" {
            return Err(tonic::Status::invalid_argument(
                "attributes: echo handler was told to fail",
            ));
        }
        Ok(echo(&request))
    }
}

fn echo(request: &pb::MountRequest) -> pb::MountResponse {
    pb::MountResponse {
        object_version: vec![pb::ObjectVersion {
            id: "echo".into(),
            version: request.attributes.clone(),
        }],
        error: None,
        files: vec![pb::File {
            path: "echo".into(),
            mode: request.permission.parse().unwrap_or(0),
            contents: request.secrets.clone().into_bytes(),
        }],
    }
}

/// A server serving a socket in a temporary directory.
struct Running {
    _dir: tempfile::TempDir,
    path: PathBuf,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), ServerError>>,
}

impl Running {
    async fn start(handler: Arc<EchoHandler>, grace: Duration) -> Running {
        let (dir, path) = driver::temp_socket();
        let server = Server::bind(&Endpoint::Unix(path.clone()))
            .await
            .expect("bind");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(handler, async { rx.await.unwrap_or(()) }, grace));
        Running {
            _dir: dir,
            path,
            shutdown: Some(tx),
            task,
        }
    }

    async fn stop(mut self) -> Result<(), ServerError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("server stops")
            .expect("no panic")
    }
}

const GRACE: Duration = Duration::from_secs(5);

fn request(attributes: &str) -> pb::MountRequest {
    driver::mount_request(attributes, "null", "420")
}

#[tokio::test]
async fn version_reports_api_and_runtime() {
    let server = Running::start(Arc::default(), GRACE).await;
    let version = Driver::connect(&server.path).await.version().await.unwrap();
    assert_eq!(version.version, "v1alpha1");
    assert_eq!(version.runtime_name, akv_csi_provider::RUNTIME_NAME);
    assert_eq!(version.runtime_version, akv_csi_provider::RUNTIME_VERSION);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn mount_with_localhost_authority_reaches_the_handler_with_the_deadline() {
    let handler = Arc::new(EchoHandler::default());
    let server = Running::start(handler.clone(), GRACE).await;
    let attributes = json!({"keyvaultName": "kv", "csi.storage.k8s.io/pod.name": "pod1"});
    let secrets = json!({"clientid": "id"});
    let mut driver = Driver::connect(&server.path)
        .await
        .with_timeout(Duration::from_secs(120));
    let response = driver
        .mount(&attributes, Some(&secrets), "420")
        .await
        .unwrap();
    assert_eq!(response.object_version[0].version, attributes.to_string());
    assert_eq!(response.files[0].contents, secrets.to_string().into_bytes());
    assert_eq!(response.files[0].mode, 420);

    let mut plain = Driver::connect(&server.path).await;
    let response = plain.mount(&attributes, None, "420").await.unwrap();
    assert_eq!(response.files[0].contents, b"null");

    let deadlines = handler.deadlines.lock().await.clone();
    let remaining = deadlines[0].expect("deadline from grpc-timeout");
    assert!(
        remaining > Duration::from_secs(110) && remaining <= Duration::from_secs(120),
        "{remaining:?}"
    );
    assert_eq!(deadlines[1], None, "no grpc-timeout, no deadline");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn handler_errors_reach_the_driver_as_grpc_status() {
    let server = Running::start(Arc::default(), GRACE).await;
    let status = Driver::connect(&server.path)
        .await
        .mount_raw("fail", "null", "420")
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        status.message(),
        "attributes: echo handler was told to fail"
    );
    let raw = driver::mount_with_socket_path_authority(&server.path, &request("fail"))
        .await
        .unwrap_err();
    assert!(raw.starts_with("grpc-status 3: attributes"), "{raw}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn mount_with_socket_path_authority_first_and_indexed_requests() {
    let server = Running::start(Arc::default(), GRACE).await;
    let requests: Vec<_> = (0..3)
        .map(|i| request(&format!("{{\"n\":\"{i}\"}}")))
        .collect();
    let results = driver::mounts_with_socket_path_authority(&server.path, &requests)
        .await
        .unwrap();
    assert_eq!(results.len(), 3);
    for (request, result) in requests.iter().zip(results) {
        assert_eq!(result.unwrap(), echo(request));
    }
    // Version after Mount on the same connection: a different :path, same indexed :authority.
    let calls = [
        (driver::MOUNT_PATH, requests[0].encode_to_vec()),
        (
            "/v1alpha1.CSIDriverProvider/Version",
            pb::VersionRequest {
                version: "v1alpha1".into(),
            }
            .encode_to_vec(),
        ),
    ];
    let results = driver::raw_calls(&server.path, &calls).await.unwrap();
    let version = pb::VersionResponse::decode(&results[1].as_ref().unwrap()[..]).unwrap();
    assert_eq!(version.version, "v1alpha1");
    server.stop().await.unwrap();
}

/// Proves the raw client really sends what h2 rejects: a plain tonic server without our adapter
/// resets the stream.
#[tokio::test]
async fn plain_tonic_server_rejects_the_socket_path_authority() {
    let (_dir, path) = driver::temp_socket();
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let (_reporter, health) = tonic_health::server::health_reporter();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(health)
            .serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(listener)),
    );
    let check = tonic_health::pb::HealthCheckRequest {
        service: String::new(),
    }
    .encode_to_vec();
    let results = driver::raw_calls(&path, &[("/grpc.health.v1.Health/Check", check)])
        .await
        .unwrap();
    assert!(
        results[0].as_ref().unwrap_err().starts_with("RST_STREAM"),
        "{results:?}"
    );
    server.abort();
}

#[tokio::test]
async fn fifty_concurrent_mounts_on_one_connection_all_progress() {
    let handler = EchoHandler::slow(Duration::from_millis(300));
    let server = Running::start(handler.clone(), GRACE).await;
    let driver = Driver::connect(&server.path)
        .await
        .with_timeout(Duration::from_secs(120));
    let started = Instant::now();
    let calls = (0..50).map(|i| {
        let mut driver = driver.clone();
        async move {
            driver
                .mount(&json!({ "n": i.to_string() }), None, "420")
                .await
        }
    });
    let results = futures::future::join_all(calls).await;
    let elapsed = started.elapsed();
    for (i, result) in results.into_iter().enumerate() {
        assert_eq!(
            result.unwrap().object_version[0].version,
            json!({ "n": i.to_string() }).to_string()
        );
    }
    assert_eq!(
        handler.max_in_flight.load(Ordering::SeqCst),
        50,
        "all 50 ran at once"
    );
    assert!(
        elapsed < Duration::from_secs(3),
        "50 × 300 ms took {elapsed:?}: not concurrent"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn health_reports_serving() {
    let server = Running::start(Arc::default(), GRACE).await;
    let mut driver = Driver::connect(&server.path).await;
    assert_eq!(driver.health("").await.unwrap(), ServingStatus::Serving);
    assert_eq!(
        driver.health("v1alpha1.CSIDriverProvider").await.unwrap(),
        ServingStatus::Serving
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn socket_is_owner_only() {
    let server = Running::start(Arc::default(), GRACE).await;
    let meta = std::fs::symlink_metadata(&server.path).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn stale_socket_is_replaced() {
    let (_dir, path) = driver::temp_socket();
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(
        std::fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_socket(),
        "stale socket left behind"
    );
    let server = Server::bind(&Endpoint::Unix(path.clone())).await.unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(
        Arc::new(EchoHandler::default()),
        async { rx.await.unwrap_or(()) },
        GRACE,
    ));
    assert_eq!(
        Driver::connect(&path)
            .await
            .version()
            .await
            .unwrap()
            .version,
        "v1alpha1"
    );
    tx.send(()).unwrap();
    task.await.unwrap().unwrap();
    assert!(!path.exists(), "socket removed on shutdown");
}

#[tokio::test]
async fn a_live_socket_is_never_replaced_and_is_taken_over_once_it_goes_away() {
    use akv_csi_provider::server::socket::wait_for_handover;
    let (_dir, path) = driver::temp_socket();
    let other = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let err = Server::bind(&Endpoint::Unix(path.clone()))
        .await
        .unwrap_err();
    assert!(matches!(err, ServerError::InUse { .. }), "{err}");
    assert!(path.exists(), "the live socket is left alone");
    let err = wait_for_handover(&path, Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("another process still serves"),
        "{err}"
    );

    // The other provider exits (closes its listener) while we wait: we take over.
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(400)).await;
        drop(other);
    });
    let started = std::time::Instant::now();
    wait_for_handover(&path, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    release.await.unwrap();
    let server = Server::bind(&Endpoint::Unix(path.clone())).await.unwrap();
    drop(server);
}

#[tokio::test]
async fn anything_but_a_socket_is_left_alone() {
    let (dir, path) = driver::temp_socket();
    std::fs::write(&path, "precious").unwrap();
    let err = Server::bind(&Endpoint::Unix(path.clone()))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ServerError::NotASocket {
                kind: "regular file",
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");

    let sub = dir.path().join("subdir");
    std::fs::create_dir(&sub).unwrap();
    let err = Server::bind(&Endpoint::Unix(sub.clone()))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ServerError::NotASocket {
                kind: "directory",
                ..
            }
        ),
        "{err}"
    );
    assert!(sub.is_dir());

    let missing = dir.path().join("missing/azure.sock");
    let err = Server::bind(&Endpoint::Unix(missing)).await.unwrap_err();
    assert!(matches!(err, ServerError::Bind { .. }), "{err}");
}

/// One malformed connection of kind `i % 7`: write, half-close, read until the server closes.
async fn malformed_connection(path: &Path, i: usize) {
    let mut bytes = Vec::new();
    let preface = |b: &mut Vec<u8>| {
        b.extend_from_slice(PREFACE);
        b.extend(raw_frame(0x4, 0, 0, &[]));
    };
    match i % 7 {
        0 => bytes.extend((0..64 + i).map(|j| (j * 31 + i * 7) as u8)),
        1 => {
            preface(&mut bytes);
            bytes.extend(&raw_frame(0x1, 0x4, 1, &[0x83; 100])[..20]); // truncated HEADERS
        }
        2 => {
            preface(&mut bytes);
            bytes.extend(raw_frame(0x1, 0x4, 1, &[0x83, 0x86, 0xbe])); // index into an empty table
        }
        3 => {
            preface(&mut bytes);
            bytes.extend(raw_frame(0x1, 0, 1, &[0x83]));
            for _ in 0..6 {
                bytes.extend(raw_frame(0x9, 0, 1, &[0x86; 16_384])); // huge header block
            }
        }
        4 => {
            // Invalid protobuf in a well-formed request: a gRPC error, the connection survives.
            let results = driver::raw_calls(path, &[(driver::MOUNT_PATH, vec![0xff; 7])])
                .await
                .unwrap();
            assert!(
                results[0]
                    .as_ref()
                    .unwrap_err()
                    .starts_with("grpc-status 13"),
                "{results:?}"
            );
            return;
        }
        5 => {
            preface(&mut bytes);
            bytes.extend(raw_frame(0x0, 0, 0, b"data on stream 0")); // h2's own protocol error
        }
        _ => {
            preface(&mut bytes);
            let mut header = raw_frame(0x1, 0x4, 1, &[]);
            header[..3].copy_from_slice(&[0xff, 0xff, 0xff]); // 16 MiB frame length
            bytes.extend(header);
        }
    }
    let Ok(mut io) = UnixStream::connect(path).await else {
        panic!("connect #{i}")
    };
    let _ = io.write_all(&bytes).await;
    let _ = io.shutdown().await;
    let mut sink = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), io.read_to_end(&mut sink)).await;
    assert!(
        closed.is_ok(),
        "server did not close malformed connection #{i}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_connections_leave_the_server_serving() {
    let server = Running::start(Arc::default(), GRACE).await;
    let mut healthy = Driver::connect(&server.path).await;
    assert_eq!(healthy.version().await.unwrap().version, "v1alpha1");
    for batch in (0..300).collect::<Vec<_>>().chunks(30) {
        futures::future::join_all(batch.iter().map(|&i| malformed_connection(&server.path, i)))
            .await;
    }
    // The connection opened before is unaffected, and new ones are served.
    assert_eq!(healthy.version().await.unwrap().version, "v1alpha1");
    assert!(healthy.mount_raw("{}", "null", "420").await.is_ok());
    assert_eq!(
        Driver::connect(&server.path)
            .await
            .version()
            .await
            .unwrap()
            .version,
        "v1alpha1"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_mounts_and_removes_the_socket() {
    let handler = EchoHandler::slow(Duration::from_millis(500));
    let server = Running::start(handler.clone(), GRACE).await;
    let path = server.path.clone();
    let mut driver = Driver::connect(&path).await;
    let mount = tokio::spawn(async move { driver.mount_raw("{}", "null", "420").await });
    while handler.in_flight.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = Instant::now();
    server.stop().await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "did not wait for the in-flight Mount"
    );
    assert!(mount.await.unwrap().is_ok(), "in-flight Mount completed");
    assert!(!path.exists(), "socket removed");
    assert!(
        Driver::try_connect(&path).await.is_err(),
        "no longer accepting"
    );
}

#[tokio::test]
async fn shutdown_grace_expiry_closes_remaining_mounts() {
    let handler = EchoHandler::slow(Duration::from_secs(30));
    let server = Running::start(handler.clone(), Duration::from_millis(200)).await;
    let path = server.path.clone();
    let mut driver = Driver::connect(&path).await;
    let mount = tokio::spawn(async move { driver.mount_raw("{}", "null", "420").await });
    while handler.in_flight.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = Instant::now();
    server.stop().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    let result = tokio::time::timeout(Duration::from_secs(5), mount)
        .await
        .expect("Mount ends")
        .unwrap();
    assert!(result.is_err(), "the Mount was cut off");
    assert_eq!(
        handler.completed.load(Ordering::SeqCst),
        0,
        "handler future dropped"
    );
    assert!(!path.exists(), "socket removed");
}

#[tokio::test]
async fn tcp_endpoint_serves_too() {
    let server = Server::bind(&parse_endpoint("tcp://127.0.0.1:0").unwrap())
        .await
        .unwrap();
    let Endpoint::Tcp(address) = server.endpoint().clone() else {
        panic!("tcp")
    };
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(
        Arc::new(EchoHandler::default()),
        async { rx.await.unwrap_or(()) },
        GRACE,
    ));
    let mut client = pb::csi_driver_provider_client::CsiDriverProviderClient::connect(format!(
        "http://{address}"
    ))
    .await
    .unwrap();
    let response = client.mount(request("{}")).await.unwrap().into_inner();
    assert_eq!(response, echo(&request("{}")));
    tx.send(()).unwrap();
    task.await.unwrap().unwrap();
}

#[test]
fn endpoints_parse_like_the_go_provider() {
    // The endpoint cases of the Go provider v1.8.2 (Azure/secrets-store-csi-driver-provider-azure).
    assert!(parse_endpoint("udp:///provider/azure.sock").is_err());
    assert!(parse_endpoint("unix://").is_err());
    assert_eq!(
        parse_endpoint("tcp://:7777").unwrap(),
        Endpoint::Tcp(":7777".into())
    );
    assert_eq!(
        parse_endpoint("unix:///provider/azure.sock").unwrap(),
        Endpoint::Unix("/provider/azure.sock".into())
    );
    assert_eq!(
        parse_endpoint("udp:///x").unwrap_err().to_string(),
        "invalid endpoint: udp:///x"
    );
}
