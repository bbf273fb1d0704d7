//! The Key Vault data plane: challenge authentication, access checks, secrets/keys/certificates
//! by current or pinned version, and paged version listings.

use std::time::Instant;

use axum::{
    body::Body,
    http::{HeaderValue, Response, StatusCode, header, request::Parts},
};
use base64::{
    Engine as _,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use serde_json::{Value, json};
use sha1::{Digest as _, Sha1};

use super::{
    Fault, Kind, ObjectVersion, Payload, Service, Shared, State, StoredObject,
    server::{Outcome, bearer_token, json, query, query_value, status},
};

impl Kind {
    fn segment(self) -> &'static str {
        match self {
            Kind::Secret => "secrets",
            Kind::Key => "keys",
            Kind::Certificate => "certificates",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Kind::Secret => "secret",
            Kind::Key => "key",
            Kind::Certificate => "certificate",
        }
    }

    fn not_found_code(self) -> &'static str {
        match self {
            Kind::Secret => "SecretNotFound",
            Kind::Key => "KeyNotFound",
            Kind::Certificate => "CertificateNotFound",
        }
    }

    fn from_segment(segment: &str) -> Option<Kind> {
        [Kind::Secret, Kind::Key, Kind::Certificate]
            .into_iter()
            .find(|k| k.segment() == segment)
    }
}

/// What the path asks for.
enum Operation<'a> {
    Get {
        kind: Kind,
        name: &'a str,
        version: Option<&'a str>,
    },
    ListVersions {
        kind: Kind,
        name: &'a str,
    },
}

/// The vault addressed by `host` (`myvault.vault.azure.net` → `myvault`, `vault.azure.net`).
struct Vault<'a> {
    host: &'a str,
    name: String,
    resource: String,
}

impl<'a> Vault<'a> {
    fn parse(host: &'a str) -> Option<Vault<'a>> {
        let (name, suffix) = host.split_once('.')?;
        (!name.is_empty() && suffix.contains('.')).then(|| Vault {
            host,
            name: name.to_ascii_lowercase(),
            resource: format!("https://{suffix}"),
        })
    }

    /// The Entra authority of the vault's cloud, for the challenge.
    fn authority(&self) -> String {
        let login = if self.host.ends_with(".cn") {
            "login.chinacloudapi.cn"
        } else if self.host.ends_with(".us") || self.host.ends_with(".usgovcloudapi.net") {
            "login.microsoftonline.us"
        } else {
            "login.microsoftonline.com"
        };
        format!("https://{login}/{}", super::CHALLENGE_TENANT_ID)
    }

    fn challenge(&self) -> String {
        format!(
            r#"Bearer authorization="{}", resource="{}""#,
            self.authority(),
            self.resource
        )
    }
}

pub(super) async fn handle(shared: &Shared, host: &str, parts: &Parts) -> Outcome {
    let (latency, over_limit) = {
        let mut state = shared.lock();
        state.counts.keyvault += 1;
        let over = state.rate_limit.as_mut().and_then(|r| r.admit());
        (state.keyvault_latency, over)
    };
    tokio::time::sleep(latency).await;
    if let Some(retry_after_secs) = over_limit {
        return fault_outcome(&Fault::KeyVaultThrottle {
            count: 1,
            retry_after_secs,
        });
    }
    let fault = shared.lock().take_fault(Service::KeyVault);
    if let Some(fault) = fault {
        return fault_outcome(&fault);
    }
    let Some(mut vault) = Vault::parse(host) else {
        return error(
            StatusCode::BAD_REQUEST,
            "BadParameter",
            "The request URI is not a Key Vault host.",
        );
    };
    let pairs = query(&parts.uri);
    if query_value(&pairs, "api-version").is_none_or(str::is_empty) {
        return error(
            StatusCode::BAD_REQUEST,
            "BadParameter",
            "The 'api-version' query parameter is missing.",
        );
    }
    let Some(operation) = parse_path(parts.uri.path()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "BadParameter",
            "The request URI is invalid.",
        );
    };
    let mut state = shared.lock();
    if let Some(resource) = state.vault_resources.get(&vault.name) {
        vault.resource = resource.clone();
    }
    if let Some(denied) = denial(&mut state, &vault, parts, &operation) {
        return denied;
    }
    match operation {
        Operation::Get {
            kind,
            name,
            version,
        } => get(&state, &vault, kind, name, version),
        Operation::ListVersions { kind, name } => {
            let page_size = query_value(&pairs, "maxresults")
                .and_then(|m| m.parse::<usize>().ok())
                .filter(|m| *m > 0)
                .map_or(state.page_size, |m| m.min(state.page_size));
            let skip = query_value(&pairs, "$skiptoken")
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            list_versions(&state, &vault, kind, name, skip, page_size)
        }
    }
}

fn parse_path(path: &str) -> Option<Operation<'_>> {
    let mut segments = path.trim_start_matches('/').split('/');
    let kind = Kind::from_segment(segments.next()?)?;
    let name = segments.next().filter(|n| !n.is_empty())?;
    let rest = segments.next().filter(|s| !s.is_empty());
    if segments.any(|s| !s.is_empty()) {
        return None;
    }
    Some(match rest {
        Some("versions") => Operation::ListVersions { kind, name },
        version => Operation::Get {
            kind,
            name,
            version,
        },
    })
}

/// Why the request may not proceed, if it may not: 401 with the challenge when missing or not valid for this vault,
/// 403 when its identity has no access to the vault.
fn denial(
    state: &mut State,
    vault: &Vault<'_>,
    parts: &Parts,
    operation: &Operation<'_>,
) -> Option<Outcome> {
    let Some(token) = bearer_token(&parts.headers) else {
        state.counts.challenges += 1;
        return Some(unauthorized(
            vault,
            "AKV10000: Request is missing a Bearer or PoP token.",
        ));
    };
    let Some(issued) = state.tokens.get(token) else {
        return Some(unauthorized(
            vault,
            "AKV10032: Invalid issuer. The token was not issued by this authority.",
        ));
    };
    if issued.revoked {
        return Some(unauthorized(vault, "AKV10040: The token has been revoked."));
    }
    if issued.expires <= Instant::now() {
        return Some(unauthorized(
            vault,
            "AKV10022: Invalid token. The token is expired.",
        ));
    }
    if !issued.resource.eq_ignore_ascii_case(&vault.resource) {
        return Some(unauthorized(vault, "AKV10022: Invalid audience."));
    }
    let granted = state
        .grants
        .get(&vault.name)
        .is_some_and(|ids| ids.contains(&issued.identity));
    if granted {
        return None;
    }
    let (kind, action) = match operation {
        Operation::Get { kind, .. } => (kind, "get"),
        Operation::ListVersions { kind, .. } => (kind, "list"),
    };
    let message = format!(
        "The user, group or application 'appid={};iss=https://sts.windows.net/{}/' does not have {} {action} permission on key vault '{};location=eastus'.",
        issued.identity,
        super::CHALLENGE_TENANT_ID,
        kind.segment(),
        vault.name,
    );
    let body = json!({ "error": { "code": "Forbidden", "message": message, "innererror": { "code": "AccessDenied" } } });
    Some(Outcome::Reply(json(StatusCode::FORBIDDEN, &body)))
}

fn unauthorized(vault: &Vault<'_>, message: &str) -> Outcome {
    let mut response = error_response(StatusCode::UNAUTHORIZED, "Unauthorized", message);
    if let Ok(value) = HeaderValue::from_str(&vault.challenge()) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    Outcome::Reply(response)
}

/// Key Vault's error body.
fn error_response(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    json(
        status,
        &json!({ "error": { "code": code, "message": message } }),
    )
}

fn error(status: StatusCode, code: &str, message: &str) -> Outcome {
    Outcome::Reply(error_response(status, code, message))
}

fn fault_outcome(fault: &Fault) -> Outcome {
    match fault {
        Fault::KeyVaultThrottle {
            retry_after_secs, ..
        } => {
            let mut response = error_response(
                StatusCode::TOO_MANY_REQUESTS,
                "Throttled",
                "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached",
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            Outcome::Reply(response)
        }
        Fault::KeyVaultStatus { status: code, .. } => {
            let status = status(*code);
            let code = status
                .canonical_reason()
                .unwrap_or("Error")
                .replace(' ', "");
            error(status, &code, "Injected failure.")
        }
        Fault::KeyVaultReset { .. } => Outcome::Reset,
        // take_fault(Service::KeyVault) only yields Key Vault faults; answer like a fault anyway.
        _ => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            "Injected failure.",
        ),
    }
}

fn find<'s>(
    state: &'s State,
    vault: &Vault<'_>,
    kind: Kind,
    name: &str,
) -> Option<&'s StoredObject> {
    state
        .objects
        .get(&(vault.name.clone(), kind, name.to_ascii_lowercase()))
}

fn get(state: &State, vault: &Vault<'_>, kind: Kind, name: &str, version: Option<&str>) -> Outcome {
    let object = find(state, vault, kind, name);
    let not_found = || {
        let message = match version {
            Some(v) => format!(
                "A {} with (name/id) {name}/{v} was not found in this key vault.",
                kind.noun()
            ),
            None => format!(
                "A {} with (name/id) {name} was not found in this key vault.",
                kind.noun()
            ),
        };
        error(StatusCode::NOT_FOUND, kind.not_found_code(), &message)
    };
    let Some(object) = object else {
        return not_found();
    };
    let selected = match version {
        Some(v) => object.versions.iter().find(|o| o.version == v),
        None => current(object).or_else(|| object.versions.iter().max_by_key(|o| o.created)),
    };
    let Some(selected) = selected else {
        return not_found();
    };
    if !selected.enabled {
        let message = format!(
            "Operation get is not allowed on a disabled {}.",
            kind.noun()
        );
        return error(StatusCode::FORBIDDEN, "Forbidden", &message);
    }
    Outcome::Reply(json(
        StatusCode::OK,
        &bundle(vault, kind, &object.name, selected),
    ))
}

/// The newest enabled version by `created` (later insertion wins a tie).
fn current(object: &StoredObject) -> Option<&ObjectVersion> {
    object
        .versions
        .iter()
        .filter(|v| v.enabled)
        .max_by_key(|v| v.created)
}

fn object_id(vault: &Vault<'_>, segment: &str, name: &str, version: &str) -> String {
    format!("https://{}/{segment}/{name}/{version}", vault.host)
}

fn attributes(version: &ObjectVersion) -> Value {
    json!({
        "enabled": version.enabled,
        "created": version.created,
        "updated": version.created,
        "recoveryLevel": "Recoverable+Purgeable",
        "recoverableDays": 90,
    })
}

/// The full object as `GET` returns it.
fn bundle(vault: &Vault<'_>, kind: Kind, name: &str, version: &ObjectVersion) -> Value {
    let mut body = properties(vault, kind, name, version);
    match &version.payload {
        Payload::Secret { value, .. } => body["value"] = json!(value),
        Payload::Key { jwk } => {
            let mut jwk = jwk.clone();
            if let Some(fields) = jwk.as_object_mut() {
                fields.insert(
                    "kid".into(),
                    json!(object_id(vault, "keys", name, &version.version)),
                );
            }
            body["key"] = jwk;
            if let Some(fields) = body.as_object_mut() {
                fields.remove("kid");
            }
        }
        Payload::Certificate { cer } => {
            body["kid"] = json!(object_id(vault, "keys", name, &version.version));
            body["sid"] = json!(object_id(vault, "secrets", name, &version.version));
            body["cer"] = json!(STANDARD.encode(cer));
        }
    }
    body
}

/// The properties of a version as listings return them.
fn properties(vault: &Vault<'_>, kind: Kind, name: &str, version: &ObjectVersion) -> Value {
    let id = object_id(vault, kind.segment(), name, &version.version);
    let mut body = json!({ "attributes": attributes(version) });
    match &version.payload {
        Payload::Secret {
            content_type, kid, ..
        } => {
            body["id"] = json!(id);
            if let Some(content_type) = content_type {
                body["contentType"] = json!(content_type);
            }
            if let Some(kid) = kid {
                body["kid"] = json!(kid);
                body["managed"] = json!(true);
            }
        }
        Payload::Key { .. } => body["kid"] = json!(id),
        Payload::Certificate { cer } => {
            body["id"] = json!(id);
            body["x5t"] = json!(URL_SAFE_NO_PAD.encode(Sha1::digest(cer)));
        }
    }
    body
}

fn list_versions(
    state: &State,
    vault: &Vault<'_>,
    kind: Kind,
    name: &str,
    skip: usize,
    page_size: usize,
) -> Outcome {
    let mut versions: Vec<&ObjectVersion> = find(state, vault, kind, name)
        .map(|o| o.versions.iter().collect())
        .unwrap_or_default();
    versions.sort_by_key(|v| v.created);
    let display = find(state, vault, kind, name).map_or(name, |o| o.name.as_str());
    let value: Vec<Value> = versions
        .iter()
        .skip(skip)
        .take(page_size)
        .map(|v| properties(vault, kind, display, v))
        .collect();
    let next = skip + page_size;
    let next_link = (next < versions.len()).then(|| {
        format!("https://{}/{}/{name}/versions?api-version=2025-07-01&maxresults={page_size}&$skiptoken={next}", vault.host, kind.segment())
    });
    Outcome::Reply(json(
        StatusCode::OK,
        &json!({ "value": value, "nextLink": next_link }),
    ))
}
