//! Unit tests of `cloud.rs`, kept beside it so the module itself stays short.

use super::*;

const STACK: &str = r#"{"Name":"MyStack","activeDirectoryEndpoint":"https://adfs.local.azurestack.external/adfs",
        "keyVaultEndpoint":"","KeyVaultDNSSuffix":"vault.local.azurestack.external","other":1}"#;

fn param(path: &Path, dir: &Path) -> EnvFile {
    EnvFile::parameter(path.to_str().unwrap(), Some(dir)).unwrap()
}

#[test]
fn built_in_clouds_any_case() {
    let cases = [
        (
            "azurepubliccloud",
            "https://login.microsoftonline.com/",
            "vault.azure.net",
        ),
        (
            "AZUREUSGOVERNMENTCLOUD",
            "https://login.microsoftonline.us/",
            "vault.usgovcloudapi.net",
        ),
        (
            "AzureChinaCloud",
            "https://login.chinacloudapi.cn/",
            "vault.azure.cn",
        ),
        (
            "azureGermanCloud",
            "https://login.microsoftonline.de/",
            "vault.microsoftazure.de",
        ),
    ];
    for (name, aad, suffix) in cases {
        let c = CloudEnvironment::from_name(name, None).unwrap();
        assert!(c.name.eq_ignore_ascii_case(name));
        assert_eq!(c.active_directory_endpoint, aad);
        assert_eq!(c.key_vault_dns_suffix, suffix);
        assert_eq!(c.key_vault_endpoint, format!("https://{suffix}/"));
        assert_eq!(c.key_vault_resource(), format!("https://{suffix}"));
    }
    assert_eq!(
        CloudEnvironment::public().vault_url("kv1"),
        "https://kv1.vault.azure.net/"
    );
    assert_eq!(CloudEnvironment::public().name, "AzurePublicCloud");
}

#[test]
fn unknown_cloud() {
    let e = CloudEnvironment::from_name("AzureCloud1", None).unwrap_err();
    assert!(
        e.contains("There is no cloud environment matching the name \"AZURECLOUD1\""),
        "{e}"
    );
}

#[test]
fn azure_stack_needs_a_file() {
    let e = CloudEnvironment::from_name("azurestackcloud", None).unwrap_err();
    assert!(
        e.contains("cloudEnvFileName") && e.contains(AZURE_ENVIRONMENT_FILEPATH),
        "{e}"
    );
    let file = EnvFile::parameter(
        "/etc/kubernetes/akscustom-nonexistent.json",
        Some(Path::new(DEFAULT_CLOUD_ENV_FILE_DIR)),
    )
    .unwrap();
    let e = CloudEnvironment::from_name("AzureStackCloud", Some(&file)).unwrap_err();
    assert!(
        e.contains("open /etc/kubernetes/akscustom-nonexistent.json: no such file or directory"),
        "{e}"
    );
}

#[test]
fn azure_stack_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("env.json");
    std::fs::write(&path, STACK).unwrap();
    let c =
        CloudEnvironment::from_name("AzureStackCloud", Some(&param(&path, dir.path()))).unwrap();
    assert_eq!(c.name, "MyStack");
    assert_eq!(
        c.active_directory_endpoint,
        "https://adfs.local.azurestack.external/adfs/"
    );
    assert_eq!(
        c.key_vault_endpoint,
        "https://vault.local.azurestack.external/"
    );
    assert_eq!(
        c.vault_url("kv"),
        "https://kv.vault.local.azurestack.external/"
    );
    // The operator's variable: any directory.
    let c = EnvFile::variable(path.as_os_str())
        .unwrap()
        .load_blocking()
        .unwrap();
    assert_eq!(c.key_vault_dns_suffix, "vault.local.azurestack.external");
}

#[test]
fn invalid_environment_files_name_the_key_never_the_value() {
    let cases: [(&[u8], &str); 10] = [
        (b"", "invalid JSON"),
        (b"[\"hidden-value\"]", "not a JSON object"),
        (b"\"hidden-value\"", "not a JSON object"),
        (
            br#"{"keyVaultDNSSuffix":"vault.x"}"#,
            "activeDirectoryEndpoint is not an absolute https URL",
        ),
        (
            br#"{"activeDirectoryEndpoint":"https://a/","keyVaultDNSSuffix":""}"#,
            "keyVaultDNSSuffix is not a DNS suffix",
        ),
        (
            br#"{"activeDirectoryEndpoint":"https://a/","keyVaultDNSSuffix":"hidden-value/b"}"#,
            "keyVaultDNSSuffix is not a DNS suffix",
        ),
        (
            br#"{"activeDirectoryEndpoint":"https://a/","keyVaultDNSSuffix":"hidden-value"}"#,
            "keyVaultDNSSuffix is not a DNS suffix",
        ),
        (
            br#"{"activeDirectoryEndpoint":5,"keyVaultDNSSuffix":"v.x"}"#,
            "activeDirectoryEndpoint is not a string",
        ),
        (
            br#"{"activeDirectoryEndpoint":"hidden-value","keyVaultDNSSuffix":"v.x"}"#,
            "activeDirectoryEndpoint is not an absolute https URL",
        ),
        (
            br#"{"activeDirectoryEndpoint":"https://u:hidden-value@a/","keyVaultDNSSuffix":"v.x"}"#,
            "activeDirectoryEndpoint is not an absolute https URL",
        ),
    ];
    for (json, want) in cases {
        let e = CloudEnvironment::from_json(json).unwrap_err();
        assert!(
            e.starts_with("not a valid Azure Stack environment file: "),
            "{e}"
        );
        assert!(e.contains(want), "{e}");
        assert!(!e.contains("hidden"), "{e}");
    }
    for suffix in [
        "-a.b",
        "a-.b",
        "a..b",
        ".a.b",
        "a.b.",
        &"a".repeat(64),
        "a b.c",
        // An all-digit last label makes the host an (invalid) IPv4 address to URL parsers
        // (found by the cloud_env fuzz target).
        "v.0",
        "v.0x",
        "v.0x1f",
        "10.0.0.1",
    ] {
        assert!(!is_dns_suffix(suffix), "{suffix}");
    }
    for suffix in [
        "vault.azure.net",
        "vault.local.azurestack.external",
        "v-1.x2",
    ] {
        assert!(is_dns_suffix(suffix), "{suffix}");
    }
    let bad_name = format!(
        r#"{{"name":"{}","activeDirectoryEndpoint":"https://a/","keyVaultDNSSuffix":"v.x"}}"#,
        "n".repeat(200)
    );
    let e = CloudEnvironment::from_json(bad_name.as_bytes()).unwrap_err();
    assert!(e.contains("name is longer") && !e.contains("nnnn"), "{e}");
}

#[test]
fn parameter_paths_are_checked_before_the_filesystem() {
    let dir = Path::new("/etc/kubernetes");
    for path in [
        "/etc/passwd",
        "/etc/kubernetesX/a.json",
        "/etc/kubernetes/../passwd",
        "/etc/kubernetes/a/../../x",
        "etc/kubernetes/a.json",
        "kubernetes/a.json",
        "/proc/self/environ",
        "/dev/ptmx",
        "/definitely/not/there.json",
    ] {
        let e = EnvFile::parameter(path, Some(dir)).unwrap_err();
        assert!(
            e.ends_with("not inside the allowed directory /etc/kubernetes"),
            "{path}: {e}"
        );
    }
    let long = format!("/etc/kubernetes/{}", "a".repeat(5000));
    let e = EnvFile::parameter(&long, Some(dir)).unwrap_err();
    assert!(e.contains("not a file path") && e.len() < 400, "{e}");
    let e = EnvFile::parameter("/etc/kubernetes/a\0b", Some(dir)).unwrap_err();
    assert!(e.contains("not a file path"), "{e}");
    let e = EnvFile::parameter("/etc/kubernetes/a.json", None).unwrap_err();
    assert!(
        e.contains("--cloud-env-file-dir is empty") && e.contains(AZURE_ENVIRONMENT_FILEPATH),
        "{e}"
    );
    let ok = EnvFile::parameter("/etc/kubernetes/./cfg/a.json", Some(dir)).unwrap();
    assert_eq!(ok.path(), Path::new("/etc/kubernetes/./cfg/a.json"));
}

#[test]
// mkfifo(3) has no safe wrapper in std.
#[allow(unsafe_code)]
fn only_regular_files_inside_the_directory_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret.json");
    std::fs::write(&secret, STACK).unwrap();

    // A ConfigMap volume: `file -> ..data/file`, `..data -> ..2026_01_01`.
    std::fs::create_dir(root.join("..2026_01_01")).unwrap();
    std::fs::write(root.join("..2026_01_01/env.json"), STACK).unwrap();
    std::os::unix::fs::symlink("..2026_01_01", root.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/env.json", root.join("env.json")).unwrap();
    let c = param(&root.join("env.json"), root).load_blocking().unwrap();
    assert_eq!(c.name, "MyStack");

    let outside_error = format!("not inside the allowed directory {}", root.display());
    // Symlinks out: absolute, relative, to procfs.
    std::os::unix::fs::symlink(&secret, root.join("abs.json")).unwrap();
    let rel = format!(
        "../{}/secret.json",
        outside.path().file_name().unwrap().to_str().unwrap()
    );
    std::os::unix::fs::symlink(&rel, root.join("rel.json")).unwrap();
    std::os::unix::fs::symlink("/proc/self/environ", root.join("environ")).unwrap();
    std::os::unix::fs::symlink("/proc/self/fd/1", root.join("stdout")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/x.json", root.join("dangling")).unwrap();
    for name in ["abs.json", "rel.json", "environ", "stdout", "dangling"] {
        let e = param(&root.join(name), root).load_blocking().unwrap_err();
        assert!(e.ends_with(&outside_error), "{name}: {e}");
    }

    // Not regular files.
    let fifo = root.join("fifo");
    let c_fifo = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_fifo.as_ptr(), 0o600) }, 0);
    std::fs::create_dir(root.join("sub")).unwrap();
    for path in [fifo.clone(), root.join("sub"), root.to_path_buf()] {
        let e = param(&path, root).load_blocking().unwrap_err();
        assert!(e.ends_with("not a regular file"), "{}: {e}", path.display());
    }
    // The operator's variable gets the same type checks, and procfs is refused.
    for path in [
        "/proc/self/environ",
        "/proc/self/status",
        "/sys/kernel/uevent_seqnum",
    ] {
        let e = EnvFile::variable(OsStr::new(path))
            .unwrap()
            .load_blocking()
            .unwrap_err();
        assert!(e.contains("kernel pseudo filesystem"), "{path}: {e}");
    }
    for path in [
        fifo.as_os_str(),
        OsStr::new("/dev/ptmx"),
        OsStr::new("/dev/null"),
    ] {
        let e = EnvFile::variable(path)
            .unwrap()
            .load_blocking()
            .unwrap_err();
        assert!(e.contains("not a regular file"), "{path:?}: {e}");
    }

    // Size: refused by the size check, whatever is in it.
    let big = root.join("big.json");
    std::fs::write(&big, vec![b' '; MAX_ENVIRONMENT_FILE_BYTES as usize + 1]).unwrap();
    let e = param(&big, root).load_blocking().unwrap_err();
    assert!(e.ends_with("larger than 64 KiB"), "{e}");
    let exact = root.join("exact.json");
    let mut body = STACK.as_bytes().to_vec();
    body.resize(MAX_ENVIRONMENT_FILE_BYTES as usize, b' ');
    std::fs::write(&exact, body).unwrap();
    assert!(param(&exact, root).load_blocking().is_ok());

    // A missing file inside the directory: upstream's message.
    let e = param(&root.join("missing.json"), root)
        .load_blocking()
        .unwrap_err();
    assert!(e.contains("no such file or directory"), "{e}");

    // Content is never quoted.
    let bad = root.join("bad.json");
    std::fs::write(
        &bad,
        r#"{"activeDirectoryEndpoint":"https://a/","keyVaultDNSSuffix":"TOP-SECRET/x"}"#,
    )
    .unwrap();
    let e = param(&bad, root).load_blocking().unwrap_err();
    assert!(
            e.ends_with("not a valid Azure Stack environment file: keyVaultDNSSuffix is not a DNS suffix such as vault.azure.net")
                && !e.contains("TOP-SECRET"),
            "{e}"
        );
}

#[test]
fn startup_checks() {
    use super::super::RequestDefaults;
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("env.json");
    std::fs::write(&good, STACK).unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"keyVaultDNSSuffix":"SECRET-VALUE"}"#).unwrap();
    let stack = RequestDefaults {
        cloud_name: "AzureStackCloud".into(),
        ..RequestDefaults::default()
    };
    let off = RequestDefaults {
        cloud_env_file_dir: None,
        ..stack.clone()
    };
    assert_eq!(check_startup(&stack, Some(good.as_os_str())), Ok(None));
    assert_eq!(check_startup(&off, Some(good.as_os_str())), Ok(None));
    let note = check_startup(&stack, None).unwrap().unwrap();
    assert!(note.contains("cloudEnvFileName"), "{note}");
    let e = check_startup(&off, None).unwrap_err();
    assert!(e.contains(AZURE_ENVIRONMENT_FILEPATH), "{e}");
    let e = check_startup(&stack, Some(bad.as_os_str())).unwrap_err();
    assert!(
        e.contains("keyVaultDNSSuffix is not a DNS suffix") && !e.contains("SECRET"),
        "{e}"
    );
    let e = check_startup(&stack, Some(OsStr::new("/proc/self/environ"))).unwrap_err();
    assert!(e.contains("pseudo filesystem"), "{e}");
    assert_eq!(check_startup(&RequestDefaults::default(), None), Ok(None));
    let unknown = RequestDefaults {
        cloud_name: "AzureCloud1".into(),
        ..RequestDefaults::default()
    };
    assert!(
        check_startup(&unknown, None)
            .unwrap_err()
            .starts_with("--cloud-name: ")
    );
    let relative = RequestDefaults {
        cloud_env_file_dir: Some("etc/kubernetes".into()),
        ..RequestDefaults::default()
    };
    assert!(check_startup(&relative, None).is_err());
}

/// A short in-process run of the `cloud_env` fuzz target's property on mutated seeds: never a
/// panic, accepted files are well-formed, refusals are short and never quote the input.
#[test]
fn mutated_environment_files_never_panic_or_leak() {
    use rand::{Rng, SeedableRng};
    let seeds: Vec<Vec<u8>> = std::fs::read_dir(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fuzz/corpus/cloud_env"
    ))
    .unwrap()
    .map(|entry| std::fs::read(entry.unwrap().path()).unwrap())
    .collect();
    assert!(seeds.len() >= 5);
    let alphabet = b"{}[]\":,. -/\\0aZ\x00\xff";
    let mut rng = rand::rngs::StdRng::seed_from_u64(10);
    for round in 0..20_000 {
        let mut input = seeds[round % seeds.len()].clone();
        for _ in 0..rng.random_range(1..4) {
            let at = rng.random_range(0..=input.len());
            match rng.random_range(0..3) {
                0 if at < input.len() => {
                    input.remove(at);
                }
                1 => input.insert(at, alphabet[rng.random_range(0..alphabet.len())]),
                _ => input.truncate(at),
            }
        }
        match CloudEnvironment::from_json(&input) {
            Ok(cloud) => {
                assert!(cloud.active_directory_endpoint.ends_with('/'));
                assert!(cloud.key_vault_endpoint.ends_with('/'));
                let vault = url::Url::parse(&cloud.vault_url("kv1")).unwrap();
                assert!(
                    vault
                        .host_str()
                        .unwrap()
                        .ends_with(&cloud.key_vault_dns_suffix.to_ascii_lowercase())
                );
            }
            Err(e) => {
                assert!(
                    e.starts_with("not a valid Azure Stack environment file: "),
                    "{e}"
                );
                assert!(e.len() < 256 && !e.contains("azurestack.external"), "{e}");
            }
        }
    }
}

#[tokio::test]
async fn load_runs_on_the_blocking_pool() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("env.json");
    std::fs::write(&path, STACK).unwrap();
    let c = param(&path, dir.path()).load().await.unwrap();
    assert_eq!(c.name, "MyStack");
}
