//! Makes the `:authority` of drivers up to v1.5.x acceptable to `h2`.
//!
//! Those drivers dial the socket with grpc-go's passthrough resolver, so every request carries the
//! socket path (`/var/run/secrets-store-csi-providers/azure.sock`) as HTTP/2 `:authority`. The
//! `h2` crate under tonic parses `:authority` as a URI authority, fails, and resets the stream with
//! `PROTOCOL_ERROR`: every Mount would fail. Driver v1.6.0 sends `localhost` instead.
//!
//! [`AuthorityFix`] sits between the socket and `h2` and rewrites the client→server byte stream:
//! it checks the connection preface, splits the stream into frames, passes every frame through
//! untouched except header blocks (HEADERS + CONTINUATION), which it decodes with a stateful HPACK
//! decoder (grpc-go indexes `:authority` in its dynamic table after the first request), replaces
//! an `:authority` that is not a valid URI authority with `localhost`, and re-encodes as literals
//! that never touch the dynamic table. `h2`'s decoder table therefore stays empty and consistent
//! whatever the client's encoder did. The server→client direction is not touched.
//!
//! Any framing or HPACK error makes the connection fail (read error → hyper drops it); it never
//! panics and never affects other connections.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BufMut, BytesMut};
use loona_hpack::decoder::DecoderError;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The client connection preface (RFC 9113 §3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// The largest frame payload we accept and emit: h2's default `SETTINGS_MAX_FRAME_SIZE`, which the
/// server also sets explicitly so both sides agree.
pub const MAX_FRAME_SIZE: usize = 16_384;
/// Largest header block (sum of the HEADERS and CONTINUATION fragments) we buffer.
const MAX_HEADER_BLOCK: usize = 64 * 1024;
/// Largest decoded header list (RFC 7541 §4.1 sizes), guarding against dynamic-table references
/// that expand a small block into a huge list. hyper's own limit (16 KiB) is far below.
const MAX_HEADER_LIST: usize = 64 * 1024;
/// `SETTINGS_HEADER_TABLE_SIZE` of the server (h2's default, never changed by tonic): the client's
/// encoder may not use a larger dynamic table.
const HEADER_TABLE_SIZE: usize = 4096;
/// The replacement for an `:authority` that is not a URI authority (what driver v1.6.0 sends).
const REPLACEMENT_AUTHORITY: &[u8] = b"localhost";
/// How much is read from the socket at a time.
const READ_CHUNK: usize = 16 * 1024;
/// [`Rewriter::feed`] stops taking new units once its output has reached this size, so a read of
/// small header blocks that expand (dynamic-table references: one byte can stand for a 4 KiB
/// header) never buffers more than this plus one block's output at once; the rest is rewritten
/// as `h2` consumes the output.
pub const OUTPUT_BUDGET: usize = 64 * 1024;

const FRAME_HEADER_LEN: usize = 9;
const FRAME_HEADERS: u8 = 0x1;
const FRAME_CONTINUATION: u8 = 0x9;
const FLAG_END_STREAM: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const FLAG_PADDED: u8 = 0x8;
const FLAG_PRIORITY: u8 = 0x20;
const PRIORITY_LEN: usize = 5;

/// Why a connection's client→server stream cannot be rewritten (the connection is closed).
#[derive(Debug, thiserror::Error)]
pub enum FramingError {
    #[error("the connection does not start with the HTTP/2 client preface")]
    BadPreface,
    #[error("frame of {0} bytes exceeds the maximum frame size of {MAX_FRAME_SIZE} bytes")]
    FrameTooLarge(usize),
    #[error("HEADERS frame on stream 0")]
    HeadersOnStreamZero,
    #[error("header block of stream {stream} interrupted by a frame of type {kind:#x}")]
    Interrupted { stream: u32, kind: u8 },
    #[error("CONTINUATION frame on stream {0} without an open header block on that stream")]
    UnexpectedContinuation(u32),
    #[error("HEADERS frame padding or priority longer than the frame")]
    BadPadding,
    #[error("header block larger than {MAX_HEADER_BLOCK} bytes")]
    BlockTooLarge,
    #[error("header list larger than {MAX_HEADER_LIST} bytes")]
    ListTooLarge,
    #[error("invalid HPACK header block: {0}")]
    Hpack(DecoderError),
}

/// A frame header (RFC 9113 §4.1).
#[derive(Clone, Copy, Debug)]
struct FrameHead {
    len: usize,
    kind: u8,
    flags: u8,
    stream: u32,
}

impl FrameHead {
    fn parse(b: &[u8; FRAME_HEADER_LEN]) -> Self {
        FrameHead {
            len: usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]),
            kind: b[3],
            flags: b[4],
            stream: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & 0x7fff_ffff,
        }
    }

    fn write(&self, out: &mut BytesMut) {
        // `len` never exceeds MAX_FRAME_SIZE here, so it fits the 24-bit field.
        out.put_uint(self.len as u64, 3);
        out.put_u8(self.kind);
        out.put_u8(self.flags);
        out.put_u32(self.stream);
    }
}

/// A header block being collected from a HEADERS frame and its CONTINUATIONs.
struct HeaderBlock {
    stream: u32,
    end_stream: bool,
    priority: Option<[u8; PRIORITY_LEN]>,
    fragment: Vec<u8>,
}

/// The synchronous client→server rewriter: bytes in, bytes for `h2` out.
pub struct Rewriter {
    preface_seen: usize,
    passthrough: usize,
    block: Option<HeaderBlock>,
    decoder: loona_hpack::Decoder<'static>,
    replaced: u64,
}

impl Default for Rewriter {
    fn default() -> Self {
        let mut decoder = loona_hpack::Decoder::new();
        decoder.set_max_allowed_table_size(HEADER_TABLE_SIZE);
        Rewriter {
            preface_seen: 0,
            passthrough: 0,
            block: None,
            decoder,
            replaced: 0,
        }
    }
}

impl Rewriter {
    /// Consumes complete units at the front of `input` (an incomplete frame header or
    /// header-block frame stays there until more bytes arrive) and appends what `h2` must see.
    /// Stops early, leaving complete units in `input`, once `output` holds [`OUTPUT_BUDGET`]
    /// bytes or more: call it again when `output` has been consumed.
    pub fn feed(
        &mut self,
        input: &mut BytesMut,
        output: &mut BytesMut,
    ) -> Result<(), FramingError> {
        loop {
            if output.len() >= OUTPUT_BUDGET {
                return Ok(());
            }
            if self.preface_seen < PREFACE.len() {
                let n = input.len().min(PREFACE.len() - self.preface_seen);
                if n == 0 {
                    return Ok(());
                }
                if input[..n] != PREFACE[self.preface_seen..self.preface_seen + n] {
                    return Err(FramingError::BadPreface);
                }
                output.extend_from_slice(&input.split_to(n));
                self.preface_seen += n;
            } else if self.passthrough > 0 {
                let n = input.len().min(self.passthrough);
                if n == 0 {
                    return Ok(());
                }
                output.extend_from_slice(&input.split_to(n));
                self.passthrough -= n;
            } else {
                let Some(head) = input
                    .first_chunk::<FRAME_HEADER_LEN>()
                    .map(FrameHead::parse)
                else {
                    return Ok(());
                };
                if head.len > MAX_FRAME_SIZE {
                    return Err(FramingError::FrameTooLarge(head.len));
                }
                if head.kind == FRAME_HEADERS || head.kind == FRAME_CONTINUATION {
                    if input.len() < FRAME_HEADER_LEN + head.len {
                        input.reserve(FRAME_HEADER_LEN + head.len - input.len());
                        return Ok(());
                    }
                    input.advance(FRAME_HEADER_LEN);
                    let payload = input.split_to(head.len);
                    self.header_frame(head, &payload, output)?;
                } else {
                    if let Some(block) = &self.block {
                        return Err(FramingError::Interrupted {
                            stream: block.stream,
                            kind: head.kind,
                        });
                    }
                    output.extend_from_slice(&input.split_to(FRAME_HEADER_LEN));
                    self.passthrough = head.len;
                }
            }
        }
    }

    /// How many `:authority` values were replaced so far.
    pub fn replaced(&self) -> u64 {
        self.replaced
    }

    fn header_frame(
        &mut self,
        head: FrameHead,
        payload: &[u8],
        output: &mut BytesMut,
    ) -> Result<(), FramingError> {
        if head.kind == FRAME_HEADERS {
            if let Some(block) = &self.block {
                return Err(FramingError::Interrupted {
                    stream: block.stream,
                    kind: head.kind,
                });
            }
            if head.stream == 0 {
                return Err(FramingError::HeadersOnStreamZero);
            }
            let (priority, fragment) = strip_headers_payload(head.flags, payload)?;
            self.block = Some(HeaderBlock {
                stream: head.stream,
                end_stream: head.flags & FLAG_END_STREAM != 0,
                priority,
                fragment: fragment.to_vec(),
            });
        } else {
            let block = self
                .block
                .as_mut()
                .filter(|b| b.stream == head.stream)
                .ok_or(FramingError::UnexpectedContinuation(head.stream))?;
            if block.fragment.len() + payload.len() > MAX_HEADER_BLOCK {
                return Err(FramingError::BlockTooLarge);
            }
            block.fragment.extend_from_slice(payload);
        }
        if head.flags & FLAG_END_HEADERS != 0
            && let Some(block) = self.block.take()
        {
            let encoded = self.reencode(&block.fragment)?;
            write_header_frames(&block, &encoded, output);
        }
        Ok(())
    }

    /// Decodes a complete header block (updating the mirror of the client's dynamic table) and
    /// re-encodes it as literals without indexing, fixing `:authority` on the way.
    fn reencode(&mut self, fragment: &[u8]) -> Result<Vec<u8>, FramingError> {
        let mut encoded = Vec::with_capacity(fragment.len() + 64);
        let mut list_size = 0usize;
        let mut replaced = 0u64;
        self.decoder
            .decode_with_cb(fragment, |name, value| {
                list_size = list_size.saturating_add(name.len() + value.len() + 32);
                if list_size > MAX_HEADER_LIST {
                    return;
                }
                let value: &[u8] = if &*name == b":authority" && !is_uri_authority(&value) {
                    replaced += 1;
                    REPLACEMENT_AUTHORITY
                } else {
                    &value
                };
                encode_literal(&name, value, &mut encoded);
            })
            .map_err(FramingError::Hpack)?;
        if list_size > MAX_HEADER_LIST {
            return Err(FramingError::ListTooLarge);
        }
        self.replaced += replaced;
        Ok(encoded)
    }
}

/// Removes padding and priority from a HEADERS payload; returns the priority and the fragment.
fn strip_headers_payload(
    flags: u8,
    payload: &[u8],
) -> Result<(Option<[u8; PRIORITY_LEN]>, &[u8]), FramingError> {
    let mut rest = payload;
    if flags & FLAG_PADDED != 0 {
        let (&pad, body) = rest.split_first().ok_or(FramingError::BadPadding)?;
        let keep = body
            .len()
            .checked_sub(usize::from(pad))
            .ok_or(FramingError::BadPadding)?;
        rest = &body[..keep];
    }
    let mut priority = None;
    if flags & FLAG_PRIORITY != 0 {
        let (p, body) = rest
            .split_first_chunk::<PRIORITY_LEN>()
            .ok_or(FramingError::BadPadding)?;
        priority = Some(*p);
        rest = body;
    }
    Ok((priority, rest))
}

/// Whether `h2` would accept `value` as `:authority` (it uses the same parser).
fn is_uri_authority(value: &[u8]) -> bool {
    http::uri::Authority::try_from(value).is_ok()
}

/// RFC 7541 §6.2.2 "Literal Header Field without Indexing — New Name", raw (non-Huffman) strings.
fn encode_literal(name: &[u8], value: &[u8], out: &mut Vec<u8>) {
    out.push(0x00);
    encode_string(name, out);
    encode_string(value, out);
}

/// RFC 7541 §5.2 string literal without Huffman coding.
fn encode_string(s: &[u8], out: &mut Vec<u8>) {
    encode_integer(s.len(), 7, 0x00, out);
    out.extend_from_slice(s);
}

/// RFC 7541 §5.1 integer with an N-bit prefix; `first` holds the bits above the prefix.
pub fn encode_integer(mut value: usize, prefix_bits: u8, first: u8, out: &mut Vec<u8>) {
    let max_prefix = (1usize << prefix_bits) - 1;
    if value < max_prefix {
        // Fits in the prefix, hence in a byte.
        out.push(first | value as u8);
        return;
    }
    out.push(first | max_prefix as u8);
    value -= max_prefix;
    while value >= 0x80 {
        out.push((value & 0x7f) as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Emits a re-encoded header block as one HEADERS frame followed by as many CONTINUATION frames
/// as the maximum frame size requires. Padding is dropped; END_STREAM and priority are kept.
fn write_header_frames(block: &HeaderBlock, encoded: &[u8], output: &mut BytesMut) {
    let first_cap = MAX_FRAME_SIZE - block.priority.map_or(0, |_| PRIORITY_LEN);
    let (first, rest) = encoded.split_at(encoded.len().min(first_cap));
    let mut flags = if block.end_stream { FLAG_END_STREAM } else { 0 };
    if block.priority.is_some() {
        flags |= FLAG_PRIORITY;
    }
    if rest.is_empty() {
        flags |= FLAG_END_HEADERS;
    }
    let priority: &[u8] = block.priority.as_ref().map_or(&[], |p| p);
    FrameHead {
        len: priority.len() + first.len(),
        kind: FRAME_HEADERS,
        flags,
        stream: block.stream,
    }
    .write(output);
    output.extend_from_slice(priority);
    output.extend_from_slice(first);
    let mut chunks = rest.chunks(MAX_FRAME_SIZE).peekable();
    while let Some(chunk) = chunks.next() {
        let flags = if chunks.peek().is_none() {
            FLAG_END_HEADERS
        } else {
            0
        };
        FrameHead {
            len: chunk.len(),
            kind: FRAME_CONTINUATION,
            flags,
            stream: block.stream,
        }
        .write(output);
        output.extend_from_slice(chunk);
    }
}

/// An IO whose client→server bytes go through a [`Rewriter`]; writes pass straight through.
pub struct AuthorityFix<IO> {
    io: IO,
    rewriter: Rewriter,
    input: BytesMut,
    output: BytesMut,
    eof: bool,
    failed: bool,
}

impl<IO> AuthorityFix<IO> {
    pub fn new(io: IO) -> Self {
        AuthorityFix {
            io,
            rewriter: Rewriter::default(),
            input: BytesMut::new(),
            output: BytesMut::new(),
            eof: false,
            failed: false,
        }
    }

    pub fn get_ref(&self) -> &IO {
        &self.io
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for AuthorityFix<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.output.is_empty() || buf.remaining() == 0 {
                let n = this.output.len().min(buf.remaining());
                buf.put_slice(&this.output.split_to(n));
                return Poll::Ready(Ok(()));
            }
            if this.failed {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "malformed HTTP/2 stream",
                )));
            }
            // Units left by a feed that reached its output budget come before new bytes.
            let held = this.input.len();
            if held > 0 {
                if let Err(e) = this.rewriter.feed(&mut this.input, &mut this.output) {
                    tracing::warn!(error = %e, "closing driver connection: malformed HTTP/2 stream");
                    this.failed = true;
                    continue;
                }
                if !this.output.is_empty() || this.input.len() < held {
                    continue;
                }
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; READ_CHUNK];
            let mut chunk = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.io).poll_read(cx, &mut chunk))?;
            if chunk.filled().is_empty() {
                this.eof = true;
                continue;
            }
            this.input.extend_from_slice(chunk.filled());
            let before = this.rewriter.replaced();
            if let Err(e) = this.rewriter.feed(&mut this.input, &mut this.output) {
                tracing::warn!(error = %e, "closing driver connection: malformed HTTP/2 stream");
                // What was rewritten before the error is still delivered, then reads fail.
                this.failed = true;
                continue;
            }
            if before == 0 && this.rewriter.replaced() > 0 {
                tracing::debug!(
                    "driver sent a non-URI :authority (driver <= v1.5); rewriting it to localhost"
                );
            }
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for AuthorityFix<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
