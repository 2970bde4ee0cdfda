//! The socket side: accepts connections, does the AMQP 0-9-1 handshake, reads frames,
//! assembles published content and hands methods to [`State`]; a writer task per connection
//! writes what the state queued for it.

use super::state::{ChannelId, ConnId, Failure, Out, State, Timer, code, short};
use amq_protocol::frame::{AMQPFrame, ProtocolVersion, WriteContext, gen_frame, parse_frame};
use amq_protocol::protocol::{AMQPClass, basic, channel, connection};
use amq_protocol::types::{AMQPValue, FieldTable, LongString};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// What the server proposes in `connection.tune`.
const FRAME_MAX: u32 = 131_072;
const CHANNEL_MAX: u16 = 2047;
const HEARTBEAT: u16 = 60;
/// The largest message body accepted (RabbitMQ's default `max_message_size`, 128 MiB).
const MAX_MESSAGE_SIZE: u64 = 128 * 1024 * 1024;
/// The smallest frame size AMQP allows.
const FRAME_MIN: u32 = 4096;

/// The state of one broker, shared by its connection tasks.
#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<State>,
    pub(crate) stop: CancellationToken,
}

impl Shared {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State::new()),
            stop: CancellationToken::new(),
        })
    }

    /// The state, for one short synchronous step (never held across an await).
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `f` on the state, then arms the expiry timers it asked for.
    fn with<T>(self: &Arc<Self>, f: impl FnOnce(&mut State) -> T) -> T {
        let (out, timers) = {
            let mut st = self.lock();
            let out = f(&mut st);
            (out, st.take_timers())
        };
        self.arm(timers);
        out
    }

    fn arm(self: &Arc<Self>, timers: Vec<Timer>) {
        for t in timers {
            let shared = Arc::downgrade(self);
            tokio::spawn(async move {
                tokio::time::sleep_until(t.at.into()).await;
                if let Some(shared) = shared.upgrade() {
                    let next = {
                        let mut st = shared.lock();
                        st.expire(&t.queue, std::time::Instant::now());
                        st.take_timers()
                    };
                    shared.arm(next);
                }
            });
        }
    }
}

/// Accepts connections until the broker stops.
pub(crate) async fn serve(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        tokio::select! {
            () = shared.stop.cancelled() => {
                shared.lock().shutdown_all();
                return;
            }
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => {
                    let _ = socket.set_nodelay(true);
                    tokio::spawn(connection(shared.clone(), socket));
                }
                Err(e) => {
                    tracing::debug!(error = %e, "memory broker: accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }
}

fn encode(frame: &AMQPFrame, buf: &mut Vec<u8>) -> bool {
    let taken = std::mem::take(buf);
    match gen_frame(frame)(WriteContext::from(taken)) {
        Ok(ctx) => {
            *buf = ctx.into_inner().0;
            true
        }
        Err(e) => {
            tracing::debug!(error = ?e, "memory broker: could not encode a frame");
            false
        }
    }
}

async fn writer(
    mut socket: tokio::net::tcp::OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Out>,
    heartbeat: tokio::sync::watch::Receiver<u16>,
) {
    let mut buf = Vec::with_capacity(8192);
    let mut beat = heartbeat_interval(*heartbeat.borrow());
    let mut heartbeat = heartbeat;
    loop {
        let out = tokio::select! {
            out = rx.recv() => out,
            _ = beat.tick() => Some(Out::Frames(vec![AMQPFrame::Heartbeat])),
            Ok(()) = heartbeat.changed() => {
                beat = heartbeat_interval(*heartbeat.borrow());
                continue;
            }
        };
        let Some(out) = out else { break };
        let mut shutdown = false;
        let mut next = Some(out);
        // Write what is queued in one go.
        while let Some(out) = next.take() {
            match out {
                Out::Frames(frames) => {
                    for f in &frames {
                        if !encode(f, &mut buf) {
                            shutdown = true;
                        }
                    }
                }
                Out::Shutdown => shutdown = true,
            }
            if shutdown || buf.len() > 1 << 20 {
                break;
            }
            next = rx.try_recv().ok();
        }
        if socket.write_all(&buf).await.is_err() {
            break;
        }
        buf.clear();
        if shutdown {
            break;
        }
    }
    let _ = socket.shutdown().await;
}

fn heartbeat_interval(secs: u16) -> tokio::time::Interval {
    let period = if secs == 0 {
        // No heartbeats: an interval that never matters.
        Duration::from_secs(24 * 3600)
    } else {
        Duration::from_secs(u64::from(secs)).div_f32(2.0)
    };
    let mut i = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    i
}

/// A publish waiting for its content header and body.
struct Pending {
    publish: basic::Publish,
    properties: Option<basic::AMQPProperties>,
    size: u64,
    body: Vec<u8>,
}

/// One client connection, from protocol header to close.
async fn connection(shared: Arc<Shared>, socket: TcpStream) {
    let (mut rd, wr) = socket.into_split();
    let (tx, rx) = mpsc::unbounded_channel();
    let (hb_tx, hb_rx) = tokio::sync::watch::channel(0u16);
    let writer = tokio::spawn(writer(wr, rx, hb_rx));
    let mut conn = Reader {
        shared: shared.clone(),
        tx: tx.clone(),
        id: None,
        frame_max: FRAME_MAX,
        channel_max: CHANNEL_MAX,
        pending: HashMap::new(),
        closing_channels: HashSet::new(),
        closing: false,
        heartbeat: hb_tx,
    };
    let stop = shared.stop.clone();
    tokio::select! {
        () = conn.run(&mut rd) => {}
        () = stop.cancelled() => {}
    }
    if let Some(id) = conn.id {
        shared.with(|st| st.close_connection(id));
    }
    let _ = tx.send(Out::Shutdown);
    drop(tx);
    let _ = writer.await;
}

struct Reader {
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<Out>,
    /// Set once the handshake is done.
    id: Option<ConnId>,
    frame_max: u32,
    channel_max: u16,
    pending: HashMap<ChannelId, Pending>,
    /// Channels the server closed, waiting for the client's close-ok.
    closing_channels: HashSet<ChannelId>,
    /// The server sent `connection.close`.
    closing: bool,
    heartbeat: tokio::sync::watch::Sender<u16>,
}

enum Step {
    Continue,
    Stop,
}

impl Reader {
    fn send(&self, frames: Vec<AMQPFrame>) {
        let _ = self.tx.send(Out::Frames(frames));
    }

    fn send_method(&self, channel: ChannelId, method: AMQPClass) {
        self.send(vec![AMQPFrame::Method(channel, method)]);
    }

    async fn run(&mut self, rd: &mut tokio::net::tcp::OwnedReadHalf) {
        // Protocol header.
        let mut header = [0u8; 8];
        if rd.read_exact(&mut header).await.is_err() {
            return;
        }
        if &header != b"AMQP\x00\x00\x09\x01" {
            // The version we speak, then close (AMQP 0-9-1 section 4.2.2).
            self.send(vec![AMQPFrame::ProtocolHeader(
                ProtocolVersion::amqp_0_9_1(),
            )]);
            return;
        }
        self.send_method(0, start());
        let mut buf: Vec<u8> = Vec::with_capacity(8192);
        let mut chunk = vec![0u8; 16384];
        loop {
            // Parse every complete frame in the buffer.
            loop {
                if buf.len() < 7 {
                    break;
                }
                let size = u32::from_be_bytes([buf[3], buf[4], buf[5], buf[6]]);
                if size > self.frame_max.saturating_sub(8).max(FRAME_MIN) {
                    self.fail_connection(Failure::hard(
                        code::FRAME_ERROR,
                        format!("frame of {size} bytes exceeds frame_max {}", self.frame_max),
                    ));
                    return;
                }
                let total = 7 + size as usize + 1;
                if buf.len() < total {
                    break;
                }
                let parsed = parse_frame(&buf[..total]).map(|(_, f)| f);
                buf.drain(..total);
                let frame = match parsed {
                    Ok(f) => f,
                    Err(e) => {
                        self.fail_connection(Failure::hard(
                            code::FRAME_ERROR,
                            format!("malformed frame: {e}"),
                        ));
                        return;
                    }
                };
                if let Step::Stop = self.frame(frame) {
                    return;
                }
            }
            let read = if self.closing {
                match tokio::time::timeout(Duration::from_secs(1), rd.read(&mut chunk)).await {
                    Ok(r) => r,
                    Err(_) => return,
                }
            } else {
                rd.read(&mut chunk).await
            };
            match read {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Sends `connection.close` and waits for close-ok (bounded) before dropping the socket.
    fn fail_connection(&mut self, f: Failure) {
        tracing::debug!(code = f.code, text = %f.text, "memory broker: closing a connection");
        self.send_method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
                reply_code: f.code,
                reply_text: f.reply_text(),
                class_id: f.class_id,
                method_id: f.method_id,
            })),
        );
        self.closing = true;
        if let Some(id) = self.id.take() {
            self.shared.with(|st| st.close_connection(id));
        }
    }

    fn fail_channel(&mut self, channel: ChannelId, f: Failure) {
        self.pending.remove(&channel);
        if let Some(id) = self.id {
            self.shared.with(|st| st.close_channel(id, channel));
        }
        self.send_method(
            channel,
            AMQPClass::Channel(channel::AMQPMethod::Close(channel::Close {
                reply_code: f.code,
                reply_text: f.reply_text(),
                class_id: f.class_id,
                method_id: f.method_id,
            })),
        );
        self.closing_channels.insert(channel);
    }

    fn fail(&mut self, channel: ChannelId, f: Failure) -> Step {
        if f.hard || channel == 0 {
            self.fail_connection(f);
        } else {
            self.fail_channel(channel, f);
        }
        Step::Continue
    }

    fn frame(&mut self, frame: AMQPFrame) -> Step {
        if self.closing {
            // Only the close handshake matters now.
            return match frame {
                AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::CloseOk(_))) => {
                    Step::Stop
                }
                AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::Close(_))) => {
                    self.send_method(0, close_ok());
                    Step::Stop
                }
                _ => Step::Continue,
            };
        }
        let channel = frame.channel_id();
        if channel != 0 && self.closing_channels.contains(&channel) {
            if let AMQPFrame::Method(
                _,
                AMQPClass::Channel(channel::AMQPMethod::CloseOk(_) | channel::AMQPMethod::Close(_)),
            ) = &frame
            {
                self.closing_channels.remove(&channel);
                if let AMQPFrame::Method(_, AMQPClass::Channel(channel::AMQPMethod::Close(_))) =
                    &frame
                {
                    self.send_method(
                        channel,
                        AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
                    );
                }
            }
            return Step::Continue;
        }
        match frame {
            AMQPFrame::Heartbeat => Step::Continue,
            AMQPFrame::ProtocolHeader(_) | AMQPFrame::InvalidHeartbeat(_) => {
                self.fail(0, Failure::hard(code::UNEXPECTED_FRAME, "unexpected frame"))
            }
            AMQPFrame::Method(0, AMQPClass::Connection(m)) => self.connection_method(m),
            AMQPFrame::Method(0, _) | AMQPFrame::Header(0, _) | AMQPFrame::Body(0, _) => self.fail(
                0,
                Failure::hard(
                    code::COMMAND_INVALID,
                    "only connection methods on channel 0",
                ),
            ),
            AMQPFrame::Method(ch, m) => self.channel_method(ch, m),
            AMQPFrame::Header(ch, header) => {
                let Some(p) = self.pending.get_mut(&ch) else {
                    return self.fail(
                        ch,
                        Failure::hard(code::UNEXPECTED_FRAME, "content header without a publish"),
                    );
                };
                if p.properties.is_some() || header.class_id != 60 {
                    return self.fail(
                        ch,
                        Failure::hard(code::UNEXPECTED_FRAME, "unexpected content header"),
                    );
                }
                if header.body_size > MAX_MESSAGE_SIZE {
                    let size = header.body_size;
                    return self.fail(
                        ch,
                        Failure::soft(
                            code::PRECONDITION_FAILED,
                            format!(
                                "message size {size} is larger than configured max size {MAX_MESSAGE_SIZE}"
                            ),
                        ),
                    );
                }
                p.size = header.body_size;
                p.properties = Some(header.properties);
                if p.size == 0 {
                    return self.complete(ch);
                }
                Step::Continue
            }
            AMQPFrame::Body(ch, data) => {
                let Some(p) = self.pending.get_mut(&ch) else {
                    return self.fail(
                        ch,
                        Failure::hard(code::UNEXPECTED_FRAME, "content body without a publish"),
                    );
                };
                if p.properties.is_none() || p.body.len() as u64 + data.len() as u64 > p.size {
                    return self.fail(
                        ch,
                        Failure::hard(code::UNEXPECTED_FRAME, "unexpected content body"),
                    );
                }
                p.body.extend_from_slice(&data);
                if p.body.len() as u64 == p.size {
                    return self.complete(ch);
                }
                Step::Continue
            }
        }
    }

    fn complete(&mut self, ch: ChannelId) -> Step {
        let Some(p) = self.pending.remove(&ch) else {
            return Step::Continue;
        };
        let Some(id) = self.id else {
            return Step::Continue;
        };
        let props = p.properties.unwrap_or_default();
        let res = self
            .shared
            .with(|st| st.publish(id, ch, &p.publish, props, p.body));
        match res {
            Ok(()) => Step::Continue,
            Err(mut f) => {
                f.class_id = 60;
                f.method_id = 40;
                self.fail(ch, f)
            }
        }
    }

    fn connection_method(&mut self, m: connection::AMQPMethod) -> Step {
        match m {
            connection::AMQPMethod::StartOk(_) => {
                // Any credentials are accepted: the broker only listens on 127.0.0.1.
                self.send_method(
                    0,
                    AMQPClass::Connection(connection::AMQPMethod::Tune(connection::Tune {
                        channel_max: CHANNEL_MAX,
                        frame_max: FRAME_MAX,
                        heartbeat: HEARTBEAT,
                    })),
                );
                Step::Continue
            }
            connection::AMQPMethod::TuneOk(t) => {
                if t.frame_max != 0 && t.frame_max < FRAME_MIN {
                    return self.fail(
                        0,
                        Failure::hard(
                            code::NOT_ALLOWED,
                            format!("frame_max {} below the minimum {FRAME_MIN}", t.frame_max),
                        ),
                    );
                }
                self.frame_max = if t.frame_max == 0 {
                    FRAME_MAX
                } else {
                    t.frame_max.min(FRAME_MAX)
                };
                self.channel_max = if t.channel_max == 0 {
                    CHANNEL_MAX
                } else {
                    t.channel_max.min(CHANNEL_MAX)
                };
                let _ = self.heartbeat.send(t.heartbeat);
                Step::Continue
            }
            connection::AMQPMethod::Open(_) => {
                // One vhost per broker: any name is accepted.
                let (tx, frame_max) = (self.tx.clone(), self.frame_max);
                self.id = Some(self.shared.with(|st| st.add_connection(tx, frame_max)));
                self.send_method(
                    0,
                    AMQPClass::Connection(connection::AMQPMethod::OpenOk(connection::OpenOk {})),
                );
                Step::Continue
            }
            connection::AMQPMethod::Close(_) => {
                if let Some(id) = self.id.take() {
                    self.shared.with(|st| st.close_connection(id));
                }
                self.send_method(0, close_ok());
                Step::Stop
            }
            connection::AMQPMethod::CloseOk(_) => Step::Stop,
            connection::AMQPMethod::Blocked(_)
            | connection::AMQPMethod::Unblocked(_)
            | connection::AMQPMethod::UpdateSecret(_) => {
                if let connection::AMQPMethod::UpdateSecret(_) = m {
                    self.send_method(
                        0,
                        AMQPClass::Connection(connection::AMQPMethod::UpdateSecretOk(
                            connection::UpdateSecretOk {},
                        )),
                    );
                }
                Step::Continue
            }
            _ => self.fail(
                0,
                Failure::hard(code::COMMAND_INVALID, "unexpected connection method"),
            ),
        }
    }

    fn channel_method(&mut self, ch: ChannelId, m: AMQPClass) -> Step {
        let Some(id) = self.id else {
            return self.fail(
                0,
                Failure::hard(
                    code::COMMAND_INVALID,
                    "channel method before connection.open",
                ),
            );
        };
        if ch > self.channel_max {
            return self.fail(
                0,
                Failure::hard(
                    code::CHANNEL_ERROR,
                    format!("channel {ch} above channel_max {}", self.channel_max),
                ),
            );
        }
        if self.pending.contains_key(&ch) {
            return self.fail(
                ch,
                Failure::hard(
                    code::UNEXPECTED_FRAME,
                    "method frame while content was expected",
                ),
            );
        }
        let (class_id, method_id) = (m.get_amqp_class_id(), m.get_amqp_method_id());
        match m {
            AMQPClass::Channel(channel::AMQPMethod::Open(_)) => {
                match self.shared.with(|st| st.open_channel(id, ch)) {
                    Ok(()) => {
                        self.send_method(
                            ch,
                            AMQPClass::Channel(channel::AMQPMethod::OpenOk(channel::OpenOk {})),
                        );
                        Step::Continue
                    }
                    Err(f) => self.fail(0, f),
                }
            }
            AMQPClass::Channel(channel::AMQPMethod::Close(_)) => {
                self.shared.with(|st| st.close_channel(id, ch));
                self.send_method(
                    ch,
                    AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
                );
                Step::Continue
            }
            AMQPClass::Channel(channel::AMQPMethod::CloseOk(_)) => Step::Continue,
            AMQPClass::Basic(basic::AMQPMethod::Publish(p)) => {
                if !self.shared.lock().has_channel(id, ch) {
                    return self.fail(
                        0,
                        Failure::hard(
                            code::CHANNEL_ERROR,
                            format!("expected 'channel.open' on channel {ch}"),
                        ),
                    );
                }
                self.pending.insert(
                    ch,
                    Pending {
                        publish: p,
                        properties: None,
                        size: 0,
                        body: Vec::new(),
                    },
                );
                Step::Continue
            }
            m => match self.shared.with(|st| st.method(id, ch, m)) {
                Ok(()) => Step::Continue,
                Err(mut f) => {
                    f.class_id = class_id;
                    f.method_id = method_id;
                    self.fail(ch, f)
                }
            },
        }
    }
}

fn close_ok() -> AMQPClass {
    AMQPClass::Connection(connection::AMQPMethod::CloseOk(connection::CloseOk {}))
}

fn start() -> AMQPClass {
    let mut caps = FieldTable::default();
    for cap in [
        "publisher_confirms",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "authentication_failure_close",
        "per_consumer_qos",
        "direct_reply_to",
    ] {
        caps.insert(short(cap), AMQPValue::Boolean(true));
    }
    let mut props = FieldTable::default();
    props.insert("capabilities".into(), AMQPValue::FieldTable(caps));
    props.insert(
        "product".into(),
        AMQPValue::LongString(LongString::from("kontiki-rt memory broker")),
    );
    props.insert(
        "version".into(),
        AMQPValue::LongString(LongString::from(env!("CARGO_PKG_VERSION"))),
    );
    props.insert(
        "platform".into(),
        AMQPValue::LongString(LongString::from("Rust")),
    );
    AMQPClass::Connection(connection::AMQPMethod::Start(connection::Start {
        version_major: 0,
        version_minor: 9,
        server_properties: props,
        mechanisms: LongString::from("PLAIN AMQPLAIN"),
        locales: LongString::from("en_US"),
    }))
}
