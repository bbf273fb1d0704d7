//! Azure cloud environments: the built-in ones and Azure Stack environment files.
//! TODO(request helper): implement `from_name` and tests.

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
        Self {
            name: "AzurePublicCloud".into(),
            active_directory_endpoint: "https://login.microsoftonline.com/".into(),
            key_vault_endpoint: "https://vault.azure.net/".into(),
            key_vault_dns_suffix: "vault.azure.net".into(),
        }
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
