//! Decoding of the driver's `MountRequest` fields and evaluation of the SecretProviderClass
//! parameters, in the order the Go provider evaluates them (reference §1.2), so the first
//! complaint about a bad SecretProviderClass is the same as upstream's.
//!
//! [`parse_parameters`] works on already-decoded parameters so an offline check of a
//! SecretProviderClass's `spec.parameters` can run the very same validation.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ffi::OsString;

use super::cloud::{self, AZURE_ENVIRONMENT_FILEPATH, CloudEnvironment, EnvFile};
use super::identity::{self, IdentityInput, Mode, SERVICE_ACCOUNT_TOKENS};
use super::{
    MAX_SECRET_KEYS, MAX_SECRETS_BYTES, MAX_VAULTS_PER_MOUNT, MountRequest, ObjectSpec, PodInfo,
    RequestDefaults, RequestError, json_error, objects, short,
};
use crate::go::parse_go_bool;
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

/// How an Azure Stack environment file named by the parameters is read.
type LoadCloud<'a> = &'a dyn Fn(&EnvFile) -> Result<CloudEnvironment, String>;

/// Decodes `attributes`, `secrets` and `permission`, then validates everything. An Azure Stack
/// environment file is read on the calling thread: this is for operator tools and tests; the
/// provider's mounts use [`parse_mount`].
pub fn parse(
    req: &pb::MountRequest,
    defaults: &RequestDefaults,
) -> Result<MountRequest, RequestError> {
    let (attributes, secrets, default_mode) = decode(req, defaults)?;
    parse_parameters(&attributes, secrets.as_ref(), default_mode, defaults)
}

/// [`parse`] for a mount on the async runtime: the Azure Stack environment file (if the request
/// names one) is read on the bounded blocking pool, with its timeout. The first complaint is the
/// same as [`parse`]'s: a problem upstream reports before the cloud is resolved wins over the
/// file's, the file's wins over any later one.
pub async fn parse_mount(
    req: &pb::MountRequest,
    defaults: &RequestDefaults,
) -> Result<MountRequest, RequestError> {
    let (parsed, wanted) = parse_deferring_cloud_file(req, defaults);
    let Some((name, file)) = wanted else {
        return parsed;
    };
    let cloud = file.load().await.map_err(|e| cloud_error(&name, &e))?;
    parsed.map(|mut request| {
        request.cloud = cloud;
        request
    })
}

/// The whole validation with the environment file not read: records which file the request
/// names (and for which `cloudName`) and puts a placeholder cloud in the result.
fn parse_deferring_cloud_file(
    req: &pb::MountRequest,
    defaults: &RequestDefaults,
) -> (
    Result<MountRequest, RequestError>,
    Option<(String, EnvFile)>,
) {
    let (attributes, secrets, default_mode) = match decode(req, defaults) {
        Ok(decoded) => decoded,
        Err(e) => return (Err(e), None),
    };
    let wanted = RefCell::new(None);
    let record = |file: &EnvFile| {
        *wanted.borrow_mut() = Some(file.clone());
        Ok(CloudEnvironment::public())
    };
    let parsed = parse_with_env(
        &attributes,
        secrets.as_ref(),
        default_mode,
        defaults,
        &|name| std::env::var_os(name),
        &record,
    );
    let name = cloud_name(Params(&attributes), defaults).to_string();
    (parsed, wanted.into_inner().map(|file| (name, file)))
}

/// `attributes`, `secrets` and `permission` decoded.
fn decode(
    req: &pb::MountRequest,
    defaults: &RequestDefaults,
) -> Result<(Parameters, Option<Parameters>, u32), RequestError> {
    let attributes = decode_map("attributes", &req.attributes, defaults.max_attributes_bytes)?.ok_or_else(|| {
        RequestError("failed to unmarshal attributes, error: got null, expected a JSON object of strings".into())
    })?;
    let secrets = decode_map("secrets", &req.secrets, MAX_SECRETS_BYTES)?;
    let default_mode = decode_permission(&req.permission)?;
    Ok((attributes, secrets, default_mode))
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
    parse_with_env(
        parameters,
        secrets,
        default_mode,
        defaults,
        &|name| std::env::var_os(name),
        &|file| file.load_blocking(),
    )
}

/// [`parse_parameters`] with the process environment and the environment-file reader passed in
/// (tests inject their own environment; [`parse_mount`] defers the read).
fn parse_with_env(
    parameters: &Parameters,
    secrets: Option<&Parameters>,
    default_mode: u32,
    defaults: &RequestDefaults,
    env: &dyn Fn(&str) -> Option<OsString>,
    load_cloud: LoadCloud<'_>,
) -> Result<MountRequest, RequestError> {
    let params = Params(parameters);
    let get = |key: &str| params.get(key);
    let fail = |message: &str| Err(RequestError(message.into()));
    check_mode(default_mode)?;
    if let Some(secrets) = secrets {
        check_secrets(secrets, defaults.max_secret_value_bytes)?;
    }

    let pod_name = get("csi.storage.k8s.io/pod.name");
    if pod_name.is_empty() {
        return fail(
            "pod name is not provided (csi.storage.k8s.io/pod.name; the CSIDriver needs podInfoOnMount: true)",
        );
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
    identity::check_tenant(tenant_id)?;
    let cloud = resolve_cloud(params, defaults, env, load_cloud)?;
    let tokens = match get(SERVICE_ACCOUNT_TOKENS) {
        "" => secrets
            .and_then(|s| s.get(SERVICE_ACCOUNT_TOKENS))
            .map_or("", |t| t.trim()),
        tokens => tokens,
    };
    let identity = identity::select(&IdentityInput {
        mode,
        client_id: get("clientID"),
        user_assigned_identity_id: get("userAssignedIdentityID"),
        tokens,
        secrets,
        adfs: tenant_id.eq_ignore_ascii_case("adfs"),
    })?;
    let objects_yaml = get("objects");
    if objects_yaml.is_empty() {
        return fail("objects is not set");
    }
    let mut objects = objects::parse_objects(objects_yaml)?;
    if !objects.is_empty() {
        validate_vault_name(vault_name)?;
    }
    own_vaults(&mut objects, vault_name)?;
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
        value => parse_go_bool(value).map_err(|_| bool_error(key, value)),
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

/// Upstream's message (Go's `strconv.ParseBool` error), with the value cut short.
fn bool_error(key: &str, value: &str) -> RequestError {
    let value = short(value);
    RequestError(format!(
        "failed to parse {key} flag, error: strconv.ParseBool: parsing {value:?}: invalid syntax (use true or false)"
    ))
}

/// `cloudName`, else `--cloud-name`.
fn cloud_name<'a>(params: Params<'a>, defaults: &'a RequestDefaults) -> &'a str {
    match params.get("cloudName") {
        "" => defaults.cloud_name.trim(),
        name => name,
    }
}

/// Upstream's wrapping of a cloud problem.
fn cloud_error(name: &str, problem: &str) -> RequestError {
    RequestError(format!(
        "cloudName {} is not valid, error: {problem}",
        short(name)
    ))
}

/// `cloudName` (default `--cloud-name`); Azure Stack reads `cloudEnvFileName` (inside
/// `--cloud-env-file-dir`), else the `AZURE_ENVIRONMENT_FILEPATH` environment variable, for this
/// mount only. `cloudEnvFileName` is ignored for the built-in clouds, as upstream.
fn resolve_cloud(
    params: Params<'_>,
    defaults: &RequestDefaults,
    env: &dyn Fn(&str) -> Option<OsString>,
    load_cloud: LoadCloud<'_>,
) -> Result<CloudEnvironment, RequestError> {
    let name = cloud_name(params, defaults);
    let fail = |problem: String| cloud_error(name, &problem);
    if !cloud::is_azure_stack(name) {
        return CloudEnvironment::built_in_or_error(name).map_err(fail);
    }
    let file = match params.get("cloudEnvFileName") {
        "" => match env(AZURE_ENVIRONMENT_FILEPATH).filter(|p| !p.is_empty()) {
            Some(path) => EnvFile::variable(&path),
            None => Err(cloud::no_env_file(defaults.cloud_env_file_dir.is_some())),
        },
        path => EnvFile::parameter(path, defaults.cloud_env_file_dir.as_deref()),
    }
    .map_err(fail)?;
    load_cloud(&file).map_err(fail)
}

/// Objects' own `keyvaultName`: the SecretProviderClass's vault named again is that vault (the
/// object behaves, and is identified, as without the field); at most [`MAX_VAULTS_PER_MOUNT`]
/// vaults in all.
fn own_vaults(objects: &mut [ObjectSpec], vault_name: &str) -> Result<(), RequestError> {
    let mut vaults = vec![vault_name.to_ascii_lowercase()];
    for object in objects.iter_mut() {
        let Some(vault) = &object.vault else {
            continue;
        };
        if vault.eq_ignore_ascii_case(vault_name) {
            object.vault = None;
            continue;
        }
        if !vaults.contains(vault) {
            if vaults.len() == MAX_VAULTS_PER_MOUNT {
                return Err(RequestError(format!(
                    "object {object}: the mount reads more than {MAX_VAULTS_PER_MOUNT} Key Vaults (keyvaultName of the SecretProviderClass and of its objects); split the SecretProviderClass"
                )));
            }
            vaults.push(vault.clone());
        }
    }
    Ok(())
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
    Err(RequestError(format!(
        "invalid keyvaultName {:?}: Invalid vault name, {problem}",
        short(name)
    )))
}

/// The nodePublishSecretRef Secret: at most [`MAX_SECRET_KEYS`] keys, each value at most
/// `max_value` bytes. Errors name the key (cut by the one rule), never a value.
fn check_secrets(secrets: &Parameters, max_value: usize) -> Result<(), RequestError> {
    if secrets.len() > MAX_SECRET_KEYS {
        return Err(RequestError(format!(
            "the nodePublishSecretRef secret has {} keys, more than the limit of {MAX_SECRET_KEYS}",
            secrets.len()
        )));
    }
    match secrets.iter().find(|(_, value)| value.len() > max_value) {
        Some((key, value)) => Err(RequestError(format!(
            "nodePublishSecretRef secret key {:?} is {} bytes, more than the limit of {max_value}",
            short(key),
            value.len()
        ))),
        None => Ok(()),
    }
}

/// A JSON object of strings; `null` is `None`. Errors never quote the input.
fn decode_map(field: &str, json: &str, limit: usize) -> Result<Option<Parameters>, RequestError> {
    let fail = |problem: String| {
        Err(RequestError(format!(
            "failed to unmarshal {field}, error: {problem}"
        )))
    };
    if json.trim().is_empty() {
        return fail("the field is empty, expected a JSON object of strings".into());
    }
    if json.len() > limit {
        return fail(format!(
            "{} bytes is more than the limit of {limit}",
            json.len()
        ));
    }
    serde_json::from_str(json).or_else(|e| {
        fail(format!(
            "{}, expected a JSON object of strings",
            json_error(&e)
        ))
    })
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
        return Err(RequestError(format!(
            "file permission {mode} ({mode:#o}) is not a file mode from 0 to 0o777"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
