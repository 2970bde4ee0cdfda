//! Property tests of the decoders a broker or a config file feeds (the short, bounded run of the
//! fuzz targets in `fuzz/`, which `make fuzz` runs with cargo-fuzz): the RPC request and reply
//! decoders, the event delivery decoder and the configuration merger never panic and decode
//! what they are given; the seed inputs of `fuzz/seeds/` (and any regression found by fuzzing,
//! kept in `fuzz/regressions/`) are replayed.

use kontiki_rt::config::{Config, ConfigError, Settings};
use kontiki_rt::event::decode_delivery;
use kontiki_rt::rpc::{Param, bind_arguments};
use kontiki_rt::wire::{
    MAX_HEADER_DEPTH, Reply, RequestBody, RequestDecodeError, amqp_to_json, decode_reply,
    decode_request, header_text, table_to_json,
};
use lapin::types::{AMQPValue, ByteArray, DecimalValue, FieldArray, FieldTable, LongString};
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// JSON values: integers, short strings without `$` (no substitution), bools, null, nesting.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "[a-z ]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-c]{1,2}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn json_object() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map("[a-c]{1,2}", json_value(), 0..4)
        .prop_map(|m| m.into_iter().collect())
}

/// Any AMQP header value lapin can deliver, nested.
fn amqp_value() -> impl Strategy<Value = AMQPValue> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(AMQPValue::Boolean),
        any::<i8>().prop_map(AMQPValue::ShortShortInt),
        any::<u8>().prop_map(AMQPValue::ShortShortUInt),
        any::<i16>().prop_map(AMQPValue::ShortInt),
        any::<u16>().prop_map(AMQPValue::ShortUInt),
        any::<i32>().prop_map(AMQPValue::LongInt),
        any::<u32>().prop_map(AMQPValue::LongUInt),
        any::<i64>().prop_map(AMQPValue::LongLongInt),
        any::<f32>().prop_map(AMQPValue::Float),
        any::<f64>().prop_map(AMQPValue::Double),
        (any::<u8>(), any::<u32>())
            .prop_map(|(scale, value)| AMQPValue::DecimalValue(DecimalValue { scale, value })),
        prop::collection::vec(any::<u8>(), 0..12)
            .prop_map(|b| AMQPValue::LongString(LongString::from(b))),
        prop::collection::vec(any::<u8>(), 0..12)
            .prop_map(|b| AMQPValue::ByteArray(ByteArray::from(b))),
        any::<u64>().prop_map(AMQPValue::Timestamp),
        "[a-z_]{0,8}".prop_map(|s| AMQPValue::ShortString(s.into())),
        Just(AMQPValue::Void),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4)
                .prop_map(|v| AMQPValue::FieldArray(FieldArray::from(v))),
            prop::collection::vec(("[a-z_]{1,8}", inner), 0..4)
                .prop_map(|kv| AMQPValue::FieldTable(table(kv))),
        ]
    })
}

fn table(kv: Vec<(String, AMQPValue)>) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in kv {
        t.insert(k.into(), v);
    }
    t
}

fn headers() -> impl Strategy<Value = FieldTable> {
    prop::collection::vec(
        (
            prop_oneof![
                Just("flow_id".to_owned()),
                Just("hop_id".to_owned()),
                "[a-z_]{1,8}"
            ],
            amqp_value(),
        ),
        0..6,
    )
    .prop_map(table)
}

fn params() -> [Param; 2] {
    [
        Param {
            name: "a".to_owned(),
            required: true,
        },
        Param {
            name: "b".to_owned(),
            required: false,
        },
    ]
}

/// The deep union of two documents under Kontiki's merge rules (mappings merge, equal leaves
/// are fine, different leaves conflict): the reference the merger is checked against.
fn union(a: &Map<String, Value>, b: &Map<String, Value>) -> Option<Map<String, Value>> {
    let mut out = a.clone();
    for (k, vb) in b {
        match (out.get(k), vb) {
            (None, _) => {
                out.insert(k.clone(), vb.clone());
            }
            (Some(Value::Object(ma)), Value::Object(mb)) => {
                let merged = union(ma, mb)?;
                out.insert(k.clone(), Value::Object(merged));
            }
            (Some(va), vb) if va == vb => {}
            _ => return None,
        }
    }
    Some(out)
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn merged(a: &Map<String, Value>, b: &Map<String, Value>) -> Result<Config, ConfigError> {
    // JSON is YAML: the documents go through the real YAML reader.
    let mut config =
        Config::from_yaml_str_with_env("a.yaml", &Value::Object(a.clone()).to_string(), no_env)?;
    config.merge_yaml_str("b.yaml", &Value::Object(b.clone()).to_string(), no_env)?;
    Ok(config)
}

fn fuzz_env(name: &str) -> Option<String> {
    match name {
        "A" => Some("1".to_owned()),
        "B" => Some("x: [1, 2]".to_owned()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

/// What the `config_merge` fuzz target does with its input.
fn config_merge_target(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (a, b) = text.split_once('\0').unwrap_or((text, ""));
    let mut config = Config::empty();
    if config.merge_yaml_str("a.yaml", a, fuzz_env).is_err() {
        return;
    }
    let _ = config.merge_yaml_str("b.yaml", b, fuzz_env);
    let _ = Settings::from_config(&config);
    let _ = config.get::<Value>("kontiki.amqp");
    let _ = config.duration("kontiki.shutdown.grace_seconds");
    let _ = config.defined_in("kontiki.service_name");
}

/// What the `rpc_request` fuzz target does with its input.
fn rpc_request_target(data: &[u8]) {
    if let Ok(body) = decode_request(data) {
        let _ = bind_arguments(&params(), body);
    }
    let _ = decode_reply(data);
}

/// What the `event_payload` fuzz target does: the first byte is the length of an AMQP field
/// table (parsed by lapin's parser), the rest is the body.
fn event_payload_target(data: &[u8]) {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let (table, body) = rest.split_at(usize::from(n).min(rest.len()));
    let headers = lapin::types::parsing::parse_field_table(table)
        .ok()
        .map(|(_, t)| t);
    event_target(body, headers.as_ref());
}

fn event_target(body: &[u8], headers: Option<&FieldTable>) {
    let _ = header_text(headers, "flow_id");
    let _ = header_text(headers, "hop_id");
    let _ = decode_delivery(body, headers, true);
}

/// The nesting the `header_tables` target builds: at most this deep (deeper tables are built
/// and dropped recursively by lapin's own types, which this target does not test).
const HEADER_TABLES_MAX_DEPTH: usize = 2048;
/// Up to this depth the table also goes through lapin's parser (which recurses without a
/// limit: docs/SECURITY.md, known issues).
const HEADER_TABLES_PARSED_DEPTH: usize = 200;

/// A header table nested `depth` levels (`{"n": {"n": ...}}`, or arrays where `shape` says),
/// built bottom-up without recursion; `shape`'s bit 1 adds a sibling string at a level.
fn nested_headers(depth: usize, shape: &[u8]) -> FieldTable {
    let mut value = AMQPValue::LongString(LongString::from("leaf"));
    for level in (0..depth).rev() {
        let b = shape.get(level % shape.len().max(1)).copied().unwrap_or(0);
        value = if b & 1 == 1 {
            AMQPValue::FieldArray(FieldArray::from(vec![value]))
        } else {
            let mut t = FieldTable::default();
            t.insert("n".into(), value);
            if b & 2 == 2 {
                t.insert("s".into(), AMQPValue::LongString(LongString::from("x")));
            }
            AMQPValue::FieldTable(t)
        };
    }
    let mut top = FieldTable::default();
    top.insert("h".into(), value);
    top
}

/// The AMQP 0-9-1 encoding of a field table (what a broker delivers), written by hand for the
/// value kinds [`nested_headers`] uses.
fn encode_table(t: &FieldTable) -> Vec<u8> {
    fn value(v: &AMQPValue, out: &mut Vec<u8>) {
        match v {
            AMQPValue::LongString(s) => {
                out.push(b'S');
                out.extend((s.as_bytes().len() as u32).to_be_bytes());
                out.extend(s.as_bytes());
            }
            AMQPValue::FieldTable(t) => {
                out.push(b'F');
                out.extend(encode_table(t));
            }
            AMQPValue::FieldArray(a) => {
                out.push(b'A');
                let mut body = Vec::new();
                for v in a.as_slice() {
                    value(v, &mut body);
                }
                out.extend((body.len() as u32).to_be_bytes());
                out.extend(body);
            }
            other => panic!("encode_table does not write {other:?}"),
        }
    }
    let mut body = Vec::new();
    for (k, v) in t.inner() {
        body.push(k.as_str().len() as u8);
        body.extend(k.as_str().as_bytes());
        value(v, &mut body);
    }
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend(body);
    out
}

/// How deep a JSON value nests (a scalar is 0), without recursion.
fn json_depth(v: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(v, 0usize)];
    while let Some((v, d)) = stack.pop() {
        deepest = deepest.max(d);
        match v {
            Value::Array(a) => stack.extend(a.iter().map(|x| (x, d + 1))),
            Value::Object(m) => stack.extend(m.values().map(|x| (x, d + 1))),
            _ => {}
        }
    }
    deepest
}

/// What the `header_tables` fuzz target does: two bytes give the depth, the rest the shape; the
/// conversion to JSON handlers get is cut at `MAX_HEADER_DEPTH`, and a table that lapin's
/// parser can take parses back to what was encoded.
fn header_tables_target(data: &[u8]) {
    let Some((d, shape)) = data.split_first_chunk::<2>() else {
        return;
    };
    let depth = usize::from(u16::from_be_bytes(*d)) % (HEADER_TABLES_MAX_DEPTH + 1);
    let table = nested_headers(depth, shape);
    let json = Value::Object(table_to_json(&table));
    // Top object, the "h" value, then one level per nesting, cut after MAX_HEADER_DEPTH.
    assert_eq!(
        json_depth(&json),
        1 + depth.min(MAX_HEADER_DEPTH),
        "depth {depth}"
    );
    if depth <= HEADER_TABLES_PARSED_DEPTH {
        let bytes = encode_table(&table);
        let (rest, parsed) = lapin::types::parsing::parse_field_table(bytes.as_slice())
            .unwrap_or_else(|e| panic!("depth {depth}: lapin does not parse it: {e:?}"));
        assert!(rest.is_empty());
        assert_eq!(parsed, table);
        assert_eq!(Value::Object(table_to_json(&parsed)), json);
    }
    let _ = decode_delivery(b"{}", Some(&table), true);
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn request_decoder_never_panics_on_bytes(data in prop::collection::vec(any::<u8>(), 0..64)) {
        rpc_request_target(&data);
    }

    #[test]
    fn request_decoder_never_panics_on_json(v in json_value()) {
        let bytes = v.to_string().into_bytes();
        match decode_request(&bytes) {
            Ok(body) => {
                let Value::Object(obj) = &v else { panic!("{v} decoded as a request") };
                prop_assert!(matches!(obj.get("args"), None | Some(Value::Null | Value::Array(_))));
                prop_assert!(matches!(obj.get("kwargs"), None | Some(Value::Null | Value::Object(_))));
                let _ = bind_arguments(&params(), body);
            }
            Err(RequestDecodeError(msg)) => prop_assert!(!msg.is_empty()),
        }
        let _ = decode_reply(&bytes);
    }

    #[test]
    fn valid_requests_round_trip(args in prop::collection::vec(json_value(), 0..4), kwargs in json_object()) {
        let body = RequestBody { args, kwargs };
        let bytes = serde_json::to_vec(&body).expect("a request body serializes");
        prop_assert_eq!(decode_request(&bytes), Ok(body));
    }

    #[test]
    fn success_replies_round_trip(result in json_value()) {
        let bytes = json!({"__rpcreturn__": true, "success": true, "result": result.clone(),
                           "message": null, "error_type": "NONE", "error_code": null}).to_string();
        match decode_reply(bytes.as_bytes()) {
            Ok(Reply::Success(v)) => prop_assert_eq!(v, result),
            other => prop_assert!(false, "{bytes} decoded as {other:?}"),
        }
    }

    #[test]
    fn event_target_never_panics_on_bytes(data in prop::collection::vec(any::<u8>(), 0..96)) {
        event_payload_target(&data);
    }

    #[test]
    fn event_decoder_never_panics(body in prop::collection::vec(any::<u8>(), 0..64), headers in prop::option::of(headers())) {
        event_target(&body, headers.as_ref());
    }

    #[test]
    fn event_decoder_reads_json_payloads_and_headers(payload in json_value(), headers in headers()) {
        let body = payload.to_string();
        let (decoded, as_json) = decode_delivery(body.as_bytes(), Some(&headers), true)
            .expect("a JSON payload decodes");
        prop_assert_eq!(decoded, payload);
        match as_json {
            None => prop_assert!(headers.inner().is_empty()),
            Some(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                let mut want: Vec<String> = headers.inner().keys().map(|k| k.as_str().to_owned()).collect();
                want.sort();
                prop_assert_eq!(keys, want.iter().collect::<Vec<_>>());
            }
        }
        let (_, none) = decode_delivery(body.as_bytes(), Some(&headers), false).expect("decodes");
        prop_assert!(none.is_none());
    }

    #[test]
    fn header_tables_convert_with_a_bounded_depth(data in prop::collection::vec(any::<u8>(), 2..24)) {
        header_tables_target(&data);
    }

    #[test]
    fn config_merger_never_panics(a in "[a-z:{}\\[\\]$ ,\n'\"0-9.-]{0,40}", b in "[a-z:{}\\[\\]$ ,\n'\"0-9.-]{0,40}") {
        config_merge_target(format!("{a}\0{b}").as_bytes());
    }

    #[test]
    fn config_merge_is_the_deep_union(a in json_object(), b in json_object()) {
        let want = union(&a, &b);
        match (merged(&a, &b), &want) {
            (Ok(config), Some(want)) => prop_assert_eq!(config.root(), &Value::Object(want.clone())),
            (Err(ConfigError::MergeConflict { .. }), None) => {}
            (got, want) => prop_assert!(false, "merge gave {got:?}, the union is {want:?}"),
        }
        // The order of the files changes where values come from, not what they are.
        match (merged(&b, &a), want) {
            (Ok(config), Some(want)) => prop_assert_eq!(config.root(), &Value::Object(want)),
            (Err(ConfigError::MergeConflict { .. }), None) => {}
            (got, want) => prop_assert!(false, "reversed merge gave {got:?}, the union is {want:?}"),
        }
    }
}

/// The input files of one fuzz target: its seeds and the regressions found by fuzzing.
fn fuzz_inputs(target: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut files = Vec::new();
    for dir in ["seeds", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        files.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_file()));
    }
    files.sort();
    assert!(
        !files.is_empty(),
        "no seed inputs for the fuzz target {target} under {}",
        root.display()
    );
    files
}

#[test]
fn fuzz_inputs_replay_rpc_request() {
    for path in fuzz_inputs("rpc_request") {
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        rpc_request_target(&data);
    }
}

#[test]
fn fuzz_inputs_replay_config_merge() {
    for path in fuzz_inputs("config_merge") {
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        config_merge_target(&data);
    }
}

#[test]
fn fuzz_inputs_replay_event_payload() {
    let mut with_flow_id = 0;
    for path in fuzz_inputs("event_payload") {
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        event_payload_target(&data);
        // The seeds are well formed: a seed with headers gets them through lapin's parser.
        if let Some((&n, rest)) = data.split_first()
            && let Ok((_, t)) =
                lapin::types::parsing::parse_field_table(&rest[..usize::from(n).min(rest.len())])
            && header_text(Some(&t), "flow_id").is_some()
        {
            with_flow_id += 1;
        }
    }
    assert!(
        with_flow_id > 0,
        "no event_payload seed carries a flow_id header"
    );
}

#[test]
fn fuzz_inputs_replay_header_tables() {
    for path in fuzz_inputs("header_tables") {
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        header_tables_target(&data);
    }
}

/// The boundary: 64 levels are kept whole, the 65th becomes `null`; 2048 levels convert
/// without touching the stack more than 64 levels deep.
#[test]
fn header_nesting_is_cut_at_max_header_depth() {
    let kept = Value::Object(table_to_json(&nested_headers(MAX_HEADER_DEPTH, &[0])));
    let mut v = &kept["h"];
    for _ in 1..MAX_HEADER_DEPTH {
        v = &v["n"];
    }
    assert_eq!(v["n"], "leaf", "64 levels are kept");
    let cut = Value::Object(table_to_json(&nested_headers(MAX_HEADER_DEPTH + 1, &[0])));
    let mut v = &cut["h"];
    for _ in 1..MAX_HEADER_DEPTH {
        v = &v["n"];
    }
    assert_eq!(v["n"], Value::Null, "the 65th level is cut");
    let arrays = nested_headers(HEADER_TABLES_MAX_DEPTH, &[1]);
    assert_eq!(
        json_depth(&Value::Object(table_to_json(&arrays))),
        1 + MAX_HEADER_DEPTH
    );
    // A table handed over as a value counts as one level itself.
    assert_eq!(
        json_depth(&amqp_to_json(&AMQPValue::FieldTable(nested_headers(
            100,
            &[0]
        )))),
        MAX_HEADER_DEPTH
    );
}
