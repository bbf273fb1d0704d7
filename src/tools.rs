//! Operator tools, for debugging a SecretProviderClass without a cluster.
//!
//! - `check`: validates SecretProviderClass manifests with the same parser and validator `Mount`
//!   uses, filling in the pod information the driver would add (placeholders, so identity
//!   parameters are checked for shape, not against Entra ID).
//! - `mount`: performs a real mount through the provider (same code path as the gRPC `Mount`,
//!   without the socket) and writes the files and modes as the driver would.
//! - `probe`: calls `Version` on a running provider's endpoint over gRPC, as the driver does
//!   before its first mount; for checking an image or a sidecar without grpcurl.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use std::time::Duration;

use serde_json::{Map, Value};

use crate::flags::MountArgs;
use crate::pb;
use crate::provider::Provider;
use crate::request::{self, RequestDefaults};

/// A SecretProviderClass read from a manifest.
#[derive(Clone, Debug, PartialEq)]
pub struct SecretProviderClass {
    pub name: String,
    pub namespace: Option<String>,
    pub provider: String,
    pub parameters: BTreeMap<String, String>,
}

/// Every SecretProviderClass document in a YAML text (other kinds are skipped).
pub fn read_secret_provider_classes(yaml: &str) -> Result<Vec<SecretProviderClass>, String> {
    let documents: Vec<Value> =
        serde_saphyr::from_multiple(yaml).map_err(|e| format!("not valid YAML: {e}"))?;
    let mut classes = Vec::new();
    for document in documents {
        if document.get("kind").and_then(Value::as_str) != Some("SecretProviderClass") {
            continue;
        }
        let name = document
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("<unnamed>")
            .to_string();
        let namespace = document
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(str::to_string);
        let provider = document
            .pointer("/spec/provider")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let mut parameters = BTreeMap::new();
        if let Some(map) = document
            .pointer("/spec/parameters")
            .and_then(Value::as_object)
        {
            for (key, value) in map {
                let Some(text) = value.as_str() else {
                    return Err(format!(
                        "SecretProviderClass {name}: parameter {key} must be a string (quote it)"
                    ));
                };
                parameters.insert(key.clone(), text.to_string());
            }
        }
        classes.push(SecretProviderClass {
            name,
            namespace,
            provider,
            parameters,
        });
    }
    Ok(classes)
}

/// Pod information the driver adds to the parameters.
#[derive(Clone, Debug)]
pub struct PodContext {
    pub pod_name: String,
    pub namespace: String,
    pub service_account: String,
    /// `csi.storage.k8s.io/serviceAccount.tokens`, as kubelet would provide it.
    pub tokens: Option<String>,
}

/// The driver's `attributes` for this class and pod.
pub fn attributes(class: &SecretProviderClass, pod: &PodContext) -> String {
    let mut map: Map<String, Value> = class
        .parameters
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let pod_info = [
        ("csi.storage.k8s.io/pod.name", pod.pod_name.as_str()),
        ("csi.storage.k8s.io/pod.namespace", pod.namespace.as_str()),
        (
            "csi.storage.k8s.io/serviceAccount.name",
            pod.service_account.as_str(),
        ),
        ("secretProviderClass", class.name.as_str()),
    ];
    for (key, value) in pod_info {
        map.insert(key.into(), Value::String(value.into()));
    }
    if let Some(tokens) = &pod.tokens {
        map.insert(
            "csi.storage.k8s.io/serviceAccount.tokens".into(),
            Value::String(tokens.clone()),
        );
    }
    Value::Object(map).to_string()
}

/// `{"<audience>": {"token": ..., "expirationTimestamp": ...}}` for both Azure audiences.
pub fn tokens_attribute(token: &str) -> String {
    // The expiry is informational here: Entra ID checks the token itself.
    let entry =
        serde_json::json!({ "token": token, "expirationTimestamp": "2099-01-01T00:00:00Z" });
    serde_json::json!({ "api://AzureADTokenExchange": entry, "api://AKSIdentityBinding": entry })
        .to_string()
}

/// Validates every SecretProviderClass in `files`; returns the report and whether all passed.
pub fn check(files: &[PathBuf], defaults: &RequestDefaults) -> (String, bool) {
    let mut report = String::new();
    let mut all_ok = true;
    for file in files {
        let classes = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read: {e}"))
            .and_then(|text| read_secret_provider_classes(&text));
        let classes = match classes {
            Ok(classes) if classes.is_empty() => Err("no SecretProviderClass document".to_string()),
            other => other,
        };
        match classes {
            Err(problem) => {
                all_ok = false;
                let _ = writeln!(report, "{}: error: {problem}", file.display());
            }
            Ok(classes) => {
                for class in classes {
                    let verdict = check_class(&class, defaults);
                    all_ok &= verdict.is_ok();
                    match verdict {
                        Ok(summary) => {
                            let _ = writeln!(
                                report,
                                "{}: {}: ok: {summary}",
                                file.display(),
                                class.name
                            );
                        }
                        Err(problem) => {
                            let _ = writeln!(
                                report,
                                "{}: {}: error: {problem}",
                                file.display(),
                                class.name
                            );
                        }
                    }
                }
            }
        }
    }
    (report, all_ok)
}

fn check_class(class: &SecretProviderClass, defaults: &RequestDefaults) -> Result<String, String> {
    if !class.provider.eq_ignore_ascii_case("azure") {
        return Err(format!(
            "spec.provider is {:?}; this provider serves \"azure\"",
            class.provider
        ));
    }
    let pod = PodContext {
        pod_name: "check".into(),
        namespace: class.namespace.clone().unwrap_or_else(|| "default".into()),
        service_account: "default".into(),
        tokens: Some(tokens_attribute("placeholder.service-account.token")),
    };
    let uses_node_secret = [
        "usePodIdentity",
        "useVMManagedIdentity",
        "useAzureTokenProxy",
        "clientID",
    ]
    .iter()
    .all(|key| {
        class
            .parameters
            .get(*key)
            .is_none_or(|v| v.trim().is_empty() || v.trim().eq_ignore_ascii_case("false"))
    });
    let secrets = if uses_node_secret {
        // The Secret is not in the manifest: a well-formed stand-in (client ids are GUIDs).
        r#"{"clientid":"00000000-0000-0000-0000-000000000000","clientsecret":"placeholder"}"#
    } else {
        "null"
    };
    let raw = pb::MountRequest {
        attributes: attributes(class, &pod),
        secrets: secrets.into(),
        permission: "420".into(),
        ..Default::default()
    };
    let parsed = request::parse(&raw, defaults).map_err(|e| e.0)?;
    let files: Vec<String> = parsed
        .objects
        .iter()
        .map(|o| {
            let mut files = vec![o.file_name()];
            files.extend(o.jmes_path.iter().map(|e| e.alias.as_str()));
            let mut line = format!("{o} → {}", files.join(" + "));
            if let Some(not_after) = &o.not_after {
                line.push_str(&format!(" (newest version not after {})", not_after.text));
            }
            line
        })
        .collect();
    Ok(format!(
        "{} object(s), identity {}: {}",
        parsed.objects.len(),
        parsed.identity.mode_name(),
        files.join(", ")
    ))
}

/// Performs a mount and writes the files under `args.out`; returns the object-version lines.
pub async fn mount(args: &MountArgs, provider: &Provider) -> Result<String, String> {
    let text =
        std::fs::read_to_string(&args.spc).map_err(|e| format!("{}: {e}", args.spc.display()))?;
    let class = read_secret_provider_classes(&text)?
        .into_iter()
        .next()
        .ok_or_else(|| format!("{}: no SecretProviderClass document", args.spc.display()))?;
    let tokens = match &args.service_account_token_file {
        Some(path) => Some(tokens_attribute(read_trimmed(path)?.as_str())),
        None => None,
    };
    let pod = PodContext {
        pod_name: args.pod_name.clone(),
        namespace: args
            .namespace
            .clone()
            .or_else(|| class.namespace.clone())
            .unwrap_or_else(|| "default".into()),
        service_account: args.service_account.clone(),
        tokens,
    };
    let secrets = match &args.secrets_file {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let map: BTreeMap<String, String> = serde_saphyr::from_str(&text)
                .map_err(|e| format!("{}: not a map of strings: {e}", path.display()))?;
            serde_json::to_string(&map).map_err(|e| e.to_string())?
        }
        None => "null".into(),
    };
    let mode = u32::from_str_radix(args.permission.trim_start_matches("0o"), 8)
        .map_err(|_| format!("--permission {:?} is not an octal mode", args.permission))?;
    let raw = pb::MountRequest {
        attributes: attributes(&class, &pod),
        secrets,
        permission: mode.to_string(),
        ..Default::default()
    };
    let response = provider
        .mount(raw, None)
        .await
        .map_err(|status| format!("mount failed ({:?}): {}", status.code(), status.message()))?;
    write_files(&args.out, &response.files)?;
    let mut lines = String::new();
    for version in &response.object_version {
        let _ = writeln!(lines, "{} {}", version.id, version.version);
    }
    Ok(lines)
}

/// Calls `Version` on `endpoint` within `timeout` (connecting included); returns the response as
/// one JSON line, or a one-line reason.
pub async fn probe(endpoint: &str, timeout: Duration) -> Result<String, String> {
    let endpoint = crate::server::parse_endpoint(endpoint).map_err(|e| e.to_string())?;
    let call = async {
        let channel = crate::telemetry::health::connect(&endpoint)
            .await
            .map_err(|e| {
                format!(
                    "cannot connect to {endpoint}: {}",
                    crate::telemetry::health::error_chain(&e)
                )
            })?;
        pb::csi_driver_provider_client::CsiDriverProviderClient::new(channel)
            .version(pb::VersionRequest {
                version: "v1alpha1".into(),
            })
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| {
                format!(
                    "Version on {endpoint} failed: {:?}: {}",
                    status.code(),
                    status.message()
                )
            })
    };
    let response = tokio::time::timeout(timeout, call)
        .await
        .map_err(|_| format!("no answer from {endpoint} within {timeout:?}"))??;
    Ok(format!(
        "{}\n",
        serde_json::json!({
            "version": response.version,
            "runtimeName": response.runtime_name,
            "runtimeVersion": response.runtime_version,
        })
    ))
}

fn read_trimmed(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Writes files with their modes, as the driver does (paths were validated as clean relative paths).
fn write_files(out: &Path, files: &[pb::File]) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    for file in files {
        let path = out.join(&file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        std::fs::write(&path, &file.contents).map_err(|e| format!("{}: {e}", path.display()))?;
        let mode = u32::try_from(file.mode).unwrap_or(0o600) & 0o777;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPC: &str = r#"
apiVersion: v1
kind: ServiceAccount
metadata: {name: app}
---
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata:
  name: azure-kvname
  namespace: team-a
spec:
  provider: azure
  parameters:
    keyvaultName: "kvname"
    tenantId: "tid"
    clientID: "cid"
    objects: |
      array:
        - |
          objectName: secret1
          objectType: secret
"#;

    #[test]
    fn reads_only_secret_provider_classes() {
        let classes = read_secret_provider_classes(SPC).unwrap();
        assert_eq!(classes.len(), 1);
        assert_eq!(classes[0].name, "azure-kvname");
        assert_eq!(classes[0].namespace.as_deref(), Some("team-a"));
        assert_eq!(classes[0].parameters["keyvaultName"], "kvname");
    }

    #[test]
    fn non_string_parameters_are_rejected() {
        let yaml = "kind: SecretProviderClass\nmetadata: {name: x}\nspec:\n  provider: azure\n  parameters:\n    usePodIdentity: false\n";
        assert!(
            read_secret_provider_classes(yaml)
                .unwrap_err()
                .contains("usePodIdentity")
        );
    }

    #[test]
    fn attributes_carry_pod_information_and_tokens() {
        let class = &read_secret_provider_classes(SPC).unwrap()[0];
        let pod = PodContext {
            pod_name: "p".into(),
            namespace: "n".into(),
            service_account: "sa".into(),
            tokens: Some(tokens_attribute("t")),
        };
        let attributes: Value = serde_json::from_str(&attributes(class, &pod)).unwrap();
        assert_eq!(attributes["csi.storage.k8s.io/pod.namespace"], "n");
        assert_eq!(attributes["secretProviderClass"], "azure-kvname");
        let tokens: Value = serde_json::from_str(
            attributes["csi.storage.k8s.io/serviceAccount.tokens"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(tokens["api://AzureADTokenExchange"]["token"], "t");
    }
}
