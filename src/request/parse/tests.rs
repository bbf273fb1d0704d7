//! Unit tests of `parse.rs`, kept beside it so the module itself stays short.

use rand::{Rng, SeedableRng, rngs::StdRng};

use super::*;
use crate::request::{
    IDENTITY_BINDING_AUDIENCE, IdentityRequest, MAX_OBJECTS_YAML_BYTES, ObjectType,
    WORKLOAD_IDENTITY_AUDIENCE,
};

const CLIENT_SECRET: &str = "Zq8~s3cr3t-VALUE.never_print";
const JWT: &str =
    "eyJhbGciOiJSUzI1NiIsImtpZCI6InRlc3QifQ.eyJzdWIiOiJzeXN0ZW06c2EifQ.SIGNATURE-never-print";
const CID: &str = "00000000-0000-4000-8000-00000000c1d0";
const WI_CLIENT: &str = "00000000-0000-4000-8000-0000000000a1";
const SPID: &str = "00000000-0000-4000-8000-0000000000b2";
const UAMI: &str = "00000000-0000-4000-8000-0000000000c3";
const OBJECTS: &str = "array:\n  - |\n    objectName: secret1\n    objectType: secret\n";

fn map(pairs: &[(&str, &str)]) -> Parameters {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Pod info, vault, tenant: what every valid request has.
fn base(extra: &[(&str, &str)]) -> Parameters {
    let mut p = map(&[
        ("csi.storage.k8s.io/pod.name", "pod1"),
        ("csi.storage.k8s.io/pod.namespace", "ns1"),
        ("keyvaultName", "testKV"),
        ("tenantId", "tid"),
    ]);
    p.extend(map(extra));
    p
}

fn tokens(audience: &str) -> String {
    serde_json::json!({ audience: { "token": JWT, "expirationTimestamp": "2099-01-01T00:00:00Z" } })
        .to_string()
}

fn no_env(_: &str) -> Option<OsString> {
    None
}

fn run(params: &Parameters, secrets: Option<&Parameters>) -> Result<MountRequest, RequestError> {
    parse_with_env(
        params,
        secrets,
        0o644,
        &RequestDefaults::default(),
        &no_env,
        &load,
    )
}

fn load(file: &EnvFile) -> Result<CloudEnvironment, String> {
    file.load_blocking()
}

/// Defaults with `dir` as the allowed environment-file directory.
fn allowing(dir: &std::path::Path, cloud_name: &str) -> RequestDefaults {
    RequestDefaults {
        cloud_name: cloud_name.into(),
        cloud_env_file_dir: Some(dir.to_path_buf()),
        ..RequestDefaults::default()
    }
}

fn err(params: &Parameters, secrets: Option<&Parameters>) -> String {
    let e = run(params, secrets).unwrap_err().0;
    assert!(
        !e.contains(CLIENT_SECRET) && !e.contains(JWT) && !e.contains("SIGNATURE"),
        "leak: {e}"
    );
    e
}

fn vm(extra: &[(&str, &str)]) -> Parameters {
    let mut p = base(&[("useVMManagedIdentity", "true"), ("objects", OBJECTS)]);
    p.extend(map(extra));
    p
}

#[test]
fn upstream_parameter_cases() {
    // §7 A, in upstream's evaluation order.
    let pod = [("csi.storage.k8s.io/pod.name", "pod1")];
    assert!(err(&map(&[]), None).contains("pod name is not provided"));
    assert!(err(&map(&pod), None).contains("pod namespace is not provided"));
    let p = map(&[
        ("csi.storage.k8s.io/pod.name", "pod1"),
        ("csi.storage.k8s.io/pod.namespace", "ns1"),
    ]);
    assert!(err(&p, None).contains("keyvaultName is not provided"));
    let mut p2 = p.clone();
    p2.insert("keyvaultName".into(), "testKV".into());
    assert!(err(&p2, None).contains("tenantId is not provided"));
    assert!(err(&base(&[("usePodIdentity", "tru")]), None)
            .contains("failed to parse usePodIdentity flag, error: strconv.ParseBool: parsing \"tru\": invalid syntax"));
    assert!(err(&base(&[("usePodIdentity", "false"), ("useVMManagedIdentity", "tru")]), None)
            .contains("failed to parse useVMManagedIdentity flag, error: strconv.ParseBool: parsing \"tru\": invalid syntax"));
    assert!(
        err(&base(&[("cloudName", "AzureCloud1")]), None)
            .contains("cloudName AzureCloud1 is not valid")
    );
    let e = err(
        &base(&[
            ("cloudName", "AzureStackCloud"),
            ("cloudEnvFileName", "/etc/kubernetes/akscustom.json"),
        ]),
        None,
    );
    assert!(e.contains("cloudName AzureStackCloud is not valid, error: open /etc/kubernetes/akscustom.json: no such file or directory"), "{e}");
    assert!(err(&base(&[("useVMManagedIdentity", "true")]), None).contains("objects is not set"));
    let bare = "- |\n  objectName: secret1\n  objectType: secret\n  objectVersion: \"\"";
    assert!(
        err(&vm(&[("objects", bare)]), None).contains("failed to yaml unmarshal objects, error:")
    );
    assert!(
        run(&vm(&[("objects", "\n      array:")]), None)
            .unwrap()
            .objects
            .is_empty()
    );
    let pkcs = "array:\n  - |\n    objectName: secret1\n    objectType: secret\n    objectFormat: pkcs\n    objectVersion: \"\"";
    assert!(
        err(&vm(&[("objects", pkcs)]), None)
            .contains("object secret/secret1: invalid objectFormat \"pkcs\", should be PEM or PFX")
    );
    let utf16 = "array:\n  - |\n    objectName: secret1\n    objectType: secret\n    objectEncoding: utf-16";
    assert!(
        err(&vm(&[("objects", utf16)]), None)
            .contains("invalid objectEncoding \"utf-16\", should be hex, base64 or utf-8")
    );
    let binding = tokens(IDENTITY_BINDING_AUDIENCE);
    let proxy = [
        ("useAzureTokenProxy", "true"),
        ("objects", OBJECTS),
        ("keyvaultName", "test-vault"),
    ];
    let mut p = base(&proxy);
    p.insert(SERVICE_ACCOUNT_TOKENS.into(), binding.clone());
    assert!(err(&p, None).contains("clientID is required"));
    assert!(
        err(
            &base(&[("useAzureTokenProxy", "invalid-value"), ("clientID", CID)]),
            None
        )
        .contains("failed to parse useAzureTokenProxy")
    );
    let e = err(
        &base(&[
            ("useAzureTokenProxy", "true"),
            ("clientID", CID),
            ("objects", OBJECTS),
        ]),
        None,
    );
    assert!(
        e.contains("service account tokens are required for identity binding")
            && e.contains("tokenRequests"),
        "{e}"
    );
    let e = err(
        &base(&[("usePodIdentity", "true"), ("useAzureTokenProxy", "true")]),
        None,
    );
    assert!(e.contains("only one identity mode can be enabled at a time: usePodIdentity, useVMManagedIdentity, or useAzureTokenProxy"), "{e}");
    assert!(
        err(
            &base(&[("usePodIdentity", "1"), ("useVMManagedIdentity", "T")]),
            None
        )
        .contains("only one identity mode")
    );
}

#[test]
fn auth_errors_come_before_objects_errors() {
    let e = err(&base(&[("objects", "garbage: [")]), None);
    assert!(e.contains("failed to build auth config for mode None: failed to get credentials, nodePublishSecretRef secret is not set"), "{e}");
}

#[test]
fn tenant_precedence_and_trimming() {
    // §7 J 45.
    let r = run(&vm(&[("tenantId", " test ")]), None).unwrap();
    assert_eq!(r.tenant_id, "test");
    let r = run(&vm(&[("tenantId", "old"), ("tenantID", " new ")]), None).unwrap();
    assert_eq!(r.tenant_id, "new");
    let r = run(&vm(&[("tenantId", "old"), ("tenantID", "  ")]), None).unwrap();
    assert_eq!(r.tenant_id, "old");
    let r = run(
        &vm(&[
            ("csi.storage.k8s.io/pod.name", " pod1 "),
            ("csi.storage.k8s.io/pod.namespace", "\tns1\n"),
            ("keyvaultName", " testKV "),
            ("useVMManagedIdentity", " true "),
            (
                "userAssignedIdentityID",
                " 00000000-0000-4000-8000-0000000000c3 ",
            ),
            ("cloudName", " azurechinacloud "),
            ("secretProviderClass", " spc "),
        ]),
        None,
    )
    .unwrap();
    assert_eq!(
        (
            r.pod.name.as_str(),
            r.pod.namespace.as_str(),
            r.vault_name.as_str()
        ),
        ("pod1", "ns1", "testKV")
    );
    assert_eq!(r.cloud.name, "AzureChinaCloud");
    assert_eq!(r.vault_url(), "https://testKV.vault.azure.cn/");
    assert_eq!(r.secret_provider_class.as_deref(), Some("spc"));
    assert!(
        matches!(r.identity, IdentityRequest::VmManagedIdentity { user_assigned_identity_id: Some(ref id) } if id == UAMI)
    );
}

#[test]
fn bool_spellings() {
    // §7 J 46.
    for on in ["true", "True", "TRUE", "1", "t", "T", " true "] {
        assert!(
            matches!(
                run(&vm(&[("useVMManagedIdentity", on)]), None)
                    .unwrap()
                    .identity,
                IdentityRequest::VmManagedIdentity { .. }
            ),
            "{on}"
        );
    }
    for off in ["false", "FALSE", "False", "0", "f", "F", ""] {
        let e = err(&vm(&[("useVMManagedIdentity", off)]), None);
        assert!(
            e.contains("nodePublishSecretRef secret is not set"),
            "{off}: {e}"
        );
    }
    for bad in ["yes", "on", "tRUE", "2", "invalid"] {
        assert!(
            err(&vm(&[("useVMManagedIdentity", bad)]), None)
                .contains("failed to parse useVMManagedIdentity flag"),
            "{bad}"
        );
    }
    let long = "x".repeat(10_000);
    assert!(err(&vm(&[("usePodIdentity", &long)]), None).len() < 300);
}

#[test]
fn each_identity_mode() {
    let wi = tokens(WORKLOAD_IDENTITY_AUDIENCE);
    let sp = map(&[("clientid", SPID), ("clientsecret", CLIENT_SECRET)]);
    let objects = [("objects", OBJECTS)];

    let r = run(
        &base(&[("usePodIdentity", "true"), ("objects", OBJECTS)]),
        Some(&sp),
    )
    .unwrap();
    assert!(matches!(r.identity, IdentityRequest::PodIdentity));
    assert_eq!(r.identity.mode_name(), "pod_identity");

    let r = run(&vm(&[]), None).unwrap();
    assert!(matches!(
        r.identity,
        IdentityRequest::VmManagedIdentity {
            user_assigned_identity_id: None
        }
    ));

    let mut p = base(&[("clientID", WI_CLIENT), ("objects", OBJECTS)]);
    p.insert(SERVICE_ACCOUNT_TOKENS.into(), wi.clone());
    match run(&p, Some(&sp)).unwrap().identity {
        IdentityRequest::WorkloadIdentity {
            client_id,
            service_account_token,
        } => {
            assert_eq!(client_id, WI_CLIENT);
            assert_eq!(service_account_token.expose(), JWT);
        }
        other => panic!("{other:?}"),
    }

    let mut p = base(&[
        ("clientID", CID),
        ("useAzureTokenProxy", "true"),
        ("objects", OBJECTS),
    ]);
    p.insert(
        SERVICE_ACCOUNT_TOKENS.into(),
        tokens(IDENTITY_BINDING_AUDIENCE),
    );
    assert!(
        matches!(run(&p, None).unwrap().identity, IdentityRequest::AzureTokenProxy { ref client_id, .. } if client_id == CID)
    );

    match run(&base(&objects), Some(&sp)).unwrap().identity {
        IdentityRequest::ServicePrincipalSecret {
            client_id,
            client_secret,
        } => {
            assert_eq!(client_id, SPID);
            assert_eq!(client_secret.expose(), CLIENT_SECRET);
        }
        other => panic!("{other:?}"),
    }
    let cert = map(&[
        ("ClientID", SPID),
        ("ClientCert", "-----BEGIN CERTIFICATE-----"),
    ]);
    let r = run(&base(&objects), Some(&cert)).unwrap();
    assert!(
        matches!(r.identity, IdentityRequest::ServicePrincipalCertificate { ref certificate, .. } if certificate.expose().starts_with("-----BEGIN"))
    );
}

#[test]
fn client_id_demands_tokens_in_every_mode() {
    // §3.2: pod identity and VM identity too.
    for mode in ["usePodIdentity", "useVMManagedIdentity"] {
        let e = err(
            &base(&[(mode, "true"), ("clientID", CID), ("objects", OBJECTS)]),
            None,
        );
        assert!(
            e.contains("service account tokens not found") && e.contains("tokenRequests"),
            "{e}"
        );
        let mut p = base(&[(mode, "true"), ("clientID", CID), ("objects", OBJECTS)]);
        p.insert(
            SERVICE_ACCOUNT_TOKENS.into(),
            tokens(WORKLOAD_IDENTITY_AUDIENCE),
        );
        assert!(run(&p, None).is_ok());
    }
    // No fallback to the service principal when clientID is set.
    let sp = map(&[("clientid", SPID), ("clientsecret", CLIENT_SECRET)]);
    let e = err(&base(&[("clientID", CID), ("objects", OBJECTS)]), Some(&sp));
    assert!(
        e.contains("failed to build auth config for mode None")
            && e.contains("api://AzureADTokenExchange"),
        "{e}"
    );
    for bad in [
        "invalid",
        r#"{"aud1":{"token":"x"}}"#,
        r#"{"api://AzureADTokenExchange":{"token":12345}}"#,
    ] {
        let e = err(
            &base(&[
                ("clientID", CID),
                ("objects", OBJECTS),
                (SERVICE_ACCOUNT_TOKENS, bad),
            ]),
            None,
        );
        assert!(e.contains("tokenRequests"), "{e}");
    }
}

#[test]
fn tokens_may_come_in_secrets() {
    let secrets = map(&[(SERVICE_ACCOUNT_TOKENS, &tokens(WORKLOAD_IDENTITY_AUDIENCE))]);
    let r = run(
        &base(&[("clientID", CID), ("objects", OBJECTS)]),
        Some(&secrets),
    )
    .unwrap();
    assert!(
        matches!(r.identity, IdentityRequest::WorkloadIdentity { ref service_account_token, .. } if service_account_token.expose() == JWT)
    );
}

#[test]
fn service_principal_errors() {
    // §7 K 51, 52.
    assert!(
        err(&base(&[("objects", OBJECTS)]), None)
            .contains("nodePublishSecretRef secret is not set")
    );
    assert!(
        err(&base(&[("objects", OBJECTS)]), Some(&map(&[])))
            .contains("could not find clientid in secrets")
    );
    let only_secret = map(&[("clientsecret", CLIENT_SECRET)]);
    assert!(
        err(&base(&[("objects", OBJECTS)]), Some(&only_secret))
            .contains("could not find clientid in secrets")
    );
    let only_id = map(&[("clientid", SPID)]);
    assert!(
        err(&base(&[("objects", OBJECTS)]), Some(&only_id))
            .contains("could not find clientsecret in secrets")
    );
    let empty_secret = map(&[("clientid", SPID), ("clientsecret", "  ")]);
    assert!(
        err(&base(&[("objects", OBJECTS)]), Some(&empty_secret))
            .contains("could not find clientsecret in secrets")
    );
}

#[test]
fn objects_may_name_their_own_vault() {
    let yaml = "array:\n  - |\n    objectName: a\n    objectType: secret\n  - |\n    objectName: a\n    objectType: secret\n    objectAlias: a2\n    keyvaultName: Other-KV\n  - |\n    objectName: b\n    objectType: key\n    keyvaultName: TESTkv\n";
    let r = run(&vm(&[("objects", yaml)]), None).unwrap();
    let ids: Vec<String> = r.objects.iter().map(ObjectSpec::id).collect();
    assert_eq!(ids, ["secret/a", "secret/a@other-kv", "key/b"]);
    assert_eq!(r.objects[1].vault.as_deref(), Some("other-kv"));
    assert_eq!(r.objects[1].to_string(), "secret/a@other-kv");
    assert_eq!(r.objects[1].vault_name(&r), "other-kv");
    assert_eq!(
        r.objects[2].vault, None,
        "the SecretProviderClass's vault named again"
    );
    assert_eq!(r.objects[2].vault_name(&r), "testKV");
    let bad = "array:\n  - |\n    objectName: a\n    objectType: secret\n    keyvaultName: kv_1\n";
    let e = err(&vm(&[("objects", bad)]), None);
    assert!(
        e.starts_with(
            "object secret/a: invalid keyvaultName \"kv_1\": Invalid vault name, must match"
        ),
        "{e}"
    );
    let collide = "array:\n  - |\n    objectName: a\n    objectType: secret\n  - |\n    objectName: a\n    objectType: secret\n    keyvaultName: other-kv\n";
    let e = err(&vm(&[("objects", collide)]), None);
    assert!(
            e.contains("its file collides with object secret/a at path \"a\"; give one of them another objectAlias"),
            "{e}"
        );
    let many = |n: usize| {
        let mut yaml = String::from("array:\n");
        for i in 0..n {
            yaml.push_str(&format!(
                "  - |\n    objectName: s{i}\n    objectType: secret\n    keyvaultName: vault-{i}\n"
            ));
        }
        yaml
    };
    assert!(run(&vm(&[("objects", &many(MAX_VAULTS_PER_MOUNT - 1))]), None).is_ok());
    let e = err(&vm(&[("objects", &many(MAX_VAULTS_PER_MOUNT))]), None);
    assert!(
        e.starts_with("object secret/s15@vault-15: the mount reads more than 16 Key Vaults"),
        "{e}"
    );
}

#[test]
fn vault_name_checked_only_with_objects() {
    for (name, want) in [
        ("kv", "must be between 3 and 24 chars"),
        ("kv_test", "must match [-a-zA-Z0-9]{3,24}"),
        (&"k".repeat(25), "between 3 and 24"),
    ] {
        let e = err(&vm(&[("keyvaultName", name)]), None);
        assert!(
            e.contains("invalid keyvaultName") && e.contains(want),
            "{e}"
        );
        assert!(run(&vm(&[("keyvaultName", name), ("objects", "array:")]), None).is_ok());
    }
    for name in ["abc", "my-vault-01", &"k".repeat(24)] {
        assert!(run(&vm(&[("keyvaultName", name)]), None).is_ok(), "{name}");
    }
}

#[test]
fn azure_stack_env_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("custom.json");
    std::fs::write(
            &path,
            r#"{"name":"AzureStackCloud","activeDirectoryEndpoint":"https://login.stack.local/","keyVaultEndpoint":"https://vault.stack.local/","keyVaultDNSSuffix":"vault.stack.local"}"#,
        )
        .unwrap();
    let file = path.to_str().unwrap();
    let public = allowing(dir.path(), "AzurePublicCloud");
    // From the parameter; the environment variable is not consulted.
    let p = vm(&[("cloudName", "azurestackcloud"), ("cloudEnvFileName", file)]);
    let r = parse_with_env(
        &p,
        None,
        0o644,
        &public,
        &|_| Some("/nonexistent".into()),
        &load,
    )
    .unwrap();
    assert_eq!(r.vault_url(), "https://testKV.vault.stack.local/");
    assert_eq!(
        r.cloud.active_directory_endpoint,
        "https://login.stack.local/"
    );
    // Outside the allowed directory (the default /etc/kubernetes): refused before any read.
    let e = err(&p, None);
    assert!(
        e.contains("cloudName azurestackcloud is not valid, error: cloudEnvFileName")
            && e.ends_with("not inside the allowed directory /etc/kubernetes"),
        "{e}"
    );
    // Per-class files turned off.
    let off = RequestDefaults {
        cloud_env_file_dir: None,
        ..RequestDefaults::default()
    };
    let e = parse_with_env(&p, None, 0o644, &off, &no_env, &load)
        .unwrap_err()
        .0;
    assert!(e.contains("--cloud-env-file-dir is empty"), "{e}");
    // Without the parameter: AZURE_ENVIRONMENT_FILEPATH, as upstream, from any directory.
    let p = vm(&[("cloudName", "AzureStackCloud")]);
    let env = |name: &str| (name == AZURE_ENVIRONMENT_FILEPATH).then(|| OsString::from(file));
    let r = parse_with_env(&p, None, 0o644, &RequestDefaults::default(), &env, &load).unwrap();
    assert_eq!(r.cloud.key_vault_resource(), "https://vault.stack.local");
    // Neither.
    assert!(err(&p, None).contains("cloudName AzureStackCloud is not valid"));
    let e = parse_with_env(&p, None, 0o644, &off, &no_env, &load)
        .unwrap_err()
        .0;
    assert!(
        e.contains("the operator must set AZURE_ENVIRONMENT_FILEPATH"),
        "{e}"
    );
    // The default cloud comes from --cloud-name; a file parameter alone does not switch clouds.
    let p = vm(&[("cloudEnvFileName", file)]);
    let gov = allowing(dir.path(), "AzureUSGovernmentCloud");
    let r = parse_with_env(&p, None, 0o644, &gov, &no_env, &load).unwrap();
    assert_eq!(r.cloud.key_vault_dns_suffix, "vault.usgovcloudapi.net");
    // ... and is ignored for a built-in cloud, wherever it points (as upstream).
    let p = vm(&[("cloudEnvFileName", "/proc/self/environ")]);
    assert!(run(&p, None).is_ok());
    let p = vm(&[("cloudEnvFileName", file)]);
    let stack = allowing(dir.path(), "AzureStackCloud");
    assert_eq!(
        parse_with_env(&p, None, 0o644, &stack, &no_env, &load)
            .unwrap()
            .cloud
            .key_vault_dns_suffix,
        "vault.stack.local"
    );
}

#[tokio::test]
async fn parse_mount_reads_the_file_off_the_runtime_with_upstream_error_order() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.json");
    std::fs::write(
            &good,
            r#"{"activeDirectoryEndpoint":"https://login.stack.local/","keyVaultDNSSuffix":"vault.stack.local"}"#,
        )
        .unwrap();
    let defaults = allowing(dir.path(), "AzurePublicCloud");
    let raw = |params: &Parameters| pb::MountRequest {
        attributes: serde_json::to_string(params).unwrap(),
        secrets: "null".into(),
        permission: "420".into(),
        ..Default::default()
    };
    let stack = |file: &str, extra: &[(&str, &str)]| {
        let mut p = vm(&[("cloudName", "AzureStackCloud"), ("cloudEnvFileName", file)]);
        p.extend(map(extra));
        p
    };
    let good = good.to_str().unwrap();
    let r = parse_mount(&raw(&stack(good, &[])), &defaults)
        .await
        .unwrap();
    assert_eq!(r.vault_url(), "https://testKV.vault.stack.local/");
    let missing = dir.path().join("missing.json");
    let missing = missing.to_str().unwrap();
    // The file's problem wins over a later one (objects), as in parse.
    let p = stack(missing, &[("objects", "")]);
    let sync = parse_with_env(&p, None, 0o420, &defaults, &no_env, &load)
        .unwrap_err()
        .0;
    let e = parse_mount(&raw(&p), &defaults).await.unwrap_err().0;
    assert_eq!(e, sync);
    assert!(e.contains("no such file or directory"), "{e}");
    // An earlier problem (no tenant) wins over the file's.
    let mut p = stack(missing, &[]);
    p.remove("tenantId");
    let e = parse_mount(&raw(&p), &defaults).await.unwrap_err().0;
    assert!(e.contains("tenantId is not provided"), "{e}");
    // A good file and a later problem: the later problem.
    let e = parse_mount(&raw(&stack(good, &[("objects", "")])), &defaults)
        .await
        .unwrap_err()
        .0;
    assert!(e.contains("objects is not set"), "{e}");
}

fn request(attributes: &str, secrets: &str, permission: &str) -> pb::MountRequest {
    pb::MountRequest {
        attributes: attributes.into(),
        secrets: secrets.into(),
        target_path: "/var/lib/kubelet/pods/uid/volumes/kubernetes.io~csi/vol/mount".into(),
        permission: permission.into(),
        current_object_version: vec![],
    }
}

fn realistic_attributes() -> String {
    let objects = r#"array:
  - |
    objectName: secret1
    objectType: secret
    objectVersion: ""
  - |
    objectName: key1
    objectType: key
    objectVersion: ""
  - |
    objectName: cert1
    objectType: cert
    objectAlias: tls/cert1.pem
    filePermission: "0600"
"#;
    serde_json::json!({
        "csi.storage.k8s.io/pod.name": "busybox-secrets-store-inline",
        "csi.storage.k8s.io/pod.namespace": "default",
        "csi.storage.k8s.io/pod.uid": "9f3b1c2e-0000-4000-8000-000000000001",
        "csi.storage.k8s.io/serviceAccount.name": "workload-sa",
        "csi.storage.k8s.io/ephemeral": "true",
        "csi.storage.k8s.io/serviceAccount.tokens": tokens(WORKLOAD_IDENTITY_AUDIENCE),
        "secretProviderClass": "azure-kvname",
        "keyvaultName": "kvname",
        "tenantId": "72f988bf-86f1-41af-91ab-2d7cd011db47",
        "clientID": "b0f7a8e1-1111-2222-3333-444455556666",
        "cloudName": "",
        "usePodIdentity": "false",
        "objects": objects,
    })
    .to_string()
}

#[test]
fn realistic_mount_request() {
    for secrets in ["null", "{}", r#"{"clientid":"x","clientsecret":"y"}"#] {
        let r = parse(
            &request(&realistic_attributes(), secrets, "420"),
            &RequestDefaults::default(),
        )
        .unwrap();
        assert_eq!(r.pod.name, "busybox-secrets-store-inline");
        assert_eq!(
            r.pod.uid.as_deref(),
            Some("9f3b1c2e-0000-4000-8000-000000000001")
        );
        assert_eq!(r.pod.service_account.as_deref(), Some("workload-sa"));
        assert_eq!(r.secret_provider_class.as_deref(), Some("azure-kvname"));
        assert_eq!(r.default_mode, 0o644);
        assert_eq!(r.cloud, CloudEnvironment::public());
        assert_eq!(r.vault_url(), "https://kvname.vault.azure.net/");
        assert_eq!(r.identity.mode_name(), "workload_identity");
        let ids: Vec<_> = r.objects.iter().map(|o| o.id()).collect();
        assert_eq!(ids, ["secret/secret1", "key/key1", "cert/cert1"]);
        assert_eq!(r.objects[2].file_name(), "tls/cert1.pem");
        assert_eq!(r.objects[2].file_mode, Some(0o600));
        assert_eq!(r.objects[1].object_type, ObjectType::Key);
    }
}

#[test]
fn rotation_path_without_secret_provider_class() {
    let mut attributes: Parameters = serde_json::from_str(&realistic_attributes()).unwrap();
    attributes.remove("secretProviderClass");
    attributes.remove("csi.storage.k8s.io/ephemeral");
    let json = serde_json::to_string(&attributes).unwrap();
    let r = parse(&request(&json, "null", "420"), &RequestDefaults::default()).unwrap();
    assert_eq!(r.secret_provider_class, None);
}

#[test]
fn server_level_decoding() {
    // §7 L 56.
    let d = RequestDefaults::default();
    let a = realistic_attributes();
    assert!(
        parse(&request("", "{}", "420"), &d)
            .unwrap_err()
            .0
            .contains("failed to unmarshal attributes")
    );
    assert!(
        parse(&request(r#"{"keyvaultName":"kv"}"#, "", "420"), &d)
            .unwrap_err()
            .0
            .contains("failed to unmarshal secrets")
    );
    assert!(
        parse(&request(&a, "{}", ""), &d)
            .unwrap_err()
            .0
            .contains("failed to unmarshal file permission")
    );
    assert!(parse(&request(&a, "{}", " 420 "), &d).is_ok());
    for bad in [
        "null",
        "[]",
        "5",
        r#"{"a":1}"#,
        r#"{"a":null}"#,
        "{",
        r#""str""#,
    ] {
        assert!(
            parse(&request(bad, "{}", "420"), &d)
                .unwrap_err()
                .0
                .contains("failed to unmarshal attributes"),
            "{bad}"
        );
    }
    for bad in ["[]", r#"{"clientsecret":5}"#, "{", "true"] {
        assert!(
            parse(&request(&a, bad, "420"), &d)
                .unwrap_err()
                .0
                .contains("failed to unmarshal secrets"),
            "{bad}"
        );
    }
    for bad in ["\"420\"", "-1", "420.0", "0x1a4", "4294967296", "abc"] {
        assert!(
            parse(&request(&a, "{}", bad), &d)
                .unwrap_err()
                .0
                .contains("failed to unmarshal file permission"),
            "{bad}"
        );
    }
    assert!(parse(&request(&a, "{}", "511"), &d).is_ok());
    assert!(
        parse(&request(&a, "{}", "512"), &d)
            .unwrap_err()
            .0
            .contains("is not a file mode")
    );
    assert!(parse_parameters(&vm(&[]), None, 0o1000, &d).is_err());
    assert_eq!(parse(&request(&a, "{}", "0"), &d).unwrap().default_mode, 0);
}

#[test]
fn secret_values_never_appear_in_decoding_errors() {
    let d = RequestDefaults::default();
    let a = realistic_attributes();
    let secrets = [
        format!(r#""{CLIENT_SECRET}""#),
        format!(r#"{{"clientsecret":"{CLIENT_SECRET}","x":1}}"#),
        format!(r#"{{"clientsecret":"{CLIENT_SECRET}"#),
        format!(r#"["{CLIENT_SECRET}"]"#),
        format!(r#"{{"clientsecret":"{CLIENT_SECRET}"}}"#),
        format!(r#"{{"clientid":"a","ClientID":"b","clientsecret":"{CLIENT_SECRET}"}}"#),
    ];
    for s in &secrets {
        let result = parse(&request(&a.replace("clientID", "unused"), s, "420"), &d);
        if let Err(e) = result {
            assert!(
                !e.0.contains(CLIENT_SECRET) && !e.0.contains("never_print"),
                "{e}"
            );
        }
    }
    for attributes in [
        format!(r#""{JWT}""#),
        format!(r#"["{JWT}"]"#),
        format!(r#"{{"t":"{JWT}""#),
    ] {
        let e = parse(&request(&attributes, "{}", "420"), &d).unwrap_err().0;
        assert!(!e.contains(JWT) && !e.contains("never-print"), "{e}");
    }
}

#[test]
fn size_limits() {
    let d = RequestDefaults::default();
    let huge = format!(
        r#"{{"a":"{}"}}"#,
        "x".repeat(crate::request::MAX_ATTRIBUTES_BYTES)
    );
    let huge_secrets = format!(
        r#"{{"a":"{}"}}"#,
        "x".repeat(crate::request::MAX_SECRETS_BYTES)
    );
    assert!(
        parse(&request(&huge, "{}", "420"), &d)
            .unwrap_err()
            .0
            .contains(&format!(
                "more than the limit of {}",
                crate::request::MAX_ATTRIBUTES_BYTES
            ))
    );
    assert!(
        parse(&request(&realistic_attributes(), &huge_secrets, "420"), &d)
            .unwrap_err()
            .0
            .contains("failed to unmarshal secrets")
    );
    let objects = format!(
        "array:\n  - |\n    objectName: {}\n",
        "n".repeat(MAX_OBJECTS_YAML_BYTES)
    );
    assert!(err(&vm(&[("objects", &objects)]), None).contains("objects is"));
    // nodePublishSecretRef values and keys are bounded, and named without their values.
    let big = "k".repeat(crate::request::MAX_SECRET_VALUE_BYTES + 1);
    let secrets = map(&[("clientid", SPID), ("clientcert", &big)]);
    let e = err(&base(&[("objects", OBJECTS)]), Some(&secrets));
    assert!(
        e.contains("nodePublishSecretRef secret key \"clientcert\" is 65537 bytes")
            && !e.contains("kkkk"),
        "{e}"
    );
    let many: Parameters = (0..=crate::request::MAX_SECRET_KEYS)
        .map(|i| (format!("k{i}"), "v".to_string()))
        .collect();
    assert!(err(&base(&[("objects", OBJECTS)]), Some(&many)).contains("65 keys"));
    // A huge tenant is refused with a short message.
    let tenant = "t".repeat(900_000);
    let e = err(&vm(&[("tenantID", &tenant)]), None);
    assert!(e.starts_with("tenantId \"ttt") && e.len() < 400, "{e}");
}

fn random_text(rng: &mut StdRng, alphabet: &[u8], max: usize) -> String {
    let len = rng.random_range(0..max);
    (0..len)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
        .collect()
}

#[test]
fn malformed_inputs_are_errors_not_panics() {
    let mut rng = StdRng::seed_from_u64(0x5eed);
    let d = RequestDefaults::default();
    let json_alphabet = br#"{}[]":,\ntrufalsn0123456789.-eE"#;
    let yaml_alphabet = b"[]{}-:|>&*!?#%@ \n\t'\"abcxyz019.,";
    let valid = realistic_attributes();
    let mut cases = 0;
    for i in 0..100 {
        // Random JSON-ish bytes in every field.
        let attributes = random_text(&mut rng, json_alphabet, 200);
        let secrets = random_text(&mut rng, json_alphabet, 100);
        let permission = random_text(&mut rng, json_alphabet, 12);
        let _ = parse(&request(&attributes, &secrets, &permission), &d);
        // A valid request with one byte range damaged.
        let cut = rng.random_range(0..valid.len());
        let end = (cut + rng.random_range(1..20)).min(valid.len());
        let damaged = format!(
            "{}{}{}",
            &valid[..cut],
            random_text(&mut rng, json_alphabet, 5),
            &valid[end..]
        );
        if let Err(e) = parse(&request(&damaged, "null", "420"), &d) {
            assert!(!e.0.contains(JWT), "{e}");
        }
        // Random objects YAML, sometimes huge, sometimes deeply nested.
        let objects = match i % 4 {
            0 => random_text(&mut rng, yaml_alphabet, 400),
            1 => format!(
                "array:\n  - |\n    {}",
                random_text(&mut rng, yaml_alphabet, 300)
            ),
            2 => "[".repeat(rng.random_range(1..100_000)),
            _ => format!(
                "array:\n  - '{}'",
                "{a: ".repeat(rng.random_range(1..60_000))
            ),
        };
        let _ = run(&vm(&[("objects", &objects)]), None);
        cases += 3;
    }
    let deep = "[".repeat(100_000);
    let bomb = "a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\narray: *e\n";
    for objects in [
        deep.as_str(),
        bomb,
        &"x".repeat(1 << 20),
        "\u{0}",
        "array: !!binary AAAA",
        "array:\n  - !!binary AAAA",
    ] {
        assert!(run(&vm(&[("objects", objects)]), None).is_err());
        cases += 1;
    }
    assert!(
        parse(
            &request(&format!(r#"{{"a":{}}}"#, "[".repeat(100_000)), "{}", "420"),
            &d
        )
        .is_err()
    );
    assert!(cases >= 300);
}
