//! The driver side of the gRPC contract, for tests: a client over the provider's Unix socket.
//!
//! [`Driver`] behaves like the Secrets Store CSI driver v1.6: one tonic channel (one HTTP/2
//! connection, every call multiplexed on it) with `:authority` `localhost`.
//! [`mount_with_socket_path_authority`] behaves like drivers up to v1.5.x: a hand-built HTTP/2
//! client that really puts the socket path in `:authority` on the wire and, like grpc-go, refers
//! to it through the HPACK dynamic table from the second request on.

use std::path::{Path, PathBuf};
use std::time::Duration;

use akv_csi_provider::pb;
use akv_csi_provider::pb::csi_driver_provider_client::CsiDriverProviderClient;
use akv_csi_provider::server::authority::encode_integer;
use hyper_util::rt::TokioIo;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// What driver v1.5 sends as `:authority`: the socket path (default provider dir).
pub const SOCKET_PATH_AUTHORITY: &str = "/var/run/secrets-store-csi-providers/azure.sock";
/// `target_path` in requests built by [`Driver::mount`].
pub const TARGET_PATH: &str = "/var/lib/kubelet/pods/11111111-2222-3333-4444-555555555555/volumes/kubernetes.io~csi/secrets-store-inline/mount";
/// The HTTP/2 client connection preface.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A driver-side client on one HTTP/2 connection. Cheap to clone (clones share the connection).
#[derive(Clone)]
pub struct Driver {
    channel: Channel,
    timeout: Option<Duration>,
}

impl Driver {
    /// Connects to the provider socket (panics if it cannot: test support).
    pub async fn connect(socket: &Path) -> Driver {
        Self::try_connect(socket)
            .await
            .unwrap_or_else(|e| panic!("connect to {}: {e}", socket.display()))
    }

    /// Connects to the provider socket.
    pub async fn try_connect(socket: &Path) -> Result<Driver, tonic::transport::Error> {
        let socket = socket.to_owned();
        let channel =
            tonic::transport::Endpoint::from_static("http://localhost")
                .connect_with_connector(tower::service_fn(move |_: http::Uri| {
                    let socket = socket.clone();
                    async move {
                        Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(socket).await?))
                    }
                }))
                .await?;
        Ok(Driver {
            channel,
            timeout: None,
        })
    }

    /// Sends `grpc-timeout` with every call from now on (kubelet: 2 minutes).
    pub fn with_timeout(mut self, timeout: Duration) -> Driver {
        self.timeout = Some(timeout);
        self
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(timeout) = self.timeout {
            request.set_timeout(timeout);
        }
        request
    }

    pub async fn version(&mut self) -> Result<pb::VersionResponse, tonic::Status> {
        let request = self.request(pb::VersionRequest {
            version: "v1alpha1".into(),
        });
        CsiDriverProviderClient::new(self.channel.clone())
            .version(request)
            .await
            .map(tonic::Response::into_inner)
    }

    /// A Mount as the driver builds it: `attributes` is a JSON object of strings, `secrets`
    /// `None` is the JSON `null` the driver sends without nodePublishSecretRef.
    pub async fn mount(
        &mut self,
        attributes: &serde_json::Value,
        secrets: Option<&serde_json::Value>,
        permission: &str,
    ) -> Result<pb::MountResponse, tonic::Status> {
        let secrets = secrets.map_or_else(|| "null".to_owned(), serde_json::Value::to_string);
        self.mount_raw(&attributes.to_string(), &secrets, permission)
            .await
    }

    /// A Mount with the three strings exactly as given.
    pub async fn mount_raw(
        &mut self,
        attributes: &str,
        secrets: &str,
        permission: &str,
    ) -> Result<pb::MountResponse, tonic::Status> {
        self.mount_request(mount_request(attributes, secrets, permission))
            .await
    }

    /// A Mount with a request built by the caller.
    pub async fn mount_request(
        &mut self,
        request: pb::MountRequest,
    ) -> Result<pb::MountResponse, tonic::Status> {
        let request = self.request(request);
        CsiDriverProviderClient::new(self.channel.clone())
            .mount(request)
            .await
            .map(tonic::Response::into_inner)
    }

    /// `grpc.health.v1.Health/Check` for `service` (`""`: the server as a whole).
    pub async fn health(&mut self, service: &str) -> Result<ServingStatus, tonic::Status> {
        let request = self.request(tonic_health::pb::HealthCheckRequest {
            service: service.into(),
        });
        let response = HealthClient::new(self.channel.clone())
            .check(request)
            .await?
            .into_inner();
        Ok(response.status())
    }
}

/// A MountRequest as the driver fills it for NodePublishVolume.
pub fn mount_request(attributes: &str, secrets: &str, permission: &str) -> pb::MountRequest {
    pb::MountRequest {
        attributes: attributes.into(),
        secrets: secrets.into(),
        target_path: TARGET_PATH.into(),
        permission: permission.into(),
        current_object_version: Vec::new(),
    }
}

/// The gRPC method path of Mount.
pub const MOUNT_PATH: &str = "/v1alpha1.CSIDriverProvider/Mount";

/// Like driver v1.5: sends `request` twice on one connection with `:authority` = the socket path
/// (the second time as an HPACK dynamic-table reference). Returns the second response, or the
/// first error (`grpc-status <code>: <message>` or a protocol failure).
pub async fn mount_with_socket_path_authority(
    socket: &Path,
    request: &pb::MountRequest,
) -> Result<pb::MountResponse, String> {
    let results =
        mounts_with_socket_path_authority(socket, &[request.clone(), request.clone()]).await?;
    results
        .into_iter()
        .try_fold(None, |_, r| r.map(Some))?
        .ok_or_else(|| "no response".to_owned())
}

/// Sends `requests` one after the other on one raw HTTP/2 connection with the socket path as
/// `:authority`; the outer error is a connection-level failure.
pub async fn mounts_with_socket_path_authority(
    socket: &Path,
    requests: &[pb::MountRequest],
) -> Result<Vec<Result<pb::MountResponse, String>>, String> {
    let calls: Vec<_> = requests
        .iter()
        .map(|r| (MOUNT_PATH, r.encode_to_vec()))
        .collect();
    let results = raw_calls(socket, &calls).await?;
    Ok(results
        .into_iter()
        .map(|r| {
            r.and_then(|bytes| {
                pb::MountResponse::decode(&bytes[..])
                    .map_err(|e| format!("decode MountResponse: {e}"))
            })
        })
        .collect())
}

/// Unary gRPC calls `(path, encoded message)` sent one after the other on one raw HTTP/2
/// connection with the socket path as `:authority`. Each result is the response message bytes or
/// `grpc-status <code>: <message>` / a stream reset; the outer error is a connection failure.
pub async fn raw_calls(
    socket: &Path,
    calls: &[(&str, Vec<u8>)],
) -> Result<Vec<Result<Vec<u8>, String>>, String> {
    let mut conn = RawConnection::open(socket).await?;
    let mut results = Vec::new();
    for (i, (path, message)) in calls.iter().enumerate() {
        let stream = 1 + 2 * i as u32;
        let same_path = i > 0 && calls[0].0 == *path;
        conn.send_call(
            stream,
            &socket_path_headers(i == 0, path, same_path),
            message,
        )
        .await?;
        results.push(conn.read_response(stream).await?);
    }
    Ok(results)
}

/// An HTTP/2 frame as bytes: 9-byte header and payload.
pub fn raw_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = len.to_be_bytes()[1..].to_vec();
    out.extend([kind, flags]);
    out.extend(stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// An HPACK string literal without Huffman coding.
pub fn hpack_string(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_integer(s.len(), 7, 0, &mut out);
    out.extend_from_slice(s);
    out
}

/// A gRPC length-prefixed, uncompressed message.
pub fn grpc_message(message: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend((message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const MAX_FRAME: usize = 16_384;
const MAX_WINDOW: u32 = (1 << 31) - 1;

/// Request headers encoded like grpc-go: the first request adds `:path`, `:authority`,
/// `content-type` and `te` to the dynamic table (literal with incremental indexing); later ones
/// refer to them by index (62 = newest), `:path` too when it is the first request's (`same_path`).
pub fn socket_path_headers(first: bool, path: &str, same_path: bool) -> Vec<u8> {
    let mut block = vec![0x83, 0x86]; // :method POST, :scheme http (static table)
    if first {
        block.push(0x44); // :path, incremental indexing, name = static 4
        block.extend(hpack_string(path.as_bytes()));
        block.push(0x41); // :authority, incremental indexing, name = static 1
        block.extend(hpack_string(SOCKET_PATH_AUTHORITY.as_bytes()));
        block.push(0x5f); // content-type, incremental indexing, name = static 31
        block.extend(hpack_string(b"application/grpc"));
        block.push(0x40); // te, incremental indexing, new name
        block.extend(hpack_string(b"te"));
        block.extend(hpack_string(b"trailers"));
        return block;
    }
    // Dynamic table: 62 te, 63 content-type, 64 :authority, 65 :path.
    if same_path {
        block.push(0x80 | 65);
    } else {
        block.push(0x04); // :path, without indexing, name = static 4
        block.extend(hpack_string(path.as_bytes()));
    }
    block.extend([0x80 | 64, 0x80 | 63, 0x80 | 62]);
    block
}

struct RawConnection {
    io: UnixStream,
    decoder: loona_hpack::Decoder<'static>,
}

impl RawConnection {
    async fn open(socket: &Path) -> Result<Self, String> {
        let mut io = UnixStream::connect(socket)
            .await
            .map_err(|e| format!("connect {}: {e}", socket.display()))?;
        let mut hello = PREFACE.to_vec();
        // SETTINGS_INITIAL_WINDOW_SIZE = max, and open the connection window as far: the test
        // client never has to send WINDOW_UPDATEs for responses up to the 4 MiB limit.
        let mut settings = vec![0x00, 0x04];
        settings.extend(MAX_WINDOW.to_be_bytes());
        hello.extend(raw_frame(SETTINGS, 0, 0, &settings));
        hello.extend(raw_frame(0x8, 0, 0, &(MAX_WINDOW - 65_535).to_be_bytes()));
        io.write_all(&hello)
            .await
            .map_err(|e| format!("write: {e}"))?;
        Ok(RawConnection {
            io,
            decoder: loona_hpack::Decoder::new(),
        })
    }

    async fn send_call(
        &mut self,
        stream: u32,
        headers: &[u8],
        message: &[u8],
    ) -> Result<(), String> {
        let mut bytes = raw_frame(HEADERS, END_HEADERS, stream, headers);
        let body = grpc_message(message);
        let chunks: Vec<&[u8]> = body.chunks(MAX_FRAME).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let flags = if i + 1 == chunks.len() { END_STREAM } else { 0 };
            bytes.extend(raw_frame(DATA, flags, stream, chunk));
        }
        self.io
            .write_all(&bytes)
            .await
            .map_err(|e| format!("write: {e}"))
    }

    async fn read_frame(&mut self) -> Result<(u8, u8, u32, Vec<u8>), String> {
        let mut head = [0u8; 9];
        self.io
            .read_exact(&mut head)
            .await
            .map_err(|e| format!("read frame header: {e}"))?;
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0; len];
        self.io
            .read_exact(&mut payload)
            .await
            .map_err(|e| format!("read frame payload: {e}"))?;
        Ok((head[3], head[4], stream, payload))
    }

    /// Reads frames until `stream` ends; answers SETTINGS and PING on the way.
    async fn read_response(&mut self, stream: u32) -> Result<Result<Vec<u8>, String>, String> {
        let mut headers: Vec<(String, String)> = Vec::new();
        let mut block = Vec::new();
        let mut body = Vec::new();
        loop {
            let (kind, flags, id, payload) = self.read_frame().await?;
            match kind {
                SETTINGS if flags & ACK == 0 => {
                    self.write(raw_frame(SETTINGS, ACK, 0, &[])).await?
                }
                PING if flags & ACK == 0 => self.write(raw_frame(PING, ACK, 0, &payload)).await?,
                GOAWAY => return Err(format!("GOAWAY: {payload:?}")),
                RST_STREAM if id == stream => return Ok(Err(format!("RST_STREAM {payload:?}"))),
                HEADERS | CONTINUATION => {
                    block.extend_from_slice(&payload);
                    if flags & END_HEADERS != 0 {
                        let list = self
                            .decoder
                            .decode(&block)
                            .map_err(|e| format!("response HPACK: {e:?}"))?;
                        block.clear();
                        headers.extend(list.into_iter().map(|(n, v)| {
                            (
                                String::from_utf8_lossy(&n).into_owned(),
                                String::from_utf8_lossy(&v).into_owned(),
                            )
                        }));
                    }
                }
                DATA if id == stream => body.extend_from_slice(&payload),
                _ => {}
            }
            if id == stream && flags & END_STREAM != 0 && matches!(kind, HEADERS | DATA) {
                break;
            }
        }
        Ok(grpc_result(&headers, &body))
    }

    async fn write(&mut self, bytes: Vec<u8>) -> Result<(), String> {
        self.io
            .write_all(&bytes)
            .await
            .map_err(|e| format!("write: {e}"))
    }
}

fn grpc_result(headers: &[(String, String)], body: &[u8]) -> Result<Vec<u8>, String> {
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    if get(":status") != Some("200") {
        return Err(format!("HTTP status {:?}", get(":status")));
    }
    match get("grpc-status") {
        Some("0") => {}
        Some(code) => {
            return Err(format!(
                "grpc-status {code}: {}",
                get("grpc-message").unwrap_or("")
            ));
        }
        None => return Err("no grpc-status".to_owned()),
    }
    Ok(body
        .get(5..)
        .ok_or("response without a gRPC message")?
        .to_vec())
}

/// A fresh socket path in a new temporary directory (kept alive by the returned guard).
pub fn temp_socket() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("azure.sock");
    (dir, path)
}
