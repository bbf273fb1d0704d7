//! The operator tools of the binary: `check` (offline validation) and `mount` (a real mount
//! against the in-repo fake, files written with their modes).

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

/// Every SecretProviderClass shipped under `examples/` passes the validator Mount uses (their
/// placeholders are well-formed: GUIDs for ids, a valid vault name).
#[test]
fn check_accepts_every_shipped_example() {
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    let mut files: Vec<String> = std::fs::read_dir(examples)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| p.display().to_string())
        .collect();
    files.sort();
    assert!(files.len() >= 5, "{files:?}");
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
