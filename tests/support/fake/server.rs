//! The HTTP(S) server of the fake: an accept loop serving one axum router per connection with
//! hyper, so a handler can make the client see a dropped connection (the `KeyVaultReset` fault).

use std::sync::Arc;

use axum::{
    Router,
    body::Body,
    extract::{Extension, Request, State},
    http::{HeaderMap, Response, StatusCode, header},
};
use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpListener,
    sync::Notify,
    task::JoinSet,
};
use tokio_rustls::TlsAcceptor;

use super::{Recorded, Service, Shared, identity, keyvault};

/// What a service handler decided.
pub(super) enum Outcome {
    Reply(Response<Body>),
    /// Close the connection without answering.
    Reset,
}

/// Lets a handler abort the connection its request came on.
#[derive(Clone)]
struct ConnectionControl {
    reset: Arc<Notify>,
}

/// Accepts connections until the task is aborted; aborting drops the JoinSet and with it every
/// connection task.
pub(super) async fn serve(listener: TcpListener, tls: Option<TlsAcceptor>, shared: Arc<Shared>) {
    let router = Router::new().fallback(dispatch).with_state(shared);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    // Out of file descriptors under load: back off instead of spinning.
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                };
                let router = router.clone();
                match tls.clone() {
                    Some(acceptor) => connections.spawn(async move {
                        if let Ok(stream) = acceptor.accept(stream).await {
                            serve_connection(stream, router).await;
                        }
                    }),
                    None => connections.spawn(serve_connection(stream, router)),
                };
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Serves HTTP/1.1 on one connection; drops it (without an answer) when a handler asks for a reset.
async fn serve_connection<S>(stream: S, router: Router)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let control = ConnectionControl {
        reset: Arc::new(Notify::new()),
    };
    let reset = control.reset.clone();
    let service =
        hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(control.clone());
            let mut router = router.clone();
            async move { tower::Service::call(&mut router, request).await }
        });
    let connection =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        _ = connection => {}
        _ = reset.notified() => {}
    }
}

async fn dispatch(
    State(shared): State<Arc<Shared>>,
    Extension(control): Extension<ConnectionControl>,
    request: Request,
) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let host = original_host(&parts.headers);
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".to_string());
    let service = classify(&host, parts.uri.path());
    let authorized = bearer_token(&parts.headers).is_some();
    let outcome = match service {
        Service::KeyVault => keyvault::handle(&shared, &host, &parts).await,
        Service::Entra => identity::entra(&shared, &host, &parts, body).await,
        Service::Imds => identity::imds(&shared, &parts).await,
        Service::Nmi => identity::nmi(&shared, &parts).await,
        Service::Unknown => Outcome::Reply(text(
            StatusCode::NOT_FOUND,
            "the fake serves no such endpoint",
        )),
    };
    let status = match &outcome {
        Outcome::Reply(response) => response.status().as_u16(),
        Outcome::Reset => 0,
    };
    shared.lock().requests.push(Recorded {
        service: service.name(),
        method: parts.method.to_string(),
        path,
        host,
        status,
        authorized,
    });
    match outcome {
        Outcome::Reply(response) => response,
        Outcome::Reset => {
            control.reset.notify_one();
            std::future::pending().await
        }
    }
}

/// The `x-original-host` header, else the `Host` header without its port.
fn original_host(headers: &HeaderMap) -> String {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    header(akv_csi_provider::transport::ORIGINAL_HOST_HEADER)
        .or_else(|| {
            header(header::HOST.as_str())
                .map(|h| h.split(':').next().unwrap_or_default().to_string())
        })
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// Which endpoint a request is for: by original host first, then by path shape.
fn classify(host: &str, path: &str) -> Service {
    let keyvault_path = ["/secrets/", "/keys/", "/certificates/"]
        .iter()
        .any(|p| path.starts_with(p));
    match host {
        "169.254.169.254" => Service::Imds,
        h if h.starts_with("login.") => Service::Entra,
        h if h.split('.').count() >= 3
            && keyvault_path
            && h.parse::<std::net::Ipv4Addr>().is_err() =>
        {
            Service::KeyVault
        }
        _ if path.starts_with("/metadata/identity/") => Service::Imds,
        _ if path.starts_with("/host/token") => Service::Nmi,
        _ if path.ends_with("/oauth2/v2.0/token") => Service::Entra,
        _ if keyvault_path => Service::KeyVault,
        _ => Service::Unknown,
    }
}

/// The token of an `Authorization: Bearer <token>` header.
pub(super) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| token.trim())
}

pub(super) fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    response(status, "application/json; charset=utf-8", value.to_string())
}

pub(super) fn text(status: StatusCode, body: &str) -> Response<Body> {
    response(status, "text/plain; charset=utf-8", body.to_string())
}

fn response(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}

/// `StatusCode` from a fault's number (500 when it is not a valid status).
pub(super) fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// The decoded query pairs of a URI.
pub(super) fn query(uri: &axum::http::Uri) -> Vec<(String, String)> {
    url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

pub(super) fn query_value<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}
