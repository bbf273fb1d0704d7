//! Decoding of the driver's `MountRequest` fields and evaluation of the SecretProviderClass
//! parameters, in the order the Go provider evaluates them (reference §1.2), so the first
//! complaint about a bad SecretProviderClass is the same as upstream's.
//!
//! [`parse_parameters`] works on already-decoded parameters so an offline check of a
//! SecretProviderClass's `spec.parameters` can run the very same validation.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

use super::cloud::{AZURE_ENVIRONMENT_FILEPATH, CloudEnvironment};
use super::identity::{self, IdentityInput, Mode, SERVICE_ACCOUNT_TOKENS};
use super::{
    MAX_ATTRIBUTES_BYTES, MAX_SECRETS_BYTES, MountRequest, PodInfo, RequestDefaults, RequestError, json_error,
    objects, short,
};
use crate::config::parse_go_bool;
use crate::pb;

type Parameters = BTreeMap<String, String>;

/// Read access to the parameters: every value trimmed, a missing key reads as `""`.
#[derive(Clone, Copy)]
struct Params<'a>(&'a Parameters);

impl<'a> Params<'a> {
    fn get(self, key: &str) -> &'a str {
        self.0.get(key).map_or("", |v| v.trim())
    }
}

/// Decodes `attributes`, `secrets` and `permission`, then validates everything.
pub fn parse(req: &pb::MountRequest, defaults: &RequestDefaults) -> Result<MountRequest, RequestError> {
    let attributes = decode_map("attributes", &req.attributes, MAX_ATTRIBUTES_BYTES)?.ok_or_else(|| {
        RequestError("failed to unmarshal attributes, error: got null, expected a JSON object of strings".into())
    })?;
    let secrets = decode_map("secrets", &req.secrets, MAX_SECRETS_BYTES)?;
    let default_mode = decode_permission(&req.permission)?;
    parse_parameters(&attributes, secrets.as_ref(), default_mode, defaults)
}

/// Validates SecretProviderClass parameters merged with the pod attributes. `secrets` is the
/// nodePublishSecretRef data (`None` when the volume has none), `default_mode` the mode of
/// files without `filePermission`.
pub fn parse_parameters(
    parameters: &Parameters,
    secrets: Option<&Parameters>,
    default_mode: u32,
    defaults: &RequestDefaults,
) -> Result<MountRequest, RequestError> {
    parse_with_env(parameters, secrets, default_mode, defaults, &|name| std::env::var_os(name))
}

/// [`parse_parameters`] with the process environment passed in (tests inject their own).
fn parse_with_env(
    parameters: &Parameters,
    secrets: Option<&Parameters>,
    default_mode: u32,
    defaults: &RequestDefaults,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<MountRequest, RequestError> {
    let params = Params(parameters);
    let get = |key: &str| params.get(key);
    let fail = |message: &str| Err(RequestError(message.into()));
    check_mode(default_mode)?;

    let pod_name = get("csi.storage.k8s.io/pod.name");
    if pod_name.is_empty() {
        return fail("pod name is not provided (csi.storage.k8s.io/pod.name; the CSIDriver needs podInfoOnMount: true)");
    }
    let namespace = get("csi.storage.k8s.io/pod.namespace");
    if namespace.is_empty() {
        return fail("pod namespace is not provided (csi.storage.k8s.io/pod.namespace)");
    }
    let mode = identity_mode(params)?;
    let vault_name = get("keyvaultName");
    if vault_name.is_empty() {
        return fail("keyvaultName is not provided");
    }
    let tenant_id = match get("tenantID") {
        "" => get("tenantId"),
        id => id,
    };
    if tenant_id.is_empty() {
        return fail("tenantId is not provided (set tenantID)");
    }
    let cloud = resolve_cloud(params, defaults, env)?;
    let tokens = match get(SERVICE_ACCOUNT_TOKENS) {
        "" => secrets.and_then(|s| s.get(SERVICE_ACCOUNT_TOKENS)).map_or("", |t| t.trim()),
        tokens => tokens,
    };
    let identity = identity::select(&IdentityInput {
        mode,
        client_id: get("clientID"),
        user_assigned_identity_id: get("userAssignedIdentityID"),
        tokens,
        secrets,
    })?;
    let objects_yaml = get("objects");
    if objects_yaml.is_empty() {
        return fail("objects is not set");
    }
    let objects = objects::parse_objects(objects_yaml)?;
    if !objects.is_empty() {
        validate_vault_name(vault_name)?;
    }
    let optional = |key: &str| Some(get(key).to_string()).filter(|v| !v.is_empty());
    Ok(MountRequest {
        pod: PodInfo {
            name: pod_name.into(),
            namespace: namespace.into(),
            uid: optional("csi.storage.k8s.io/pod.uid"),
            service_account: optional("csi.storage.k8s.io/serviceAccount.name"),
        },
        secret_provider_class: optional("secretProviderClass"),
        vault_name: vault_name.into(),
        tenant_id: tenant_id.into(),
        cloud,
        identity,
        objects,
        default_mode,
    })
}

/// The three mutually exclusive identity flags.
fn identity_mode(params: Params<'_>) -> Result<Mode, RequestError> {
    let flag = |key: &str| match params.get(key) {
        "" => Ok(false),
        value => parse_go_bool(value).map_err(|_| {
            RequestError(format!(
                "failed to parse {key} flag, error: strconv.ParseBool: parsing {:?}: invalid syntax (use true or false)",
                short(value)
            ))
        }),
    };
    let flags = [
        (flag("usePodIdentity")?, Mode::PodIdentity),
        (flag("useVMManagedIdentity")?, Mode::VmManagedIdentity),
        (flag("useAzureTokenProxy")?, Mode::AzureTokenProxy),
    ];
    let mut enabled = flags.iter().filter(|(on, _)| *on).map(|(_, mode)| *mode);
    match (enabled.next(), enabled.next()) {
        (None, _) => Ok(Mode::None),
        (Some(mode), None) => Ok(mode),
        (Some(_), Some(_)) => Err(RequestError(
            "only one identity mode can be enabled at a time: usePodIdentity, useVMManagedIdentity, or useAzureTokenProxy".into(),
        )),
    }
}

/// `cloudName` (default `--cloud-name`); Azure Stack reads `cloudEnvFileName`, else the
/// `AZURE_ENVIRONMENT_FILEPATH` environment variable, for this mount only.
fn resolve_cloud(
    params: Params<'_>,
    defaults: &RequestDefaults,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<CloudEnvironment, RequestError> {
    let name = match params.get("cloudName") {
        "" => defaults.cloud_name.trim(),
        name => name,
    };
    let env_file = match params.get("cloudEnvFileName") {
        "" => env(AZURE_ENVIRONMENT_FILEPATH).filter(|p| !p.is_empty()).map(PathBuf::from),
        path => Some(PathBuf::from(path)),
    };
    CloudEnvironment::from_name(name, env_file.as_deref())
        .map_err(|e| RequestError(format!("cloudName {} is not valid, error: {e}", short(name))))
}

/// `keyvaultName` as Key Vault accepts it: 3–24 of `[-A-Za-z0-9]`.
pub fn validate_vault_name(name: &str) -> Result<(), RequestError> {
    let problem = if !(3..=24).contains(&name.chars().count()) {
        "must be between 3 and 24 chars"
    } else if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        "must match [-a-zA-Z0-9]{3,24}"
    } else {
        return Ok(());
    };
    Err(RequestError(format!("invalid keyvaultName {:?}: Invalid vault name, {problem}", short(name))))
}

/// A JSON object of strings; `null` is `None`. Errors never quote the input.
fn decode_map(field: &str, json: &str, limit: usize) -> Result<Option<Parameters>, RequestError> {
    let fail = |problem: String| Err(RequestError(format!("failed to unmarshal {field}, error: {problem}")));
    if json.trim().is_empty() {
        return fail("the field is empty, expected a JSON object of strings".into());
    }
    if json.len() > limit {
        return fail(format!("{} bytes is more than the limit of {limit}", json.len()));
    }
    serde_json::from_str(json).or_else(|e| fail(format!("{}, expected a JSON object of strings", json_error(&e))))
}

/// `permission`: the default file mode as a decimal JSON number, e.g. `"420"` for 0644.
fn decode_permission(json: &str) -> Result<u32, RequestError> {
    let mode: u32 = serde_json::from_str(json).map_err(|e| {
        RequestError(format!(
            "failed to unmarshal file permission, error: {}, expected a decimal file mode such as \"420\"",
            json_error(&e)
        ))
    })?;
    check_mode(mode)?;
    Ok(mode)
}

fn check_mode(mode: u32) -> Result<(), RequestError> {
    if mode > 0o777 {
        return Err(RequestError(format!("file permission {mode} ({mode:#o}) is not a file mode from 0 to 0o777")));
    }
    Ok(())
}
