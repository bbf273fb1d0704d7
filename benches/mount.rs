//! Mount benchmark: the provider in-process behind a real Unix socket, the driver side as a gRPC
//! client, against the in-repo fake with injected latency (20 ms per Key Vault request, 30 ms per
//! token request). The same workload runs under an upstream-like strategy (sequential fetch, a new
//! credential and new Key Vault clients on every mount) in the same run, on the same fake.
//! Then the goals of the cold path are printed side by side: cold mount against the physical
//! limit (one token plus one Key Vault round trip), challenge requests of a new identity on a
//! known vault, warm 50 against warm 1, and CPU time per warm mount. Finally the release binary
//! is started as a process to measure its CPU time per warm mount (user + system, from
//! `/proc/<pid>/stat`) and its resident memory idle and under 200 concurrent mounts.
//!
//! Run: `cargo bench --bench mount` (release profile). Prints figures; asserts nothing.

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use akv_csi_provider::pb;
use akv_csi_provider::provider::{Provider, ProviderOptions};
use akv_csi_provider::server::MountHandler;
use akv_csi_provider::transport::Transport;
use serde_json::{Value, json};
use support::fake::{Counts, FakeAzure, service_account_token, service_account_tokens_attribute};
use support::provider::RunningProvider;

const TENANT: &str = "bench-tenant";
const VAULT: &str = "benchvault";
const CLIENT_ID: &str = "5b000000-0000-4000-8000-00000000be01";
const ISSUER: &str = "https://oidc.bench.test";
const KV_LATENCY: Duration = Duration::from_millis(20);
const TOKEN_LATENCY: Duration = Duration::from_millis(30);

/// Upstream's strategy: a fresh provider (new credential, new clients, new connections) for every
/// mount, fetching one object at a time.
struct UpstreamLike {
    transport: Transport,
}

#[async_trait::async_trait]
impl MountHandler for UpstreamLike {
    async fn mount(
        &self,
        request: pb::MountRequest,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<pb::MountResponse, tonic::Status> {
        let mut options = ProviderOptions {
            max_concurrent_fetches: 1,
            ..ProviderOptions::default()
        };
        // Every fresh SDK client learns its scope from the vault's 401 challenge.
        options.keyvault.challenge_first = true;
        Provider::new(self.transport.clone(), options)
            .mount(request, deadline)
            .await
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn attributes(objects: usize) -> Value {
    attributes_for(CLIENT_ID, objects)
}

/// Identities that first appear in the "new identity on a known vault" rows.
fn new_client_id(i: usize) -> String {
    format!("5b000000-0000-4000-8000-0000000{i:05}")
}

fn attributes_for(client_id: &str, objects: usize) -> Value {
    let mut yaml = String::from("array:\n");
    for i in 0..objects {
        yaml.push_str(&format!(
            "  - |\n    objectName: s{i}\n    objectType: secret\n"
        ));
    }
    let token = service_account_token(
        ISSUER,
        "bench",
        "app",
        "api://AzureADTokenExchange",
        now() + 3600,
    );
    json!({
        "keyvaultName": VAULT,
        "tenantId": TENANT,
        "clientID": client_id,
        "objects": yaml,
        "csi.storage.k8s.io/pod.name": "bench-pod",
        "csi.storage.k8s.io/pod.namespace": "bench",
        "csi.storage.k8s.io/serviceAccount.name": "app",
        "csi.storage.k8s.io/serviceAccount.tokens": service_account_tokens_attribute(&[("api://AzureADTokenExchange", &token)]),
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[derive(Clone, Copy, Default)]
struct Row {
    p50: Duration,
    p99: Duration,
    keyvault_per_mount: f64,
    tokens_per_mount: f64,
}

async fn timed_mounts(
    fake: &FakeAzure,
    provider: &RunningProvider,
    attributes: &Value,
    samples: usize,
) -> Row {
    let mut driver = provider.driver().await;
    fake.reset_counts();
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        let started = Instant::now();
        driver
            .mount(attributes, None, "420")
            .await
            .expect("benchmark mount succeeds");
        times.push(started.elapsed());
    }
    times.sort();
    let counts: Counts = fake.counts();
    Row {
        p50: percentile(&times, 0.5),
        p99: percentile(&times, 0.99),
        keyvault_per_mount: counts.keyvault as f64 / samples as f64,
        tokens_per_mount: counts.entra_tokens as f64 / samples as f64,
    }
}

/// Cold: a new provider process-state (empty caches) for every sample.
async fn cold(
    fake: &FakeAzure,
    handler: &dyn Fn() -> Arc<dyn MountHandler>,
    attributes: &Value,
    samples: usize,
) -> Row {
    let mut times = Vec::with_capacity(samples);
    fake.reset_counts();
    for _ in 0..samples {
        let provider = RunningProvider::start_handler(handler()).await;
        let mut driver = provider.driver().await;
        let started = Instant::now();
        driver
            .mount(attributes, None, "420")
            .await
            .expect("benchmark mount succeeds");
        times.push(started.elapsed());
    }
    times.sort();
    let counts = fake.counts();
    Row {
        p50: percentile(&times, 0.5),
        p99: percentile(&times, 0.99),
        keyvault_per_mount: counts.keyvault as f64 / samples as f64,
        tokens_per_mount: counts.entra_tokens as f64 / samples as f64,
    }
}

async fn throughput(
    fake: &FakeAzure,
    provider: &RunningProvider,
    attributes: &Value,
    concurrency: usize,
    total: usize,
) -> (f64, f64) {
    fake.reset_counts();
    let started = Instant::now();
    let per_task = total / concurrency;
    let tasks = (0..concurrency).map(|_| async {
        let mut driver = provider.driver().await;
        for _ in 0..per_task {
            driver
                .mount(attributes, None, "420")
                .await
                .expect("benchmark mount succeeds");
        }
    });
    futures::future::join_all(tasks).await;
    let mounts = (per_task * concurrency) as f64;
    (
        mounts / started.elapsed().as_secs_f64(),
        fake.counts().keyvault as f64 / mounts,
    )
}

fn print_row(label: &str, ours: Row, upstream: Row) {
    println!(
        "{label:<26} | {:>8.1} {:>8.1} | {:>8.1} {:>8.1} | {:>6.2}x | KV/mount {:>5.1} vs {:>5.1} | tokens/mount {:>4.2} vs {:>4.2}",
        ms(ours.p50),
        ms(ours.p99),
        ms(upstream.p50),
        ms(upstream.p99),
        upstream.p50.as_secs_f64() / ours.p50.as_secs_f64().max(1e-9),
        ours.keyvault_per_mount,
        upstream.keyvault_per_mount,
        ours.tokens_per_mount,
        upstream.tokens_per_mount,
    );
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn memory(fake: &FakeAzure) {
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("azure.sock");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_akv-csi-provider"))
        .arg(format!("--endpoint=unix://{}", socket.display()))
        .arg(format!("--test-redirect-url={}", fake.url()))
        .args(["--healthz-port=0", "--prometheus-port=0"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the release binary");
    for _ in 0..200 {
        if socket.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = rss_kib(child.id(), "VmRSS:");
    let attributes = attributes(10);
    {
        let mut driver = support::driver::Driver::connect(&socket).await;
        driver
            .mount(&attributes, None, "420")
            .await
            .expect("warm-up mount");
        const WARM: usize = 2_000;
        let before = cpu_seconds(child.id());
        let started = Instant::now();
        for _ in 0..WARM {
            driver
                .mount(&attributes, None, "420")
                .await
                .expect("warm mount");
        }
        let elapsed = started.elapsed();
        let cpu = cpu_seconds(child.id()) - before;
        println!(
            "release binary CPU time per warm mount of 10 secrets (user + system, {WARM} sequential mounts): {:.0} us ({:.0} us wall each)",
            cpu / WARM as f64 * 1e6,
            elapsed.as_secs_f64() / WARM as f64 * 1e6,
        );
    }
    let mounts = (0..200).map(|_| {
        let socket = socket.clone();
        let attributes = attributes.clone();
        async move {
            let mut driver = support::driver::Driver::connect(&socket).await;
            driver.mount(&attributes, None, "420").await.is_ok()
        }
    });
    let ok = futures::future::join_all(mounts)
        .await
        .into_iter()
        .filter(|ok| *ok)
        .count();
    let peak = rss_kib(child.id(), "VmHWM:");
    let _ = child.kill();
    let _ = child.wait();
    println!(
        "release binary RSS: idle {:.1} MiB, peak {:.1} MiB after 200 concurrent mounts of 10 secrets ({ok}/200 ok)",
        idle as f64 / 1024.0,
        peak as f64 / 1024.0
    );
}

/// Mounts of 10 secrets, each by an identity the provider has not seen, on a vault it knows:
/// p50 and the challenge and token requests per mount.
async fn new_identities(
    fake: &FakeAzure,
    provider: &RunningProvider,
    first: usize,
    count: usize,
) -> (Duration, f64, f64) {
    let mut driver = provider.driver().await;
    fake.reset_counts();
    let mut times = Vec::with_capacity(count);
    for i in first..first + count {
        let attributes = attributes_for(&new_client_id(i), 10);
        let started = Instant::now();
        driver
            .mount(&attributes, None, "420")
            .await
            .expect("benchmark mount succeeds");
        times.push(started.elapsed());
    }
    times.sort();
    let counts = fake.counts();
    (
        percentile(&times, 0.5),
        counts.challenges as f64 / count as f64,
        counts.entra_tokens as f64 / count as f64,
    )
}

/// User + system CPU seconds of process `pid` so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|v| v.parse::<u64>().ok()))
        .sum();
    ticks as f64 / clock_ticks_per_second() as f64
}

// sysconf(3) has no safe wrapper in std; the bench's one FFI call.
#[allow(unsafe_code)]
fn clock_ticks_per_second() -> i64 {
    // SAFETY: sysconf takes a constant and has no preconditions.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1)
}

#[tokio::main]
async fn main() {
    let fake = FakeAzure::start().await;
    fake.add_federated_credential(
        TENANT,
        CLIENT_ID,
        ISSUER,
        "system:serviceaccount:bench:app",
        "api://AzureADTokenExchange",
    );
    fake.grant(VAULT, CLIENT_ID);
    for i in 0..20 {
        let client_id = new_client_id(i);
        fake.add_federated_credential(
            TENANT,
            &client_id,
            ISSUER,
            "system:serviceaccount:bench:app",
            "api://AzureADTokenExchange",
        );
        fake.grant(VAULT, &client_id);
    }
    for i in 0..50 {
        fake.add_secret(
            VAULT,
            &format!("s{i}"),
            "0123456789abcdef0123456789abcdef",
            &format!("value-{i}"),
            None,
            None,
            1_700_000_000,
            true,
        );
    }
    fake.set_latency(KV_LATENCY, TOKEN_LATENCY);
    let transport = fake.transport();

    let ours_handler = {
        let transport = transport.clone();
        move || -> Arc<dyn MountHandler> {
            Arc::new(Provider::new(transport.clone(), ProviderOptions::default()))
        }
    };
    let upstream_handler = {
        let transport = transport.clone();
        move || -> Arc<dyn MountHandler> {
            Arc::new(UpstreamLike {
                transport: transport.clone(),
            })
        }
    };
    let ours = RunningProvider::start_handler(ours_handler()).await;
    let upstream = RunningProvider::start_handler(upstream_handler()).await;

    println!(
        "akv-csi-provider mount benchmark: Key Vault latency {} ms, token latency {} ms",
        KV_LATENCY.as_millis(),
        TOKEN_LATENCY.as_millis()
    );
    println!(
        "{:<26} | ours p50/p99 ms   | upstream-like p50/p99 | ratio  | requests",
        "workload"
    );
    let mut cold_rows = Vec::new();
    let mut warm_rows = Vec::new();
    for objects in [1usize, 10, 50] {
        let attributes = attributes(objects);
        let cold_ours = cold(&fake, &ours_handler, &attributes, 5).await;
        let cold_upstream = cold(&fake, &upstream_handler, &attributes, 5).await;
        print_row(
            &format!("cold, {objects} objects"),
            cold_ours,
            cold_upstream,
        );
        let _ = timed_mounts(&fake, &ours, &attributes, 1).await;
        let warm_ours = timed_mounts(&fake, &ours, &attributes, 30).await;
        let warm_upstream = timed_mounts(&fake, &upstream, &attributes, 10).await;
        print_row(
            &format!("warm, {objects} objects"),
            warm_ours,
            warm_upstream,
        );
        cold_rows.push((cold_ours, cold_upstream));
        warm_rows.push((warm_ours, warm_upstream));
    }
    let limit = TOKEN_LATENCY + KV_LATENCY;
    let (cold10, cold10_up) = cold_rows[1];
    println!(
        "goal: cold mount of 10 secrets / (token + Key Vault latency = {:.0} ms): ours {:.2}x, upstream-like {:.2}x (goal <= 1.5x)",
        ms(limit),
        cold10.p50.as_secs_f64() / limit.as_secs_f64(),
        cold10_up.p50.as_secs_f64() / limit.as_secs_f64(),
    );
    let ((warm1, warm1_up), (warm50, warm50_up)) = (warm_rows[0], warm_rows[2]);
    println!(
        "goal: warm 50 secrets / warm 1 secret: ours {:.2}x, upstream-like {:.2}x (goal <= 1.1x)",
        warm50.p50.as_secs_f64() / warm1.p50.as_secs_f64().max(1e-9),
        warm50_up.p50.as_secs_f64() / warm1_up.p50.as_secs_f64().max(1e-9),
    );
    let (new_ours, challenges_ours, tokens_ours) = new_identities(&fake, &ours, 0, 10).await;
    let (new_up, challenges_up, tokens_up) = new_identities(&fake, &upstream, 10, 10).await;
    println!(
        "goal: a new identity's first mount of 10 secrets on a known vault: ours p50 {:.1} ms, {challenges_ours:.2} challenges, {tokens_ours:.2} tokens per mount; upstream-like p50 {:.1} ms, {challenges_up:.2} challenges, {tokens_up:.2} tokens per mount (goal 0 challenges)",
        ms(new_ours),
        ms(new_up),
    );
    let attributes10 = attributes(10);
    let (ours_rate, ours_kv) = throughput(&fake, &ours, &attributes10, 64, 640).await;
    let (up_rate, up_kv) = throughput(&fake, &upstream, &attributes10, 64, 128).await;
    println!(
        "64 concurrent mounts of 10 secrets: ours {ours_rate:.0} mounts/s ({ours_kv:.2} KV requests/mount), upstream-like {up_rate:.0} mounts/s ({up_kv:.2} KV requests/mount), ratio {:.1}x",
        ours_rate / up_rate.max(1e-9)
    );
    let attributes5 = attributes(5);
    let _ = timed_mounts(&fake, &ours, &attributes5, 1).await;
    fake.reset_counts();
    let concurrent = (0..100).map(|_| async {
        let mut driver = ours.driver().await;
        driver
            .mount(&attributes5, None, "420")
            .await
            .expect("mount")
    });
    futures::future::join_all(concurrent).await;
    println!(
        "100 concurrent mounts of the same 5 secrets by one identity: {} Key Vault requests in total",
        fake.counts().keyvault
    );
    fake.set_latency(Duration::ZERO, Duration::ZERO);
    memory(&fake).await;
}
