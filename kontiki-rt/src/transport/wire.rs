//! What crosses the wire, exactly as Kontiki 2.3.2 writes it: names, envelopes, ids, headers.
//!
//! Everything here is pure data conversion; no I/O. The protocol reference is
//! `kontiki-protocol.md` §1–§4 (shared with the Python package).

use base64::Engine as _;
use lapin::types::{AMQPValue, FieldArray, FieldTable, LongString, ShortString};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Topic exchange for events; routing key = event type. Non-durable, as Kontiki declares it.
pub const EVENT_EXCHANGE: &str = "event_exchange";
/// Topic exchange for RPC requests; routing key `{service}.{method}[.{instance_id}]`.
pub const RPC_EXCHANGE: &str = "rpc_exchange";
/// Direct, durable exchange that competing event queues dead-letter into.
pub const FAILED_EXCHANGE: &str = "kontiki.failed";
/// Topic exchange carrying registration, heartbeats and reports to the registry.
pub const REGISTRY_ADMIN_EXCHANGE: &str = "registry_admin_exchange";
/// The internal RPC every Kontiki service answers to open a session.
pub const SESSION_OPEN_METHOD: &str = "___kontiki__internal_session_open__";
/// The Kontiki version kontiki-rs speaks and reports to the registry.
pub const KONTIKI_VERSION: &str = "2.3.2";

/// Header names Kontiki writes itself; user headers may not use them (`kontiki.utils.RESERVED_HEADERS`).
pub const RESERVED_HEADERS: [&str; 14] = [
    "entrypoint",
    "event_type",
    "flow_id",
    "hop_id",
    "host",
    "instance_id",
    "operation",
    "parent_hop_id",
    "remote_method",
    "reply_to",
    "rpc_service",
    "service_name",
    "session_id",
    "timestamp",
];

/// The reserved names among `keys`, sorted; empty when none is reserved.
pub fn reserved_header_names<'a>(keys: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut found: Vec<String> = keys
        .into_iter()
        .filter(|k| RESERVED_HEADERS.contains(k))
        .map(str::to_owned)
        .collect();
    found.sort();
    found.dedup();
    found
}

/// Routing key of an RPC request: `{service}.{method}` or `{service}.{method}.{instance_id}`.
pub fn rpc_routing_key(service: &str, method: &str, instance_id: Option<&str>) -> String {
    match instance_id {
        Some(iid) => join_dotted(&[service, method, iid]),
        None => join_dotted(&[service, method]),
    }
}

/// Name of the shared RPC queue of a method: `{service}.{method}.queue`.
pub fn rpc_queue(service: &str, method: &str) -> String {
    join_dotted(&[service, method, "queue"])
}

/// Name of the per-instance RPC queue of a method: `{service}.{method}.{instance_id}.queue`.
pub fn rpc_instance_queue(service: &str, method: &str, instance_id: &str) -> String {
    join_dotted(&[service, method, instance_id, "queue"])
}

/// `parts` joined with dots, in one allocation of the right size: these names are built for
/// every call, and `format!` costs several times more.
fn join_dotted(parts: &[&str]) -> String {
    let len = parts.iter().map(|p| p.len() + 1).sum::<usize>();
    let mut out = String::with_capacity(len);
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        out.push_str(part);
    }
    out
}

/// A new flow id: 12 lowercase hex characters, like Python's `secrets.token_hex(6)`.
pub fn new_flow_id() -> String {
    random_hex(6)
}

/// [`new_flow_id`] as the `Arc<str>` a handler scope keeps, written in place: one
/// allocation, where `Arc::from(new_flow_id())` makes two.
pub(crate) fn new_flow_id_arc() -> std::sync::Arc<str> {
    let mut buf = HexBuf([0; 32]);
    std::sync::Arc::from(fill_random_hex(&mut buf, 12))
}

/// A new hop id: 16 lowercase hex characters (one per outbound message).
pub fn new_hop_id() -> String {
    random_hex(8)
}

/// `n` random bytes as lowercase hex.
pub(crate) fn random_hex(n: usize) -> String {
    let mut buf = HexBuf([0; 32]);
    fill_random_hex(&mut buf, 2 * n.min(16)).to_owned()
}

/// Where ids are written: on an 8-byte boundary, so that `str::from_utf8` checks their digits
/// a word at a time (a buffer unaligned or shorter than 16 bytes is checked byte by byte, some
/// 100 instructions for a flow id's 12).
#[repr(align(8))]
struct HexBuf([u8; 32]);

/// The first `len` (at most 32) bytes of `buf` as random lowercase hex digits. Digits are
/// written 16 at a time; the text is the first `len` of them.
///
/// The bits come from fastrand's thread-local generator (wyrand, seeded per thread from the
/// process's random hash keys): flow and hop ids trace messages and grant nothing, so they
/// need to be unique, not unguessable, and this is a few instructions where a v4 UUID from a
/// ChaCha generator is about a hundred. (Correlation ids, which a reply must match, stay v4
/// UUIDs.)
fn fill_random_hex(buf: &mut HexBuf, len: usize) -> &str {
    let len = len.min(32);
    let filled = len.div_ceil(16) * 16;
    for chunk in buf.0[..filled].chunks_exact_mut(16) {
        let bits = fastrand::u64(..);
        // The low nibbles of the eight bytes, then the high ones (the bits are random: their
        // order does not matter).
        chunk[..8].copy_from_slice(&hex_digits(bits & NIBBLES).to_le_bytes());
        chunk[8..].copy_from_slice(&hex_digits((bits >> 4) & NIBBLES).to_le_bytes());
    }
    let text = std::str::from_utf8(&buf.0[..filled]).expect("invariant: hex digits are ASCII");
    &text[..len]
}

const NIBBLES: u64 = 0x0f0f_0f0f_0f0f_0f0f;
/// One in each byte.
const ONES: u64 = 0x0101_0101_0101_0101;

/// Eight values 0–15, one per byte, as the bytes of their lowercase hex digits, all at once:
/// `'0' + v`, plus `'a' - '0' - 10` where `v > 9` (`v + 6` carries into bit 4 exactly then;
/// no byte overflows, so no byte disturbs the next).
fn hex_digits(nibbles: u64) -> u64 {
    let over_nine = ((nibbles + 6 * ONES) >> 4) & ONES;
    nibbles + u64::from(b'0') * ONES + over_nine * u64::from(b'a' - b'0' - 10)
}

/// The current UTC time as Python's `datetime.now(timezone.utc).isoformat()` writes it:
/// `2026-11-29T04:19:50.580576+00:00`, without the fraction when the microseconds are 0.
pub fn timestamp_now() -> String {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format_unix_time(since_epoch.as_secs(), since_epoch.subsec_micros())
}

/// [`format_timestamp`] of `secs` seconds and `micros` microseconds after the Unix epoch,
/// without chrono's calendar types (it runs for every message sent).
fn format_unix_time(secs: u64, micros: u32) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let (year, month, day) = civil_from_days(days);
    let in_day = u32::try_from(secs % 86_400).unwrap_or(0);
    write_iso(
        year,
        [month, day, in_day / 3600, in_day / 60 % 60, in_day % 60],
        micros,
    )
}

/// The proleptic Gregorian date of a day number (days since 1970-01-01): Howard Hinnant's
/// `civil_from_days`.
fn civil_from_days(days: i64) -> (i32, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Day and month are in 1..=31 and 1..=12; the year fits any date a clock gives.
    (
        i32::try_from(year).unwrap_or(i32::MAX),
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

/// Formats a UTC time the way Python's `isoformat()` does. Written digit by digit: it runs
/// for every message sent, and `core::fmt` costs more than the rest of the headers.
pub fn format_timestamp(t: chrono::DateTime<chrono::Utc>) -> String {
    use chrono::{Datelike as _, Timelike as _};
    write_iso(
        t.year(),
        [t.month(), t.day(), t.hour(), t.minute(), t.second()],
        t.nanosecond() / 1000 % 1_000_000,
    )
}

/// `YYYY-MM-DDTHH:MM:SS[.ffffff]+00:00` from the year, `[month, day, hour, minute, second]`
/// and the microseconds (years past 9999, which chrono allows, get more digits).
fn write_iso(year: i32, fields: [u32; 5], micros: u32) -> String {
    // Sign, up to 10 year digits, 15 for the rest of the date and time, 7 for the fraction and
    // 6 for the offset.
    let mut buf = [0u8; 40];
    let mut at = 0;
    if year < 0 {
        buf[0] = b'-';
        at = 1;
    }
    let year = year.unsigned_abs();
    at = put_digits(
        &mut buf,
        at,
        year,
        if year > 9999 { digit_count(year) } else { 4 },
    );
    for (sep, value) in [b'-', b'-', b'T', b':', b':'].into_iter().zip(fields) {
        buf[at] = sep;
        at = put_digits(&mut buf, at + 1, value, 2);
    }
    if micros != 0 {
        buf[at] = b'.';
        at = put_digits(&mut buf, at + 1, micros, 6);
    }
    buf[at..at + 6].copy_from_slice(b"+00:00");
    String::from_utf8_lossy(&buf[..at + 6]).into_owned()
}

/// Writes the last `width` decimal digits of `value`, zero-padded, at `buf[at..]`; returns
/// where the next byte goes.
fn put_digits(buf: &mut [u8], at: usize, mut value: u32, width: u32) -> usize {
    let end = at + width as usize;
    for slot in buf[at..end].iter_mut().rev() {
        // `value % 10` is below 10.
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
    end
}

/// How many decimal digits `value` has.
fn digit_count(value: u32) -> u32 {
    value.checked_ilog10().unwrap_or(0) + 1
}

/// Kind of error in an RPC reply envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ErrorType {
    /// Success.
    None,
    /// The caller's fault (`rpc_error(code, message)`).
    Client,
    /// The server's fault (an exception in the handler).
    Server,
}

/// The `RpcReturn` envelope of a reply (protocol §2.3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Always `true`; marks the object as an envelope.
    #[serde(rename = "__rpcreturn__")]
    pub rpcreturn: bool,
    /// Whether the call succeeded.
    pub success: bool,
    /// The result, `null` on errors.
    #[serde(default)]
    pub result: Value,
    /// The error message, `null` on success.
    #[serde(default)]
    pub message: Option<String>,
    /// `NONE`, `CLIENT` or `SERVER`.
    #[serde(default = "error_type_none")]
    pub error_type: ErrorType,
    /// The error code, `null` on success.
    #[serde(default)]
    pub error_code: Option<String>,
}

fn error_type_none() -> ErrorType {
    ErrorType::None
}

impl Envelope {
    /// A success envelope around `result`.
    pub fn success(result: Value) -> Self {
        Self {
            rpcreturn: true,
            success: true,
            result,
            message: None,
            error_type: ErrorType::None,
            error_code: None,
        }
    }

    /// A client error (`rpc_error(code, message)`).
    pub fn client_error(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::error(ErrorType::Client, code.into(), message.into())
    }

    /// A server error; Kontiki's code for it is `INTERNAL_ERROR`.
    pub fn server_error(message: impl Into<String>) -> Self {
        Self::error(
            ErrorType::Server,
            "INTERNAL_ERROR".to_owned(),
            message.into(),
        )
    }

    fn error(error_type: ErrorType, code: String, message: String) -> Self {
        Self {
            rpcreturn: true,
            success: false,
            result: Value::Null,
            message: Some(message),
            error_type,
            error_code: Some(code),
        }
    }

    /// The envelope as the JSON bytes Kontiki sends (field order as Python writes it).
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising a struct of JSON values cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// What a reply body means to a caller (protocol §2.3, "How the Python client reads the reply").
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// The call succeeded with this result.
    Success(Value),
    /// A client error with its code and message.
    ClientError {
        /// The error code, if the server sent one.
        code: Option<String>,
        /// The message, if any.
        message: Option<String>,
    },
    /// A server error with its code and message.
    ServerError {
        /// The error code, if the server sent one (Kontiki: `INTERNAL_ERROR`).
        code: Option<String>,
        /// The message, if any.
        message: Option<String>,
    },
}

/// Why a reply body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReplyDecodeError {
    /// The body is not JSON.
    #[error("reply body is not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    /// An envelope without `success`, or with an unknown `error_type`.
    #[error("reply envelope is malformed: {0}")]
    BadEnvelope(String),
}

/// Reads a reply body: an envelope, or (as the Python client accepts) a bare JSON value.
pub fn decode_reply(body: &[u8]) -> Result<Reply, ReplyDecodeError> {
    // Every Kontiki reply is an envelope: read it straight into its fields. Anything else
    // (another shape, a duplicate key, an odd `error_type`) takes the general path below,
    // which decides exactly as before.
    if let Ok(envelope) = serde_json::from_slice::<EnvelopeIn<'_>>(body)
        && envelope.rpcreturn
        && let Some(error_type) = match envelope.error_type.as_deref() {
            None | Some("NONE") => Some(ErrorType::None),
            Some("CLIENT") => Some(ErrorType::Client),
            Some("SERVER") => Some(ErrorType::Server),
            Some(_) => None,
        }
    {
        if envelope.success {
            return Ok(Reply::Success(envelope.result));
        }
        let (code, message) = (text(envelope.error_code), text(envelope.message));
        return Ok(match error_type {
            ErrorType::Client => Reply::ClientError { code, message },
            ErrorType::None | ErrorType::Server => Reply::ServerError { code, message },
        });
    }
    decode_reply_value(body)
}

/// [`decode_reply`] through a [`Value`]: any JSON.
fn decode_reply_value(body: &[u8]) -> Result<Reply, ReplyDecodeError> {
    let value: Value = serde_json::from_slice(body).map_err(ReplyDecodeError::NotJson)?;
    let Value::Object(mut obj) = value else {
        return Ok(Reply::Success(value));
    };
    if obj.get("__rpcreturn__") != Some(&Value::Bool(true)) {
        return Ok(Reply::Success(Value::Object(obj)));
    }
    let success = match obj.get("success") {
        Some(Value::Bool(b)) => *b,
        other => {
            return Err(ReplyDecodeError::BadEnvelope(format!(
                "`success` must be a boolean, found {}",
                other.map_or_else(|| "nothing".to_owned(), Value::to_string)
            )));
        }
    };
    let error_type = match obj.get("error_type") {
        None | Some(Value::Null) => ErrorType::None,
        Some(Value::String(s)) if s == "NONE" => ErrorType::None,
        Some(Value::String(s)) if s == "CLIENT" => ErrorType::Client,
        Some(Value::String(s)) if s == "SERVER" => ErrorType::Server,
        Some(other) => {
            return Err(ReplyDecodeError::BadEnvelope(format!(
                "unknown `error_type` {other}"
            )));
        }
    };
    if success {
        return Ok(Reply::Success(obj.remove("result").unwrap_or(Value::Null)));
    }
    let code = text(obj.remove("error_code"));
    let message = text(obj.remove("message"));
    Ok(match error_type {
        ErrorType::Client => Reply::ClientError { code, message },
        ErrorType::None | ErrorType::Server => Reply::ServerError { code, message },
    })
}

/// The fields of a reply envelope a caller reads (the fast path of [`decode_reply`]).
#[derive(Deserialize)]
struct EnvelopeIn<'a> {
    #[serde(rename = "__rpcreturn__")]
    rpcreturn: bool,
    success: bool,
    #[serde(default)]
    result: Value,
    #[serde(default, borrow)]
    error_type: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    error_code: Option<Value>,
    #[serde(default)]
    message: Option<Value>,
}

/// An error code or message as text: a string as it is, another value as its JSON.
fn text(v: Option<Value>) -> Option<String> {
    match v {
        Some(Value::String(s)) => Some(s),
        None | Some(Value::Null) => None,
        Some(other) => Some(other.to_string()),
    }
}

/// An RPC request body `{"args": [...], "kwargs": {...}}`; missing keys default to empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestBody {
    /// Positional arguments.
    #[serde(default)]
    pub args: Vec<Value>,
    /// Keyword arguments.
    #[serde(default)]
    pub kwargs: Map<String, Value>,
}

/// Why a request body was refused; the text goes back to the caller as `INVALID_REQUEST`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct RequestDecodeError(pub String);

/// Reads a request body, with a precise reason when it is not `{"args": [...], "kwargs": {...}}`.
pub fn decode_request(body: &[u8]) -> Result<RequestBody, RequestDecodeError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| RequestDecodeError(format!("request body is not valid JSON: {e}")))?;
    let Value::Object(mut obj) = value else {
        return Err(RequestDecodeError(format!(
            "request body must be a JSON object {{\"args\": [...], \"kwargs\": {{...}}}}, found {}",
            json_kind(&value)
        )));
    };
    let args = match obj.remove("args") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a,
        Some(other) => {
            return Err(RequestDecodeError(format!(
                "`args` must be a JSON array, found {}",
                json_kind(&other)
            )));
        }
    };
    let kwargs = match obj.remove("kwargs") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(other) => {
            return Err(RequestDecodeError(format!(
                "`kwargs` must be a JSON object, found {}",
                json_kind(&other)
            )));
        }
    };
    Ok(RequestBody { args, kwargs })
}

/// A short name for the kind of a JSON value, for error messages.
pub fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Kontiki's encoding of bytes: `{"__bytes__": true, "data": "<base64>"}`.
pub fn bytes_to_json(data: &[u8]) -> Value {
    let mut m = Map::with_capacity(2);
    m.insert("__bytes__".to_owned(), Value::Bool(true));
    m.insert(
        "data".to_owned(),
        Value::String(base64::engine::general_purpose::STANDARD.encode(data)),
    );
    Value::Object(m)
}

/// Reads Kontiki's bytes encoding; `None` when `v` is not one.
pub fn bytes_from_json(v: &Value) -> Option<Vec<u8>> {
    let obj = v.as_object()?;
    if obj.get("__bytes__") != Some(&Value::Bool(true)) {
        return None;
    }
    let data = obj.get("data")?.as_str()?;
    base64::engine::general_purpose::STANDARD.decode(data).ok()
}

/// A string header value as Kontiki writes it: an AMQP long string (`S`).
pub fn header_str(s: impl Into<Vec<u8>>) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

/// A header key; `None` when longer than AMQP's 255-byte limit.
pub fn header_key(k: &str) -> Option<ShortString> {
    ShortString::try_new(k).ok()
}

/// Converts a JSON value to the AMQP type Python's pamqp would write for the same Python value.
pub fn json_to_amqp(v: &Value) -> AMQPValue {
    match v {
        Value::Null => AMQPValue::Void,
        Value::Bool(b) => AMQPValue::Boolean(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                // pamqp's `table_integer`: b, s, u, I, i, l by range.
                if let Ok(x) = i8::try_from(i) {
                    AMQPValue::ShortShortInt(x)
                } else if let Ok(x) = i16::try_from(i) {
                    AMQPValue::ShortInt(x)
                } else if let Ok(x) = u16::try_from(i) {
                    AMQPValue::ShortUInt(x)
                } else if let Ok(x) = i32::try_from(i) {
                    AMQPValue::LongInt(x)
                } else if let Ok(x) = u32::try_from(i) {
                    AMQPValue::LongUInt(x)
                } else {
                    AMQPValue::LongLongInt(i)
                }
            } else if let Some(u) = n.as_u64() {
                // Larger than i64::MAX: AMQP has no wider integer; keep the text.
                header_str(u.to_string())
            } else {
                AMQPValue::Double(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => header_str(s.as_bytes()),
        Value::Array(items) => AMQPValue::FieldArray(FieldArray::from(
            items.iter().map(json_to_amqp).collect::<Vec<_>>(),
        )),
        Value::Object(m) => AMQPValue::FieldTable(json_map_to_table(m)),
    }
}

/// Converts a JSON object to an AMQP table; keys over 255 bytes are left out.
pub fn json_map_to_table(m: &Map<String, Value>) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in m {
        if let Some(key) = header_key(k) {
            t.insert(key, json_to_amqp(v));
        }
    }
    t
}

/// How deep header tables and arrays are converted to JSON: a table or array nested deeper
/// (which no Kontiki peer sends) becomes `null`, so a hostile message cannot make the
/// conversion, or the drop of what it built, exhaust a handler's stack.
pub const MAX_HEADER_DEPTH: usize = 64;

/// The header that replaces a delivered message's headers table when it nests deeper than
/// [`MAX_HEADER_DEPTH`] levels (before lapin parses it, which deeper tables could make overflow
/// its thread's stack); its value says how large the dropped table was. The message is handled
/// without its headers.
pub const HEADERS_DROPPED: &str = "x-kontiki-headers-dropped";

/// Converts an AMQP value to JSON the way Kontiki hands headers to a Python handler: long
/// strings as text (bytes that are not UTF-8 in Kontiki's `__bytes__` form), void as `null`;
/// tables and arrays nested deeper than [`MAX_HEADER_DEPTH`] as `null`.
pub fn amqp_to_json(v: &AMQPValue) -> Value {
    amqp_to_json_at(v, 0)
}

fn amqp_to_json_at(v: &AMQPValue, depth: usize) -> Value {
    match v {
        AMQPValue::Boolean(b) => Value::Bool(*b),
        AMQPValue::ShortShortInt(x) => Value::from(*x),
        AMQPValue::ShortShortUInt(x) => Value::from(*x),
        AMQPValue::ShortInt(x) => Value::from(*x),
        AMQPValue::ShortUInt(x) => Value::from(*x),
        AMQPValue::LongInt(x) => Value::from(*x),
        AMQPValue::LongUInt(x) => Value::from(*x),
        AMQPValue::LongLongInt(x) => Value::from(*x),
        AMQPValue::Float(x) => {
            serde_json::Number::from_f64(f64::from(*x)).map_or(Value::Null, Value::Number)
        }
        AMQPValue::Double(x) => serde_json::Number::from_f64(*x).map_or(Value::Null, Value::Number),
        AMQPValue::DecimalValue(d) => {
            let v = f64::from(d.value) / 10f64.powi(i32::from(d.scale));
            serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
        }
        AMQPValue::ShortString(s) => Value::String(s.as_str().to_owned()),
        AMQPValue::LongString(s) => match std::str::from_utf8(s.as_bytes()) {
            Ok(text) => Value::String(text.to_owned()),
            Err(_) => bytes_to_json(s.as_bytes()),
        },
        AMQPValue::FieldArray(_) | AMQPValue::FieldTable(_) if depth >= MAX_HEADER_DEPTH => {
            Value::Null
        }
        AMQPValue::FieldArray(a) => Value::Array(
            a.as_slice()
                .iter()
                .map(|v| amqp_to_json_at(v, depth + 1))
                .collect(),
        ),
        AMQPValue::Timestamp(t) => Value::from(*t),
        AMQPValue::FieldTable(t) => Value::Object(table_to_json_at(t, depth + 1)),
        AMQPValue::ByteArray(b) => bytes_to_json(b.as_slice()),
        AMQPValue::Void => Value::Null,
    }
}

/// Converts an AMQP table to a JSON object (nesting cut at [`MAX_HEADER_DEPTH`]).
pub fn table_to_json(t: &FieldTable) -> Map<String, Value> {
    table_to_json_at(t, 0)
}

fn table_to_json_at(t: &FieldTable, depth: usize) -> Map<String, Value> {
    t.inner()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), amqp_to_json_at(v, depth)))
        .collect()
}

/// A header as text: long and short strings (UTF-8 only); anything else is `None`.
pub fn header_text<'a>(headers: Option<&'a FieldTable>, key: &str) -> Option<&'a str> {
    match headers?.inner().get(key)? {
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok(),
        AMQPValue::ShortString(s) => Some(s.as_str()),
        _ => None,
    }
}

/// Name of a competing queue: `{service}.{event}.queue`.
pub fn competing_queue(service: &str, event: &str) -> String {
    format!("{service}.{event}.queue")
}

/// Name of a failed-message queue: `{service}.{event}.failed` (also its routing key).
pub fn failed_queue(service: &str, event: &str) -> String {
    format!("{service}.{event}.failed")
}

/// Name of a per-instance event queue (broadcast and in-session):
/// `{service}.{event}.{instance_id}.queue`.
pub fn instance_queue(service: &str, event: &str, instance_id: &str) -> String {
    format!("{service}.{event}.{instance_id}.queue")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn envelopes_are_written_as_kontiki_writes_them() {
        assert_eq!(
            String::from_utf8(Envelope::success(json!(42)).to_bytes()).unwrap(),
            r#"{"__rpcreturn__":true,"success":true,"result":42,"message":null,"error_type":"NONE","error_code":null}"#
        );
        assert_eq!(
            String::from_utf8(Envelope::client_error("NOT_FOUND", "no such thing").to_bytes())
                .unwrap(),
            r#"{"__rpcreturn__":true,"success":false,"result":null,"message":"no such thing","error_type":"CLIENT","error_code":"NOT_FOUND"}"#
        );
    }

    #[test]
    fn replies_decode_like_the_python_client() {
        assert_eq!(decode_reply(b"42").unwrap(), Reply::Success(json!(42)));
        assert_eq!(
            decode_reply(br#"{"a":1}"#).unwrap(),
            Reply::Success(json!({"a": 1}))
        );
        assert_eq!(
            decode_reply(br#"{"__rpcreturn__":true,"success":false}"#).unwrap(),
            Reply::ServerError {
                code: None,
                message: None
            }
        );
        assert_eq!(
            decode_reply(br#"{"__rpcreturn__":true,"success":false,"error_type":"CLIENT"}"#)
                .unwrap(),
            Reply::ClientError {
                code: None,
                message: None
            }
        );
        assert!(
            decode_reply(br#"{"__rpcreturn__":true,"success":false,"error_type":"FOO"}"#).is_err()
        );
        assert!(decode_reply(b"<<<").is_err());
        assert!(decode_reply(br#"{"__rpcreturn__":true}"#).is_err());
    }

    #[test]
    fn the_envelope_fast_path_decides_as_the_general_one() {
        let bodies: &[&[u8]] = &[
            br#"{"__rpcreturn__":true,"success":true,"result":{"x":[1,2]},"error_type":"NONE"}"#,
            br#"{"__rpcreturn__":true,"success":true}"#,
            br#"{"__rpcreturn__":true,"success":true,"result":null,"error_type":null}"#,
            br#"{"__rpcreturn__":false,"success":true,"result":1}"#,
            br#"{"__rpcreturn__":1,"success":true,"result":1}"#,
            br#"{"success":true,"result":1}"#,
            br#"{"__rpcreturn__":true,"success":"yes","result":1}"#,
            br#"{"__rpcreturn__":true,"success":false,"error_type":"CLIENT","error_code":"E","message":"m\u00e9"}"#,
            br#"{"__rpcreturn__":true,"success":false,"error_type":"SERVER","error_code":7,"message":{"a":1}}"#,
            br#"{"__rpcreturn__":true,"success":false,"error_type":"NONE"}"#,
            br#"{"__rpcreturn__":true,"success":false,"error_type":"FOO"}"#,
            br#"{"__rpcreturn__":true,"success":false,"error_type":3}"#,
            br#"{"__rpcreturn__":true,"success":false,"error_type":"CL\u0049ENT"}"#,
            br#"{"__rpcreturn__":true,"success":true,"result":1,"result":2}"#,
            br#"{"__rpcreturn__":true,"success":true,"result":1,"extra":[]}"#,
            br#"[1,2]"#,
            b"",
        ];
        for body in bodies {
            let fast = decode_reply(body).map_err(|e| e.to_string());
            let general = decode_reply_value(body).map_err(|e| e.to_string());
            assert_eq!(fast, general, "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn requests_are_checked_with_precise_reasons() {
        assert_eq!(decode_request(b"{}").unwrap(), RequestBody::default());
        assert_eq!(
            decode_request(b"[1]").unwrap_err().0,
            r#"request body must be a JSON object {"args": [...], "kwargs": {...}}, found an array"#
        );
        assert_eq!(
            decode_request(br#"{"args": 1}"#).unwrap_err().0,
            "`args` must be a JSON array, found a number"
        );
        assert!(
            decode_request(b"\xff")
                .unwrap_err()
                .0
                .starts_with("request body is not valid JSON")
        );
    }

    #[test]
    fn ids_have_kontiki_shapes() {
        for f in [new_flow_id(), new_flow_id_arc().to_string()] {
            assert_eq!(f.len(), 12);
            assert!(
                f.chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
            );
        }
        assert_ne!(new_flow_id_arc(), new_flow_id_arc());
        assert_eq!(new_hop_id().len(), 16);
        assert_ne!(new_hop_id(), new_hop_id());
        // Every value of a byte, at every position: its two digits.
        for b in 0..=255u64 {
            let x = b * ONES;
            let lo = hex_digits(x & NIBBLES).to_le_bytes();
            let hi = hex_digits((x >> 4) & NIBBLES).to_le_bytes();
            let want = format!("{b:02x}").into_bytes();
            for i in 0..8 {
                assert_eq!([hi[i], lo[i]], [want[0], want[1]], "{b}");
            }
        }
        for n in [0, 3, 8, 9, 16, 40] {
            let hex = random_hex(n);
            assert_eq!(hex.len(), 2 * n.min(16), "{n}");
            assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()), "{hex}");
        }
    }

    #[test]
    fn timestamps_match_python_isoformat() {
        use chrono::TimeZone as _;
        let t = chrono::Utc
            .with_ymd_and_hms(2026, 11, 29, 4, 19, 50)
            .unwrap();
        assert_eq!(format_timestamp(t), "2026-11-29T04:19:50+00:00");
        let t = t + chrono::Duration::microseconds(580_576);
        assert_eq!(format_timestamp(t), "2026-11-29T04:19:50.580576+00:00");
        let t = chrono::Utc.with_ymd_and_hms(5, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(format_timestamp(t), "0005-01-02T03:04:05+00:00");
    }

    #[test]
    fn timestamps_agree_with_chrono_formatting() {
        use chrono::TimeZone as _;
        // Spread over four centuries, with every kind of fraction (none, leading zeros, full).
        let mut secs: i64 = 946_684_800;
        for i in 0..2_000_i64 {
            secs = (secs * 6_364_136 + 1_442_695 + i) % 12_000_000_000;
            let micros = match i % 4 {
                0 => 0,
                1 => i % 10,
                2 => 999_999 - i,
                _ => (i * 7_919) % 1_000_000,
            };
            let t = chrono::Utc
                .timestamp_opt(secs, (micros * 1000) as u32)
                .unwrap();
            let expected = if micros == 0 {
                t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
            } else {
                t.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
            };
            assert_eq!(format_timestamp(t), expected, "{secs} s {micros} µs");
            let unix = format_unix_time(secs as u64, micros as u32);
            assert_eq!(unix, expected, "{secs} s {micros} µs");
        }
    }

    #[test]
    fn bytes_round_trip_in_kontiki_form() {
        let v = bytes_to_json(&[0, 1, 104, 105]);
        assert_eq!(v, json!({"__bytes__": true, "data": "AAFoaQ=="}));
        assert_eq!(bytes_from_json(&v).unwrap(), vec![0, 1, 104, 105]);
    }

    #[test]
    fn headers_convert_both_ways() {
        let m = json!({"tenant": "t1", "num": 5, "big": 70000, "flag": true, "none": null});
        let t = json_map_to_table(m.as_object().unwrap());
        assert!(matches!(
            t.inner().get("num"),
            Some(AMQPValue::ShortShortInt(5))
        ));
        assert!(matches!(
            t.inner().get("big"),
            Some(AMQPValue::LongInt(70000))
        ));
        assert!(matches!(
            t.inner().get("tenant"),
            Some(AMQPValue::LongString(_))
        ));
        assert_eq!(Value::Object(table_to_json(&t)), m);
        assert_eq!(
            reserved_header_names(["x", "flow_id", "host"]),
            vec!["flow_id", "host"]
        );
    }
}
