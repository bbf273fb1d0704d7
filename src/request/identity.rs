//! Which identity a mount authenticates with, and the material that identity needs.
//!
//! The choice follows the Go provider: an explicit `usePodIdentity` / `useVMManagedIdentity` /
//! `useAzureTokenProxy`, else workload identity when `clientID` is set, else a service principal
//! from the `nodePublishSecretRef` secret. As upstream, a non-empty `clientID` makes the
//! service-account token mandatory in every mode but identity binding (which needs its own).
//! Tokens and client secrets are wrapped in [`Sensitive`] at once; no error built here ever
//! contains one.
//!
//! Identity values are checked for shape before anything is built or cached (tenant isolation:
//! an identity value is also part of a cache key and of log lines): `tenantID` is a GUID or a DNS
//! name of at most 253 characters (`adfs` for Azure Stack Hub with AD FS is one); `clientID` and
//! the secret's `clientid` are GUIDs, as Entra ID issues them (AD FS, tenant `adfs`, also lets
//! administrators choose free-form client identifiers, so there any 1–256 visible ASCII
//! characters pass); `userAssignedIdentityID` is the GUID client id of a user-assigned identity
//! or its ARM resource ID (at most 512 characters). Values are echoed only through
//! [`crate::text::echo`].

use std::collections::BTreeMap;

use serde_json::Value;

use super::{IdentityRequest, RequestError, json_error, short};
use crate::sensitive::Sensitive;

/// Attribute (and, with `serviceAccountTokenInSecrets`, secret key) holding the pod's tokens.
pub const SERVICE_ACCOUNT_TOKENS: &str = "csi.storage.k8s.io/serviceAccount.tokens";
/// Token audience of workload identity.
pub const WORKLOAD_IDENTITY_AUDIENCE: &str = "api://AzureADTokenExchange";
/// Token audience of identity binding (`useAzureTokenProxy`).
pub const IDENTITY_BINDING_AUDIENCE: &str = "api://AKSIdentityBinding";

/// The mode the three `use*` flags select, named as upstream names it in errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Mode {
    None,
    PodIdentity,
    VmManagedIdentity,
    AzureTokenProxy,
}

impl Mode {
    fn upstream_name(self) -> &'static str {
        match self {
            Self::None => "None",
            Self::PodIdentity => "PodIdentity",
            Self::VmManagedIdentity => "VMManagedIdentity",
            Self::AzureTokenProxy => "AzureTokenProxy",
        }
    }
}

/// What identity selection reads from the parameters and secrets.
pub(super) struct IdentityInput<'a> {
    pub mode: Mode,
    pub client_id: &'a str,
    pub user_assigned_identity_id: &'a str,
    /// `serviceAccount.tokens` from attributes, else from secrets; trimmed, may be empty.
    pub tokens: &'a str,
    pub secrets: Option<&'a BTreeMap<String, String>>,
    /// The tenant is AD FS (`adfs`): client identifiers need not be GUIDs.
    pub adfs: bool,
}

/// Longest DNS name (RFC 1035) accepted as a tenant.
pub(crate) const MAX_TENANT_DNS_NAME: usize = 253;
/// Longest ARM resource ID accepted as `userAssignedIdentityID`.
pub(crate) const MAX_ARM_ID: usize = 512;
/// Longest AD FS client identifier accepted.
const MAX_ADFS_CLIENT_ID: usize = 256;

/// `8-4-4-4-12` hexadecimal digits.
pub(crate) fn is_guid(value: &str) -> bool {
    let groups: Vec<&str> = value.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A DNS name: dot-separated labels of 1–63 letters, digits and inner hyphens, at most 253 in all.
fn is_dns_name(value: &str) -> bool {
    let value = value.strip_suffix('.').unwrap_or(value);
    !value.is_empty()
        && value.len() <= MAX_TENANT_DNS_NAME
        && value.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// `tenantID` / `tenantId`: a GUID, or a DNS name (a verified domain, or `adfs`).
pub(super) fn check_tenant(tenant: &str) -> Result<(), RequestError> {
    if is_guid(tenant) || is_dns_name(tenant) {
        return Ok(());
    }
    Err(RequestError(format!(
        "tenantId {:?} ({} bytes) is not a tenant ID: expected a GUID or a DNS name of at most {MAX_TENANT_DNS_NAME} characters (\"adfs\" for AD FS)",
        short(tenant),
        tenant.len()
    )))
}

/// A client id named `parameter`: a GUID (any visible ASCII identifier for AD FS).
fn check_client_id(parameter: &str, value: &str, adfs: bool) -> Result<(), String> {
    let adfs_ok = adfs
        && (1..=MAX_ADFS_CLIENT_ID).contains(&value.len())
        && value.bytes().all(|b| b.is_ascii_graphic());
    if is_guid(value) || adfs_ok {
        return Ok(());
    }
    Err(format!(
        "{parameter} {:?} ({} bytes) is not a client ID: expected the GUID of the application or managed identity",
        short(value),
        value.len()
    ))
}

/// `userAssignedIdentityID`: a GUID client id, or
/// `/subscriptions/<guid>/resourceGroups/<group>/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<name>`.
fn check_user_assigned_identity_id(value: &str) -> Result<(), String> {
    if is_guid(value) || is_arm_identity_id(value) {
        return Ok(());
    }
    Err(format!(
        "userAssignedIdentityID {:?} ({} bytes) is not a user-assigned identity: expected its client ID (a GUID) or its ARM resource ID of at most {MAX_ARM_ID} characters",
        short(value),
        value.len()
    ))
}

/// An ARM resource ID of a user-assigned managed identity (segment names in any case).
pub(crate) fn is_arm_identity_id(value: &str) -> bool {
    if value.len() > MAX_ARM_ID || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return false;
    }
    let parts: Vec<&str> = value.split('/').collect();
    let is = |i: usize, name: &str| parts.get(i).is_some_and(|p| p.eq_ignore_ascii_case(name));
    let named = |i: usize| parts.get(i).is_some_and(|p| !p.is_empty());
    parts.len() == 9
        && parts[0].is_empty()
        && is(1, "subscriptions")
        && parts.get(2).is_some_and(|p| is_guid(p))
        && is(3, "resourceGroups")
        && named(4)
        && is(5, "providers")
        && is(6, "Microsoft.ManagedIdentity")
        && is(7, "userAssignedIdentities")
        && named(8)
}

/// Builds the [`IdentityRequest`]; errors are prefixed as upstream's
/// `failed to build auth config for mode <mode>: ...`.
pub(super) fn select(input: &IdentityInput<'_>) -> Result<IdentityRequest, RequestError> {
    select_inner(input).map_err(|e| {
        RequestError(format!(
            "failed to build auth config for mode {}: {e}",
            input.mode.upstream_name()
        ))
    })
}

fn select_inner(input: &IdentityInput<'_>) -> Result<IdentityRequest, String> {
    let client_id = input.client_id.to_string();
    // clientID is read by workload identity and identity binding; elsewhere it only makes the
    // service-account token mandatory (as upstream), so its shape is not checked there.
    let uses_client_id = matches!(input.mode, Mode::None | Mode::AzureTokenProxy);
    if uses_client_id && !client_id.is_empty() {
        check_client_id("clientID", &client_id, input.adfs)?;
    }
    if input.mode == Mode::AzureTokenProxy {
        if client_id.is_empty() {
            return Err("clientID is required for identity binding (useAzureTokenProxy)".into());
        }
        if input.tokens.is_empty() {
            return Err(format!(
                "service account tokens are required for identity binding; {}",
                token_hint(IDENTITY_BINDING_AUDIENCE)
            ));
        }
        let service_account_token = token_for_audience(input.tokens, IDENTITY_BINDING_AUDIENCE)?;
        return Ok(IdentityRequest::AzureTokenProxy {
            client_id,
            service_account_token,
        });
    }
    let workload_token = if client_id.is_empty() {
        None
    } else {
        Some(token_for_audience(
            input.tokens,
            WORKLOAD_IDENTITY_AUDIENCE,
        )?)
    };
    Ok(match (input.mode, workload_token) {
        (Mode::PodIdentity, _) => IdentityRequest::PodIdentity,
        (Mode::VmManagedIdentity, _) => {
            if !input.user_assigned_identity_id.is_empty() {
                check_user_assigned_identity_id(input.user_assigned_identity_id)?;
            }
            IdentityRequest::VmManagedIdentity {
                user_assigned_identity_id: Some(input.user_assigned_identity_id.to_string())
                    .filter(|s| !s.is_empty()),
            }
        }
        (_, Some(service_account_token)) => IdentityRequest::WorkloadIdentity {
            client_id,
            service_account_token,
        },
        (_, None) => service_principal(input.secrets, input.adfs)?,
    })
}

fn token_hint(audience: &str) -> String {
    format!(
        "set tokenRequests with audience {audience:?} on the secrets-store.csi.k8s.io CSIDriver (the provider's Helm chart does) so the driver passes {SERVICE_ACCOUNT_TOKENS}"
    )
}

/// Picks the token for `audience` out of the driver's
/// `{"<audience>": {"token": "<jwt>", "expirationTimestamp": "<RFC3339>"}, ...}`.
/// Other audiences are not looked at, as upstream.
pub fn token_for_audience(tokens: &str, audience: &str) -> Result<Sensitive, String> {
    let fail = |problem: String| {
        Err(format!(
            "failed to parse service account tokens for audience {audience}: {problem}; {}",
            token_hint(audience)
        ))
    };
    let tokens = tokens.trim();
    if tokens.is_empty() {
        return fail(format!(
            "service account tokens not found ({SERVICE_ACCOUNT_TOKENS} is empty)"
        ));
    }
    let all: BTreeMap<String, Value> = match serde_json::from_str(tokens) {
        Ok(all) => all,
        Err(e) => {
            return fail(format!(
                "failed to unmarshal service account tokens, error: {}",
                json_error(&e)
            ));
        }
    };
    let Some(entry) = all.get(audience) else {
        return fail(format!("token for audience {audience} not found"));
    };
    let Value::Object(entry) = entry else {
        return fail("the entry is not a JSON object".into());
    };
    let token = match entry.get("token") {
        Some(Value::String(t)) if !t.trim().is_empty() => Sensitive::new(t.trim()),
        None | Some(Value::Null) | Some(Value::String(_)) => {
            return fail(format!("token for audience {audience} not found"));
        }
        Some(_) => return fail("\"token\" is not a JSON string".into()),
    };
    match entry.get("expirationTimestamp") {
        None | Some(Value::Null) => {}
        Some(Value::String(ts))
            if time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339)
                .is_ok() => {}
        Some(_) => return fail("\"expirationTimestamp\" is not an RFC 3339 time".into()),
    }
    Ok(token)
}

/// `clientid` with `clientsecret` (or `clientcert`) from the nodePublishSecretRef secret; keys
/// are matched case-insensitively, as upstream.
fn service_principal(
    secrets: Option<&BTreeMap<String, String>>,
    adfs: bool,
) -> Result<IdentityRequest, String> {
    let Some(secrets) = secrets else {
        return Err(format!(
            "failed to get credentials, nodePublishSecretRef secret is not set (set nodePublishSecretRef on the volume with clientid and clientsecret, or use workload identity by setting clientID; {})",
            token_hint(WORKLOAD_IDENTITY_AUDIENCE)
        ));
    };
    let client_id = secret_value(secrets, "clientid")?
        .ok_or_else(|| "could not find clientid in secrets".to_string())?;
    let client_id = client_id.expose().to_string();
    check_client_id("clientid in secrets", &client_id, adfs)?;
    if let Some(client_secret) = secret_value(secrets, "clientsecret")? {
        return Ok(IdentityRequest::ServicePrincipalSecret {
            client_id,
            client_secret,
        });
    }
    match secret_value(secrets, "clientcert")? {
        Some(certificate) => Ok(IdentityRequest::ServicePrincipalCertificate {
            client_id,
            certificate,
        }),
        None => Err("could not find clientsecret in secrets (nor clientcert)".into()),
    }
}

/// The trimmed, non-empty value of `key` (any case). Two spellings with different values are
/// an error (upstream would pick one at random).
fn secret_value(
    secrets: &BTreeMap<String, String>,
    key: &str,
) -> Result<Option<Sensitive>, String> {
    let mut found: Option<&str> = None;
    for value in secrets
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.trim())
    {
        match found {
            Some(previous) if !previous.is_empty() && !value.is_empty() && previous != value => {
                return Err(format!(
                    "secrets contain several {key} keys (case-insensitive) with different values"
                ));
            }
            Some(previous) if !previous.is_empty() => {}
            _ => found = Some(value),
        }
    }
    Ok(found.filter(|v| !v.is_empty()).map(Sensitive::new))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUID: &str = "00000000-0000-4000-8000-0000000000c1";
    const JWT: &str = "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0LXBheWxvYWQ.c2lnbmF0dXJl";

    fn tokens(audience: &str, token: &str) -> String {
        serde_json::json!({ audience: { "token": token, "expirationTimestamp": "2099-01-01T00:00:00Z" } }).to_string()
    }

    #[test]
    fn workload_identity_token_cases() {
        // §7 K 53.
        for bad in [
            "",
            "invalid",
            "{\"aud1\":{\"token\":\"x\"}}",
            "{\"gcp\":{\"token\":\"x\"}}",
        ] {
            let e = token_for_audience(bad, WORKLOAD_IDENTITY_AUDIENCE).unwrap_err();
            assert!(
                e.contains("tokenRequests") && e.contains(WORKLOAD_IDENTITY_AUDIENCE),
                "{e}"
            );
        }
        let numeric = r#"{"api://AzureADTokenExchange":{"token":12345,"expirationTimestamp":"2099-01-01T00:00:00Z"}}"#;
        assert!(
            token_for_audience(numeric, WORKLOAD_IDENTITY_AUDIENCE)
                .unwrap_err()
                .contains("not a JSON string")
        );
        let both = format!(
            r#"{{"api://AzureADTokenExchange":{{"token":"{JWT}","expirationTimestamp":"2022-01-26T22:04:07Z"}},"aud2":{{"token":"other"}}}}"#
        );
        assert_eq!(
            token_for_audience(&both, WORKLOAD_IDENTITY_AUDIENCE)
                .unwrap()
                .expose(),
            JWT
        );
        // Other audiences may hold anything.
        let odd = format!(r#"{{"api://AzureADTokenExchange":{{"token":"{JWT}"}},"x":5}}"#);
        assert_eq!(
            token_for_audience(&odd, WORKLOAD_IDENTITY_AUDIENCE)
                .unwrap()
                .expose(),
            JWT
        );
    }

    #[test]
    fn identity_binding_token_cases() {
        // §7 K 54.
        let t = tokens(IDENTITY_BINDING_AUDIENCE, JWT);
        assert_eq!(
            token_for_audience(&t, IDENTITY_BINDING_AUDIENCE)
                .unwrap()
                .expose(),
            JWT
        );
        let e = token_for_audience(
            &tokens(WORKLOAD_IDENTITY_AUDIENCE, JWT),
            IDENTITY_BINDING_AUDIENCE,
        )
        .unwrap_err();
        assert!(
            e.contains("token for audience api://AKSIdentityBinding not found"),
            "{e}"
        );
    }

    #[test]
    fn malformed_entries_never_echo_the_token() {
        let cases = [
            format!(r#"{{"api://AzureADTokenExchange":"{JWT}"}}"#),
            format!(
                r#"{{"api://AzureADTokenExchange":{{"token":"{JWT}","expirationTimestamp":"soon"}}}}"#
            ),
            format!(r#"{{"api://AzureADTokenExchange":{{"token":"{JWT}"}}"#),
            format!(r#""{JWT}""#),
            format!(r#"["{JWT}"]"#),
            format!(r#"{{"api://AzureADTokenExchange":{{"token":"{JWT}","token":5}}}}"#),
        ];
        for case in cases {
            match token_for_audience(&case, WORKLOAD_IDENTITY_AUDIENCE) {
                Err(e) => assert!(!e.contains(JWT) && !e.contains("c2VjcmV0"), "{e}"),
                Ok(_) => panic!("accepted {case}"),
            }
        }
    }

    #[test]
    fn identity_binding_requires_client_id_and_tokens() {
        // §7 K 55.
        let t = tokens(IDENTITY_BINDING_AUDIENCE, JWT);
        for (client_id, tokens, want) in [
            ("", t.as_str(), "clientID is required"),
            (
                GUID,
                "",
                "service account tokens are required for identity binding",
            ),
            ("", "", "required"),
        ] {
            let input = IdentityInput {
                mode: Mode::AzureTokenProxy,
                client_id,
                user_assigned_identity_id: "",
                tokens,
                secrets: None,
                adfs: false,
            };
            let e = select(&input).unwrap_err().0;
            assert!(
                e.contains(want) && e.contains("mode AzureTokenProxy"),
                "{e}"
            );
        }
        let input = IdentityInput {
            mode: Mode::AzureTokenProxy,
            client_id: GUID,
            user_assigned_identity_id: "",
            tokens: &t,
            secrets: None,
            adfs: false,
        };
        match select(&input).unwrap() {
            IdentityRequest::AzureTokenProxy {
                client_id,
                service_account_token,
            } => {
                assert_eq!(client_id, GUID);
                assert_eq!(service_account_token.expose(), JWT);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn secret_keys_are_case_insensitive_and_trimmed() {
        let secrets: BTreeMap<String, String> = [
            ("ClientID", " 00000000-0000-4000-8000-0000000000c1 \n"),
            ("CLIENTSECRET", "s3cr3t\n"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .into();
        match service_principal(Some(&secrets), false).unwrap() {
            IdentityRequest::ServicePrincipalSecret {
                client_id,
                client_secret,
            } => {
                assert_eq!(client_id, GUID);
                assert_eq!(client_secret.expose(), "s3cr3t");
            }
            other => panic!("{other:?}"),
        }
        let clash: BTreeMap<String, String> = [
            ("clientid", "a"),
            ("ClientId", "b"),
            ("clientsecret", "s3cr3t"),
        ]
        .map(|(k, v)| (k.into(), v.into()))
        .into();
        let e = service_principal(Some(&clash), false).unwrap_err();
        assert!(
            e.contains("several clientid keys") && !e.contains("s3cr3t"),
            "{e}"
        );
        let same: BTreeMap<String, String> = [
            ("clientid", GUID),
            ("ClientId", GUID),
            ("clientsecret", ""),
            ("CLIENTSECRET", "s"),
        ]
        .map(|(k, v)| (k.into(), v.into()))
        .into();
        assert!(matches!(
            service_principal(Some(&same), false).unwrap(),
            IdentityRequest::ServicePrincipalSecret { .. }
        ));
    }

    #[test]
    fn identity_values_have_their_shapes() {
        assert!(is_guid(GUID) && is_guid("72F988BF-86F1-41AF-91AB-2D7CD011DB47"));
        for bad in [
            "",
            "tid",
            "{72f988bf-86f1-41af-91ab-2d7cd011db47}",
            "72f988bf86f141af91ab2d7cd011db47",
            "72f988bf-86f1-41af-91ab-2d7cd011db4g",
        ] {
            assert!(!is_guid(bad), "{bad}");
        }
        for tenant in [
            GUID,
            "adfs",
            "contoso.onmicrosoft.com",
            "tid",
            "contoso.com.",
        ] {
            check_tenant(tenant).unwrap();
        }
        let huge = "t".repeat(900_000);
        for bad in [
            "-x.com",
            "a..b",
            "a b",
            "tenant/../x",
            &huge,
            &"a".repeat(64),
            &format!("{}.com", "a.".repeat(130)),
        ] {
            let e = check_tenant(bad).unwrap_err().0;
            assert!(e.starts_with("tenantId ") && e.len() < 300, "{e}");
        }
        check_client_id("clientID", GUID, false).unwrap();
        let e = check_client_id("clientID", "sp", false).unwrap_err();
        assert!(
            e.contains("clientID \"sp\" (2 bytes) is not a client ID"),
            "{e}"
        );
        check_client_id("clientID", "https://adfs.example/app", true).unwrap();
        assert!(check_client_id("clientID", &huge, true).unwrap_err().len() < 300);
        let arm = format!(
            "/subscriptions/{GUID}/resourceGroups/rg-1/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-1"
        );
        check_user_assigned_identity_id(&arm).unwrap();
        check_user_assigned_identity_id(&arm.to_lowercase()).unwrap();
        check_user_assigned_identity_id(GUID).unwrap();
        for bad in [
            format!("{arm}/x"),
            "uami-client".into(),
            format!(
                "/subscriptions/{GUID}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm"
            ),
            format!(
                "/subscriptions/{GUID}/resourceGroups/{}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/x",
                "g".repeat(500)
            ),
        ] {
            let e = check_user_assigned_identity_id(&bad).unwrap_err();
            assert!(
                e.starts_with("userAssignedIdentityID ") && e.len() < 400,
                "{e}"
            );
        }
    }

    #[test]
    fn client_ids_are_checked_where_they_are_used() {
        let secrets: BTreeMap<String, String> = [("clientid", "sp"), ("clientsecret", "s3cr3t")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into();
        let e = service_principal(Some(&secrets), false).unwrap_err();
        assert!(e.contains("clientid in secrets \"sp\""), "{e}");
        assert!(service_principal(Some(&secrets), true).is_ok());
        let input = |mode, client_id| IdentityInput {
            mode,
            client_id,
            user_assigned_identity_id: "",
            tokens: "",
            secrets: None,
            adfs: false,
        };
        let e = select(&input(Mode::None, "not-a-guid")).unwrap_err().0;
        assert!(e.contains("clientID \"not-a-guid\""), "{e}");
        // Pod identity does not use clientID: only the token requirement applies (upstream).
        let e = select(&input(Mode::PodIdentity, "not-a-guid"))
            .unwrap_err()
            .0;
        assert!(e.contains("tokenRequests"), "{e}");
    }
}
