//! A guard on the bytes a broker sends: a content header whose `headers` table nests deeper
//! than [`MAX_HEADER_DEPTH`] levels has that table replaced before lapin parses it.
//!
//! lapin (amq-protocol-types) parses field tables recursively on its `lapin-io-loop` thread,
//! which has the default 2 MiB stack. A header nested about a thousand levels deep (5 KB, which
//! any broker user may publish and RabbitMQ delivers unchanged) overflows that stack and aborts
//! the whole process. The guard sits between the socket (after TLS) and lapin and follows the
//! frame boundaries: every frame passes through as it came except a content header whose
//! headers table nests too deep, whose table is replaced by one entry,
//! [`HEADERS_DROPPED`](crate::transport::wire::HEADERS_DROPPED), saying why. The rest of the message (its other properties and body) is
//! delivered, so the service answers or handles it like any other message.
//!
//! Cost on the hot path: bytes are read straight into lapin's buffer and scanned for frame
//! boundaries in place; only a content header large enough to nest that deep is walked (without
//! recursion), and only bytes that end a read in the middle of a frame prefix or of such a
//! header are copied aside until the rest arrives.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use async_rs::traits::Reactor;
use futures_io::{AsyncRead, AsyncWrite};
use lapin::tcp::AsyncTcpStream;

use crate::transport::wire::{HEADERS_DROPPED, MAX_HEADER_DEPTH};

/// Frame type, channel (2 bytes) and payload size (4 bytes).
const FRAME_PREFIX: usize = 7;
const FRAME_HEADER: u8 = 2;
const FRAME_END: u8 = 0xCE;
/// Class id, weight, body size and the first property-flags word of a content header.
const HEADER_FIXED: usize = 14;
/// Every nesting level costs at least 5 bytes (a type octet and a 4-byte length), so a content
/// header smaller than this cannot nest deeper than [`MAX_HEADER_DEPTH`].
const SUSPECT_SIZE: usize = HEADER_FIXED + 4 + 5 * MAX_HEADER_DEPTH;
/// A content header larger than this is handed on unread: no broker sends one (RabbitMQ's
/// `frame_max` is at most 1 MiB), and lapin rejects it against the negotiated `frame_max`.
const LARGEST_HEADER: usize = 4 << 20;
/// How much to read at a time while a frame is held back.
const READ_CHUNK: usize = 16 << 10;

/// Property flags of the basic class before and at `headers`.
const FLAG_CONTENT_TYPE: u16 = 0x8000;
const FLAG_CONTENT_ENCODING: u16 = 0x4000;
const FLAG_HEADERS: u16 = 0x2000;

/// A stream from the broker whose content headers are checked for nesting (see the module doc).
#[derive(Debug)]
pub(crate) struct HeaderGuard<S> {
    inner: S,
    /// Bytes of the frame in progress that pass through unread.
    skip: usize,
    /// Bytes read but not handed on: an incomplete frame prefix or content header.
    held: Vec<u8>,
    /// Bytes ready to hand on (scanned), from `ready_pos`.
    ready: Vec<u8>,
    ready_pos: usize,
}

impl<S> HeaderGuard<S> {
    /// Guards `inner`, which must be at the start of the broker's byte stream.
    pub(crate) fn new(inner: S) -> Self {
        Self {
            inner,
            skip: 0,
            held: Vec::new(),
            ready: Vec::new(),
            ready_pos: 0,
        }
    }

    /// Scans `data` (the next bytes of the stream, from where the last scan stopped), rewriting
    /// content headers that nest too deep in place. Returns the length of `data` after the
    /// rewrites and where the bytes to hold back start (that length when none are).
    fn scan(&mut self, data: &mut [u8]) -> (usize, usize) {
        let mut len = data.len();
        let mut i = 0;
        while i < len {
            if self.skip > 0 {
                let step = self.skip.min(len - i);
                i += step;
                self.skip -= step;
                continue;
            }
            if len - i < FRAME_PREFIX {
                return (len, i);
            }
            let size = u32::from_be_bytes([data[i + 3], data[i + 4], data[i + 5], data[i + 6]]);
            let frame_len = FRAME_PREFIX + size as usize + 1;
            if data[i] != FRAME_HEADER || frame_len <= SUSPECT_SIZE || frame_len > LARGEST_HEADER {
                self.skip = frame_len;
                continue;
            }
            if len - i < frame_len {
                return (len, i);
            }
            match rewrite(&data[i..i + frame_len]) {
                Some(frame) => {
                    data[i..i + frame.len()].copy_from_slice(&frame);
                    data.copy_within(i + frame_len..len, i + frame.len());
                    len -= frame_len - frame.len();
                    i += frame.len();
                }
                None => i += frame_len,
            }
        }
        (len, len)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for HeaderGuard<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        loop {
            if this.ready_pos < this.ready.len() {
                let n = buf.len().min(this.ready.len() - this.ready_pos);
                buf[..n].copy_from_slice(&this.ready[this.ready_pos..this.ready_pos + n]);
                this.ready_pos += n;
                if this.ready_pos == this.ready.len() {
                    this.ready.clear();
                    this.ready_pos = 0;
                }
                return Poll::Ready(Ok(n));
            }
            if this.held.is_empty() {
                // The common case: read into lapin's buffer and scan it there.
                let n = ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
                if n == 0 {
                    return Poll::Ready(Ok(0));
                }
                let (len, pass) = this.scan(&mut buf[..n]);
                this.held.extend_from_slice(&buf[pass..len]);
                if pass > 0 {
                    return Poll::Ready(Ok(pass));
                }
                continue;
            }
            // A frame is held back: read the rest of it beside it.
            let start = this.held.len();
            this.held.resize(start + READ_CHUNK, 0);
            let read = Pin::new(&mut this.inner).poll_read(cx, &mut this.held[start..]);
            let n = match read {
                Poll::Ready(Ok(n)) => n,
                other => {
                    this.held.truncate(start);
                    return other;
                }
            };
            this.held.truncate(start + n);
            let mut data = std::mem::take(&mut this.held);
            if n == 0 {
                // The stream ended inside a frame: hand on what came, lapin reports it.
                this.ready = data;
                continue;
            }
            let (len, pass) = this.scan(&mut data);
            this.held.extend_from_slice(&data[pass..len]);
            data.truncate(pass);
            this.ready = data;
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for HeaderGuard<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}

/// The content header `frame` (a whole frame) with its headers table replaced, when that table
/// nests deeper than [`MAX_HEADER_DEPTH`]; `None` to hand the frame on as it is (including
/// frames lapin will reject as malformed: that is lapin's to report).
fn rewrite(frame: &[u8]) -> Option<Vec<u8>> {
    if frame.last() != Some(&FRAME_END) {
        return None;
    }
    let payload = &frame[FRAME_PREFIX..frame.len() - 1];
    let flags = u16::from_be_bytes([*payload.get(12)?, *payload.get(13)?]);
    if flags & 1 != 0 || flags & FLAG_HEADERS == 0 {
        return None;
    }
    let mut pos = HEADER_FIXED;
    for flag in [FLAG_CONTENT_TYPE, FLAG_CONTENT_ENCODING] {
        if flags & flag != 0 {
            pos += 1 + usize::from(*payload.get(pos)?);
        }
    }
    let table_len = read_u32(payload, pos)?;
    let table_end = pos
        .checked_add(4 + table_len)
        .filter(|&e| e <= payload.len())?;
    if !too_deep(&payload[pos + 4..table_end])? {
        return None;
    }
    let channel = u16::from_be_bytes([frame[1], frame[2]]);
    tracing::warn!(
        channel,
        bytes = table_len,
        "a delivered message's headers nest deeper than {MAX_HEADER_DEPTH} levels; they are \
         replaced by {HEADERS_DROPPED} and the message is handled without them"
    );
    let reason = format!(
        "headers of {table_len} bytes nested deeper than {MAX_HEADER_DEPTH} levels were dropped"
    );
    let mut table = Vec::with_capacity(2 + HEADERS_DROPPED.len() + 5 + reason.len());
    table.push(HEADERS_DROPPED.len() as u8);
    table.extend_from_slice(HEADERS_DROPPED.as_bytes());
    table.push(b'S');
    table.extend_from_slice(&(reason.len() as u32).to_be_bytes());
    table.extend_from_slice(reason.as_bytes());

    let new_payload_len = pos + 4 + table.len() + (payload.len() - table_end);
    let mut out = Vec::with_capacity(FRAME_PREFIX + new_payload_len + 1);
    out.extend_from_slice(&frame[..3]);
    out.extend_from_slice(&(new_payload_len as u32).to_be_bytes());
    out.extend_from_slice(&payload[..pos]);
    out.extend_from_slice(&(table.len() as u32).to_be_bytes());
    out.extend_from_slice(&table);
    out.extend_from_slice(&payload[table_end..]);
    out.push(FRAME_END);
    Some(out)
}

fn read_u32(data: &[u8], pos: usize) -> Option<usize> {
    let bytes = data.get(pos..pos + 4)?;
    Some(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize)
}

/// Whether the field table whose entries are `body` nests deeper than [`MAX_HEADER_DEPTH`]
/// levels (the table itself is level 1), found without recursion; `None` when the table is
/// malformed.
fn too_deep(body: &[u8]) -> Option<bool> {
    // The end of each open table or array, and whether it is a table (entries have names): a
    // stack on the stack, as deep as the limit (this runs for every larger content header).
    let mut open = [(0usize, false); MAX_HEADER_DEPTH + 1];
    open[0] = (body.len(), true);
    let mut depth = 1;
    let mut pos = 0;
    while depth > 0 {
        let (end, is_table) = open[depth - 1];
        if pos == end {
            depth -= 1;
            continue;
        }
        if is_table {
            pos += 1 + usize::from(*body.get(pos)?);
        }
        let kind = *body.get(pos)?;
        pos += 1;
        let scalar = match kind {
            b'V' => 0,
            b't' | b'b' | b'B' => 1,
            b's' | b'U' | b'u' => 2,
            b'I' | b'i' | b'f' => 4,
            b'D' => 5,
            b'l' | b'L' | b'd' | b'T' => 8,
            b'S' | b'x' => 4 + read_u32(body, pos)?,
            b'A' | b'F' => {
                let inner_end = pos.checked_add(4 + read_u32(body, pos)?)?;
                if inner_end > end {
                    return None;
                }
                pos += 4;
                if depth == MAX_HEADER_DEPTH {
                    return Some(true);
                }
                open[depth] = (inner_end, kind == b'F');
                depth += 1;
                continue;
            }
            _ => return None,
        };
        pos += scalar;
        if pos > end {
            return None;
        }
    }
    Some(false)
}

/// The reactor lapin's connections use: tokio's, with every TCP stream behind a
/// [`HeaderGuard`]. Only [`crate::transport::connection`] connects through it, with TLS (when
/// configured) set up below the guard.
#[derive(Clone, Debug, Default)]
pub(crate) struct GuardedReactor(async_rs::Tokio);

/// The stream a [`GuardedReactor`] connection reads: a plain or TLS socket behind the guard.
pub(crate) type GuardedStream =
    HeaderGuard<AsyncTcpStream<<async_rs::Tokio as Reactor>::TcpStream>>;

impl GuardedReactor {
    /// The reactor of the current tokio runtime.
    pub(crate) fn current() -> Self {
        Self(async_rs::Tokio::current())
    }
}

impl Reactor for GuardedReactor {
    type TcpStream = GuardedStream;
    type Sleep = <async_rs::Tokio as Reactor>::Sleep;

    /// Not used by lapin; the guard has no sockets of its own to register.
    fn register<H: std::io::Read + std::io::Write + Send + 'static>(
        &self,
        _socket: H,
    ) -> io::Result<impl AsyncRead + AsyncWrite + Send + Unpin + 'static> {
        Err::<GuardedStream, _>(io::Error::new(
            io::ErrorKind::Unsupported,
            "the guarded reactor only makes TCP connections",
        ))
    }

    fn sleep(&self, dur: std::time::Duration) -> Self::Sleep {
        self.0.sleep(dur)
    }

    fn interval(
        &self,
        dur: std::time::Duration,
    ) -> impl futures_util::Stream<Item = std::time::Instant> + Send + 'static {
        self.0.interval(dur)
    }

    fn tcp_connect_addr(
        &self,
        addr: std::net::SocketAddr,
    ) -> impl Future<Output = io::Result<GuardedStream>> + Send + 'static {
        let connect = self.0.tcp_connect_addr(addr);
        async move { Ok(HeaderGuard::new(AsyncTcpStream::Plain(connect.await?))) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::frame::{AMQPContentHeader, AMQPFrame, WriteContext, gen_frame, parse_frame};
    use amq_protocol::protocol::basic::AMQPProperties;
    use amq_protocol::types::{AMQPValue, FieldArray, FieldTable, LongString};

    fn encode(frames: &[AMQPFrame]) -> Vec<u8> {
        let mut out = Vec::new();
        for frame in frames {
            let ctx = gen_frame(frame)(WriteContext::from(Vec::new())).expect("encode");
            out.extend_from_slice(&ctx.into_inner().0);
        }
        out
    }

    fn decode(mut bytes: &[u8]) -> Vec<AMQPFrame> {
        let mut frames = Vec::new();
        while !bytes.is_empty() {
            let (rest, frame) = parse_frame(bytes).expect("a well-formed frame");
            frames.push(frame);
            bytes = rest;
        }
        frames
    }

    /// `{"deep": [[..."x"..]]}`: `levels` levels with the table itself.
    fn nested(levels: usize) -> FieldTable {
        let mut value = AMQPValue::LongString("x".into());
        for _ in 1..levels {
            value = AMQPValue::FieldArray(FieldArray::from(vec![value]));
        }
        let mut table = FieldTable::default();
        table.insert("deep".into(), value);
        table
    }

    fn header(channel: u16, headers: FieldTable) -> AMQPFrame {
        AMQPFrame::Header(
            channel,
            AMQPContentHeader {
                class_id: 60,
                body_size: 3,
                properties: AMQPProperties::default()
                    .with_content_type("application/json".into())
                    .with_content_encoding("utf-8".into())
                    .with_headers(headers)
                    .with_correlation_id("c-1".into())
                    .with_delivery_mode(2),
            },
        )
    }

    /// Bytes from `data`, `chunk` at a time, every other poll `Pending`.
    struct Chunked {
        data: Vec<u8>,
        pos: usize,
        chunk: usize,
        stall: bool,
    }

    impl AsyncRead for Chunked {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            this.stall = !this.stall;
            if this.stall {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let n = this.chunk.min(buf.len()).min(this.data.len() - this.pos);
            buf[..n].copy_from_slice(&this.data[this.pos..this.pos + n]);
            this.pos += n;
            Poll::Ready(Ok(n))
        }
    }

    /// Everything the guard hands on, read `out` bytes at a time.
    fn through_guard(data: &[u8], chunk: usize, out: usize) -> Vec<u8> {
        let mut guard = HeaderGuard::new(Chunked {
            data: data.to_vec(),
            pos: 0,
            chunk,
            stall: false,
        });
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut all = Vec::new();
        let mut buf = vec![0; out];
        loop {
            match Pin::new(&mut guard).poll_read(&mut cx, &mut buf) {
                Poll::Pending => continue,
                Poll::Ready(Ok(0)) => return all,
                Poll::Ready(Ok(n)) => all.extend_from_slice(&buf[..n]),
                Poll::Ready(Err(e)) => panic!("{e}"),
            }
        }
    }

    /// Runs `f` on a thread with room to build, encode and parse deep tables recursively.
    fn with_big_stack(f: impl FnOnce() + Send + 'static) {
        let thread = std::thread::Builder::new().stack_size(256 << 20).spawn(f);
        thread.expect("spawn").join().expect("the test thread");
    }

    #[test]
    fn only_headers_nested_too_deep_are_replaced_wherever_the_reads_split() {
        with_big_stack(replaced_wherever_the_reads_split);
    }

    fn replaced_wherever_the_reads_split() {
        let body = AMQPFrame::Body(1, b"{}\n".to_vec());
        let mut flat = FieldTable::default();
        flat.insert("flow_id".into(), AMQPValue::LongString("f".into()));
        let frames = vec![
            AMQPFrame::Heartbeat,
            header(1, flat),
            body.clone(),
            header(2, nested(MAX_HEADER_DEPTH)),
            body.clone(),
            header(3, nested(MAX_HEADER_DEPTH + 1)),
            // A large body that looks like a content header inside.
            AMQPFrame::Body(3, encode(&[header(9, nested(200))])),
            header(1, nested(2_000)),
            body,
        ];
        let input = encode(&frames);
        for (chunk, out) in [(1, 1), (2, 7), (7, 3), (13, 64), (333, 100), (4096, 4096)]
            .into_iter()
            .chain([(1 << 20, 1 << 20), (100, 1 << 20), (1 << 20, 5)])
        {
            let got = decode(&through_guard(&input, chunk, out));
            assert_eq!(got.len(), frames.len(), "chunk {chunk}, out {out}");
            for (i, (got, sent)) in got.iter().zip(&frames).enumerate() {
                if i == 5 || i == 7 {
                    let (AMQPFrame::Header(ch, g), AMQPFrame::Header(sent_ch, s)) = (got, sent)
                    else {
                        panic!("frame {i}: {got:?}");
                    };
                    assert_eq!(ch, sent_ch);
                    assert_eq!(g.body_size, s.body_size);
                    let headers = g.properties.headers().as_ref().expect("headers");
                    assert_eq!(headers.inner().len(), 1, "{headers:?}");
                    let Some(AMQPValue::LongString(why)) = headers.inner().get(HEADERS_DROPPED)
                    else {
                        panic!("frame {i}: {headers:?}");
                    };
                    assert!(why.to_string().contains("deeper than 64 levels"), "{why}");
                    let mut rest = s.properties.clone();
                    rest = rest.with_headers(headers.clone());
                    assert_eq!(g.properties, rest, "the other properties are kept");
                } else {
                    assert_eq!(got, sent, "frame {i}, chunk {chunk}, out {out}");
                }
            }
        }
    }

    #[test]
    fn malformed_tables_are_left_to_lapin() {
        with_big_stack(left_to_lapin);
    }

    fn left_to_lapin() {
        // Deep enough to be replaced, with a long string before the nesting.
        let mut table = nested(300);
        table.insert(
            "a".into(),
            AMQPValue::LongString(LongString::from(vec![b'?'; 400])),
        );
        let bytes = encode(&[header(1, table)]);
        assert_ne!(
            through_guard(&bytes, 1 << 20, 1 << 20),
            bytes,
            "replaced when well formed"
        );
        let string_at = bytes
            .windows(5)
            .position(|w| w == [b'S', 0, 0, 1, 0x90])
            .expect("the long string");
        // The string's length runs past the table: handed on unchanged.
        let mut long = bytes.clone();
        long[string_at + 1..string_at + 5].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(through_guard(&long, 1 << 20, 1 << 20), long);
        // An unknown value type.
        let mut unknown = bytes.clone();
        unknown[string_at] = b'?';
        assert_eq!(through_guard(&unknown, 10, 1 << 20), unknown);
        // An inner array longer than its table.
        let array_at = 5 + bytes
            .windows(6)
            .position(|w| w == b"\x04deepA")
            .expect("the outer array");
        let mut overlong = bytes;
        let len = u32::from_be_bytes(overlong[array_at + 1..array_at + 5].try_into().unwrap());
        overlong[array_at + 1..array_at + 5].copy_from_slice(&(len + 1).to_be_bytes());
        assert_eq!(through_guard(&overlong, 7, 3), overlong);
    }
}
