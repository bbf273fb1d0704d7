//! The object fields beyond upstream's — `jmesPath`, `objectNotAfter` and an object's own
//! `keyvaultName` — end to end: a
//! driver-side gRPC client on the provider's Unix socket → provider → the in-repo fake of Key
//! Vault and Entra ID over real HTTP, and the `check` subcommand on manifests using them.

mod support;

use akv_csi_provider::pb::MountResponse;
use akv_csi_provider::provider::ProviderOptions;
use serde_json::{Value, json};
use support::fake::FakeAzure;
use support::provider::RunningProvider;
use tonic::Code;

const TENANT: &str = "72f988bf-0000-0000-0000-000000000001";
const VAULT: &str = "myvault";
const CLIENT_ID: &str = "5b000000-0000-4000-8000-000000000015";
const SECRET: &str = "sp-client-secret-value";
const BIN: &str = env!("CARGO_BIN_EXE_akv-csi-provider");

fn objects(items: &[&str]) -> String {
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

fn attributes(objects_yaml: &str) -> Value {
    json!({
        "keyvaultName": VAULT,
        "tenantID": TENANT,
        "objects": objects_yaml,
        "csi.storage.k8s.io/pod.name": "pod1",
        "csi.storage.k8s.io/pod.namespace": "ns1",
    })
}

fn secrets() -> Value {
    json!({ "clientid": CLIENT_ID, "clientsecret": SECRET })
}

async fn setup() -> (FakeAzure, RunningProvider) {
    let fake = FakeAzure::start().await;
    fake.add_client_secret(TENANT, CLIENT_ID, SECRET);
    fake.grant(VAULT, CLIENT_ID);
    let provider = RunningProvider::start(fake.transport(), ProviderOptions::default()).await;
    (fake, provider)
}

async fn mount(provider: &RunningProvider, items: &[&str]) -> Result<MountResponse, tonic::Status> {
    let mut driver = provider.driver().await;
    driver
        .mount(&attributes(&objects(items)), Some(&secrets()), "420")
        .await
}

fn files(response: &MountResponse) -> Vec<(&str, i32, &str)> {
    response
        .files
        .iter()
        .map(|f| {
            (
                f.path.as_str(),
                f.mode,
                std::str::from_utf8(&f.contents).unwrap_or("<binary>"),
            )
        })
        .collect()
}

fn versions(response: &MountResponse) -> Vec<(&str, &str)> {
    response
        .object_version
        .iter()
        .map(|v| (v.id.as_str(), v.version.as_str()))
        .collect()
}

const DB_CREDS: &str = "objectName: db-creds
objectType: secret
filePermission: \"0600\"
jmesPath:
  - path: username
    objectAlias: db-user
  - path: conn.host
    objectAlias: cfg/db-host
  - path: conn.port
    objectAlias: cfg/db-port";

#[tokio::test]
async fn jmes_path_fields_are_files_and_rotate_with_the_secret() {
    let (fake, provider) = setup().await;
    let v1 = r#"{"username":"app","password":"pw-1","conn":{"host":"db1.internal","port":5432}}"#;
    fake.add_secret(VAULT, "db-creds", "v1", v1, None, None, 100, true);
    fake.add_secret(VAULT, "plain", "p1", "plain-value", None, None, 100, true);
    let first = mount(
        &provider,
        &[DB_CREDS, "objectName: plain\nobjectType: secret"],
    )
    .await
    .expect("mount succeeds");
    assert_eq!(
        files(&first),
        [
            ("db-creds", 0o600, v1),
            ("db-user", 0o600, "app"),
            ("cfg/db-host", 0o600, "db1.internal"),
            ("cfg/db-port", 0o600, "5432"),
            ("plain", 0o644, "plain-value"),
        ]
    );
    assert_eq!(
        versions(&first),
        [
            ("secret/db-creds", "v1"),
            ("secret/db-creds#db-user", "v1"),
            ("secret/db-creds#cfg/db-host", "v1"),
            ("secret/db-creds#cfg/db-port", "v1"),
            ("secret/plain", "p1"),
        ]
    );
    // Rotation: a new version with a changed field is a new version of every file on the next mount.
    let v2 = r#"{"username":"app","password":"pw-2","conn":{"host":"db2.internal","port":5432}}"#;
    fake.add_secret(VAULT, "db-creds", "v2", v2, None, None, 200, true);
    let second = mount(&provider, &[DB_CREDS]).await.unwrap();
    assert_eq!(files(&second)[2], ("cfg/db-host", 0o600, "db2.internal"));
    assert_eq!(
        versions(&second),
        [
            ("secret/db-creds", "v2"),
            ("secret/db-creds#db-user", "v2"),
            ("secret/db-creds#cfg/db-host", "v2"),
            ("secret/db-creds#cfg/db-port", "v2"),
        ]
    );
}

#[tokio::test]
async fn jmes_path_with_version_history_writes_each_version() {
    let (fake, provider) = setup().await;
    for (i, host) in ["h1", "h2", "h3"].iter().enumerate() {
        let value = format!(r#"{{"conn":{{"host":"{host}"}}}}"#);
        fake.add_secret(
            VAULT,
            "cfg",
            &format!("v{i}"),
            &value,
            None,
            None,
            100 + i as i64,
            true,
        );
    }
    let item = "objectName: cfg\nobjectType: secret\nobjectVersionHistory: 2\njmesPath:\n  - path: conn.host\n    objectAlias: host";
    let response = mount(&provider, &[item]).await.unwrap();
    let paths: Vec<(&str, &str)> = files(&response).iter().map(|f| (f.0, f.2)).collect();
    assert_eq!(
        paths,
        [
            ("cfg/0", r#"{"conn":{"host":"h3"}}"#),
            ("host/0", "h3"),
            ("cfg/1", r#"{"conn":{"host":"h2"}}"#),
            ("host/1", "h2"),
        ]
    );
    assert_eq!(
        versions(&response),
        [
            ("secret/cfg/0", "v2"),
            ("secret/cfg#host/0", "v2"),
            ("secret/cfg/1", "v1"),
            ("secret/cfg#host/1", "v1"),
        ]
    );
}

#[tokio::test]
async fn jmes_path_errors_name_the_object_and_the_path_but_no_value() {
    let (fake, provider) = setup().await;
    fake.add_secret(
        VAULT,
        "not-json",
        "v1",
        "hunter2-SECRET",
        None,
        None,
        100,
        true,
    );
    fake.add_secret(
        VAULT,
        "creds",
        "v1",
        r#"{"user":"SECRET-USER","n":null}"#,
        None,
        None,
        100,
        true,
    );
    let cases = [
        (
            "objectName: not-json\nobjectType: secret\njmesPath:\n  - path: user\n    objectAlias: u",
            "object secret/not-json: the secret's value is not JSON (syntax error at line 1 column 1)",
        ),
        (
            "objectName: creds\nobjectType: secret\njmesPath:\n  - path: user\n    objectAlias: u\n  - path: pass\n    objectAlias: p",
            "object secret/creds: jmesPath path \"pass\": selects nothing",
        ),
        (
            "objectName: creds\nobjectType: secret\njmesPath:\n  - path: n\n    objectAlias: n",
            "object secret/creds: jmesPath path \"n\": selects nothing",
        ),
        (
            "objectName: creds\nobjectType: secret\njmesPath:\n  - path: abs(user)\n    objectAlias: n",
            "object secret/creds: jmesPath path \"abs(user)\": argument 1 of a function has the wrong type",
        ),
    ];
    for (item, want) in cases {
        let e = mount(&provider, &[item]).await.unwrap_err();
        assert_eq!(e.code(), Code::FailedPrecondition, "{item}");
        assert!(e.message().contains(want), "{item}: {}", e.message());
        assert!(!e.message().contains("SECRET"), "{}", e.message());
    }
    let refused = [
        (
            "objectName: k\nobjectType: key\njmesPath:\n  - path: a\n    objectAlias: b",
            "object key/k: jmesPath is only supported for objectType: secret",
        ),
        (
            "objectName: creds\nobjectType: secret\njmesPath:\n  - path: user\n    objectAlias: creds",
            "its file collides with object secret/creds at path \"creds\"; give one of them another objectAlias",
        ),
    ];
    for (item, want) in refused {
        let e = mount(&provider, &[item]).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{item}");
        assert!(e.message().contains(want), "{item}: {}", e.message());
    }
}

#[tokio::test]
async fn object_not_after_pins_the_newest_enabled_version_created_by_then() {
    let (fake, provider) = setup().await;
    // 2026-01-01T00:00:00Z = 1767225600.
    let t0 = 1_767_225_600;
    fake.add_secret(VAULT, "api", "a", "value-a", None, None, t0 - 7200, true);
    fake.add_secret(VAULT, "api", "b", "value-b", None, None, t0 - 3600, false);
    fake.add_secret(VAULT, "api", "c", "value-c", None, None, t0 + 60, true);
    fake.set_page_size(2);
    let pinned = "objectName: api\nobjectType: secret\nobjectNotAfter: \"2026-01-01T00:00:00Z\"";
    let first = mount(&provider, &[pinned]).await.unwrap();
    assert_eq!(
        files(&first),
        [("api", 0o644, "value-a")],
        "b is disabled, c too new"
    );
    assert_eq!(versions(&first), [("secret/api", "a")]);
    // Rotation: a version created before the time shows up on the next mount; later ones do not.
    fake.add_secret(VAULT, "api", "d", "value-d", None, None, t0 - 60, true);
    let second = mount(&provider, &[pinned]).await.unwrap();
    assert_eq!(files(&second), [("api", 0o644, "value-d")]);
    assert_eq!(versions(&second), [("secret/api", "d")]);
    // With history, the history starts there.
    let history = "objectName: api\nobjectType: secret\nobjectVersionHistory: 3\nobjectNotAfter: \"2026-01-01T01:00:00+01:00\"";
    let third = mount(&provider, &[history]).await.unwrap();
    assert_eq!(
        versions(&third),
        [("secret/api/0", "d"), ("secret/api/1", "a")]
    );
    // None old enough: an error naming the object and the time.
    let early = "objectName: api\nobjectType: secret\nobjectNotAfter: \"2025-06-01T00:00:00Z\"";
    let e = mount(&provider, &[early]).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert_eq!(
        e.message(),
        "object secret/api: no enabled version was created at or before objectNotAfter 2025-06-01T00:00:00Z"
    );
    let both = "objectName: api\nobjectType: secret\nobjectVersion: a\nobjectNotAfter: \"2026-01-01T00:00:00Z\"";
    let e = mount(&provider, &[both]).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message()
            .contains("object secret/api: objectNotAfter cannot be combined with objectVersion"),
        "{}",
        e.message()
    );
}

#[tokio::test]
async fn object_not_after_and_jmes_path_combine() {
    let (fake, provider) = setup().await;
    fake.add_secret(VAULT, "combo", "s1", r#"{"k":"x1"}"#, None, None, 100, true);
    fake.add_secret(VAULT, "combo", "s2", r#"{"k":"x2"}"#, None, None, 300, true);
    let item = "objectName: combo\nobjectType: secret\nobjectNotAfter: \"1970-01-01T00:03:20Z\"\njmesPath:\n  - path: k\n    objectAlias: k";
    let response = mount(&provider, &[item]).await.unwrap();
    assert_eq!(
        versions(&response),
        [("secret/combo", "s1"), ("secret/combo#k", "s1")]
    );
    assert_eq!(files(&response)[1], ("k", 0o644, "x1"));
}

#[tokio::test]
async fn objects_of_several_vaults_in_one_mount_with_their_own_ids() {
    let (fake, provider) = setup().await;
    fake.grant("team-b-kv", CLIENT_ID);
    fake.add_secret(VAULT, "db-password", "a1", "from-a", None, None, 100, true);
    fake.add_secret(
        "team-b-kv",
        "db-password",
        "b1",
        "from-b",
        None,
        None,
        100,
        true,
    );
    fake.add_secret(
        "team-b-kv",
        "token",
        "t1",
        r#"{"v":"tok-1"}"#,
        None,
        None,
        100,
        true,
    );
    let items = [
        "objectName: db-password\nobjectType: secret",
        "objectName: db-password\nobjectType: secret\nkeyvaultName: Team-B-KV\nobjectAlias: b/db-password",
        "objectName: token\nobjectType: secret\nkeyvaultName: team-b-kv\njmesPath:\n  - path: v\n    objectAlias: b/token",
        // The SecretProviderClass's vault named again: exactly as without the field.
        "objectName: db-password\nobjectType: secret\nkeyvaultName: MYVAULT\nobjectAlias: again",
    ];
    let first = mount(&provider, &items).await.unwrap();
    assert_eq!(
        files(&first),
        [
            ("db-password", 0o644, "from-a"),
            ("b/db-password", 0o644, "from-b"),
            ("token", 0o644, r#"{"v":"tok-1"}"#),
            ("b/token", 0o644, "tok-1"),
            ("again", 0o644, "from-a"),
        ]
    );
    assert_eq!(
        versions(&first),
        [
            ("secret/db-password", "a1"),
            ("secret/db-password@team-b-kv", "b1"),
            ("secret/token@team-b-kv", "t1"),
            ("secret/token@team-b-kv#b/token", "t1"),
            ("secret/db-password", "a1"),
        ]
    );
    let hosts: std::collections::BTreeSet<String> = fake
        .requests()
        .iter()
        .filter(|r| r.service == "keyvault")
        .map(|r| r.host.to_ascii_lowercase())
        .collect();
    assert!(
        hosts.contains("myvault.vault.azure.net") && hosts.contains("team-b-kv.vault.azure.net"),
        "{hosts:?}"
    );
    // Rotation in the other vault shows up on the next mount.
    fake.add_secret(
        "team-b-kv",
        "db-password",
        "b2",
        "from-b-2",
        None,
        None,
        200,
        true,
    );
    let second = mount(&provider, &items[..2]).await.unwrap();
    assert_eq!(
        versions(&second),
        [
            ("secret/db-password", "a1"),
            ("secret/db-password@team-b-kv", "b2")
        ]
    );
    // The same object name in two vaults without an alias: one file, so an error saying how to fix it.
    let e = mount(
        &provider,
        &[
            items[0],
            "objectName: db-password\nobjectType: secret\nkeyvaultName: team-b-kv",
        ],
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().contains("object secret/db-password@team-b-kv: its file collides with object secret/db-password at path \"db-password\"; give one of them another objectAlias"),
        "{}",
        e.message()
    );
    // A vault the identity may not read fails the mount naming the object and its vault.
    fake.add_secret("team-c-kv", "x", "c1", "from-c", None, None, 100, true);
    let e = mount(
        &provider,
        &[
            items[0],
            "objectName: x\nobjectType: secret\nkeyvaultName: team-c-kv",
        ],
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{}", e.message());
    assert!(
        e.message().contains("failed to get secret/x@team-c-kv"),
        "{}",
        e.message()
    );
    let e = mount(
        &provider,
        &["objectName: x\nobjectType: secret\nkeyvaultName: no"],
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message()
            .contains("object secret/x: invalid keyvaultName \"no\""),
        "{}",
        e.message()
    );
}

#[tokio::test]
async fn a_throttled_vault_does_not_fail_the_objects_of_another() {
    let (fake, provider) = setup().await;
    fake.grant("team-b-kv", CLIENT_ID);
    fake.add_secret(VAULT, "a", "a1", "va", None, None, 100, true);
    fake.add_secret("team-b-kv", "b", "b1", "vb", None, None, 100, true);
    // Warm both clients, then throttle once: the retry honours Retry-After and the mount succeeds.
    let items = [
        "objectName: a\nobjectType: secret",
        "objectName: b\nobjectType: secret\nkeyvaultName: team-b-kv",
    ];
    mount(&provider, &items).await.unwrap();
    fake.inject(support::fake::Fault::KeyVaultThrottle {
        count: 1,
        retry_after_secs: 1,
    });
    let response = mount(&provider, &items).await.unwrap();
    assert_eq!(files(&response), [("a", 0o644, "va"), ("b", 0o644, "vb")]);
}

#[test]
fn check_validates_the_new_fields() {
    let manifest = |name: &str, item: &str| {
        format!(
            "apiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClass\nmetadata:\n  name: {name}\nspec:\n  provider: azure\n  parameters:\n    keyvaultName: kv-team-a\n    tenantID: tid\n    useVMManagedIdentity: \"true\"\n    objects: |\n      array:\n        - |\n{}",
            item.lines()
                .map(|l| format!("          {l}\n"))
                .collect::<String>()
        )
    };
    let text = [
        manifest("good", DB_CREDS),
        manifest(
            "good-time",
            "objectName: a\nobjectType: cert\nobjectNotAfter: \"2026-01-01T00:00:00Z\"",
        ),
        manifest(
            "bad-path",
            "objectName: a\nobjectType: secret\njmesPath:\n  - path: \"[a, b]\"\n    objectAlias: x",
        ),
        manifest(
            "good-vault",
            "objectName: a\nobjectType: secret\nkeyvaultName: kv-team-b",
        ),
        manifest(
            "bad-vault",
            "objectName: a\nobjectType: secret\nkeyvaultName: kv_b",
        ),
        manifest(
            "bad-time",
            "objectName: a\nobjectType: secret\nobjectNotAfter: tomorrow",
        ),
    ]
    .join("---\n");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("spc.yaml");
    std::fs::write(&file, text).unwrap();
    let out = std::process::Command::new(BIN)
        .arg("check")
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("good: ok")
            && stdout.contains("secret/db-creds → db-creds + db-user + cfg/db-host + cfg/db-port"),
        "{stdout}"
    );
    assert!(
        stdout.contains("good-time: ok")
            && stdout.contains("cert/a → a (newest version not after 2026-01-01T00:00:00Z)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("bad-path: error") && stdout.contains("multi-select"),
        "{stdout}"
    );
    assert!(
        stdout.contains("bad-time: error") && stdout.contains("invalid objectNotAfter"),
        "{stdout}"
    );
    assert!(
        stdout.contains("good-vault: ok") && stdout.contains("secret/a@kv-team-b → a"),
        "{stdout}"
    );
    assert!(
        stdout.contains("bad-vault: error")
            && stdout.contains("object secret/a: invalid keyvaultName"),
        "{stdout}"
    );
}
