//! Issue #10, budget part, through the real binary and socket: one tenant's mount may not grow the
//! provider's memory past its response budget, ask for unbounded objects × versions, starve other
//! tenants' mounts of Key Vault fetch slots, or flood statuses and logs with a huge echoed value.
//! Each attack runs under the harness (`Version` and `/healthz` probed every 100 ms, peak memory
//! measured) and prints its `attack ...` line.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::driver::Driver;
use support::fake::FakeAzure;
use support::process::{ProviderProcess, under_attack};
use tonic::Code;

const VAULT: &str = "budgetvault";
const OTHER_VAULT: &str = "othervault";
/// Service principals of the two tenants (client ids are GUIDs).
const SP: &str = "5b000000-0000-4000-8000-0000000000b1";
const SP2: &str = "5b000000-0000-4000-8000-0000000000b2";

/// A fake with two tenants' service principals, each granted its own vault.
async fn fake() -> FakeAzure {
    let fake = FakeAzure::start().await;
    fake.add_client_secret("tid", SP, "sp-secret-9f1");
    fake.grant(VAULT, SP);
    fake.add_client_secret("tid", SP2, "sp2-secret-4c7");
    fake.grant(OTHER_VAULT, SP2);
    fake
}

fn objects_yaml(items: impl IntoIterator<Item = String>) -> String {
    let mut yaml = String::from("array:\n");
    for item in items {
        yaml.push_str("  - |\n");
        for line in item.lines() {
            yaml.push_str("    ");
            yaml.push_str(line);
            yaml.push('\n');
        }
    }
    yaml
}

fn attributes(vault: &str, objects: &str) -> Value {
    json!({
        "keyvaultName": vault, "tenantId": "tid", "objects": objects,
        "csi.storage.k8s.io/pod.name": "p", "csi.storage.k8s.io/pod.namespace": "n",
    })
}

fn secrets() -> Value {
    json!({"clientid": SP, "clientsecret": "sp-secret-9f1"})
}

fn other_secrets() -> Value {
    json!({"clientid": SP2, "clientsecret": "sp2-secret-4c7"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_20_mb_mount_is_refused_as_files_arrive() {
    let fake = fake().await;
    let value = "v".repeat(100 * 1000);
    for i in 0..200 {
        fake.add_secret(
            VAULT,
            &format!("big{i}"),
            "v1",
            &value,
            None,
            None,
            100,
            true,
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("azure.sock");
    let provider = ProviderProcess::start_with_fake(&socket, &fake.url(), &[]);
    let yaml = objects_yaml((0..200).map(|i| format!("objectName: big{i}\nobjectType: secret")));
    let (report, result) = under_attack("20 MB mount (200 x 100 KB secrets)", &provider, async {
        let mut driver = Driver::connect(&socket)
            .await
            .with_timeout(Duration::from_secs(120));
        driver
            .mount(&attributes(VAULT, &yaml), Some(&secrets()), "420")
            .await
    })
    .await;
    let error = result.expect_err("20 MB cannot be delivered");
    assert_eq!(error.code(), Code::ResourceExhausted, "{}", error.message());
    assert!(
        error.message().starts_with("object secret/big") && error.message().contains("4 MiB"),
        "{}",
        error.message()
    );
    report.assert_isolated(Duration::from_secs(2));
    let fetched = fake.counts();
    println!("20 MB mount: Key Vault requests made before the refusal: {fetched:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_times_versions_is_refused_before_any_fetch() {
    let fake = fake().await;
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("azure.sock");
    let provider = ProviderProcess::start_with_fake(&socket, &fake.url(), &[]);
    let yaml = objects_yaml(
        (0..1000)
            .map(|i| format!("objectName: s{i}\nobjectType: secret\nobjectVersionHistory: 1000")),
    );
    fake.reset_counts();
    let (report, result) = under_attack("1,000 objects x 1,000 versions", &provider, async {
        let mut driver = Driver::connect(&socket).await;
        driver
            .mount(&attributes(VAULT, &yaml), Some(&secrets()), "420")
            .await
    })
    .await;
    let error = result.expect_err("refused");
    assert_eq!(error.code(), Code::InvalidArgument, "{}", error.message());
    assert!(
        error.message().contains("object secret/s1:")
            && error.message().contains("1000000 object versions"),
        "{}",
        error.message()
    );
    report.assert_isolated(Duration::from_secs(2));
    assert!(
        fake.requests().is_empty(),
        "nothing was fetched or authenticated"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1000_object_mount_does_not_starve_another_tenant() {
    let fake = fake().await;
    for i in 0..1000 {
        fake.add_secret(
            VAULT,
            &format!("s{i}"),
            "v1",
            "small",
            None,
            None,
            100,
            true,
        );
    }
    fake.add_secret(
        OTHER_VAULT,
        "mine",
        "v1",
        "other-tenant",
        None,
        None,
        100,
        true,
    );
    fake.set_latency(Duration::from_millis(20), Duration::ZERO);
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("azure.sock");
    // A node-wide cap no larger than one mount's own: without fair sharing the big mount would
    // hold every slot for its whole run (1,000 / 8 x 20 ms = 2.5 s at least).
    let flags = [
        "--max-total-concurrent-fetches=8".to_string(),
        "--max-concurrent-fetches=8".to_string(),
    ];
    let provider = ProviderProcess::start_with_fake(&socket, &fake.url(), &flags);
    let big_yaml = objects_yaml((0..1000).map(|i| format!("objectName: s{i}\nobjectType: secret")));
    let big = tokio::spawn({
        let socket = socket.clone();
        async move {
            let started = Instant::now();
            let mut driver = Driver::connect(&socket).await;
            let result = driver
                .mount(&attributes(VAULT, &big_yaml), Some(&secrets()), "420")
                .await;
            (result, started.elapsed())
        }
    });
    let small_yaml = objects_yaml(["objectName: mine\nobjectType: secret".to_string()]);
    let (report, (small, small_took)) = under_attack(
        "other tenant's mount during a 1,000-object one",
        &provider,
        async {
            // Let the big mount take every fetch slot first.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let started = Instant::now();
            let mut driver = Driver::connect(&socket).await;
            let result = driver
                .mount(
                    &attributes(OTHER_VAULT, &small_yaml),
                    Some(&other_secrets()),
                    "420",
                )
                .await;
            (result, started.elapsed())
        },
    )
    .await;
    let small = small.expect("the other tenant's mount succeeds");
    assert_eq!(small.files[0].contents, b"other-tenant");
    assert!(small_took < Duration::from_secs(1), "{small_took:?}");
    let (big, big_took) = big.await.unwrap();
    assert_eq!(big.expect("the big mount succeeds too").files.len(), 1000);
    println!(
        "fairness: the 1-secret mount took {:.0} ms while the 1,000-object mount ran ({:.0} ms in all)",
        small_took.as_secs_f64() * 1e3,
        big_took.as_secs_f64() * 1e3
    );
    assert!(
        big_took > small_took + Duration::from_millis(300),
        "the small mount finished while the big one still ran"
    );
    report.assert_isolated(Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_echoed_values_give_small_statuses_and_log_lines() {
    let fake = fake().await;
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("azure.sock");
    let provider = ProviderProcess::start_with_fake(&socket, &fake.url(), &[]);
    let _ = provider.drain_logs();
    let huge = "k".repeat(200 * 1000);
    let cases = [
        (
            "keyvaultName",
            attributes(
                &huge,
                "array:\n  - |\n    objectName: s\n    objectType: secret\n",
            ),
        ),
        ("tenantId", {
            let mut a = attributes(
                VAULT,
                "array:\n  - |\n    objectName: s\n    objectType: secret\n",
            );
            a["tenantId"] = Value::String(huge.clone());
            a
        }),
        (
            "objectName",
            attributes(
                VAULT,
                &objects_yaml([format!("objectName: {huge}\nobjectType: secret")]),
            ),
        ),
    ];
    let (report, statuses) = under_attack("200 KB echoed values (3 mounts)", &provider, async {
        let mut driver = Driver::connect(&socket).await;
        let mut statuses = Vec::new();
        for (name, attributes) in &cases {
            let status = driver
                .mount(attributes, Some(&secrets()), "420")
                .await
                .expect_err("refused");
            statuses.push((*name, status));
        }
        statuses
    })
    .await;
    for (name, status) in &statuses {
        assert!(
            status.message().len() <= 4096,
            "{name}: a {} byte status",
            status.message().len()
        );
        assert_ne!(status.code(), Code::Ok, "{name}");
        println!(
            "huge {name}: {:?}, {} byte status",
            status.code(),
            status.message().len()
        );
    }
    // The mounts' own log lines are written by now; give the reader thread a moment.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let logs = provider.drain_logs();
    let longest = logs.iter().map(String::len).max().unwrap_or(0);
    println!(
        "huge values: {} log lines, longest {longest} bytes",
        logs.len()
    );
    assert!(
        logs.iter().any(|l| l.contains("mount failed")),
        "the failures were logged"
    );
    assert!(longest <= 16 * 1024, "a {longest} byte log line");
    report.assert_isolated(Duration::from_secs(2));
}
