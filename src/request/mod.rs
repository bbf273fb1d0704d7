//! From the driver's `MountRequest` to one typed, validated [`MountRequest`].
//!
//! `attributes` is a JSON object of strings (SecretProviderClass parameters merged with the pod
//! information kubelet adds), `secrets` is the nodePublishSecretRef data as a JSON object or `null`,
//! `permission` the default file mode as a decimal string. Everything the rest of the provider
//! needs is parsed and validated here, once, in the order the Go provider v1.8.2 checks it, so a bad
//! SecretProviderClass fails with the same first complaint as upstream (plus the checks upstream
//! forgot: file permission, object type, name and version, path shape, colliding paths, size
//! limits). [`parse_parameters`] runs the same validation on decoded parameters, for an offline
//! check of a SecretProviderClass.

use std::fmt;

use crate::sensitive::Sensitive;

pub mod cloud;
mod identity;
mod objects;
mod parse;

/// Defined beside the conversions they select; re-exported as part of an [`ObjectSpec`].
pub use crate::content::{ObjectEncoding, ObjectFormat};
pub use cloud::CloudEnvironment;
pub use identity::{
    IDENTITY_BINDING_AUDIENCE, SERVICE_ACCOUNT_TOKENS, WORKLOAD_IDENTITY_AUDIENCE,
    token_for_audience,
};
pub use objects::{
    MAX_FILES_PER_MOUNT, MAX_PATH, MAX_PATH_ELEMENT, parse_objects, validate_file_name,
    validate_key_vault_id,
};
pub use parse::{parse, parse_mount, parse_parameters, validate_vault_name};

/// Default of `--max-attributes-bytes`, the largest `attributes` JSON accepted: room for the
/// largest `objects` YAML ([`MAX_OBJECTS_YAML_BYTES`]) twice over, the pod information and the
/// service-account tokens (a few KiB).
pub const MAX_ATTRIBUTES_BYTES: usize = 512 * 1024;
/// Largest `secrets` JSON accepted (a Kubernetes Secret is at most 1 MiB).
pub const MAX_SECRETS_BYTES: usize = 1024 * 1024;
/// Default of `--max-secret-value-bytes`, the largest value of one nodePublishSecretRef key
/// (`clientid`, `clientsecret`, `clientcert`, tokens): a PEM key with its chain is a few KiB.
pub const MAX_SECRET_VALUE_BYTES: usize = 64 * 1024;
/// Most keys a nodePublishSecretRef Secret may have (the provider reads two or three).
pub const MAX_SECRET_KEYS: usize = 64;
/// Largest `objects` YAML accepted.
pub const MAX_OBJECTS_YAML_BYTES: usize = 256 * 1024;
/// Most objects one mount may list.
pub const MAX_OBJECTS: usize = 1000;
/// Most Key Vaults one mount may read: the SecretProviderClass's `keyvaultName` and the
/// objects' own `keyvaultName`s together (each is one cached client per identity).
pub const MAX_VAULTS_PER_MOUNT: usize = 16;
/// Largest `objectVersionHistory` accepted.
pub const MAX_VERSION_HISTORY: u32 = 1000;

/// Process-wide defaults that a SecretProviderClass may override.
#[derive(Clone, Debug)]
pub struct RequestDefaults {
    /// `--cloud-name`, used when the `cloudName` parameter is empty.
    pub cloud_name: String,
    /// `--max-attributes-bytes`: the largest `attributes` JSON accepted.
    pub max_attributes_bytes: usize,
    /// `--max-secret-value-bytes`: the largest value of one nodePublishSecretRef key.
    pub max_secret_value_bytes: usize,
    /// `--cloud-env-file-dir`: the directory a `cloudEnvFileName` must be inside; `None` when
    /// per-SecretProviderClass environment files are turned off.
    pub cloud_env_file_dir: Option<std::path::PathBuf>,
}

impl Default for RequestDefaults {
    fn default() -> Self {
        Self {
            cloud_name: "AzurePublicCloud".into(),
            max_attributes_bytes: MAX_ATTRIBUTES_BYTES,
            max_secret_value_bytes: MAX_SECRET_VALUE_BYTES,
            cloud_env_file_dir: Some(cloud::DEFAULT_CLOUD_ENV_FILE_DIR.into()),
        }
    }
}

/// A validated mount request.
#[derive(Clone, Debug)]
pub struct MountRequest {
    pub pod: PodInfo,
    /// `secretProviderClass` attribute (absent on the v1.5 rotation path).
    pub secret_provider_class: Option<String>,
    /// `keyvaultName`, validated (3–24 of `[-A-Za-z0-9]`) whenever `objects` is non-empty.
    pub vault_name: String,
    /// `tenantID`, else `tenantId`.
    pub tenant_id: String,
    pub cloud: CloudEnvironment,
    pub identity: IdentityRequest,
    /// In SecretProviderClass order; the response lists files in this order.
    pub objects: Vec<ObjectSpec>,
    /// The request's `permission` (e.g. 0o644), used where an object has no `filePermission`.
    pub default_mode: u32,
}

impl MountRequest {
    /// `https://<vault>.<keyVaultDNSSuffix>/`
    pub fn vault_url(&self) -> String {
        self.cloud.vault_url(&self.vault_name)
    }
}

#[derive(Clone, Debug, Default)]
pub struct PodInfo {
    pub name: String,
    pub namespace: String,
    pub uid: Option<String>,
    pub service_account: Option<String>,
}

/// How the mount authenticates, with exactly the material that mode needs.
#[derive(Clone, Debug)]
pub enum IdentityRequest {
    /// `clientID` set, no other mode: the pod's service-account token for audience
    /// `api://AzureADTokenExchange` is the client assertion.
    WorkloadIdentity {
        client_id: String,
        service_account_token: Sensitive,
    },
    /// `nodePublishSecretRef` with `clientid` and `clientsecret` (keys case-insensitive).
    ServicePrincipalSecret {
        client_id: String,
        client_secret: Sensitive,
    },
    /// `nodePublishSecretRef` with `clientid` and `clientcert` (PEM with key, or base64 PFX).
    ServicePrincipalCertificate {
        client_id: String,
        certificate: Sensitive,
    },
    /// `useVMManagedIdentity`: IMDS, system-assigned or user-assigned by client id.
    VmManagedIdentity {
        user_assigned_identity_id: Option<String>,
    },
    /// `usePodIdentity`: aad-pod-identity NMI on the node, keyed by the pod.
    PodIdentity,
    /// `useAzureTokenProxy`: identity binding, token for audience `api://AKSIdentityBinding`.
    AzureTokenProxy {
        client_id: String,
        service_account_token: Sensitive,
    },
}

impl IdentityRequest {
    /// Stable name for errors, logs and metric labels.
    pub fn mode_name(&self) -> &'static str {
        match self {
            Self::WorkloadIdentity { .. } => "workload_identity",
            Self::ServicePrincipalSecret { .. } => "service_principal",
            Self::ServicePrincipalCertificate { .. } => "service_principal_certificate",
            Self::VmManagedIdentity { .. } => "vm_managed_identity",
            Self::PodIdentity => "pod_identity",
            Self::AzureTokenProxy { .. } => "azure_token_proxy",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObjectType {
    Secret,
    Key,
    Cert,
}

impl ObjectType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Secret => "secret",
            Self::Key => "key",
            Self::Cert => "cert",
        }
    }
}

impl fmt::Display for ObjectType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of `objects`, trimmed and validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectSpec {
    pub name: String,
    pub object_type: ObjectType,
    /// `""` means the current version.
    pub version: String,
    /// `""` means "use `name` as the file name".
    pub alias: String,
    pub format: ObjectFormat,
    pub encoding: ObjectEncoding,
    /// `filePermission` parsed from octal; `None` means the request's permission.
    pub file_mode: Option<u32>,
    /// `objectVersionHistory`; 1 for single-version objects (upstream treats <= 1 alike).
    pub version_history: u32,
    /// `jmesPath`: fields of a JSON secret written as files of their own (secrets only).
    pub jmes_path: Vec<JmesPathEntry>,
    /// `objectNotAfter`: the newest enabled version created at or before this time.
    pub not_after: Option<NotAfter>,
    /// The object's own `keyvaultName`, validated as the SecretProviderClass's and lowercased;
    /// `None` means the SecretProviderClass's vault (also when it names that vault).
    pub vault: Option<String>,
}

/// One `jmesPath` entry: a JMESPath expression and the file its result is written to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JmesPathEntry {
    pub path: String,
    /// Path of the file, relative to the mount (validated as a file name).
    pub alias: String,
}

/// `objectNotAfter`, an RFC 3339 time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotAfter {
    /// Unix seconds, rounded down (Key Vault reports creation times in whole seconds).
    pub unix: i64,
    /// As written, for messages.
    pub text: String,
}

impl ObjectSpec {
    /// Path of the (first) file, relative to the mount: alias if set, else name.
    pub fn file_name(&self) -> &str {
        if self.alias.is_empty() {
            &self.name
        } else {
            &self.alias
        }
    }

    /// Object-version id as upstream: `<objectType>/<objectName>`; an object read from its own
    /// vault: `<objectType>/<objectName>@<vault>` (`@` cannot occur in a Key Vault name, so
    /// objects of different vaults never share an id).
    pub fn id(&self) -> String {
        match &self.vault {
            None => format!("{}/{}", self.object_type.as_str(), self.name),
            Some(vault) => format!("{}/{}@{vault}", self.object_type.as_str(), self.name),
        }
    }

    /// The vault the object is read from.
    pub fn vault_name<'a>(&'a self, request: &'a MountRequest) -> &'a str {
        self.vault.as_deref().unwrap_or(&request.vault_name)
    }

    pub fn is_multi_version(&self) -> bool {
        self.version_history > 1
    }

    /// The object needs a version listing: history, or a version picked by `objectNotAfter`.
    pub fn needs_listing(&self) -> bool {
        self.is_multi_version() || self.not_after.is_some()
    }

    /// Files one version of the object yields before any `.crt`/`.key` split: its own and
    /// one per `jmesPath` entry.
    pub fn files_per_version(&self) -> usize {
        1 + self.jmes_path.len()
    }
}

/// `objectType/objectName`, the way every error names an object (`objectType/objectName@vault`
/// for an object read from its own vault, as its id).
impl fmt::Display for ObjectSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.object_type.as_str(), self.name)?;
        match &self.vault {
            Some(vault) => write!(f, "@{vault}"),
            None => Ok(()),
        }
    }
}

/// A request the provider refuses. Maps to gRPC `InvalidArgument`. The message names the
/// parameter or the object (`objectType/objectName`) and the problem, and never contains a secret
/// value, token or certificate.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RequestError(pub String);

/// A user value cut for an error message (the crate's one rule: [`crate::text::echo`]).
fn short(value: &str) -> String {
    crate::text::echo(value).into_owned()
}

/// A JSON error as its kind and position only: serde_json's own message may quote input,
/// which can be a secret or a token.
fn json_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let kind = match e.classify() {
        Category::Io => "I/O error",
        Category::Syntax => "syntax error",
        Category::Data => "unexpected JSON type or value",
        Category::Eof => "unexpected end of JSON input",
    };
    format!("{kind} at line {} column {}", e.line(), e.column())
}
