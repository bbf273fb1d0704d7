//! Azure cloud environments: the four built-in clouds and Azure Stack environment files.
//!
//! Names are matched case-insensitively, as go-autorest's `EnvironmentFromName` does.
//! `AzureStackCloud` is described by a JSON file whose path comes from the mount's
//! `cloudEnvFileName` parameter (or, as upstream, from `AZURE_ENVIRONMENT_FILEPATH`). The file
//! is read for the mount that names it; unlike upstream no process-wide environment variable
//! is ever set, so one SecretProviderClass cannot change the cloud of another.

use std::io::Read;
use std::path::Path;

use serde_json::{Map, Value};

/// Name of the Azure Stack cloud, whose endpoints come from an environment file.
pub const AZURE_STACK_CLOUD: &str = "AzureStackCloud";
/// Environment variable upstream reads the Azure Stack environment file path from.
pub const AZURE_ENVIRONMENT_FILEPATH: &str = "AZURE_ENVIRONMENT_FILEPATH";
/// Largest Azure Stack environment file read (real ones are about 2 KiB).
pub const MAX_ENVIRONMENT_FILE_BYTES: u64 = 64 * 1024;

/// Built-in clouds: name, Entra ID authority host, Key Vault DNS suffix. Public cloud first.
const BUILT_IN: [(&str, &str, &str); 4] = [
    (
        "AzurePublicCloud",
        "https://login.microsoftonline.com/",
        "vault.azure.net",
    ),
    (
        "AzureUSGovernmentCloud",
        "https://login.microsoftonline.us/",
        "vault.usgovcloudapi.net",
    ),
    (
        "AzureChinaCloud",
        "https://login.chinacloudapi.cn/",
        "vault.azure.cn",
    ),
    (
        "AzureGermanCloud",
        "https://login.microsoftonline.de/",
        "vault.microsoftazure.de",
    ),
];

/// The endpoints of one Azure cloud the provider needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloudEnvironment {
    /// Canonical name, e.g. `AzurePublicCloud`.
    pub name: String,
    /// Entra ID authority host with trailing slash, e.g. `https://login.microsoftonline.com/`.
    pub active_directory_endpoint: String,
    /// Key Vault resource with trailing slash, e.g. `https://vault.azure.net/`.
    pub key_vault_endpoint: String,
    /// e.g. `vault.azure.net`.
    pub key_vault_dns_suffix: String,
}

impl CloudEnvironment {
    pub fn public() -> Self {
        Self::from_entry(BUILT_IN[0])
    }

    /// One of the four built-in clouds, by name (any case). `None` for other names, including
    /// `AzureStackCloud`.
    pub fn built_in(name: &str) -> Option<Self> {
        BUILT_IN
            .iter()
            .find(|(n, ..)| n.eq_ignore_ascii_case(name))
            .map(|entry| Self::from_entry(*entry))
    }

    fn from_entry((name, aad, suffix): (&str, &str, &str)) -> Self {
        Self {
            name: name.to_string(),
            active_directory_endpoint: aad.to_string(),
            key_vault_endpoint: format!("https://{suffix}/"),
            key_vault_dns_suffix: suffix.to_string(),
        }
    }

    /// Resolves a `cloudName` (any case). `AzureStackCloud` reads `env_file`; the error says
    /// what is wrong without the `cloudName ... is not valid` prefix the caller adds.
    pub fn from_name(name: &str, env_file: Option<&Path>) -> Result<Self, String> {
        if name.eq_ignore_ascii_case(AZURE_STACK_CLOUD) {
            return match env_file {
                Some(path) => Self::from_file(path),
                None => Err(format!(
                    "the Azure Stack environment file is not set: set the cloudEnvFileName parameter or {AZURE_ENVIRONMENT_FILEPATH}"
                )),
            };
        }
        Self::built_in(name).ok_or_else(|| {
            format!(
                "autorest/azure: There is no cloud environment matching the name {:?} (valid: AzurePublicCloud, AzureUSGovernmentCloud, AzureChinaCloud, AzureGermanCloud, AzureStackCloud)",
                super::short(&name.to_uppercase())
            )
        })
    }

    /// Reads an Azure Stack environment JSON file (`name`, `activeDirectoryEndpoint`,
    /// `keyVaultEndpoint`, `keyVaultDNSSuffix`; keys matched case-insensitively as Go's
    /// `encoding/json` does).
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let shown = path.display();
        let file =
            std::fs::File::open(path).map_err(|e| format!("open {shown}: {}", os_error(&e)))?;
        let mut bytes = Vec::new();
        file.take(MAX_ENVIRONMENT_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("read {shown}: {}", os_error(&e)))?;
        if bytes.len() as u64 > MAX_ENVIRONMENT_FILE_BYTES {
            return Err(format!(
                "{shown}: environment file is larger than {MAX_ENVIRONMENT_FILE_BYTES} bytes"
            ));
        }
        Self::from_json(&bytes).map_err(|e| format!("{shown}: {e}"))
    }

    /// Parses the content of an Azure Stack environment file.
    pub fn from_json(bytes: &[u8]) -> Result<Self, String> {
        let doc: Map<String, Value> = serde_json::from_slice(bytes)
            .map_err(|e| format!("invalid environment JSON: {}", super::json_error(&e)))?;
        let field = |key: &str| -> Result<String, String> {
            match doc
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v)
            {
                None | Some(Value::Null) => Ok(String::new()),
                Some(Value::String(s)) => Ok(s.trim().to_string()),
                Some(_) => Err(format!("{key} must be a string")),
            }
        };
        let suffix = field("keyVaultDNSSuffix")?;
        if suffix.is_empty()
            || !suffix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        {
            return Err(format!(
                "keyVaultDNSSuffix {:?} is not a DNS suffix such as vault.azure.net",
                super::short(&suffix)
            ));
        }
        let active_directory_endpoint = endpoint(
            "activeDirectoryEndpoint",
            &field("activeDirectoryEndpoint")?,
        )?;
        let key_vault_endpoint = match field("keyVaultEndpoint")? {
            e if e.is_empty() => format!("https://{suffix}/"),
            e => endpoint("keyVaultEndpoint", &e)?,
        };
        let name = match field("name")? {
            n if n.is_empty() => AZURE_STACK_CLOUD.to_string(),
            n => n,
        };
        Ok(Self {
            name,
            active_directory_endpoint,
            key_vault_endpoint,
            key_vault_dns_suffix: suffix,
        })
    }

    /// `https://<vault>.<suffix>/`
    pub fn vault_url(&self, vault_name: &str) -> String {
        format!("https://{}.{}/", vault_name, self.key_vault_dns_suffix)
    }

    /// Key Vault resource without the trailing slash (pod identity's `resource=` parameter).
    pub fn key_vault_resource(&self) -> &str {
        self.key_vault_endpoint.trim_end_matches('/')
    }
}

/// An absolute http(s) URL, returned with a trailing slash.
fn endpoint(key: &str, value: &str) -> Result<String, String> {
    let bad = || {
        format!(
            "{key} {:?} is not an absolute https URL",
            super::short(value)
        )
    };
    let url = url::Url::parse(value).map_err(|_| bad())?;
    if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
        return Err(bad());
    }
    Ok(if value.ends_with('/') {
        value.to_string()
    } else {
        format!("{value}/")
    })
}

/// An OS error the way Go prints it (`no such file or directory`), plus Rust's error code.
fn os_error(e: &std::io::Error) -> String {
    let text = e.to_string();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let e = CloudEnvironment::from_name(
            "AzureStackCloud",
            Some(Path::new("/nonexistent/akscustom.json")),
        )
        .unwrap_err();
        assert!(
            e.contains("open /nonexistent/akscustom.json: no such file or directory"),
            "{e}"
        );
    }

    #[test]
    fn azure_stack_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("env.json");
        std::fs::write(
            &path,
            r#"{"Name":"MyStack","activeDirectoryEndpoint":"https://adfs.local.azurestack.external/adfs",
                "keyVaultEndpoint":"","KeyVaultDNSSuffix":"vault.local.azurestack.external","other":1}"#,
        )
        .unwrap();
        let c = CloudEnvironment::from_name("AzureStackCloud", Some(&path)).unwrap();
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
    }

    #[test]
    fn invalid_environment_files() {
        let cases: [(&[u8], &str); 6] = [
            (b"", "invalid environment JSON"),
            (b"[1]", "invalid environment JSON"),
            (
                br#"{"keyVaultDNSSuffix":"vault.x"}"#,
                "activeDirectoryEndpoint",
            ),
            (
                br#"{"activeDirectoryEndpoint":"https://a/","keyVaultDNSSuffix":""}"#,
                "keyVaultDNSSuffix",
            ),
            (
                br#"{"activeDirectoryEndpoint":"https://a/","keyVaultDNSSuffix":"a/b"}"#,
                "keyVaultDNSSuffix",
            ),
            (
                br#"{"activeDirectoryEndpoint":5,"keyVaultDNSSuffix":"v"}"#,
                "must be a string",
            ),
        ];
        for (json, want) in cases {
            let e = CloudEnvironment::from_json(json).unwrap_err();
            assert!(e.contains(want), "{e}");
        }
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.json");
        std::fs::write(&big, vec![b' '; MAX_ENVIRONMENT_FILE_BYTES as usize + 10]).unwrap();
        let e = CloudEnvironment::from_file(&big).unwrap_err();
        assert!(e.contains("larger than"), "{e}");
        let e = CloudEnvironment::from_file(dir.path()).unwrap_err();
        assert!(e.contains(&dir.path().display().to_string()), "{e}");
    }
}
