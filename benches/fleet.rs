//! Fleet benchmark: F provider instances in one process (one per simulated node, each with its own
//! identity and Key Vault caches and back-off, as on F nodes) against one in-repo fake vault that
//! enforces a Key Vault-style service limit (N requests per window, 429 with `Retry-After` to the
//! end of the window). Time is compressed tenfold: Key Vault's 10 s window is 1 s here, kubelet's
//! 2-minute mount deadline 12 s, the driver's 2-minute rotation poll 12 s. Each scenario runs for
//! our strategy and for the upstream-like one (a new provider per mount, objects one at a time,
//! every client learning its scope from a 401 challenge) on the same fake, and prints a row each.
//!
//! Scenarios (issue 13):
//! 1. steady republish: P pods per node × M secrets, every volume re-mounted once per poll
//!    period, spread over it, demand below capacity: Key Vault requests per republish, 429s;
//! 2. rollout burst: every pod on every node mounts at once, 3× the window's capacity: share of
//!    mounts done within the deadline, the busiest window against capacity, time to drain.
//!
//! Run: `cargo bench --bench fleet`. Prints figures; asserts nothing.

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use akv_csi_provider::pb;
use akv_csi_provider::provider::{Provider, ProviderOptions};
use akv_csi_provider::server::MountHandler;
use akv_csi_provider::transport::Transport;
use serde_json::{Value, json};
use support::fake::{FakeAzure, service_account_token, service_account_tokens_attribute};

const TENANT: &str = "fleet-tenant";
const VAULT: &str = "fleetvault";
const ISSUER: &str = "https://oidc.fleet.test";
/// Nodes (provider instances).
const NODES: usize = 50;
/// Pods per node.
const PODS: usize = 4;
/// Secrets per pod volume.
const SECRETS: usize = 5;
/// Key Vault's window, compressed tenfold.
const WINDOW: Duration = Duration::from_secs(1);
/// kubelet's 2-minute mount deadline, compressed tenfold.
const DEADLINE: Duration = Duration::from_secs(12);
/// The driver's rotation poll (2 minutes), compressed tenfold.
const POLL: Duration = Duration::from_secs(12);
const KV_LATENCY: Duration = Duration::from_millis(20);
const TOKEN_LATENCY: Duration = Duration::from_millis(30);

fn node_client_id(node: usize) -> String {
    format!("5b000000-0000-4000-8000-0000001{node:05}")
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Pod `pod` of node `node`, with the node's identity (one per node) and secrets of its own
/// (pods of one node share none, so no fetch of one pod is coalesced with another's).
fn request(node: usize, pod: usize) -> pb::MountRequest {
    let mut yaml = String::from("array:\n");
    for i in 0..SECRETS {
        let n = pod * SECRETS + i;
        yaml.push_str(&format!(
            "  - |\n    objectName: s{n}\n    objectType: secret\n"
        ));
    }
    let token = service_account_token(
        ISSUER,
        "fleet",
        "app",
        "api://AzureADTokenExchange",
        now() + 3600,
    );
    let attributes: Value = json!({
        "keyvaultName": VAULT,
        "tenantId": TENANT,
        "clientID": node_client_id(node),
        "objects": yaml,
        "csi.storage.k8s.io/pod.name": format!("pod-{node}-{pod}"),
        "csi.storage.k8s.io/pod.namespace": "fleet",
        "csi.storage.k8s.io/serviceAccount.name": "app",
        "csi.storage.k8s.io/serviceAccount.tokens": service_account_tokens_attribute(&[("api://AzureADTokenExchange", &token)]),
    });
    support::driver::mount_request(&attributes.to_string(), "null", "420")
}

/// Upstream's strategy: a fresh provider per mount, one object at a time, challenge first.
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
        options.keyvault.challenge_first = true;
        Provider::new(self.transport.clone(), options)
            .mount(request, deadline)
            .await
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Strategy {
    Ours,
    UpstreamLike,
}

fn nodes(transport: &Transport, strategy: Strategy) -> Vec<Arc<dyn MountHandler>> {
    (0..NODES)
        .map(|_| -> Arc<dyn MountHandler> {
            match strategy {
                Strategy::Ours => {
                    Arc::new(Provider::new(transport.clone(), ProviderOptions::default()))
                }
                Strategy::UpstreamLike => Arc::new(UpstreamLike {
                    transport: transport.clone(),
                }),
            }
        })
        .collect()
}

/// One mount with kubelet's deadline: whether it succeeded, and when it ended.
async fn mount(handler: &Arc<dyn MountHandler>, node: usize, pod: usize) -> (bool, Instant) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let ok = handler
        .mount(request(node, pod), Some(deadline))
        .await
        .is_ok();
    (ok, Instant::now())
}

fn label(strategy: Strategy) -> &'static str {
    match strategy {
        Strategy::Ours => "ours",
        Strategy::UpstreamLike => "upstream-like",
    }
}

/// Scenario 1: after a first mount of every pod, `rounds` republish periods in which every pod
/// re-mounts once at an even offset within the period.
async fn steady(fake: &FakeAzure, strategy: Strategy, rounds: usize, period: Duration) {
    let fleet = nodes(&fake.transport(), strategy);
    let all = |fleet: &[Arc<dyn MountHandler>]| {
        let mut tasks = Vec::new();
        for (node, handler) in fleet.iter().enumerate() {
            for pod in 0..PODS {
                let handler = handler.clone();
                let offset = period.mul_f64(((node * PODS + pod) as f64) / ((NODES * PODS) as f64));
                tasks.push(async move {
                    tokio::time::sleep(offset).await;
                    mount(&handler, node, pod).await.0
                });
            }
        }
        futures::future::join_all(tasks)
    };
    // Initial mounts (cold), not counted.
    let _ = all(&fleet).await;
    // Generous capacity: steady demand below it (limit 4× the republish spread over a window).
    let per_window = (NODES * PODS * (SECRETS + 2)) as f64 / period.as_secs_f64();
    let capacity = (per_window * WINDOW.as_secs_f64() * 4.0).ceil() as u64;
    fake.set_rate_limit(Some((capacity, WINDOW)));
    fake.reset_counts();
    let mut failed = 0;
    for _ in 0..rounds {
        failed += all(&fleet).await.iter().filter(|ok| !**ok).count();
    }
    let stats = fake.rate_stats();
    let counts = fake.counts();
    println!(
        "1 steady republish   | {:<13} | {:>7.0} KV requests/republish ({:.2}/mount) | 429s {:>4} | tokens/republish {:>5.1} | challenges/republish {:>5.1} | failed mounts {failed} | capacity {capacity}/window",
        label(strategy),
        counts.keyvault as f64 / rounds as f64,
        counts.keyvault as f64 / (rounds * NODES * PODS) as f64,
        stats.throttled,
        counts.entra_tokens as f64 / rounds as f64,
        counts.challenges as f64 / rounds as f64,
    );
    fake.set_rate_limit(None);
}

/// Scenario 2: every pod on every node mounts at once on fresh nodes; the vault's window holds a
/// third of the demand.
async fn burst(fake: &FakeAzure, strategy: Strategy) {
    let fleet = nodes(&fake.transport(), strategy);
    // Demand: the GETs alone (what a pre-authorised, warm-token fleet needs at least).
    let demand = (NODES * PODS * SECRETS) as u64;
    let capacity = demand / 3;
    fake.reset_counts();
    fake.set_rate_limit(Some((capacity, WINDOW)));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (node, handler) in fleet.iter().enumerate() {
        for pod in 0..PODS {
            let handler = handler.clone();
            tasks.push(async move { mount(&handler, node, pod).await });
        }
    }
    let results = futures::future::join_all(tasks).await;
    let ok = results.iter().filter(|(ok, _)| *ok).count();
    let drained = results
        .iter()
        .filter(|(ok, _)| *ok)
        .map(|(_, at)| at.duration_since(started))
        .max()
        .unwrap_or_default();
    let stats = fake.rate_stats();
    let busiest = stats.per_window.iter().copied().max().unwrap_or(0);
    let windows: Vec<String> = stats.per_window.iter().map(u64::to_string).collect();
    println!(
        "2 rollout burst      | {:<13} | {:>5.1} % of {} mounts within {} s | busiest window {busiest} requests = {:.2}x capacity {capacity} | 429s {:>4} | drained in {:.1} s | KV requests {} | per window [{}]",
        label(strategy),
        100.0 * ok as f64 / results.len() as f64,
        results.len(),
        DEADLINE.as_secs(),
        busiest as f64 / capacity.max(1) as f64,
        stats.throttled,
        drained.as_secs_f64(),
        fake.counts().keyvault,
        windows.join(" "),
    );
    fake.set_rate_limit(None);
}

#[tokio::main]
async fn main() {
    let fake = FakeAzure::start().await;
    for node in 0..NODES {
        let client_id = node_client_id(node);
        fake.add_federated_credential(
            TENANT,
            &client_id,
            ISSUER,
            "system:serviceaccount:fleet:app",
            "api://AzureADTokenExchange",
        );
        fake.grant(VAULT, &client_id);
    }
    for i in 0..PODS * SECRETS {
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
    println!(
        "akv-csi-provider fleet benchmark: {NODES} nodes x {PODS} pods x {SECRETS} secrets, one identity per node, Key Vault {} ms / token {} ms, window {} s (Key Vault's 10 s compressed 10x), mount deadline {} s, poll {} s",
        KV_LATENCY.as_millis(),
        TOKEN_LATENCY.as_millis(),
        WINDOW.as_secs(),
        DEADLINE.as_secs(),
        POLL.as_secs(),
    );
    // Two republish rounds at a quarter of the compressed poll period keep the run short.
    let period = POLL / 4;
    for strategy in [Strategy::Ours, Strategy::UpstreamLike] {
        steady(&fake, strategy, 2, period).await;
    }
    for strategy in [Strategy::Ours, Strategy::UpstreamLike] {
        burst(&fake, strategy).await;
    }
}
