//! The broker's state (exchanges, queues, consumers, unacked deliveries) and the AMQP
//! semantics on it. Everything here is synchronous: the connection tasks call in with the
//! broker lock held for the length of one method, and the frames to send are pushed onto each
//! connection's outgoing queue without waiting.

use super::topic;
use amq_protocol::frame::{AMQPContentHeader, AMQPFrame};
use amq_protocol::protocol::{AMQPClass, basic, channel, confirm, exchange, queue};
use amq_protocol::types::{AMQPValue, FieldArray, FieldTable, LongString, ShortString};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc::UnboundedSender;

/// Identifies a client connection within one broker.
pub(crate) type ConnId = u64;
/// An AMQP channel number.
pub(crate) type ChannelId = u16;

/// The pseudo queue of RabbitMQ's direct reply-to.
pub(crate) const REPLY_TO: &str = "amq.rabbitmq.reply-to";
const REPLY_TO_PREFIX: &str = "amq.rabbitmq.reply-to.";

/// AMQP reply codes used here.
pub(crate) mod code {
    pub(crate) const CONNECTION_FORCED: u16 = 320;
    pub(crate) const NO_ROUTE: u16 = 312;
    pub(crate) const ACCESS_REFUSED: u16 = 403;
    pub(crate) const NOT_FOUND: u16 = 404;
    pub(crate) const RESOURCE_LOCKED: u16 = 405;
    pub(crate) const PRECONDITION_FAILED: u16 = 406;
    pub(crate) const FRAME_ERROR: u16 = 501;
    pub(crate) const SYNTAX_ERROR: u16 = 502;
    pub(crate) const COMMAND_INVALID: u16 = 503;
    pub(crate) const CHANNEL_ERROR: u16 = 504;
    pub(crate) const UNEXPECTED_FRAME: u16 = 505;
    pub(crate) const NOT_ALLOWED: u16 = 530;
    pub(crate) const NOT_IMPLEMENTED: u16 = 540;
}

/// What went wrong with a method: closes the channel (soft) or the connection (hard).
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub(crate) code: u16,
    pub(crate) text: String,
    pub(crate) hard: bool,
    pub(crate) class_id: u16,
    pub(crate) method_id: u16,
}

impl Failure {
    pub(crate) fn soft(code: u16, text: impl Into<String>) -> Self {
        Self {
            code,
            text: text.into(),
            hard: false,
            class_id: 0,
            method_id: 0,
        }
    }

    pub(crate) fn hard(code: u16, text: impl Into<String>) -> Self {
        Self {
            hard: true,
            ..Self::soft(code, text)
        }
    }

    /// The reply text as RabbitMQ words it: `NOT_FOUND - no queue 'x' in vhost '/'`, cut to
    /// what a short string holds.
    pub(crate) fn reply_text(&self) -> ShortString {
        let name = match self.code {
            code::CONNECTION_FORCED => "CONNECTION_FORCED",
            code::ACCESS_REFUSED => "ACCESS_REFUSED",
            code::NOT_FOUND => "NOT_FOUND",
            code::RESOURCE_LOCKED => "RESOURCE_LOCKED",
            code::PRECONDITION_FAILED => "PRECONDITION_FAILED",
            code::FRAME_ERROR => "FRAME_ERROR",
            code::SYNTAX_ERROR => "SYNTAX_ERROR",
            code::COMMAND_INVALID => "COMMAND_INVALID",
            code::CHANNEL_ERROR => "CHANNEL_ERROR",
            code::UNEXPECTED_FRAME => "UNEXPECTED_FRAME",
            code::NOT_ALLOWED => "NOT_ALLOWED",
            code::NOT_IMPLEMENTED => "NOT_IMPLEMENTED",
            _ => "ERROR",
        };
        short(&format!("{name} - {}", self.text))
    }
}

type Outcome<T> = Result<T, Failure>;

/// A short string from any text, cut at a character boundary to 255 bytes.
pub(crate) fn short(s: &str) -> ShortString {
    let mut end = s.len().min(255);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    ShortString::try_new(&s[..end]).unwrap_or_default()
}

/// What a connection task sends to its socket writer.
#[derive(Debug)]
pub(crate) enum Out {
    /// Frames to write, in order and contiguous.
    Frames(Vec<AMQPFrame>),
    /// Write everything queued so far, then close the socket.
    Shutdown,
}

/// A message as the broker holds it.
#[derive(Debug, Clone)]
pub(crate) struct Message {
    pub(crate) exchange: String,
    pub(crate) routing_key: String,
    pub(crate) properties: basic::AMQPProperties,
    pub(crate) body: Arc<[u8]>,
    pub(crate) redelivered: bool,
    /// Returns counted by a quorum queue (`x-delivery-count`).
    pub(crate) delivery_count: u32,
    pub(crate) expires_at: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExchangeKind {
    Direct,
    Fanout,
    Topic,
    Headers,
}

impl ExchangeKind {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "direct" => Some(Self::Direct),
            "fanout" => Some(Self::Fanout),
            "topic" => Some(Self::Topic),
            "headers" => Some(Self::Headers),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Fanout => "fanout",
            Self::Topic => "topic",
            Self::Headers => "headers",
        }
    }
}

#[derive(Debug)]
struct Binding {
    queue: String,
    key: String,
}

#[derive(Debug)]
struct Exchange {
    kind: ExchangeKind,
    durable: bool,
    auto_delete: bool,
    internal: bool,
    bindings: Vec<Binding>,
    /// Exchange-to-exchange bindings: (destination exchange, key).
    exchange_bindings: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Overflow {
    DropHead,
    RejectPublish,
}

/// Queue arguments the broker acts on.
#[derive(Debug, Clone, Default, PartialEq)]
struct QueueArgs {
    queue_type: Option<String>,
    delivery_limit: Option<i64>,
    dead_letter_exchange: Option<String>,
    dead_letter_routing_key: Option<String>,
    max_length: Option<i64>,
    message_ttl: Option<i64>,
    overflow: Option<String>,
}

impl QueueArgs {
    fn parse(args: &FieldTable, queue: &str) -> Outcome<Self> {
        let map = args.inner();
        let int = |key: &str| -> Outcome<Option<i64>> {
            match map.get(key) {
                None => Ok(None),
                Some(v) => match as_int(v) {
                    Some(n) if n >= 0 => Ok(Some(n)),
                    _ => Err(Failure::soft(
                        code::PRECONDITION_FAILED,
                        format!("invalid arg '{key}' for queue '{queue}' in vhost '/': {v:?}"),
                    )),
                },
            }
        };
        let text = |key: &str| -> Outcome<Option<String>> {
            match map.get(key) {
                None => Ok(None),
                Some(v) => as_text(v).map(Some).ok_or_else(|| {
                    Failure::soft(
                        code::PRECONDITION_FAILED,
                        format!("invalid arg '{key}' for queue '{queue}' in vhost '/': {v:?}"),
                    )
                }),
            }
        };
        let parsed = Self {
            queue_type: text("x-queue-type")?,
            delivery_limit: int("x-delivery-limit")?,
            dead_letter_exchange: text("x-dead-letter-exchange")?,
            dead_letter_routing_key: text("x-dead-letter-routing-key")?,
            max_length: int("x-max-length")?,
            message_ttl: int("x-message-ttl")?,
            overflow: text("x-overflow")?,
        };
        match parsed.queue_type.as_deref() {
            None | Some("classic" | "quorum") => {}
            Some(other) => {
                return Err(Failure::soft(
                    code::PRECONDITION_FAILED,
                    format!(
                        "invalid arg 'x-queue-type' for queue '{queue}' in vhost '/': \
                         {other:?} is not supported by the memory:// broker"
                    ),
                ));
            }
        }
        match parsed.overflow.as_deref() {
            None | Some("drop-head" | "reject-publish") => {}
            Some(other) => {
                return Err(Failure::soft(
                    code::PRECONDITION_FAILED,
                    format!("invalid arg 'x-overflow' for queue '{queue}' in vhost '/': {other:?}"),
                ));
            }
        }
        Ok(parsed)
    }

    fn quorum(&self) -> bool {
        self.queue_type.as_deref() == Some("quorum")
    }

    fn overflow(&self) -> Overflow {
        match self.overflow.as_deref() {
            Some("reject-publish") => Overflow::RejectPublish,
            _ => Overflow::DropHead,
        }
    }
}

fn as_int(v: &AMQPValue) -> Option<i64> {
    match v {
        AMQPValue::ShortShortInt(n) => Some(i64::from(*n)),
        AMQPValue::ShortShortUInt(n) => Some(i64::from(*n)),
        AMQPValue::ShortInt(n) => Some(i64::from(*n)),
        AMQPValue::ShortUInt(n) => Some(i64::from(*n)),
        AMQPValue::LongInt(n) => Some(i64::from(*n)),
        AMQPValue::LongUInt(n) => Some(i64::from(*n)),
        AMQPValue::LongLongInt(n) => Some(*n),
        AMQPValue::Timestamp(n) => i64::try_from(*n).ok(),
        _ => None,
    }
}

fn as_text(v: &AMQPValue) -> Option<String> {
    match v {
        AMQPValue::LongString(s) => String::from_utf8(s.as_bytes().to_vec()).ok(),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

/// Identifies a consumer: connection, channel, tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ConsumerKey {
    conn: ConnId,
    channel: ChannelId,
    tag: String,
}

#[derive(Debug)]
struct Queue {
    durable: bool,
    exclusive_owner: Option<ConnId>,
    auto_delete: bool,
    args: QueueArgs,
    ready: VecDeque<Message>,
    consumers: Vec<ConsumerKey>,
    /// Round-robin position among `consumers`.
    next_consumer: usize,
    has_exclusive_consumer: bool,
    /// Deliveries out on channels, not yet settled.
    unacked: usize,
    /// When the earliest expiry timer of this queue fires (none armed: `None`).
    timer_at: Option<Instant>,
}

#[derive(Debug)]
struct Consumer {
    queue: String,
    no_ack: bool,
    /// Per-consumer prefetch (0: unlimited).
    prefetch: u16,
    unacked: usize,
}

#[derive(Debug)]
struct Unacked {
    queue: String,
    message: Message,
    /// `None` for `basic.get`.
    consumer: Option<String>,
}

#[derive(Debug, Default)]
struct Chan {
    consumers: HashMap<String, Consumer>,
    unacked: BTreeMap<u64, Unacked>,
    next_tag: u64,
    /// `basic.qos` with `global = false`: the prefetch of consumers started from now on.
    consumer_prefetch: u16,
    /// `basic.qos` with `global = true`: shared by every consumer of the channel.
    channel_prefetch: u16,
    confirm: bool,
    publish_seq: u64,
    /// The direct reply-to consumer's tag and token.
    reply: Option<(String, String)>,
}

impl Chan {
    fn next_delivery_tag(&mut self) -> u64 {
        self.next_tag += 1;
        self.next_tag
    }
}

#[derive(Debug)]
struct Conn {
    out: UnboundedSender<Out>,
    frame_max: u32,
    channels: HashMap<ChannelId, Chan>,
}

/// A timer the caller must arm: at `at`, call [`State::expire`] for `queue`.
#[derive(Debug)]
pub(crate) struct Timer {
    pub(crate) queue: String,
    pub(crate) at: Instant,
}

/// All of one broker.
#[derive(Debug)]
pub(crate) struct State {
    exchanges: HashMap<String, Exchange>,
    queues: HashMap<String, Queue>,
    conns: HashMap<ConnId, Conn>,
    /// Direct reply-to tokens: token -> (connection, channel).
    reply_tokens: HashMap<String, (ConnId, ChannelId)>,
    next_conn: ConnId,
    /// Queues whose consumers may be able to take more.
    dirty: Vec<String>,
    /// Expiry timers to arm once the lock is released.
    timers: Vec<Timer>,
}

fn random_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

impl State {
    pub(crate) fn new() -> Self {
        let mut exchanges = HashMap::new();
        for (name, kind) in [
            ("amq.direct", ExchangeKind::Direct),
            ("amq.fanout", ExchangeKind::Fanout),
            ("amq.topic", ExchangeKind::Topic),
            ("amq.headers", ExchangeKind::Headers),
            ("amq.match", ExchangeKind::Headers),
        ] {
            exchanges.insert(
                name.to_owned(),
                Exchange {
                    kind,
                    durable: true,
                    auto_delete: false,
                    internal: false,
                    bindings: Vec::new(),
                    exchange_bindings: Vec::new(),
                },
            );
        }
        Self {
            exchanges,
            queues: HashMap::new(),
            conns: HashMap::new(),
            reply_tokens: HashMap::new(),
            next_conn: 0,
            dirty: Vec::new(),
            timers: Vec::new(),
        }
    }

    /// Registers a connection once its handshake is done.
    pub(crate) fn add_connection(&mut self, out: UnboundedSender<Out>, frame_max: u32) -> ConnId {
        self.next_conn += 1;
        let id = self.next_conn;
        self.conns.insert(
            id,
            Conn {
                out,
                frame_max,
                channels: HashMap::new(),
            },
        );
        id
    }

    /// Number of ready messages in `queue`, `None` when it does not exist.
    pub(crate) fn queue_depth(&self, queue: &str) -> Option<usize> {
        self.queues.get(queue).map(|q| q.ready.len())
    }

    /// Names of the queues, sorted.
    pub(crate) fn queue_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.queues.keys().cloned().collect();
        names.sort();
        names
    }

    /// Number of live connections.
    pub(crate) fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Timers to arm, taken.
    pub(crate) fn take_timers(&mut self) -> Vec<Timer> {
        std::mem::take(&mut self.timers)
    }

    fn send(&self, conn: ConnId, frames: Vec<AMQPFrame>) {
        if let Some(c) = self.conns.get(&conn) {
            let _ = c.out.send(Out::Frames(frames));
        }
    }

    fn send_method(&self, conn: ConnId, channel: ChannelId, method: AMQPClass) {
        self.send(conn, vec![AMQPFrame::Method(channel, method)]);
    }

    /// Content frames: header and the body cut to the connection's frame size.
    fn content_frames(
        &self,
        conn: ConnId,
        channel: ChannelId,
        method: AMQPClass,
        message: &Message,
        properties: basic::AMQPProperties,
    ) -> Vec<AMQPFrame> {
        let frame_max = self.conns.get(&conn).map_or(131_072, |c| c.frame_max);
        // 8 bytes of frame overhead (type, channel, size, end).
        let chunk = usize::try_from(frame_max.saturating_sub(8).max(1)).unwrap_or(4096);
        let mut frames = Vec::with_capacity(2 + message.body.len() / chunk + 1);
        frames.push(AMQPFrame::Method(channel, method));
        frames.push(AMQPFrame::Header(
            channel,
            AMQPContentHeader {
                class_id: 60,
                body_size: message.body.len() as u64,
                properties,
            },
        ));
        for part in message.body.chunks(chunk) {
            frames.push(AMQPFrame::Body(channel, part.to_vec()));
        }
        frames
    }

    // ---- connections and channels ------------------------------------------------------

    pub(crate) fn open_channel(&mut self, conn: ConnId, channel: ChannelId) -> Outcome<()> {
        let c = self
            .conns
            .get_mut(&conn)
            .ok_or_else(|| Failure::hard(code::CHANNEL_ERROR, "unknown connection"))?;
        if c.channels.contains_key(&channel) {
            return Err(Failure::hard(
                code::CHANNEL_ERROR,
                format!("second 'channel.open' seen on channel {channel}"),
            ));
        }
        c.channels.insert(channel, Chan::default());
        Ok(())
    }

    pub(crate) fn has_channel(&self, conn: ConnId, channel: ChannelId) -> bool {
        self.conns
            .get(&conn)
            .is_some_and(|c| c.channels.contains_key(&channel))
    }

    /// Closes a channel: its consumers go, its unacked messages are requeued.
    pub(crate) fn close_channel(&mut self, conn: ConnId, channel: ChannelId) {
        let Some(ch) = self
            .conns
            .get_mut(&conn)
            .and_then(|c| c.channels.remove(&channel))
        else {
            return;
        };
        if let Some((_, token)) = &ch.reply {
            self.reply_tokens.remove(token);
        }
        for (tag, consumer) in &ch.consumers {
            self.detach_consumer(
                &consumer.queue,
                &ConsumerKey {
                    conn,
                    channel,
                    tag: tag.clone(),
                },
            );
        }
        self.requeue_all(ch.unacked.into_values());
    }

    /// Forgets a connection: channels closed, exclusive queues deleted.
    pub(crate) fn close_connection(&mut self, conn: ConnId) {
        let channels: Vec<ChannelId> = self
            .conns
            .get(&conn)
            .map(|c| c.channels.keys().copied().collect())
            .unwrap_or_default();
        for ch in channels {
            self.close_channel(conn, ch);
        }
        self.conns.remove(&conn);
        let exclusive: Vec<String> = self
            .queues
            .iter()
            .filter(|(_, q)| q.exclusive_owner == Some(conn))
            .map(|(n, _)| n.clone())
            .collect();
        for q in exclusive {
            self.delete_queue(&q);
        }
    }

    /// Tells every connection the broker is going away.
    pub(crate) fn shutdown_all(&mut self) {
        for c in self.conns.values() {
            let close =
                AMQPClass::Connection(amq_protocol::protocol::connection::AMQPMethod::Close(
                    amq_protocol::protocol::connection::Close {
                        reply_code: code::CONNECTION_FORCED,
                        reply_text: short("CONNECTION_FORCED - broker shutdown"),
                        class_id: 0,
                        method_id: 0,
                    },
                ));
            let _ = c.out.send(Out::Frames(vec![AMQPFrame::Method(0, close)]));
            let _ = c.out.send(Out::Shutdown);
        }
    }

    fn chan(&mut self, conn: ConnId, channel: ChannelId) -> Outcome<&mut Chan> {
        self.conns
            .get_mut(&conn)
            .and_then(|c| c.channels.get_mut(&channel))
            .ok_or_else(|| {
                Failure::hard(
                    code::CHANNEL_ERROR,
                    format!("expected 'channel.open' on channel {channel}"),
                )
            })
    }

    // ---- methods -----------------------------------------------------------------------

    /// Runs one method of a channel other than open/close and content publishes; the reply
    /// (if any) is sent before any delivery it causes.
    pub(crate) fn method(
        &mut self,
        conn: ConnId,
        channel: ChannelId,
        method: AMQPClass,
    ) -> Outcome<()> {
        let reply = match method {
            AMQPClass::Exchange(m) => self.exchange_method(conn, m)?,
            AMQPClass::Queue(m) => self.queue_method(conn, m)?,
            AMQPClass::Basic(m) => self.basic_method(conn, channel, m)?,
            AMQPClass::Confirm(confirm::AMQPMethod::Select(s)) => {
                self.chan(conn, channel)?.confirm = true;
                (!s.nowait).then_some(AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(
                    confirm::SelectOk {},
                )))
            }
            AMQPClass::Channel(channel::AMQPMethod::Flow(f)) => Some(AMQPClass::Channel(
                channel::AMQPMethod::FlowOk(channel::FlowOk { active: f.active }),
            )),
            AMQPClass::Channel(channel::AMQPMethod::FlowOk(_)) => None,
            AMQPClass::Tx(_) => {
                return Err(Failure::hard(
                    code::NOT_IMPLEMENTED,
                    "transactions are not supported by the memory:// broker",
                ));
            }
            other => {
                return Err(Failure::hard(
                    code::COMMAND_INVALID,
                    format!(
                        "method {}.{} is not valid here",
                        other.get_amqp_class_id(),
                        other.get_amqp_method_id()
                    ),
                ));
            }
        };
        if let Some(reply) = reply {
            self.send_method(conn, channel, reply);
        }
        self.run_dirty();
        Ok(())
    }

    fn exchange_method(
        &mut self,
        conn: ConnId,
        m: exchange::AMQPMethod,
    ) -> Outcome<Option<AMQPClass>> {
        let _ = conn;
        match m {
            exchange::AMQPMethod::Declare(d) => {
                let name = d.exchange.as_str();
                let kind = ExchangeKind::parse(d.kind.as_str());
                if let Some(ex) = self.exchanges.get(name) {
                    if !d.passive {
                        let same = kind == Some(ex.kind)
                            && ex.durable == d.durable
                            && ex.auto_delete == d.auto_delete
                            && ex.internal == d.internal;
                        if !same {
                            return Err(Failure::soft(
                                code::PRECONDITION_FAILED,
                                format!(
                                    "inequivalent arg 'type' for exchange '{name}' in vhost '/': \
                                     received '{}' but current is '{}'",
                                    d.kind,
                                    ex.kind.name()
                                ),
                            ));
                        }
                    }
                } else if d.passive || name.is_empty() {
                    return Err(Failure::soft(
                        code::NOT_FOUND,
                        format!("no exchange '{name}' in vhost '/'"),
                    ));
                } else if name.starts_with("amq.") {
                    return Err(Failure::soft(
                        code::ACCESS_REFUSED,
                        format!("exchange name '{name}' contains reserved prefix 'amq.*'"),
                    ));
                } else {
                    let Some(kind) = kind else {
                        return Err(Failure::hard(
                            code::COMMAND_INVALID,
                            format!("unknown exchange type '{}'", d.kind),
                        ));
                    };
                    self.exchanges.insert(
                        name.to_owned(),
                        Exchange {
                            kind,
                            durable: d.durable,
                            auto_delete: d.auto_delete,
                            internal: d.internal,
                            bindings: Vec::new(),
                            exchange_bindings: Vec::new(),
                        },
                    );
                }
                Ok(
                    (!d.nowait).then_some(AMQPClass::Exchange(exchange::AMQPMethod::DeclareOk(
                        exchange::DeclareOk {},
                    ))),
                )
            }
            exchange::AMQPMethod::Delete(d) => {
                let name = d.exchange.as_str();
                if name.is_empty() || name.starts_with("amq.") {
                    return Err(Failure::soft(
                        code::ACCESS_REFUSED,
                        format!("cannot delete exchange '{name}' in vhost '/'"),
                    ));
                }
                if let Some(ex) = self.exchanges.get(name) {
                    if d.if_unused && !ex.bindings.is_empty() {
                        return Err(Failure::soft(
                            code::PRECONDITION_FAILED,
                            format!("exchange '{name}' in vhost '/' in use"),
                        ));
                    }
                    self.exchanges.remove(name);
                }
                Ok(
                    (!d.nowait).then_some(AMQPClass::Exchange(exchange::AMQPMethod::DeleteOk(
                        exchange::DeleteOk {},
                    ))),
                )
            }
            exchange::AMQPMethod::Bind(b) => {
                let (dest, source) = (b.destination.as_str(), b.source.as_str());
                for name in [dest, source] {
                    if name.is_empty() {
                        return Err(Failure::soft(
                            code::ACCESS_REFUSED,
                            "operation not permitted on the default exchange",
                        ));
                    }
                    if !self.exchanges.contains_key(name) {
                        return Err(Failure::soft(
                            code::NOT_FOUND,
                            format!("no exchange '{name}' in vhost '/'"),
                        ));
                    }
                }
                let key = b.routing_key.as_str().to_owned();
                if let Some(ex) = self.exchanges.get_mut(source)
                    && !ex
                        .exchange_bindings
                        .iter()
                        .any(|(d, k)| d == dest && *k == key)
                {
                    ex.exchange_bindings.push((dest.to_owned(), key));
                }
                Ok(
                    (!b.nowait).then_some(AMQPClass::Exchange(exchange::AMQPMethod::BindOk(
                        exchange::BindOk {},
                    ))),
                )
            }
            exchange::AMQPMethod::Unbind(u) => {
                let (dest, source) = (u.destination.as_str(), u.source.as_str());
                let key = u.routing_key.as_str();
                if let Some(ex) = self.exchanges.get_mut(source) {
                    ex.exchange_bindings
                        .retain(|(d, k)| !(d == dest && k == key));
                }
                Ok(
                    (!u.nowait).then_some(AMQPClass::Exchange(exchange::AMQPMethod::UnbindOk(
                        exchange::UnbindOk {},
                    ))),
                )
            }
            other => Err(Failure::hard(
                code::COMMAND_INVALID,
                format!("exchange method {other:?} is not valid here"),
            )),
        }
    }

    /// The queue, checking that `conn` may use it.
    fn usable_queue(&self, conn: ConnId, name: &str) -> Outcome<&Queue> {
        let q = self.queues.get(name).ok_or_else(|| {
            Failure::soft(code::NOT_FOUND, format!("no queue '{name}' in vhost '/'"))
        })?;
        if q.exclusive_owner.is_some_and(|o| o != conn) {
            return Err(Failure::soft(
                code::RESOURCE_LOCKED,
                format!(
                    "cannot obtain exclusive access to locked queue '{name}' in vhost '/'. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration."
                ),
            ));
        }
        Ok(q)
    }

    fn queue_method(&mut self, conn: ConnId, m: queue::AMQPMethod) -> Outcome<Option<AMQPClass>> {
        match m {
            queue::AMQPMethod::Declare(d) => {
                let mut name = d.queue.as_str().to_owned();
                if name.is_empty() && !d.passive {
                    name = format!("amq.gen-{}", random_token());
                }
                if self.queues.contains_key(&name) {
                    let q = self.usable_queue(conn, &name)?;
                    if !d.passive {
                        let args = QueueArgs::parse(&d.arguments, &name)?;
                        let mismatch = if q.durable != d.durable {
                            Some("durable")
                        } else if q.exclusive_owner.is_some() != d.exclusive {
                            Some("exclusive")
                        } else if q.auto_delete != d.auto_delete {
                            Some("auto_delete")
                        } else if q.args != args {
                            Some(first_arg_difference(&q.args, &args))
                        } else {
                            None
                        };
                        if let Some(what) = mismatch {
                            return Err(Failure::soft(
                                code::PRECONDITION_FAILED,
                                format!(
                                    "inequivalent arg '{what}' for queue '{name}' in vhost '/'"
                                ),
                            ));
                        }
                    }
                } else if d.passive {
                    return Err(Failure::soft(
                        code::NOT_FOUND,
                        format!("no queue '{name}' in vhost '/'"),
                    ));
                } else if name.starts_with("amq.") && d.queue.as_str() == name {
                    return Err(Failure::soft(
                        code::ACCESS_REFUSED,
                        format!("queue name '{name}' contains reserved prefix 'amq.*'"),
                    ));
                } else {
                    let args = QueueArgs::parse(&d.arguments, &name)?;
                    self.queues.insert(
                        name.clone(),
                        Queue {
                            durable: d.durable,
                            exclusive_owner: d.exclusive.then_some(conn),
                            auto_delete: d.auto_delete,
                            args,
                            ready: VecDeque::new(),
                            consumers: Vec::new(),
                            next_consumer: 0,
                            has_exclusive_consumer: false,
                            unacked: 0,
                            timer_at: None,
                        },
                    );
                }
                let q = self.usable_queue(conn, &name)?;
                let reply = queue::DeclareOk {
                    queue: short(&name),
                    message_count: u32::try_from(q.ready.len()).unwrap_or(u32::MAX),
                    consumer_count: u32::try_from(q.consumers.len()).unwrap_or(u32::MAX),
                };
                Ok((!d.nowait).then_some(AMQPClass::Queue(queue::AMQPMethod::DeclareOk(reply))))
            }
            queue::AMQPMethod::Bind(b) => {
                let qname = b.queue.as_str();
                let ename = b.exchange.as_str();
                self.usable_queue(conn, qname)?;
                if ename.is_empty() {
                    return Err(Failure::soft(
                        code::ACCESS_REFUSED,
                        format!(
                            "operation not permitted on the default exchange (binding queue '{qname}')"
                        ),
                    ));
                }
                let ex = self.exchanges.get_mut(ename).ok_or_else(|| {
                    Failure::soft(
                        code::NOT_FOUND,
                        format!("no exchange '{ename}' in vhost '/'"),
                    )
                })?;
                let key = b.routing_key.as_str();
                if !ex.bindings.iter().any(|x| x.queue == qname && x.key == key) {
                    ex.bindings.push(Binding {
                        queue: qname.to_owned(),
                        key: key.to_owned(),
                    });
                }
                Ok(
                    (!b.nowait).then_some(AMQPClass::Queue(queue::AMQPMethod::BindOk(
                        queue::BindOk {},
                    ))),
                )
            }
            queue::AMQPMethod::Unbind(u) => {
                let qname = u.queue.as_str();
                let ename = u.exchange.as_str();
                self.usable_queue(conn, qname)?;
                if ename.is_empty() {
                    return Err(Failure::soft(
                        code::ACCESS_REFUSED,
                        format!(
                            "operation not permitted on the default exchange (unbinding queue '{qname}')"
                        ),
                    ));
                }
                if let Some(ex) = self.exchanges.get_mut(ename) {
                    let key = u.routing_key.as_str();
                    ex.bindings.retain(|x| !(x.queue == qname && x.key == key));
                }
                self.auto_delete_exchange(ename);
                Ok(Some(AMQPClass::Queue(queue::AMQPMethod::UnbindOk(
                    queue::UnbindOk {},
                ))))
            }
            queue::AMQPMethod::Purge(p) => {
                let name = p.queue.as_str();
                self.usable_queue(conn, name)?;
                let count = self
                    .queues
                    .get_mut(name)
                    .map(|q| std::mem::take(&mut q.ready).len())
                    .unwrap_or(0);
                Ok(
                    (!p.nowait).then_some(AMQPClass::Queue(queue::AMQPMethod::PurgeOk(
                        queue::PurgeOk {
                            message_count: u32::try_from(count).unwrap_or(u32::MAX),
                        },
                    ))),
                )
            }
            queue::AMQPMethod::Delete(d) => {
                let name = d.queue.as_str();
                let count = match self.usable_queue(conn, name) {
                    // Deleting a queue that does not exist succeeds, as in RabbitMQ.
                    Err(f) if f.code == code::NOT_FOUND => 0,
                    Err(f) => return Err(f),
                    Ok(q) => {
                        if d.if_unused && !q.consumers.is_empty() {
                            return Err(Failure::soft(
                                code::PRECONDITION_FAILED,
                                format!("queue '{name}' in vhost '/' in use"),
                            ));
                        }
                        if d.if_empty && !q.ready.is_empty() {
                            return Err(Failure::soft(
                                code::PRECONDITION_FAILED,
                                format!("queue '{name}' in vhost '/' is not empty"),
                            ));
                        }
                        let n = q.ready.len();
                        self.delete_queue(name);
                        n
                    }
                };
                Ok(
                    (!d.nowait).then_some(AMQPClass::Queue(queue::AMQPMethod::DeleteOk(
                        queue::DeleteOk {
                            message_count: u32::try_from(count).unwrap_or(u32::MAX),
                        },
                    ))),
                )
            }
            other => Err(Failure::hard(
                code::COMMAND_INVALID,
                format!("queue method {other:?} is not valid here"),
            )),
        }
    }

    /// Removes a queue, its bindings and its consumers (who get `basic.cancel`).
    fn delete_queue(&mut self, name: &str) {
        let Some(q) = self.queues.remove(name) else {
            return;
        };
        let mut emptied = Vec::new();
        for (ename, ex) in &mut self.exchanges {
            let before = ex.bindings.len();
            ex.bindings.retain(|b| b.queue != name);
            if before != ex.bindings.len() && ex.bindings.is_empty() && ex.auto_delete {
                emptied.push(ename.clone());
            }
        }
        for e in emptied {
            self.exchanges.remove(&e);
        }
        for key in q.consumers {
            let Some(chan) = self
                .conns
                .get_mut(&key.conn)
                .and_then(|c| c.channels.get_mut(&key.channel))
            else {
                continue;
            };
            chan.consumers.remove(&key.tag);
            self.send_method(
                key.conn,
                key.channel,
                AMQPClass::Basic(basic::AMQPMethod::Cancel(basic::Cancel {
                    consumer_tag: short(&key.tag),
                    nowait: true,
                })),
            );
        }
    }

    fn auto_delete_exchange(&mut self, name: &str) {
        if self
            .exchanges
            .get(name)
            .is_some_and(|e| e.auto_delete && e.bindings.is_empty())
        {
            self.exchanges.remove(name);
        }
    }

    /// Takes a consumer off its queue; an auto-delete queue goes with its last consumer.
    fn detach_consumer(&mut self, queue: &str, key: &ConsumerKey) {
        let Some(q) = self.queues.get_mut(queue) else {
            return;
        };
        q.consumers.retain(|k| k != key);
        if q.consumers.is_empty() {
            q.has_exclusive_consumer = false;
        }
        if q.consumers.is_empty() && q.auto_delete {
            self.delete_queue(queue);
        }
    }

    fn basic_method(
        &mut self,
        conn: ConnId,
        channel: ChannelId,
        m: basic::AMQPMethod,
    ) -> Outcome<Option<AMQPClass>> {
        match m {
            basic::AMQPMethod::Qos(q) => {
                let ch = self.chan(conn, channel)?;
                if q.global {
                    ch.channel_prefetch = q.prefetch_count;
                } else {
                    ch.consumer_prefetch = q.prefetch_count;
                }
                // A raised limit may let consumers take more.
                let queues: Vec<String> = ch.consumers.values().map(|c| c.queue.clone()).collect();
                self.dirty.extend(queues);
                Ok(Some(AMQPClass::Basic(basic::AMQPMethod::QosOk(
                    basic::QosOk {},
                ))))
            }
            basic::AMQPMethod::Consume(c) => self.consume(conn, channel, c),
            basic::AMQPMethod::Cancel(c) => {
                let tag = c.consumer_tag.as_str().to_owned();
                let ch = self.chan(conn, channel)?;
                if ch.reply.as_ref().is_some_and(|(t, _)| *t == tag) {
                    if let Some((_, token)) = ch.reply.take() {
                        self.reply_tokens.remove(&token);
                    }
                } else if let Some(consumer) = ch.consumers.remove(&tag) {
                    self.detach_consumer(
                        &consumer.queue,
                        &ConsumerKey {
                            conn,
                            channel,
                            tag: tag.clone(),
                        },
                    );
                }
                Ok((!c.nowait).then(|| {
                    AMQPClass::Basic(basic::AMQPMethod::CancelOk(basic::CancelOk {
                        consumer_tag: c.consumer_tag.clone(),
                    }))
                }))
            }
            basic::AMQPMethod::Get(g) => {
                self.get(conn, channel, g.queue.as_str(), g.no_ack)?;
                Ok(None)
            }
            basic::AMQPMethod::Ack(a) => {
                let settled = self.take_unacked(conn, channel, a.delivery_tag, a.multiple)?;
                for u in settled {
                    self.settled(&u);
                }
                Ok(None)
            }
            basic::AMQPMethod::Nack(n) => {
                let settled = self.take_unacked(conn, channel, n.delivery_tag, n.multiple)?;
                self.reject_all(settled, n.requeue);
                Ok(None)
            }
            basic::AMQPMethod::Reject(r) => {
                let settled = self.take_unacked(conn, channel, r.delivery_tag, false)?;
                self.reject_all(settled, r.requeue);
                Ok(None)
            }
            basic::AMQPMethod::Recover(r) => {
                let all = self.take_unacked(conn, channel, 0, true)?;
                let _ = r.requeue;
                self.reject_all(all, true);
                Ok(Some(AMQPClass::Basic(basic::AMQPMethod::RecoverOk(
                    basic::RecoverOk {},
                ))))
            }
            basic::AMQPMethod::RecoverAsync(_) => {
                let all = self.take_unacked(conn, channel, 0, true)?;
                self.reject_all(all, true);
                Ok(None)
            }
            other => Err(Failure::hard(
                code::COMMAND_INVALID,
                format!("basic method {other:?} is not valid here"),
            )),
        }
    }

    fn consume(
        &mut self,
        conn: ConnId,
        channel: ChannelId,
        c: basic::Consume,
    ) -> Outcome<Option<AMQPClass>> {
        let qname = c.queue.as_str().to_owned();
        let tag = if c.consumer_tag.as_str().is_empty() {
            format!("amq.ctag-{}", random_token())
        } else {
            c.consumer_tag.as_str().to_owned()
        };
        {
            let ch = self.chan(conn, channel)?;
            if ch.consumers.contains_key(&tag) || ch.reply.as_ref().is_some_and(|(t, _)| *t == tag)
            {
                return Err(Failure::hard(
                    code::NOT_ALLOWED,
                    format!("attempt to reuse consumer tag '{tag}'"),
                ));
            }
        }
        let ok = (!c.nowait).then(|| {
            AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(basic::ConsumeOk {
                consumer_tag: short(&tag),
            }))
        });
        if qname == REPLY_TO {
            if !c.no_ack {
                return Err(Failure::soft(
                    code::PRECONDITION_FAILED,
                    "reply consumer cannot acknowledge",
                ));
            }
            let token = random_token();
            let ch = self.chan(conn, channel)?;
            if ch.reply.is_some() {
                return Err(Failure::soft(
                    code::PRECONDITION_FAILED,
                    "reply consumer already set",
                ));
            }
            ch.reply = Some((tag, token.clone()));
            self.reply_tokens.insert(token, (conn, channel));
            return Ok(ok);
        }
        let q = self.usable_queue(conn, &qname)?;
        if q.has_exclusive_consumer || (c.exclusive && !q.consumers.is_empty()) {
            return Err(Failure::soft(
                code::ACCESS_REFUSED,
                format!("queue '{qname}' in vhost '/' in exclusive use"),
            ));
        }
        let ch = self.chan(conn, channel)?;
        let prefetch = ch.consumer_prefetch;
        ch.consumers.insert(
            tag.clone(),
            Consumer {
                queue: qname.clone(),
                no_ack: c.no_ack,
                prefetch,
                unacked: 0,
            },
        );
        if let Some(q) = self.queues.get_mut(&qname) {
            q.consumers.push(ConsumerKey { conn, channel, tag });
            q.has_exclusive_consumer |= c.exclusive;
        }
        self.dirty.push(qname);
        Ok(ok)
    }

    fn get(&mut self, conn: ConnId, channel: ChannelId, qname: &str, no_ack: bool) -> Outcome<()> {
        self.usable_queue(conn, qname)?;
        self.chan(conn, channel)?;
        self.expire_queue(qname, Instant::now());
        let Some(q) = self.queues.get_mut(qname) else {
            return Ok(());
        };
        let Some(message) = q.ready.pop_front() else {
            self.send_method(
                conn,
                channel,
                AMQPClass::Basic(basic::AMQPMethod::GetEmpty(basic::GetEmpty {})),
            );
            return Ok(());
        };
        let remaining = u32::try_from(q.ready.len()).unwrap_or(u32::MAX);
        let quorum = q.args.quorum();
        if !no_ack {
            q.unacked += 1;
        }
        let ch = self.chan(conn, channel)?;
        let tag = ch.next_delivery_tag();
        let method = AMQPClass::Basic(basic::AMQPMethod::GetOk(basic::GetOk {
            delivery_tag: tag,
            redelivered: message.redelivered,
            exchange: short(&message.exchange),
            routing_key: short(&message.routing_key),
            message_count: remaining,
        }));
        let props = delivered_properties(&message, quorum);
        let frames = self.content_frames(conn, channel, method, &message, props);
        if !no_ack {
            let ch = self.chan(conn, channel)?;
            ch.unacked.insert(
                tag,
                Unacked {
                    queue: qname.to_owned(),
                    message,
                    consumer: None,
                },
            );
        }
        self.send(conn, frames);
        Ok(())
    }

    /// Removes the deliveries `tag` names (all up to it with `multiple`; all with tag 0).
    fn take_unacked(
        &mut self,
        conn: ConnId,
        channel: ChannelId,
        tag: u64,
        multiple: bool,
    ) -> Outcome<Vec<Unacked>> {
        let ch = self.chan(conn, channel)?;
        let taken: Vec<Unacked> = if multiple {
            let keys: Vec<u64> = if tag == 0 {
                ch.unacked.keys().copied().collect()
            } else {
                ch.unacked.range(..=tag).map(|(k, _)| *k).collect()
            };
            if keys.is_empty() && tag != 0 {
                return Err(unknown_tag(tag));
            }
            keys.into_iter()
                .filter_map(|k| ch.unacked.remove(&k))
                .collect()
        } else {
            vec![ch.unacked.remove(&tag).ok_or_else(|| unknown_tag(tag))?]
        };
        for u in &taken {
            if let Some(tag) = &u.consumer
                && let Some(c) = ch.consumers.get_mut(tag)
            {
                c.unacked = c.unacked.saturating_sub(1);
            }
        }
        Ok(taken)
    }

    /// Bookkeeping once a delivery is settled, whatever the outcome.
    fn settled(&mut self, u: &Unacked) {
        if let Some(q) = self.queues.get_mut(&u.queue) {
            q.unacked = q.unacked.saturating_sub(1);
            self.dirty.push(u.queue.clone());
        }
    }

    fn reject_all(&mut self, settled: Vec<Unacked>, requeue: bool) {
        if requeue {
            self.requeue_all(settled.into_iter());
        } else {
            for u in settled {
                self.settled(&u);
                self.dead_letter(&u.queue, u.message, "rejected");
            }
        }
    }

    /// Puts returned deliveries back at the head of their queues, in their order, counting
    /// the return on quorum queues (beyond `x-delivery-limit`: dead-lettered).
    fn requeue_all(&mut self, returned: impl DoubleEndedIterator<Item = Unacked>) {
        // Newest first, each pushed to the front: the oldest ends up first.
        for u in returned.rev() {
            self.settled(&u);
            let Some(q) = self.queues.get_mut(&u.queue) else {
                continue;
            };
            let mut message = u.message;
            message.redelivered = true;
            if q.args.quorum() {
                message.delivery_count += 1;
                if let Some(limit) = q.args.delivery_limit
                    && i64::from(message.delivery_count) > limit
                {
                    let queue = u.queue.clone();
                    self.dead_letter(&queue, message, "delivery_limit");
                    continue;
                }
            }
            // A returned message keeps its expiry (RabbitMQ does not expire unacked ones).
            if let Some(at) = message.expires_at
                && q.timer_at.is_none_or(|t| at < t)
            {
                q.timer_at = Some(at);
                self.timers.push(Timer {
                    queue: u.queue.clone(),
                    at,
                });
            }
            q.ready.push_front(message);
        }
    }

    // ---- publishing and routing ----------------------------------------------------------

    /// A complete `basic.publish` with its content.
    pub(crate) fn publish(
        &mut self,
        conn: ConnId,
        channel: ChannelId,
        publish: &basic::Publish,
        mut properties: basic::AMQPProperties,
        body: Vec<u8>,
    ) -> Outcome<()> {
        let ename = publish.exchange.as_str();
        let rkey = publish.routing_key.as_str();
        let (confirm, seq) = {
            let ch = self.chan(conn, channel)?;
            if ch.confirm {
                ch.publish_seq += 1;
            }
            (ch.confirm, ch.publish_seq)
        };
        if !ename.is_empty() && !self.exchanges.contains_key(ename) {
            return Err(Failure::soft(
                code::NOT_FOUND,
                format!("no exchange '{ename}' in vhost '/'"),
            ));
        }
        if let Some(reply_to) = properties.reply_to().as_ref()
            && reply_to.as_str() == REPLY_TO
        {
            let ch = self.chan(conn, channel)?;
            let Some((_, token)) = &ch.reply else {
                return Err(Failure::soft(
                    code::PRECONDITION_FAILED,
                    "fast reply consumer does not exist",
                ));
            };
            let rewritten = short(&format!("{REPLY_TO_PREFIX}{token}"));
            properties = properties.with_reply_to(rewritten);
        }
        let now = Instant::now();
        let expires_at = match properties.expiration().as_ref() {
            None => None,
            Some(e) => match e.as_str().parse::<u64>() {
                Ok(ms) => Some(now + Duration::from_millis(ms)),
                Err(_) => {
                    return Err(Failure::soft(
                        code::PRECONDITION_FAILED,
                        format!("invalid expiration '{e}'"),
                    ));
                }
            },
        };
        let message = Message {
            exchange: ename.to_owned(),
            routing_key: rkey.to_owned(),
            properties,
            body: Arc::from(body),
            redelivered: false,
            delivery_count: 0,
            expires_at,
        };

        let mut routed = false;
        let mut refused = false;
        if ename.is_empty() && rkey.starts_with(REPLY_TO_PREFIX) {
            routed = self.deliver_reply(&rkey[REPLY_TO_PREFIX.len()..], &message);
        } else {
            for q in self.route(ename, rkey) {
                routed = true;
                refused |= !self.enqueue(&q, message.clone());
            }
        }
        if !routed && publish.mandatory {
            let method = AMQPClass::Basic(basic::AMQPMethod::Return(basic::Return {
                reply_code: code::NO_ROUTE,
                reply_text: short("NO_ROUTE"),
                exchange: publish.exchange.clone(),
                routing_key: publish.routing_key.clone(),
            }));
            let props = message.properties.clone();
            let frames = self.content_frames(conn, channel, method, &message, props);
            self.send(conn, frames);
        }
        if confirm {
            let method = if refused {
                basic::AMQPMethod::Nack(basic::Nack {
                    delivery_tag: seq,
                    multiple: false,
                    requeue: false,
                })
            } else {
                basic::AMQPMethod::Ack(basic::Ack {
                    delivery_tag: seq,
                    multiple: false,
                })
            };
            self.send_method(conn, channel, AMQPClass::Basic(method));
        }
        self.run_dirty();
        Ok(())
    }

    /// The queues a message published to `exchange` with `key` goes to.
    fn route(&self, exchange: &str, key: &str) -> Vec<String> {
        if exchange.is_empty() {
            return if self.queues.contains_key(key) {
                vec![key.to_owned()]
            } else {
                Vec::new()
            };
        }
        // Breadth-first through exchange-to-exchange bindings, each exchange once.
        let mut out: Vec<String> = Vec::new();
        let mut seen: Vec<&str> = vec![exchange];
        let mut next = 0;
        while let Some(&name) = seen.get(next) {
            next += 1;
            let Some(ex) = self.exchanges.get(name) else {
                continue;
            };
            let hit = |pattern: &str| match ex.kind {
                ExchangeKind::Direct => pattern == key,
                ExchangeKind::Fanout => true,
                ExchangeKind::Topic => topic::matches(pattern, key),
                // Headers matching is not supported: nothing routes through it.
                ExchangeKind::Headers => false,
            };
            for b in &ex.bindings {
                if hit(&b.key) && !out.contains(&b.queue) {
                    out.push(b.queue.clone());
                }
            }
            for (dest, k) in &ex.exchange_bindings {
                if hit(k) && !seen.contains(&dest.as_str()) {
                    seen.push(dest);
                }
            }
        }
        out
    }

    fn deliver_reply(&mut self, token: &str, message: &Message) -> bool {
        let Some(&(conn, channel)) = self.reply_tokens.get(token) else {
            return false;
        };
        let Ok(ch) = self.chan(conn, channel) else {
            return false;
        };
        let Some((tag, _)) = ch.reply.clone() else {
            return false;
        };
        let delivery_tag = ch.next_delivery_tag();
        let method = AMQPClass::Basic(basic::AMQPMethod::Deliver(basic::Deliver {
            consumer_tag: short(&tag),
            delivery_tag,
            redelivered: false,
            exchange: short(&message.exchange),
            routing_key: short(&message.routing_key),
        }));
        let frames =
            self.content_frames(conn, channel, method, message, message.properties.clone());
        self.send(conn, frames);
        true
    }

    /// Adds a message to a queue; false when the queue refuses it (`reject-publish`).
    fn enqueue(&mut self, qname: &str, mut message: Message) -> bool {
        let Some(q) = self.queues.get_mut(qname) else {
            return false;
        };
        if let Some(ttl) = q.args.message_ttl {
            let at = Instant::now() + Duration::from_millis(u64::try_from(ttl).unwrap_or(0));
            message.expires_at = Some(message.expires_at.map_or(at, |e| e.min(at)));
        }
        if let Some(max) = q.args.max_length {
            let max = usize::try_from(max).unwrap_or(usize::MAX);
            if q.ready.len() >= max {
                match q.args.overflow() {
                    Overflow::RejectPublish => return false,
                    Overflow::DropHead => {
                        let mut dropped = Vec::new();
                        while q.ready.len() >= max {
                            match q.ready.pop_front() {
                                Some(m) => dropped.push(m),
                                None => break,
                            }
                        }
                        if max == 0 {
                            dropped.push(message);
                            for m in dropped {
                                self.dead_letter(qname, m, "maxlen");
                            }
                            return true;
                        }
                        for m in dropped {
                            self.dead_letter(qname, m, "maxlen");
                        }
                    }
                }
            }
        }
        let Some(q) = self.queues.get_mut(qname) else {
            return false;
        };
        if let Some(at) = message.expires_at
            && q.timer_at.is_none_or(|t| at < t)
        {
            q.timer_at = Some(at);
            self.timers.push(Timer {
                queue: qname.to_owned(),
                at,
            });
        }
        q.ready.push_back(message);
        self.dirty.push(qname.to_owned());
        true
    }

    /// Dead-letters a message that left `queue` for `reason` (`rejected`, `expired`,
    /// `maxlen`, `delivery_limit`), or drops it when the queue has no dead-letter exchange.
    fn dead_letter(&mut self, queue: &str, mut message: Message, reason: &str) {
        let Some(q) = self.queues.get(queue) else {
            return;
        };
        let Some(dlx) = q.args.dead_letter_exchange.clone() else {
            return;
        };
        let routing_key = q
            .args
            .dead_letter_routing_key
            .clone()
            .unwrap_or_else(|| message.routing_key.clone());
        let mut headers = message.properties.headers().clone().unwrap_or_default();
        add_death(&mut headers, queue, reason, &message);
        let mut props = message.properties.clone().with_headers(headers);
        if message.properties.expiration().is_some() {
            // RabbitMQ keeps the original in x-death and drops it from the message.
            props = strip_expiration(props);
        }
        message.properties = props;
        message.expires_at = None;
        message.redelivered = false;
        message.delivery_count = 0;
        let old_exchange = std::mem::replace(&mut message.exchange, dlx.clone());
        let _ = old_exchange;
        message.routing_key = routing_key.clone();
        for target in self.route(&dlx, &routing_key) {
            // A dead-letter cycle back into the same queue for the same reason stops here.
            if target == queue && reason != "rejected" {
                continue;
            }
            self.enqueue(&target, message.clone());
        }
    }

    /// Removes (dead-letters) the expired messages of `queue`; re-arms its timer.
    pub(crate) fn expire(&mut self, queue: &str, now: Instant) {
        if let Some(q) = self.queues.get_mut(queue) {
            q.timer_at = None;
        }
        self.expire_queue(queue, now);
        if let Some(q) = self.queues.get_mut(queue)
            && let Some(next) = q.ready.iter().filter_map(|m| m.expires_at).min()
        {
            q.timer_at = Some(next);
            self.timers.push(Timer {
                queue: queue.to_owned(),
                at: next,
            });
        }
        self.run_dirty();
    }

    fn expire_queue(&mut self, queue: &str, now: Instant) {
        let Some(q) = self.queues.get_mut(queue) else {
            return;
        };
        if !q
            .ready
            .iter()
            .any(|m| m.expires_at.is_some_and(|e| e <= now))
        {
            return;
        }
        let (expired, kept): (VecDeque<Message>, VecDeque<Message>) = std::mem::take(&mut q.ready)
            .into_iter()
            .partition(|m| m.expires_at.is_some_and(|e| e <= now));
        q.ready = kept;
        for m in expired {
            self.dead_letter(queue, m, "expired");
        }
    }

    // ---- delivering ----------------------------------------------------------------------

    fn run_dirty(&mut self) {
        while let Some(q) = self.dirty.pop() {
            self.dispatch(&q);
        }
    }

    /// Hands ready messages of `queue` to consumers with room, round-robin.
    fn dispatch(&mut self, qname: &str) {
        let now = Instant::now();
        loop {
            let Some(q) = self.queues.get(qname) else {
                return;
            };
            if q.ready.is_empty() || q.consumers.is_empty() {
                return;
            }
            // The next consumer with room, from the round-robin position.
            let n = q.consumers.len();
            let mut chosen = None;
            for i in 0..n {
                let idx = (q.next_consumer + i) % n;
                let key = &q.consumers[idx];
                if self.has_room(key) {
                    chosen = Some((idx, key.clone()));
                    break;
                }
            }
            let Some((idx, key)) = chosen else {
                return;
            };
            let Some(q) = self.queues.get_mut(qname) else {
                return;
            };
            q.next_consumer = (idx + 1) % n;
            let Some(message) = q.ready.pop_front() else {
                return;
            };
            if message.expires_at.is_some_and(|e| e <= now) {
                self.dead_letter(qname, message, "expired");
                continue;
            }
            let quorum = q.args.quorum();
            let props = delivered_properties(&message, quorum);
            let Some(ch) = self
                .conns
                .get_mut(&key.conn)
                .and_then(|c| c.channels.get_mut(&key.channel))
            else {
                return;
            };
            let delivery_tag = ch.next_delivery_tag();
            let no_ack = ch.consumers.get(&key.tag).is_none_or(|c| c.no_ack);
            let method = AMQPClass::Basic(basic::AMQPMethod::Deliver(basic::Deliver {
                consumer_tag: short(&key.tag),
                delivery_tag,
                redelivered: message.redelivered,
                exchange: short(&message.exchange),
                routing_key: short(&message.routing_key),
            }));
            let frames = self.content_frames(key.conn, key.channel, method, &message, props);
            self.send(key.conn, frames);
            if !no_ack {
                if let Some(ch) = self
                    .conns
                    .get_mut(&key.conn)
                    .and_then(|c| c.channels.get_mut(&key.channel))
                {
                    if let Some(c) = ch.consumers.get_mut(&key.tag) {
                        c.unacked += 1;
                    }
                    ch.unacked.insert(
                        delivery_tag,
                        Unacked {
                            queue: qname.to_owned(),
                            message,
                            consumer: Some(key.tag.clone()),
                        },
                    );
                }
                if let Some(q) = self.queues.get_mut(qname) {
                    q.unacked += 1;
                }
            }
        }
    }

    fn has_room(&self, key: &ConsumerKey) -> bool {
        let Some(ch) = self
            .conns
            .get(&key.conn)
            .and_then(|c| c.channels.get(&key.channel))
        else {
            return false;
        };
        let Some(c) = ch.consumers.get(&key.tag) else {
            return false;
        };
        if c.no_ack {
            return true;
        }
        let per_consumer = c.prefetch == 0 || c.unacked < usize::from(c.prefetch);
        let per_channel =
            ch.channel_prefetch == 0 || ch.unacked.len() < usize::from(ch.channel_prefetch);
        per_consumer && per_channel
    }
}

fn unknown_tag(tag: u64) -> Failure {
    Failure::soft(
        code::PRECONDITION_FAILED,
        format!("unknown delivery tag {tag}"),
    )
}

fn first_arg_difference(a: &QueueArgs, b: &QueueArgs) -> &'static str {
    if a.queue_type != b.queue_type {
        "x-queue-type"
    } else if a.delivery_limit != b.delivery_limit {
        "x-delivery-limit"
    } else if a.dead_letter_exchange != b.dead_letter_exchange {
        "x-dead-letter-exchange"
    } else if a.dead_letter_routing_key != b.dead_letter_routing_key {
        "x-dead-letter-routing-key"
    } else if a.max_length != b.max_length {
        "x-max-length"
    } else if a.message_ttl != b.message_ttl {
        "x-message-ttl"
    } else {
        "x-overflow"
    }
}

/// The properties of a delivery: a quorum queue adds `x-delivery-count` once returned.
fn delivered_properties(message: &Message, quorum: bool) -> basic::AMQPProperties {
    if quorum && message.delivery_count > 0 {
        let mut headers = message.properties.headers().clone().unwrap_or_default();
        headers.insert(
            "x-delivery-count".into(),
            AMQPValue::LongLongInt(i64::from(message.delivery_count)),
        );
        message.properties.clone().with_headers(headers)
    } else {
        message.properties.clone()
    }
}

fn strip_expiration(props: basic::AMQPProperties) -> basic::AMQPProperties {
    let mut out = basic::AMQPProperties::default();
    macro_rules! copy {
        ($($get:ident => $set:ident),*) => {
            $( if let Some(v) = props.$get().clone() { out = out.$set(v); } )*
        };
    }
    copy!(
        content_type => with_content_type,
        content_encoding => with_content_encoding,
        headers => with_headers,
        delivery_mode => with_delivery_mode,
        priority => with_priority,
        correlation_id => with_correlation_id,
        reply_to => with_reply_to,
        message_id => with_message_id,
        timestamp => with_timestamp,
        kind => with_type,
        user_id => with_user_id,
        app_id => with_app_id,
        cluster_id => with_cluster_id
    );
    out
}

fn long(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

/// Adds or counts up the `x-death` entry of (`queue`, `reason`) and sets the
/// `x-first-death-*` / `x-last-death-*` headers, as RabbitMQ does.
fn add_death(headers: &mut FieldTable, queue: &str, reason: &str, message: &Message) {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut deaths: Vec<AMQPValue> = match headers.inner().get("x-death") {
        Some(AMQPValue::FieldArray(a)) => a.as_slice().to_vec(),
        _ => Vec::new(),
    };
    let same = |v: &AMQPValue| match v {
        AMQPValue::FieldTable(t) => {
            t.inner().get("queue").and_then(as_text).as_deref() == Some(queue)
                && t.inner().get("reason").and_then(as_text).as_deref() == Some(reason)
        }
        _ => false,
    };
    let mut entry = match deaths.iter().position(same) {
        Some(i) => match deaths.remove(i) {
            AMQPValue::FieldTable(t) => t,
            _ => FieldTable::default(),
        },
        None => FieldTable::default(),
    };
    let count = entry.inner().get("count").and_then(as_int).unwrap_or(0) + 1;
    entry.insert("count".into(), AMQPValue::LongLongInt(count));
    entry.insert("reason".into(), long(reason));
    entry.insert("queue".into(), long(queue));
    entry.insert("time".into(), AMQPValue::Timestamp(now));
    entry.insert("exchange".into(), long(&message.exchange));
    entry.insert(
        "routing-keys".into(),
        AMQPValue::FieldArray(FieldArray::from(vec![long(&message.routing_key)])),
    );
    if let Some(exp) = message.properties.expiration().as_ref() {
        entry.insert("original-expiration".into(), long(exp.as_str()));
    }
    deaths.insert(0, AMQPValue::FieldTable(entry));
    headers.insert("x-death".into(), AMQPValue::FieldArray(deaths.into()));
    // As RabbitMQ: the first death sets x-first-death-*, later ones x-last-death-*.
    if headers.contains_key("x-first-death-reason") {
        headers.insert("x-last-death-exchange".into(), long(&message.exchange));
        headers.insert("x-last-death-queue".into(), long(queue));
        headers.insert("x-last-death-reason".into(), long(reason));
    } else {
        headers.insert("x-first-death-exchange".into(), long(&message.exchange));
        headers.insert("x-first-death-queue".into(), long(queue));
        headers.insert("x-first-death-reason".into(), long(reason));
    }
}
