//! The token issuers: Entra ID's v2 token endpoint (client secret and client assertion),
//! IMDS (managed identities) and aad-pod-identity's NMI. Every token they issue is recorded with
//! its identity, resource and expiry so Key Vault can check it.

use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use axum::{
    body::Body,
    http::{Response, StatusCode, request::Parts},
};
use base64::{
    Engine as _,
    engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD},
};
use serde_json::{Value, json};
use sha1::Digest as _;

use super::{
    AppRegistration, Fault, SYSTEM_ASSIGNED_CLIENT_ID, SYSTEM_IDENTITY, Service, Shared,
    normalize_resource,
    server::{Outcome, json, query, query_value, status, text},
    unix_now,
};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Counts the request, waits the token latency and takes a pending fault of `service`.
async fn begin(shared: &Shared, service: Service) -> Option<Fault> {
    let latency = {
        let mut state = shared.lock();
        match service {
            Service::Entra => state.counts.entra_tokens += 1,
            Service::Imds => state.counts.imds += 1,
            _ => state.counts.nmi += 1,
        }
        state.token_latency
    };
    tokio::time::sleep(latency).await;
    shared.lock().take_fault(service)
}

/// Adds `Retry-After: <seconds>` to an injected failure.
fn with_retry_after(mut response: Response<Body>, seconds: u64) -> Response<Body> {
    response.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from(seconds),
    );
    response
}

// ---- Entra ID ----

/// An Entra ID error: `(status, error, AADSTS number, description)`.
struct EntraError(StatusCode, &'static str, u32, String);

impl EntraError {
    fn response(&self) -> Response<Body> {
        let EntraError(status, error, code, description) = self;
        let body = json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {description} Trace ID: 00000000-0000-0000-0000-000000000000 Correlation ID: 00000000-0000-0000-0000-000000000000 Timestamp: {}", super::rfc3339(unix_now())),
            "error_codes": [code],
            "timestamp": super::rfc3339(unix_now()),
            "trace_id": "00000000-0000-0000-0000-000000000000",
            "correlation_id": "00000000-0000-0000-0000-000000000000",
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        });
        json(*status, &body)
    }
}

/// `POST /{tenant}/oauth2/v2.0/token`.
/// `host` is the original (production) host, which a certificate assertion's `aud` must name.
pub(super) async fn entra(shared: &Shared, host: &str, parts: &Parts, body: Body) -> Outcome {
    let entra_fault = |code: u16, aadsts: &str| {
        let status = status(code);
        let number = aadsts.trim_start_matches("AADSTS").parse().unwrap_or(0);
        let error = if status.is_server_error() {
            "temporarily_unavailable"
        } else {
            "invalid_request"
        };
        EntraError(status, error, number, "Injected failure.".into()).response()
    };
    match begin(shared, Service::Entra).await {
        Some(Fault::EntraStatus {
            status: code,
            aadsts,
            ..
        }) => return Outcome::Reply(entra_fault(code, aadsts)),
        Some(Fault::EntraRetryAfter {
            status: code,
            retry_after_secs,
            ..
        }) => {
            return Outcome::Reply(with_retry_after(
                entra_fault(code, "AADSTS90033"),
                retry_after_secs,
            ));
        }
        Some(Fault::EntraReset { .. }) => return Outcome::Reset,
        _ => {}
    }
    let form = match axum::body::to_bytes(body, 1 << 20).await {
        Ok(bytes) => url::form_urlencoded::parse(&bytes)
            .into_owned()
            .collect::<Vec<_>>(),
        Err(_) => Vec::new(),
    };
    let tenant = parts
        .uri
        .path()
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let endpoint = format!("https://{host}/{tenant}/oauth2/v2.0/token");
    let reply = match issue_entra_token(shared, &tenant, &endpoint, &form) {
        Ok(body) => json(StatusCode::OK, &body),
        Err(error) => error.response(),
    };
    Outcome::Reply(reply)
}

fn issue_entra_token(
    shared: &Shared,
    tenant: &str,
    endpoint: &str,
    form: &[(String, String)],
) -> Result<Value, EntraError> {
    let field = |name: &str| query_value(form, name).filter(|v| !v.is_empty());
    let mut state = shared.lock();
    for secret in ["client_secret", "client_assertion"]
        .iter()
        .filter_map(|name| field(name))
    {
        state.remember_sensitive(secret);
    }
    let missing = |name: &str| {
        EntraError(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            format!("The request body must contain the following parameter: '{name}'."),
        )
    };
    if field("grant_type") != Some("client_credentials") {
        return Err(missing("grant_type"));
    }
    let client_id = field("client_id").ok_or_else(|| missing("client_id"))?;
    let scope = field("scope").ok_or_else(|| missing("scope"))?;
    let Some(app) = state
        .apps
        .get(&(tenant.to_string(), client_id.to_string()))
        .cloned()
    else {
        return Err(EntraError(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant}'."
            ),
        ));
    };
    match (field("client_secret"), field("client_assertion")) {
        (Some(secret), _) => check_secret(&app, secret)?,
        (None, Some(assertion)) => {
            if field("client_assertion_type") != Some(ASSERTION_TYPE) {
                return Err(missing("client_assertion_type"));
            }
            if !app.certificates.is_empty()
                && jwt_header(assertion).is_some_and(|h| h.contains_key("x5t"))
            {
                check_certificate_assertion(&app, client_id, endpoint, assertion)?
            } else {
                check_assertion(&app, assertion)?
            }
        }
        (None, None) => {
            return Err(EntraError(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.".into(),
            ));
        }
    }
    // The SDK sends one `<resource>/.default` scope; the token is bound to the first one.
    let resource = scope.split_whitespace().next().unwrap_or(scope);
    let (token, lifetime) = state.issue_token(client_id, resource);
    let secs = lifetime.as_secs();
    Ok(
        json!({ "token_type": "Bearer", "expires_in": secs, "ext_expires_in": secs, "access_token": token }),
    )
}

fn check_secret(app: &AppRegistration, secret: &str) -> Result<(), EntraError> {
    if app.secrets.iter().any(|s| s == secret) {
        return Ok(());
    }
    Err(EntraError(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        7000215,
        "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.".into(),
    ))
}

fn malformed() -> EntraError {
    EntraError(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        50027,
        "JWT token is invalid or malformed.".into(),
    )
}

fn expired() -> EntraError {
    EntraError(
        StatusCode::BAD_REQUEST,
        "invalid_client",
        700024,
        "Client assertion is not within its valid time range.".into(),
    )
}

fn is_expired(claims: &serde_json::Map<String, Value>) -> bool {
    claims
        .get("exp")
        .and_then(Value::as_i64)
        .is_none_or(|exp| exp <= unix_now())
}

/// A certificate credential's assertion: `x5t` names a registered certificate, the RS256
/// signature verifies with its key, `aud` is this token endpoint, `iss` = `sub` = the client.
fn check_certificate_assertion(
    app: &AppRegistration,
    client_id: &str,
    endpoint: &str,
    assertion: &str,
) -> Result<(), EntraError> {
    let header = jwt_header(assertion).ok_or_else(malformed)?;
    let claims = jwt_claims(assertion).ok_or_else(malformed)?;
    let x5t = header
        .get("x5t")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let invalid_signature = |what: &str| {
        EntraError(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700027,
            format!("Client assertion contains an invalid signature. [Reason - {what}]"),
        )
    };
    let Some(cert) = app
        .certificates
        .iter()
        .find(|der| URL_SAFE_NO_PAD.encode(sha1::Sha1::digest(der)) == x5t)
    else {
        return Err(invalid_signature(&format!(
            "The key was not found., Thumbprint of key used by client: '{x5t}'"
        )));
    };
    if header.get("alg").and_then(Value::as_str) != Some("RS256") {
        return Err(invalid_signature("The algorithm is not RS256."));
    }
    let (signed, signature) = assertion.rsplit_once('.').ok_or_else(malformed)?;
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| malformed())?;
    let verified = x509_parser::parse_x509_certificate(cert)
        .ok()
        .is_some_and(|(_, cert)| {
            UnparsedPublicKey::new(
                &RSA_PKCS1_2048_8192_SHA256,
                cert.public_key().subject_public_key.data.as_ref(),
            )
            .verify(signed.as_bytes(), &signature)
            .is_ok()
        });
    if !verified {
        return Err(invalid_signature("The signature does not verify."));
    }
    if is_expired(&claims) {
        return Err(expired());
    }
    let claim = |name: &str| claims.get(name).and_then(Value::as_str).unwrap_or_default();
    if claim("aud") != endpoint {
        return Err(EntraError(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            700023,
            format!(
                "Client assertion audience claim does not match the token endpoint '{endpoint}'."
            ),
        ));
    }
    if claim("iss") != client_id || claim("sub") != client_id {
        return Err(EntraError(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            700021,
            "Client assertion application identifier doesn't match 'client_id' parameter.".into(),
        ));
    }
    Ok(())
}

fn check_assertion(app: &AppRegistration, assertion: &str) -> Result<(), EntraError> {
    let claims = jwt_claims(assertion).ok_or_else(malformed)?;
    let claim = |name: &str| claims.get(name).and_then(Value::as_str).unwrap_or_default();
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        Some(Value::String(aud)) => vec![aud.as_str()],
        _ => Vec::new(),
    };
    if is_expired(&claims) {
        return Err(expired());
    }
    let matches = app.federated.iter().any(|f| {
        f.issuer == claim("iss")
            && f.subject == claim("sub")
            && audiences.contains(&f.audience.as_str())
    });
    if matches {
        return Ok(());
    }
    Err(EntraError(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        70021,
        format!(
            "No matching federated identity record found for presented assertion. Assertion Issuer: '{}'. Assertion Subject: '{}'. Assertion Audience: '{}'.",
            claim("iss"),
            claim("sub"),
            audiences.join(","),
        ),
    ))
}

/// The claims of a JWT, without verifying its signature.
pub(super) fn jwt_claims(jwt: &str) -> Option<serde_json::Map<String, Value>> {
    jwt_part(jwt, 1)
}

/// The header of a JWT.
fn jwt_header(jwt: &str) -> Option<serde_json::Map<String, Value>> {
    jwt_part(jwt, 0)
}

fn jwt_part(jwt: &str, index: usize) -> Option<serde_json::Map<String, Value>> {
    let part = jwt.split('.').nth(index)?;
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .or_else(|_| URL_SAFE.decode(part))
        .ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

// ---- IMDS ----

/// `GET /metadata/identity/oauth2/token?api-version=..&resource=..[&client_id=..]`.
pub(super) async fn imds(shared: &Shared, parts: &Parts) -> Outcome {
    let imds_fault = |code: u16| imds_error(status(code), "unknown_error", "Injected failure.");
    match begin(shared, Service::Imds).await {
        Some(Fault::ImdsStatus { status: code, .. }) => return Outcome::Reply(imds_fault(code)),
        Some(Fault::ImdsRetryAfter {
            status: code,
            retry_after_secs,
            ..
        }) => {
            return Outcome::Reply(with_retry_after(imds_fault(code), retry_after_secs));
        }
        Some(Fault::ImdsReset { .. }) => return Outcome::Reset,
        _ => {}
    }
    let metadata = parts.headers.get("metadata").and_then(|v| v.to_str().ok());
    if !metadata.is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Outcome::Reply(imds_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Required metadata header not specified",
        ));
    }
    let pairs = query(&parts.uri);
    if query_value(&pairs, "api-version").is_none_or(str::is_empty) {
        return Outcome::Reply(imds_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Required query variable 'api-version' is missing",
        ));
    }
    let Some(resource) = query_value(&pairs, "resource").filter(|r| !r.is_empty()) else {
        return Outcome::Reply(imds_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Required query variable 'resource' is missing",
        ));
    };
    let requested = ["client_id", "object_id", "msi_res_id", "mi_res_id"]
        .iter()
        .find_map(|name| query_value(&pairs, name));
    let identity = requested.unwrap_or(SYSTEM_IDENTITY);
    let mut state = shared.lock();
    if !state.managed_identities.contains(identity) {
        return Outcome::Reply(imds_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Identity not found",
        ));
    }
    let (token, lifetime) = state.issue_token(identity, resource);
    let now = unix_now();
    let secs = lifetime.as_secs() as i64;
    let client_id = requested.unwrap_or(SYSTEM_ASSIGNED_CLIENT_ID);
    Outcome::Reply(json(
        StatusCode::OK,
        &json!({
            "access_token": token,
            "client_id": client_id,
            "expires_in": secs.to_string(),
            "expires_on": (now + secs).to_string(),
            "ext_expires_in": secs.to_string(),
            "not_before": now.to_string(),
            "resource": resource,
            "token_type": "Bearer",
        }),
    ))
}

fn imds_error(status: StatusCode, error: &str, description: &str) -> Response<Body> {
    json(
        status,
        &json!({ "error": error, "error_description": description }),
    )
}

// ---- NMI ----

/// `GET /host/token/?resource=..` with `podns` and `podname` headers.
pub(super) async fn nmi(shared: &Shared, parts: &Parts) -> Outcome {
    match begin(shared, Service::Nmi).await {
        Some(Fault::NmiStatus { status: code, .. }) => {
            return Outcome::Reply(text(status(code), "injected failure"));
        }
        Some(Fault::NmiReset { .. }) => return Outcome::Reset,
        _ => {}
    }
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
    };
    let (Some(namespace), Some(pod)) = (header("podns"), header("podname")) else {
        return Outcome::Reply(text(
            StatusCode::BAD_REQUEST,
            "missing podname or podns headers in request",
        ));
    };
    let pairs = query(&parts.uri);
    let Some(resource) = query_value(&pairs, "resource").filter(|r| !r.is_empty()) else {
        return Outcome::Reply(text(
            StatusCode::BAD_REQUEST,
            "parameter resource cannot be empty",
        ));
    };
    let mut state = shared.lock();
    let Some(client_id) = state
        .pods
        .get(&(namespace.to_string(), pod.to_string()))
        .cloned()
    else {
        let message = format!(
            "failed to get service principal token for pod:{namespace}/{pod}, error: no AzureAssignedIdentity found for pod:{namespace}/{pod} in assigned state"
        );
        return Outcome::Reply(text(StatusCode::FORBIDDEN, &message));
    };
    let (token, lifetime) = state.issue_token(&client_id, resource);
    let expires_on = unix_now() + lifetime.as_secs() as i64;
    Outcome::Reply(json(
        StatusCode::OK,
        &json!({
            "token": {
                "access_token": token,
                "expires_on": expires_on.to_string(),
                "resource": normalize_resource(resource),
                "token_type": "Bearer",
            },
            "clientid": client_id,
        }),
    ))
}
