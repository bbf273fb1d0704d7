//! The operator tools of the binary: `check` (offline validation), `mount` (a real mount
//! against the in-repo fake, files written with their modes) and `probe` (`Version` over the
//! socket of a running provider).

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use support::fake::FakeAzure;

const BIN: &str = env!("CARGO_BIN_EXE_akv-csi-provider");

fn spc(name: &str, parameters: &str) -> String {
    format!(
        "apiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClass\nmetadata:\n  name: {name}\n  namespace: team-a\nspec:\n  provider: azure\n  parameters:\n{parameters}"
    )
}

const GOOD: &str = r#"    keyvaultName: "kv-team-a"
    tenantID: "tid"
    clientID: "0c1d0000-0000-4000-8000-000000000001"
    objects: |
      array:
        - |
          objectName: db-password
          objectType: secret
          filePermission: "0600"
        - |
          objectName: tls
          objectType: cert
"#;

const BAD_PERMISSION: &str = r#"    keyvaultName: "kv-team-a"
    tenantID: "tid"
    useVMManagedIdentity: "true"
    objects: |
      array:
        - |
          objectName: db-password
          objectType: secret
          filePermission: "0900"
"#;

const BAD_TYPE: &str = r#"    keyvaultName: "kv"
    tenantID: "tid"
    useVMManagedIdentity: "true"
    objects: |
      array:
        - |
          objectName: db-password
          objectType: Secret
"#;

fn run(args: &[&str]) -> Output {
    std::process::Command::new(BIN)
        .args(args)
        .output()
        .expect("run the binary")
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write manifest");
    path.display().to_string()
}

#[test]
fn check_accepts_a_good_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "good.yaml",
        &format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: team-a}}\n---\n{}",
            spc("good", GOOD)
        ),
    );
    let out = run(&["check", &file]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("good: ok")
            && stdout.contains("secret/db-password")
            && stdout.contains("cert/tls"),
        "{stdout}"
    );
}

/// Every SecretProviderClass shipped under `examples/` (and `examples/sync-controller/`) passes the validator Mount uses (their
/// placeholders are well-formed: GUIDs for ids, a valid vault name).
#[test]
fn check_accepts_every_shipped_example() {
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    let mut files: Vec<String> = [
        examples,
        concat!(env!("CARGO_MANIFEST_DIR"), "/examples/sync-controller"),
    ]
    .iter()
    .flat_map(|dir| std::fs::read_dir(dir).unwrap())
    .map(|e| e.unwrap().path())
    .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
    // The sync controller's Deployment holds no SecretProviderClass.
    .filter(|p| std::fs::read_to_string(p).is_ok_and(|t| t.contains("kind: SecretProviderClass")))
    .map(|p| p.display().to_string())
    .collect();
    files.sort();
    assert!(files.len() >= 5, "{files:?}");
    assert!(
        files
            .iter()
            .any(|f| f.ends_with("sync-controller/secretsync.yaml")),
        "{files:?}"
    );
    let mut args = vec!["check"];
    args.extend(files.iter().map(String::as_str));
    let out = run(&args);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn check_reports_each_bad_manifest_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}\n---\n{}\n---\n{}",
        spc("good", GOOD),
        spc("bad-mode", BAD_PERMISSION),
        spc("bad-type", BAD_TYPE)
    );
    let file = write(dir.path(), "mixed.yaml", &text);
    let out = run(&["check", &file]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("good: ok"), "{stdout}");
    assert!(
        stdout.contains("bad-mode: error")
            && stdout.contains("secret/db-password")
            && stdout.contains("filePermission"),
        "{stdout}"
    );
    assert!(
        stdout.contains("bad-type: error") && stdout.contains("objectType"),
        "{stdout}"
    );
    let missing = run(&["check", "/nonexistent/spc.yaml"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stdout).contains("cannot read"));
}

#[tokio::test]
async fn mount_writes_files_and_modes_against_the_fake() {
    let fake = FakeAzure::start().await;
    fake.add_client_secret(
        "tid",
        "5b000000-0000-4000-8000-000000000001",
        "sp-secret-value",
    );
    fake.grant("kv-team-a", "5b000000-0000-4000-8000-000000000001");
    fake.add_secret(
        "kv-team-a",
        "db-password",
        "v7",
        "s3cr3t",
        None,
        None,
        100,
        true,
    );
    fake.add_certificate("kv-team-a", "tls", "c1", b"not-really-der", 100, true);
    let dir = tempfile::tempdir().unwrap();
    let parameters = GOOD.replace(
        "    clientID: \"0c1d0000-0000-4000-8000-000000000001\"\n",
        "",
    );
    let spc_file = write(dir.path(), "spc.yaml", &spc("sp", &parameters));
    let secrets_file = write(
        dir.path(),
        "secrets.yaml",
        "clientid: 5b000000-0000-4000-8000-000000000001\nclientsecret: sp-secret-value\n",
    );
    let out_dir = dir.path().join("out");
    let redirect = format!("--test-redirect-url={}", fake.url());
    let output = tokio::process::Command::new(BIN)
        .args([
            redirect.as_str(),
            "mount",
            "--spc",
            &spc_file,
            "--secrets-file",
            &secrets_file,
            "--out",
        ])
        .arg(&out_dir)
        .output()
        .await
        .expect("run mount");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("secret/db-password v7") && stdout.contains("cert/tls c1"),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read_to_string(out_dir.join("db-password")).unwrap(),
        "s3cr3t"
    );
    assert_eq!(
        std::fs::metadata(out_dir.join("db-password"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert!(
        std::fs::read_to_string(out_dir.join("tls"))
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----\n")
    );
    assert!(!format!("{stdout}{stderr}").contains("sp-secret-value"));
}

#[tokio::test]
async fn probe_calls_version_on_a_running_provider() {
    let fake = FakeAzure::start().await;
    let provider =
        support::provider::RunningProvider::start(fake.transport(), Default::default()).await;
    let endpoint = format!("unix://{}", provider.socket().display());
    let out = tokio::task::spawn_blocking(move || run(&["probe", "--endpoint", &endpoint]))
        .await
        .expect("probe ran");
    assert!(out.status.success(), "{out:?}");
    let answer: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("one JSON line on stdout");
    assert_eq!(
        answer,
        serde_json::json!({
            "version": "v1alpha1",
            "runtimeName": "akv-csi-provider",
            "runtimeVersion": env!("CARGO_PKG_VERSION"),
        })
    );
}

#[test]
fn probe_without_a_provider_fails_naming_the_socket() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let socket = dir.path().join("azure.sock");
    let endpoint = format!("unix://{}", socket.display());
    let out = run(&["probe", "--endpoint", &endpoint]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot connect to") && stderr.contains(&endpoint),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn probe_gives_up_on_a_socket_that_never_answers() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let socket = dir.path().join("azure.sock");
    // Accepts connections and never says a word.
    let listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind");
    let _accepting = std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let endpoint = format!("unix://{}", socket.display());
    let started = std::time::Instant::now();
    let out = run(&["probe", "--endpoint", &endpoint, "--timeout", "1s"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no answer from"), "{stderr}");
    // Generous: the deadline is 1 s; a loaded machine may take a while to start the process.
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

#[test]
fn probe_uses_the_server_endpoint_flag_by_default() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let endpoint = format!("unix://{}", dir.path().join("none.sock").display());
    let out = run(&["--endpoint", &endpoint, "probe", "--timeout", "5s"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains(&endpoint));
}
