//! Issue #10, the network edge: floods of the health and metrics ports against the binary, with
//! the attack harness probing `Version` and `/healthz` (from 127.0.0.1) throughout. The attackers
//! connect from other loopback addresses (Linux routes all of 127/8 to `lo`), as another cluster
//! peer would from its own address.

mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::process::{ProviderProcess, under_attack};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// The floods run one at a time: each measures its own attack's time and the provider's
/// descriptors, which floods of other tests (on the same CPUs) would blur.
static ONE_FLOOD_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs one flood test on its own runtime, after the previous one ended.
fn serially(test: impl std::future::Future<Output = ()>) {
    let _turn = akv_csi_provider::sync::lock(&ONE_FLOOD_AT_A_TIME);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(test);
}

/// Header timeout configured for the tests.
const HEADER_TIMEOUT: Duration = Duration::from_secs(1);

fn start(dir: &tempfile::TempDir, extra: &[&str]) -> ProviderProcess {
    let mut flags = vec![
        "--http-header-timeout=1s".to_owned(),
        "--http-request-timeout=1500ms".to_owned(),
        "--healthz-timeout=500ms".to_owned(),
    ];
    flags.extend(extra.iter().map(|s| (*s).to_owned()));
    ProviderProcess::start(&dir.path().join("azure.sock"), &flags)
}

fn address(host_port: &str) -> SocketAddr {
    host_port.parse().expect("host:port")
}

fn from(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// One attacking connection: connects from `source`, sends `request`, then `trickle` one byte
/// every 100 ms (if any), and waits until the provider closes. Returns how long the provider
/// kept it open after connecting, or `None` if it could not connect.
async fn attacker(
    source: IpAddr,
    target: SocketAddr,
    request: Vec<u8>,
    trickle: Vec<u8>,
) -> Option<Duration> {
    let socket = TcpSocket::new_v4().ok()?;
    socket.bind(SocketAddr::new(source, 0)).ok()?;
    let mut stream = tokio::time::timeout(Duration::from_secs(3), socket.connect(target))
        .await
        .ok()?
        .ok()?;
    let connected = Instant::now();
    // The provider may already have closed a refused connection: a write error is a close.
    if stream.write_all(&request).await.is_err() {
        return Some(connected.elapsed());
    }
    let mut trickle = trickle.into_iter();
    let mut buf = [0u8; 4096];
    loop {
        let read = tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buf)).await;
        match read {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(connected.elapsed()),
            Ok(Ok(_)) => {} // a response (e.g. 408 or 404): keep reading until the close
            Err(_) => {
                if connected.elapsed() > Duration::from_secs(10) {
                    // Never closed: report it as such.
                    return Some(connected.elapsed());
                }
                if let Some(byte) = trickle.next()
                    && stream.write_all(&[byte]).await.is_err()
                {
                    return Some(connected.elapsed());
                }
            }
        }
    }
}

/// `count` attackers spread over `sources`, at most 256 connecting at once; returns how long
/// each connection was held open.
async fn flood(
    sources: Vec<IpAddr>,
    count: usize,
    target: SocketAddr,
    request: &[u8],
    trickle: &[u8],
) -> Vec<Duration> {
    let connecting = Arc::new(Semaphore::new(256));
    let mut attackers = JoinSet::new();
    for n in 0..count {
        let source = sources[n % sources.len()];
        let (request, trickle) = (request.to_vec(), trickle.to_vec());
        let connecting = connecting.clone();
        attackers.spawn(async move {
            let permit = connecting.acquire_owned().await.ok()?;
            let held = attacker(source, target, request, trickle);
            drop(permit);
            held.await
        });
    }
    let mut held = Vec::with_capacity(count);
    while let Some(result) = attackers.join_next().await {
        held.push(result.expect("attacker task").expect("attacker connected"));
    }
    held
}

const HALF_OPEN: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: x\r\n";

/// Descriptors, once the provider has closed what it is closing (2 s at most): the probes'
/// last connections wind down just after the attack.
fn settled_fds(provider: &ProviderProcess, target: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let fds = provider.open_fds();
        if fds <= target || Instant::now() > deadline {
            return fds;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Logs about closed connections stay a line or two however big the flood.
fn assert_few_refusal_lines(provider: &ProviderProcess) {
    let lines = provider
        .drain_logs()
        .into_iter()
        .filter(|l| l.contains("connection caps"))
        .count();
    assert!(lines <= 2, "{lines} log lines about refused connections");
}

async fn half_open_flood(server: &str, path: &str) {
    let dir = tempfile::tempdir().unwrap();
    let provider = start(&dir, &[]);
    let target = address(if server == "health" {
        &provider.health
    } else {
        &provider.metrics
    });
    let fds_before = provider.open_fds();
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n").into_bytes();
    let name = format!("3,000 half-open requests to {path}");
    let (report, held) = under_attack(&name, &provider, async {
        flood(vec![from(2)], 3000, target, &request, &[]).await
    })
    .await;
    report.assert_isolated(Duration::from_secs(2));
    let longest = held.iter().max().copied().unwrap_or_default();
    // Held until the header timeout: admitted. (Time in the kernel's accept queue counts from
    // the connect too, so "closed at once" is anything well below the timeout.)
    let held_long = held
        .iter()
        .filter(|h| **h > HEADER_TIMEOUT * 7 / 10)
        .count();
    println!(
        "  {path}: {} connections, {held_long} held to the header timeout, longest held {longest:?}, descriptors before {fds_before}, after {}",
        held.len(),
        provider.open_fds()
    );
    // Only the per-peer cap's worth waits for the header timeout; the rest are closed at once.
    assert!(held_long <= 8, "{held_long} connections held");
    assert!(
        longest < HEADER_TIMEOUT + Duration::from_millis(700),
        "{longest:?}"
    );
    let fds_after = settled_fds(&provider, fds_before + 4);
    assert!(
        fds_after <= fds_before + 4,
        "descriptors: {fds_before} before, {fds_after} after"
    );
    assert_few_refusal_lines(&provider);
}

#[test]
fn half_open_flood_of_healthz_is_closed_and_bounded() {
    serially(half_open_flood("health", "/healthz"));
}

#[test]
fn half_open_flood_of_metrics_is_closed_and_bounded() {
    serially(half_open_flood("metrics", "/metrics"));
}

#[test]
fn slow_loris_headers_and_bodies_are_cut_off() {
    serially(slow_loris());
}

async fn slow_loris() {
    let dir = tempfile::tempdir().unwrap();
    let provider = start(&dir, &[]);
    let health = address(&provider.health);
    let metrics = address(&provider.metrics);
    let trickle = b"X-Slow: ".repeat(20);
    let body = b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n";
    let body_trickle = b"a".repeat(40);
    let (report, (headers, bodies)) =
        under_attack("slow-loris headers and bodies", &provider, async {
            tokio::join!(
                // Headers, one byte per 100 ms: cut at the header timeout from the connection's
                // start, however steadily bytes arrive.
                flood(vec![from(3)], 8, health, HALF_OPEN, &trickle),
                // A complete head announcing a large body sent one byte per 100 ms: answered,
                // then closed (keep-alive is off, the body is never read).
                flood(vec![from(4)], 8, metrics, body, &body_trickle),
            )
        })
        .await;
    report.assert_isolated(Duration::from_secs(2));
    let longest_headers = headers.iter().max().copied().unwrap_or_default();
    let longest_body = bodies.iter().max().copied().unwrap_or_default();
    println!(
        "  slow headers held at most {longest_headers:?}, slow bodies at most {longest_body:?}"
    );
    assert!(
        longest_headers < HEADER_TIMEOUT + Duration::from_millis(700),
        "{longest_headers:?}"
    );
    assert!(
        longest_body < Duration::from_millis(1500 + 700),
        "{longest_body:?}"
    );
}

#[test]
fn flood_above_the_total_cap_from_many_peers_leaves_room_for_the_probe() {
    serially(flood_above_the_total_cap());
}

async fn flood_above_the_total_cap() {
    let dir = tempfile::tempdir().unwrap();
    let provider = start(
        &dir,
        &[
            "--http-max-connections=32",
            "--http-max-connections-per-ip=4",
        ],
    );
    let health = address(&provider.health);
    let fds_before = provider.open_fds();
    // 12 peers, 200 connections: each peer held to its own cap of 4, together above the total
    // cap. With fewer flooding peers than the cap, a full server always has a peer heavier than
    // the probe's one connection to displace; with more (a flood from over 32 addresses), the
    // probe's connection may be the one displaced, which this test does not claim to prevent.
    let sources: Vec<IpAddr> = (10..22).map(from).collect();
    let peak_fds = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sampler = {
        let peak_fds = peak_fds.clone();
        let pid = provider.pid();
        tokio::spawn(async move {
            loop {
                let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
                    .map(|d| d.count())
                    .unwrap_or(0);
                peak_fds.fetch_max(fds, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let (report, held) = under_attack("200 half-open from 12 peers (cap 32)", &provider, async {
        flood(sources, 200, health, HALF_OPEN, &[]).await
    })
    .await;
    sampler.abort();
    report.assert_isolated(Duration::from_secs(2));
    let peak = peak_fds.load(std::sync::atomic::Ordering::Relaxed);
    let held_long = held
        .iter()
        .filter(|h| **h > Duration::from_millis(300))
        .count();
    println!(
        "  200 connections: {held_long} held over 300 ms, descriptors before {fds_before}, peak {peak}, after {}",
        provider.open_fds()
    );
    assert!(held_long <= 32, "{held_long} connections held past the cap");
    // The cap's worth of connections, the probes' and the gRPC side's own, plus connections
    // accepted and being refused or displaced at the sampling instant: on a loaded 2-core machine
    // that transient has reached about 50 (peaks of 58 and 85 seen while other builds ran), so the
    // bound is well under the flood's 200 but not tight.
    assert!(peak <= fds_before + 32 + 64, "peak descriptors {peak}");
    let fds_after = settled_fds(&provider, fds_before + 4);
    assert!(
        fds_after <= fds_before + 4,
        "{fds_before} before, {fds_after} after"
    );
    assert_few_refusal_lines(&provider);
}

#[test]
fn bind_addresses_limit_where_the_ports_answer() {
    let dir = tempfile::tempdir().unwrap();
    let provider = start(
        &dir,
        &[
            "--metrics-bind-address=127.0.0.1",
            "--healthz-bind-address=127.0.0.1",
        ],
    );
    for bound in [&provider.metrics, &provider.health] {
        let bound = address(bound);
        assert_eq!(bound.ip(), from(1));
        assert!(std::net::TcpStream::connect(bound).is_ok());
        // Another address of the same host (here: of lo) does not reach it.
        let elsewhere = SocketAddr::new(from(2), bound.port());
        assert!(
            std::net::TcpStream::connect(elsewhere).is_err(),
            "{elsewhere}"
        );
    }
}

#[test]
fn a_tcp_endpoint_beyond_loopback_is_a_startup_error_unless_allowed() {
    let out = std::process::Command::new(support::process::BIN)
        .args([
            "--endpoint=tcp://0.0.0.0:0",
            "--healthz-port=0",
            "--prometheus-port=0",
        ])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no authentication")
            && stderr.contains("--allow-non-loopback-tcp-endpoint"),
        "{stderr}"
    );
}
