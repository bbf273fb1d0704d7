//! Issue #10 item 1 and issue #12 item 3, through the real socket of the provider binary: a
//! `cloudEnvFileName` naming a blocking, special, oversized, outside or hostile file is refused
//! fast with an error naming the parameter, while `Version` and `/healthz` keep answering; a
//! valid Azure Stack file mounts; `--cloud-name=AzureStackCloud` starts with
//! `AZURE_ENVIRONMENT_FILEPATH` and serves SecretProviderClasses without `cloudName`.

mod support;

use std::io::{BufRead, BufReader};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::driver::Driver;
use support::fake::FakeAzure;
use support::process::{BIN, ProviderProcess, under_attack};
use tonic::Code;

/// The service principal's client id (a GUID, as Entra ID issues them).
const SP: &str = "5b000000-0000-4000-8000-0000000000c1";
const CLIENT_SECRET: &str = "sp-secret-c10d";
const STACK_ENV: &str = r#"{"name":"AzureStackCloud","activeDirectoryEndpoint":"https://login.stack.local/","keyVaultEndpoint":"https://vault.stack.local/","keyVaultDNSSuffix":"vault.stack.local"}"#;

/// A fake with one service principal allowed to read `stackvault`'s secret `s`.
async fn fake() -> FakeAzure {
    let fake = FakeAzure::start().await;
    fake.add_client_secret("tid", SP, CLIENT_SECRET);
    fake.grant("stackvault", SP);
    fake.add_secret(
        "stackvault",
        "s",
        "v1",
        "stack-value",
        None,
        None,
        100,
        true,
    );
    fake
}

/// A mount's attributes, with `cloudName`/`cloudEnvFileName` when given.
fn attributes(cloud_name: Option<&str>, env_file: Option<&str>) -> Value {
    let mut attributes = json!({
        "keyvaultName": "stackvault", "tenantId": "tid",
        "objects": "array:\n  - |\n    objectName: s\n    objectType: secret\n",
        "csi.storage.k8s.io/pod.name": "p", "csi.storage.k8s.io/pod.namespace": "n",
    });
    if let Some(name) = cloud_name {
        attributes["cloudName"] = name.into();
    }
    if let Some(file) = env_file {
        attributes["cloudEnvFileName"] = file.into();
    }
    attributes
}

fn secrets() -> Value {
    json!({"clientid": SP, "clientsecret": CLIENT_SECRET})
}

/// One Azure Stack mount naming `file`; the gRPC status message on failure.
async fn stack_mount(socket: &Path, file: &str) -> Result<Vec<u8>, (Code, String)> {
    let mut driver = Driver::connect(socket)
        .await
        .with_timeout(Duration::from_secs(10));
    driver
        .mount(
            &attributes(Some("AzureStackCloud"), Some(file)),
            Some(&secrets()),
            "420",
        )
        .await
        .map(|r| r.files[0].contents.clone())
        .map_err(|s| (s.code(), s.message().to_owned()))
}

// mkfifo(3) has no safe wrapper in std.
#[allow(unsafe_code)]
fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

/// The allowed directory of the tests, with the files the attacks name.
struct Files {
    _dir: tempfile::TempDir,
    _outside: tempfile::TempDir,
    root: PathBuf,
    outside: PathBuf,
}

impl Files {
    fn new() -> Files {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let out = outside.path().canonicalize().unwrap();
        std::fs::write(out.join("valid.json"), STACK_ENV).unwrap();
        // A ConfigMap-style volume: env.json -> ..data/env.json -> ..2026_12_04/env.json.
        std::fs::create_dir(root.join("..2026_12_04")).unwrap();
        std::fs::write(root.join("..2026_12_04/env.json"), STACK_ENV).unwrap();
        std::os::unix::fs::symlink("..2026_12_04", root.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/env.json", root.join("env.json")).unwrap();
        mkfifo(&root.join("fifo"));
        std::os::unix::fs::symlink(out.join("valid.json"), root.join("escape.json")).unwrap();
        std::os::unix::fs::symlink("/dev/ptmx", root.join("ptmx")).unwrap();
        std::os::unix::fs::symlink("/proc/self/environ", root.join("environ")).unwrap();
        std::fs::write(root.join("huge.json"), vec![b' '; 10 * 1024 * 1024]).unwrap();
        std::fs::write(
            root.join("bad.json"),
            r#"{"activeDirectoryEndpoint":"https://login.stack.local/","keyVaultDNSSuffix":"LEAKED-VALUE/../x"}"#,
        )
        .unwrap();
        Files {
            _dir: dir,
            _outside: outside,
            root,
            outside: out,
        }
    }

    fn at(&self, name: &str) -> String {
        self.root.join(name).display().to_string()
    }
}

/// Runs one attack (a mount naming `file`) under the harness; returns the refusal's message.
async fn refused(name: &str, provider: &ProviderProcess, file: &str) -> String {
    let socket = provider.socket.clone();
    let (report, outcome) = under_attack(name, provider, stack_mount(&socket, file)).await;
    report.assert_isolated(Duration::from_secs(2));
    let (code, message) = outcome.expect_err("the mount must be refused");
    assert_eq!(code, Code::InvalidArgument, "{message}");
    assert!(
        message.starts_with("cloudName AzureStackCloud is not valid, error: "),
        "{message}"
    );
    message
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_cloud_env_files_are_refused_fast_and_everyone_else_is_served() {
    let fake = fake().await;
    let files = Files::new();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("azure.sock");
    let provider = ProviderProcess::start_with_fake(
        &socket,
        &fake.url(),
        &[format!("--cloud-env-file-dir={}", files.root.display())],
    );
    let inside = |m: &str| {
        m.contains(&format!(
            "not inside the allowed directory {}",
            files.root.display()
        ))
    };

    let m = refused("cloudEnvFileName FIFO", &provider, &files.at("fifo")).await;
    assert!(m.ends_with("not a regular file"), "{m}");
    for (name, path) in [
        ("cloudEnvFileName /dev/ptmx", "/dev/ptmx".to_string()),
        ("cloudEnvFileName /proc/self/fd/1", "/proc/self/fd/1".into()),
        (
            "cloudEnvFileName /proc/self/environ",
            "/proc/self/environ".into(),
        ),
        ("cloudEnvFileName symlink to /dev/ptmx", files.at("ptmx")),
        (
            "cloudEnvFileName symlink to /proc/self/environ",
            files.at("environ"),
        ),
        (
            "cloudEnvFileName symlink out of the directory",
            files.at("escape.json"),
        ),
        (
            "cloudEnvFileName .. out of the directory",
            files.at("../x/valid.json"),
        ),
    ] {
        let m = refused(name, &provider, &path).await;
        assert!(inside(&m), "{name}: {m}");
    }

    // Outside the directory, existing or not: the same answer (only the echoed path differs).
    let existing = files.outside.join("valid.json").display().to_string();
    let missing = files.outside.join("nonexistent.json").display().to_string();
    let a = refused("cloudEnvFileName outside, existing", &provider, &existing).await;
    let b = refused(
        "cloudEnvFileName outside, not existing",
        &provider,
        &missing,
    )
    .await;
    assert_eq!(a.replace(&existing, "P"), b.replace(&missing, "P"));

    let m = refused(
        "cloudEnvFileName 10 MB file",
        &provider,
        &files.at("huge.json"),
    )
    .await;
    assert!(m.ends_with("larger than 64 KiB"), "{m}");
    let m = refused(
        "cloudEnvFileName bad keyVaultDNSSuffix",
        &provider,
        &files.at("bad.json"),
    )
    .await;
    assert!(
        m.ends_with("not a valid Azure Stack environment file: keyVaultDNSSuffix is not a DNS suffix such as vault.azure.net"),
        "{m}"
    );
    assert!(!m.contains("LEAKED"), "{m}");

    // Many tenants at once naming the FIFO: all refused, nobody else waits.
    let socket2 = socket.clone();
    let fifo = files.at("fifo");
    let (report, outcomes) = under_attack(
        "cloudEnvFileName FIFO x 50 concurrent",
        &provider,
        async move {
            let mounts = (0..50).map(|_| stack_mount(&socket2, &fifo));
            futures::future::join_all(mounts).await
        },
    )
    .await;
    report.assert_isolated(Duration::from_secs(2));
    assert!(outcomes.iter().all(
        |o| matches!(o, Err((Code::InvalidArgument, m)) if m.ends_with("not a regular file"))
    ));

    // A valid file through a ConfigMap-style symlink chain mounts through the fake.
    let socket3 = socket.clone();
    let env = files.at("env.json");
    let (report, outcome) = under_attack(
        "cloudEnvFileName valid Azure Stack file",
        &provider,
        stack_mount(&socket3, &env),
    )
    .await;
    report.assert_isolated(Duration::from_secs(2));
    assert_eq!(outcome.expect("valid Azure Stack mount"), b"stack-value");
    assert!(
        fake.requests()
            .iter()
            .any(|r| r.host == "stackvault.vault.stack.local"),
        "the vault was addressed with the file's DNS suffix"
    );
    let logs = provider.drain_logs().join("\n");
    assert!(!logs.contains("LEAKED") && !logs.contains(CLIENT_SECRET));
}

/// An operator who allows the whole filesystem (`--cloud-env-file-dir=/`) still gets the
/// descriptor checks: no device, no FIFO, no procfs, no magic link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn descriptor_checks_hold_when_the_whole_filesystem_is_allowed() {
    let fake = fake().await;
    let files = Files::new();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("azure.sock");
    let provider = ProviderProcess::start_with_fake(
        &socket,
        &fake.url(),
        &["--cloud-env-file-dir=/".to_string()],
    );
    let m = refused("cloudEnvFileName /dev/ptmx (dir /)", &provider, "/dev/ptmx").await;
    assert!(m.ends_with("not a regular file"), "{m}");
    let m = refused(
        "cloudEnvFileName /proc/self/environ (dir /)",
        &provider,
        "/proc/self/environ",
    )
    .await;
    assert!(m.contains("kernel pseudo filesystem"), "{m}");
    let m = refused(
        "cloudEnvFileName /proc/self/fd/1 (dir /)",
        &provider,
        "/proc/self/fd/1",
    )
    .await;
    assert!(
        m.contains("not a regular file")
            || m.contains("symbolic links")
            || m.contains("not inside"),
        "{m}"
    );
    let m = refused(
        "cloudEnvFileName FIFO (dir /)",
        &provider,
        &files.at("fifo"),
    )
    .await;
    assert!(m.ends_with("not a regular file"), "{m}");
    let ok = stack_mount(&socket, &files.at("env.json")).await;
    assert_eq!(ok.expect("valid file"), b"stack-value");
}

/// The binary with `env` set (and `AZURE_ENVIRONMENT_FILEPATH` removed unless given), waiting
/// for its start-up line; `None` with its stderr when it exited instead.
fn start_with_env(
    socket: &Path,
    fake_url: &str,
    env: &[(&str, &str)],
    extra: &[&str],
) -> Result<std::process::Child, String> {
    let mut command = Command::new(BIN);
    command
        .arg(format!("--endpoint=unix://{}", socket.display()))
        .arg(format!("--test-redirect-url={fake_url}"))
        .args(["--healthz-port=0", "--prometheus-port=0"])
        .args(extra)
        .env_remove("AZURE_ENVIRONMENT_FILEPATH")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("start the binary");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) if line.contains("akv-csi-provider started") => return Ok(child),
            Ok(line) => seen.push(line),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                let _ = child.wait();
                return Err(seen.join("\n"));
            }
            Err(_) => {}
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("neither started nor exited: {}", seen.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_stack_cloud_name_starts_with_the_environment_variable() {
    let fake = fake().await;
    let files = Files::new();
    let env_file = files.outside.join("valid.json").display().to_string();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("azure.sock");

    // The documented Azure Stack Hub set-up: the flag and the variable; SPCs without cloudName.
    let mut child = start_with_env(
        &socket,
        &fake.url(),
        &[("AZURE_ENVIRONMENT_FILEPATH", &env_file)],
        &["--cloud-name=AzureStackCloud"],
    )
    .expect("starts with --cloud-name=AzureStackCloud and AZURE_ENVIRONMENT_FILEPATH");
    let mut driver = Driver::connect(&socket).await;
    let response = driver
        .mount(&attributes(None, None), Some(&secrets()), "420")
        .await
        .expect("a SecretProviderClass without cloudName mounts from Azure Stack");
    assert_eq!(response.files[0].contents, b"stack-value");
    assert!(
        fake.requests()
            .iter()
            .any(|r| r.host == "stackvault.vault.stack.local")
    );
    let _ = child.kill();
    let _ = child.wait();

    // Without the variable, per-class files allowed: starts (every class must name a file).
    let socket = dir.path().join("azure2.sock");
    let mut child = start_with_env(&socket, &fake.url(), &[], &["--cloud-name=AzureStackCloud"])
        .expect("starts: SecretProviderClasses can name cloudEnvFileName");
    let mut driver = Driver::connect(&socket).await;
    let e = driver
        .mount(&attributes(None, None), Some(&secrets()), "420")
        .await
        .unwrap_err();
    assert!(e.message().contains("cloudEnvFileName"), "{}", e.message());
    let _ = child.kill();
    let _ = child.wait();

    // Start-up errors: no file can exist; the variable names a bad, special or procfs file.
    let bad = files.root.join("bad.json").display().to_string();
    let fifo = files.root.join("fifo").display().to_string();
    for (env, extra, want) in [
        (
            vec![],
            vec!["--cloud-name=AzureStackCloud", "--cloud-env-file-dir="],
            "set AZURE_ENVIRONMENT_FILEPATH",
        ),
        (
            vec![("AZURE_ENVIRONMENT_FILEPATH", bad.as_str())],
            vec!["--cloud-name=AzureStackCloud"],
            "keyVaultDNSSuffix is not a DNS suffix",
        ),
        (
            vec![("AZURE_ENVIRONMENT_FILEPATH", fifo.as_str())],
            vec!["--cloud-name=AzureStackCloud"],
            "not a regular file",
        ),
        (
            vec![("AZURE_ENVIRONMENT_FILEPATH", "/proc/self/environ")],
            vec!["--cloud-name=AzureStackCloud"],
            "pseudo filesystem",
        ),
        (
            vec![],
            vec!["--cloud-env-file-dir=relative/dir"],
            "--cloud-env-file-dir",
        ),
    ] {
        let socket = dir.path().join("fail.sock");
        let started = Instant::now();
        let stderr = start_with_env(&socket, &fake.url(), &env, &extra)
            .err()
            .unwrap_or_else(|| panic!("{env:?} {extra:?} must not start"));
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(stderr.contains(want), "{env:?} {extra:?}: {stderr}");
        assert!(!stderr.contains("LEAKED"), "{stderr}");
    }
}
