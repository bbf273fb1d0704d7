//! The two plain-HTTP servers: `/metrics` (Prometheus) and the health endpoint (`/healthz`).
//!
//! Each is bound first ([`bind_metrics`], [`bind_health`]) so that a port already in use is a
//! startup error (the Go provider silently ignored it), then served with [`HttpServer::serve`]
//! until a shutdown future resolves. HTTP/1 only. The metrics server answers `GET /metrics` and
//! nothing else: no debug or profiling endpoints, unlike upstream's shared default mux.
//!
//! # Limits
//!
//! Both ports listen on the node's addresses (the pod uses `hostNetwork`), so any peer in the
//! cluster can connect. What one peer can hold is bounded by [`HttpLimits`]:
//!
//! - a request's headers must arrive within [`HttpLimits::header_timeout`] of the connection
//!   opening (hyper's header-read timer), else the connection is closed;
//! - a connection lives at most [`HttpLimits::request_timeout`] in all (the health server raises
//!   it to its check's timeout plus a second), whatever the peer sends or fails to read;
//! - keep-alive is off: a connection carries one request and is closed after its response, so no
//!   idle connection is ever kept;
//! - at most [`HttpLimits::max_connections`] connections are open per server, and at most
//!   [`HttpLimits::max_connections_per_ip`] from one peer address. A connection over the per-peer
//!   cap is closed at once. When the total cap is reached, a newcomer from a peer holding fewer
//!   connections than the heaviest peer takes the place of that peer's oldest connection (else it
//!   is closed): a flood, even from many addresses, cannot lock out the kubelet's probe, which
//!   holds at most one connection;
//! - request headers are buffered up to [`MAX_REQUEST_BUFFER`]; request bodies are never read.
//!
//! Refused and evicted connections are counted, and reported in at most one log line per
//! [`REFUSAL_LOG_INTERVAL`] per server.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;

use super::exposition::{
    OPENMETRICS_CONTENT_TYPE, PROMETHEUS_TEXT_CONTENT_TYPE, wants_openmetrics,
};
use super::health::check_grpc_health;
use super::metrics::Metrics;
use crate::endpoint::Endpoint;

/// Largest buffer hyper keeps for one connection's request head (headers included); a longer
/// head is answered `431` and the connection closed.
pub const MAX_REQUEST_BUFFER: usize = 16 * 1024;
/// At most one log line about refused or evicted connections per server in this interval.
pub const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// Listen backlog (the kernel caps it at `net.core.somaxconn`): a burst of connections waits in
/// the kernel for the accept loop, which closes those over the caps at once, instead of having
/// its SYNs dropped, which would also delay the kubelet's probe by a retransmission.
const LISTEN_BACKLOG: u32 = 4096;
/// How long to pause after a failed `accept` (e.g. out of descriptors), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// After shutdown, how long in-flight requests may take before their connections are dropped.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(1);

/// A server could not be started.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {address} for the {server} server: {source}")]
pub struct BindError {
    /// `metrics` or `health`.
    pub server: &'static str,
    /// The address that could not be bound.
    pub address: SocketAddr,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

/// What the health endpoint checks.
#[derive(Clone, Debug)]
pub struct HealthConfig {
    /// URL path answered (`--healthz-path`); a missing leading `/` is added.
    pub path: String,
    /// The provider's own gRPC endpoint (`--endpoint`).
    pub endpoint: Endpoint,
    /// Deadline of the gRPC health check (`--healthz-timeout`).
    pub timeout: Duration,
}

/// What one server lets its peers hold (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// A request's headers must be complete this long after the connection opened
    /// (`--http-header-timeout`).
    pub header_timeout: Duration,
    /// Longest a connection stays open, its one request and response included
    /// (`--http-request-timeout`).
    pub request_timeout: Duration,
    /// Most connections open at once (`--http-max-connections`).
    pub max_connections: usize,
    /// Most connections open at once from one peer address (`--http-max-connections-per-ip`).
    pub max_connections_per_ip: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            max_connections: 128,
            max_connections_per_ip: 8,
        }
    }
}

impl HttpLimits {
    /// The limits with every count at least 1 and every duration at least 1 ms.
    fn sane(mut self) -> Self {
        let floor = Duration::from_millis(1);
        self.header_timeout = self.header_timeout.max(floor);
        self.request_timeout = self.request_timeout.max(floor);
        self.max_connections = self.max_connections.max(1);
        self.max_connections_per_ip = self.max_connections_per_ip.clamp(1, self.max_connections);
        self
    }
}

/// `0.0.0.0:<port>`, where upstream listens.
pub fn all_interfaces(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))
}

/// A bound, not yet serving, HTTP server.
#[derive(Debug)]
pub struct HttpServer {
    server: &'static str,
    listener: TcpListener,
    router: Router,
    address: SocketAddr,
    limits: HttpLimits,
    /// The health server's connections must outlive its gRPC check.
    min_request_timeout: Duration,
}

impl HttpServer {
    async fn bind(
        server: &'static str,
        address: SocketAddr,
        router: Router,
    ) -> Result<Self, BindError> {
        let bind_error = |source| BindError {
            server,
            address,
            source,
        };
        let socket = if address.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(bind_error)?;
        // As std's `TcpListener::bind` does on Unix: a restart may rebind while old connections
        // linger in TIME_WAIT (a port with a live listener still fails with EADDRINUSE).
        socket.set_reuseaddr(true).map_err(bind_error)?;
        socket.bind(address).map_err(bind_error)?;
        let listener = socket.listen(LISTEN_BACKLOG).map_err(bind_error)?;
        let address = listener.local_addr().map_err(bind_error)?;
        Ok(Self {
            server,
            listener,
            router,
            address,
            limits: HttpLimits::default(),
            min_request_timeout: Duration::ZERO,
        })
    }

    /// The same server with other connection limits (the defaults are [`HttpLimits::default`]).
    pub fn with_limits(mut self, limits: HttpLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The limits in force: those given, made sane, with the request timeout raised for the
    /// health server.
    pub fn limits(&self) -> HttpLimits {
        let mut limits = self.limits.sane();
        limits.request_timeout = limits.request_timeout.max(self.min_request_timeout);
        limits
    }

    /// The bound address (the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish (for a second at
    /// most) and closes every connection.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let limits = self.limits();
        let server = self.server;
        let slots = Arc::new(Slots::new(server, limits));
        let stop = CancellationToken::new();
        let _stop_on_drop = stop.clone().drop_guard();
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                () = &mut shutdown => break,
                accepted = self.listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(server, error = %e, "accepting an HTTP connection failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            let Some(slot) = slots.admit(peer.ip()) else {
                // Dropping the stream closes it; nothing was read or allocated for it.
                drop(stream);
                continue;
            };
            tokio::spawn(serve_connection(
                stream,
                self.router.clone(),
                limits,
                slot,
                stop.clone(),
            ));
        }
        drop(self.listener);
        stop.cancel();
        let deadline = Instant::now() + SHUTDOWN_WAIT;
        while slots.open() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }
}

/// One connection: one request at most, within the header and connection deadlines; dropped
/// early when evicted, or when the server stops.
async fn serve_connection(
    stream: TcpStream,
    router: Router,
    limits: HttpLimits,
    slot: Slot,
    stop: CancellationToken,
) {
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let mut router = router.clone();
        // A Router is always ready; `call` needs no `poll_ready` first.
        async move {
            let response: Result<Response, Infallible> =
                tower::Service::call(&mut router, request).await;
            response
        }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(false)
        .max_buf_size(MAX_REQUEST_BUFFER)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        // Errors are the peer's doing (timeouts, resets, bad requests): nothing to report.
        _ = &mut connection => {}
        () = tokio::time::sleep(limits.request_timeout) => {}
        () = slot.evicted.cancelled() => {}
        () = stop.cancelled() => {
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(SHUTDOWN_WAIT, connection).await;
        }
    }
    drop(slot);
}

/// The open connections of one server, by peer address, oldest first.
struct Slots {
    server: &'static str,
    limits: HttpLimits,
    table: Mutex<SlotTable>,
    refused: AtomicU64,
    evicted: AtomicU64,
    /// Milliseconds since `started` of the last refusal log line (0: none yet).
    last_report: AtomicU64,
    started: Instant,
}

#[derive(Default)]
struct SlotTable {
    next_id: u64,
    total: usize,
    by_peer: HashMap<IpAddr, VecDeque<(u64, CancellationToken)>>,
}

/// One admitted connection; dropping it frees its place.
struct Slot {
    slots: Arc<Slots>,
    peer: IpAddr,
    id: u64,
    /// Cancelled when a newcomer takes this connection's place.
    evicted: CancellationToken,
}

impl Slots {
    fn new(server: &'static str, limits: HttpLimits) -> Self {
        Self {
            server,
            limits,
            table: Mutex::default(),
            refused: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
            last_report: AtomicU64::new(0),
            started: Instant::now(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SlotTable> {
        crate::sync::lock(&self.table)
    }

    fn open(&self) -> usize {
        self.lock().total
    }

    /// A place for a new connection from `peer`, or `None` when it must be closed.
    fn admit(self: &Arc<Self>, peer: IpAddr) -> Option<Slot> {
        let peer = peer.to_canonical();
        let mut table = self.lock();
        let held = table.by_peer.get(&peer).map_or(0, VecDeque::len);
        if held >= self.limits.max_connections_per_ip {
            drop(table);
            self.note(&self.refused);
            return None;
        }
        if table.total >= self.limits.max_connections {
            // The peer holding the most connections gives up its oldest, if it holds more than
            // the newcomer; otherwise the newcomer is the one too many.
            let heaviest = table
                .by_peer
                .iter()
                .max_by_key(|(_, open)| open.len())
                .map(|(ip, open)| (*ip, open.len()));
            match heaviest {
                Some((victim, count)) if count > held => {
                    let open = table.by_peer.get_mut(&victim)?;
                    if let Some((_, token)) = open.pop_front() {
                        token.cancel();
                        table.total -= 1;
                    }
                    if table.by_peer.get(&victim).is_some_and(VecDeque::is_empty) {
                        table.by_peer.remove(&victim);
                    }
                    self.note(&self.evicted);
                }
                _ => {
                    drop(table);
                    self.note(&self.refused);
                    return None;
                }
            }
        }
        let id = table.next_id;
        table.next_id += 1;
        table.total += 1;
        let evicted = CancellationToken::new();
        table
            .by_peer
            .entry(peer)
            .or_default()
            .push_back((id, evicted.clone()));
        Some(Slot {
            slots: Arc::clone(self),
            peer,
            id,
            evicted,
        })
    }

    fn release(&self, peer: IpAddr, id: u64) {
        let mut table = self.lock();
        let Some(open) = table.by_peer.get_mut(&peer) else {
            return;
        };
        // An evicted connection was already taken out of the table.
        let Some(position) = open.iter().position(|(open_id, _)| *open_id == id) else {
            return;
        };
        open.remove(position);
        if open.is_empty() {
            table.by_peer.remove(&peer);
        }
        table.total -= 1;
    }

    /// Counts a refusal or an eviction; logs the counts at most once per
    /// [`REFUSAL_LOG_INTERVAL`].
    fn note(&self, counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
        let now = self.started.elapsed().as_millis() as u64 + 1;
        let last = self.last_report.load(Ordering::Relaxed);
        let interval = REFUSAL_LOG_INTERVAL.as_millis() as u64;
        if (last == 0 || now.saturating_sub(last) >= interval)
            && self
                .last_report
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                server = self.server,
                refused = self.refused.load(Ordering::Relaxed),
                evicted = self.evicted.load(Ordering::Relaxed),
                max_connections = self.limits.max_connections,
                max_connections_per_ip = self.limits.max_connections_per_ip,
                "HTTP connections over the connection caps were closed (totals since start)"
            );
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.release(self.peer, self.id);
    }
}

/// Binds the metrics server: `GET /metrics` with `metrics` encoded, 404 for anything else.
pub async fn bind_metrics(
    address: SocketAddr,
    metrics: &'static Metrics,
) -> Result<HttpServer, BindError> {
    let router = Router::new()
        .route("/metrics", get(serve_metrics).fallback(not_found))
        .fallback(not_found)
        .with_state(metrics);
    HttpServer::bind("metrics", address, router).await
}

/// Binds the health server: at `config.path`, 200 `ok` when the gRPC health check passes, else 503
/// with the reason; 404 for other paths.
pub async fn bind_health(
    address: SocketAddr,
    mut config: HealthConfig,
) -> Result<HttpServer, BindError> {
    if !config.path.starts_with('/') {
        config.path.insert(0, '/');
    }
    let min_request_timeout = config.timeout.saturating_add(Duration::from_secs(1));
    // Matched by hand rather than with a route: any configured path is valid, even one that
    // axum's route syntax would reject.
    let router = Router::new()
        .fallback(serve_health)
        .with_state(Arc::new(config));
    let mut server = HttpServer::bind("health", address, router).await?;
    server.min_request_timeout = min_request_timeout;
    Ok(server)
}

/// Prometheus text 0.0.4, or OpenMetrics when the scraper's `Accept` asks for it. Encoding
/// grows with the series that mounts created (bounded by the label caps), so it runs on the
/// bounded blocking pool, not on a runtime thread.
async fn serve_metrics(
    State(metrics): State<&'static Metrics>,
    headers: axum::http::HeaderMap,
) -> Response {
    let openmetrics = wants_openmetrics(
        headers
            .get(header::ACCEPT)
            .and_then(|value| value.to_str().ok()),
    );
    let encoded = crate::blocking::run(move || {
        if openmetrics {
            metrics.encode_openmetrics()
        } else {
            metrics.encode()
        }
    })
    .await;
    let content_type = if openmetrics {
        OPENMETRICS_CONTENT_TYPE
    } else {
        PROMETHEUS_TEXT_CONTENT_TYPE
    };
    match encoded {
        Ok(body) => ([(header::CONTENT_TYPE, content_type)], body).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "encoding the metrics failed");
            (StatusCode::SERVICE_UNAVAILABLE, "metrics unavailable\n").into_response()
        }
    }
}

async fn serve_health(State(config): State<Arc<HealthConfig>>, uri: Uri) -> Response {
    if uri.path() != config.path {
        return not_found().await;
    }
    match check_grpc_health(&config.endpoint, config.timeout).await {
        Ok(()) => (StatusCode::OK, "ok").into_response(),
        Err(reason) => {
            tracing::warn!(%reason, "health check failed");
            (StatusCode::SERVICE_UNAVAILABLE, reason).into_response()
        }
    }
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots(total: usize, per_ip: usize) -> Arc<Slots> {
        Arc::new(Slots::new(
            "test",
            HttpLimits {
                max_connections: total,
                max_connections_per_ip: per_ip,
                ..HttpLimits::default()
            }
            .sane(),
        ))
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn one_peer_cannot_exceed_its_cap() {
        let slots = slots(10, 2);
        let a = slots.admit(ip(2)).unwrap();
        let _b = slots.admit(ip(2)).unwrap();
        assert!(slots.admit(ip(2)).is_none());
        // IPv4-mapped IPv6 is the same peer.
        assert!(slots.admit("::ffff:127.0.0.2".parse().unwrap()).is_none());
        assert!(slots.admit(ip(3)).is_some());
        drop(a);
        assert!(slots.admit(ip(2)).is_some());
    }

    #[test]
    fn a_full_server_evicts_the_heaviest_peers_oldest_connection() {
        let slots = slots(4, 3);
        let flood: Vec<Slot> = (0..3).map(|_| slots.admit(ip(2)).unwrap()).collect();
        let other = slots.admit(ip(3)).unwrap();
        assert_eq!(slots.open(), 4);
        // The probe holds nothing: it takes the flood's oldest place.
        let probe = slots.admit(ip(1)).unwrap();
        assert!(flood[0].evicted.is_cancelled());
        assert!(!flood[1].evicted.is_cancelled());
        assert!(!other.evicted.is_cancelled());
        assert_eq!(slots.open(), 4);
        // A peer as heavy as the heaviest is refused rather than swapped in.
        let _second = slots.admit(ip(3)).unwrap(); // evicts flood[1]: 2 (ip2) > 1 (ip3)
        assert!(flood[1].evicted.is_cancelled());
        assert!(slots.admit(ip(3)).is_none());
        drop(flood);
        drop(probe);
        assert_eq!(slots.open(), 2);
        assert_eq!(slots.evicted.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn many_single_connection_peers_still_leave_room_for_a_newcomer() {
        let slots = slots(3, 1);
        let held: Vec<Slot> = (2..5).map(|n| slots.admit(ip(n)).unwrap()).collect();
        let probe = slots.admit(ip(1)).unwrap();
        assert_eq!(held.iter().filter(|s| s.evicted.is_cancelled()).count(), 1);
        assert!(!probe.evicted.is_cancelled());
        drop(held);
        assert_eq!(slots.open(), 1);
    }

    #[test]
    fn limits_are_made_sane() {
        let limits = HttpLimits {
            header_timeout: Duration::ZERO,
            request_timeout: Duration::ZERO,
            max_connections: 0,
            max_connections_per_ip: 5,
        }
        .sane();
        assert_eq!(limits.max_connections, 1);
        assert_eq!(limits.max_connections_per_ip, 1);
        assert!(limits.header_timeout > Duration::ZERO);
    }
}
