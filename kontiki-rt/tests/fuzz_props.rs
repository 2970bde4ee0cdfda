//! Property tests of the decoders a broker or a config file feeds (the short, bounded run of the
//! fuzz targets in `fuzz/`, which `make fuzz` runs with cargo-fuzz): the RPC request and reply
//! decoders, the event delivery decoder and the configuration merger never panic and decode
//! what they are given; the seed inputs of `fuzz/seeds/` (and any regression found by fuzzing,
//! kept in `fuzz/regressions/`) are replayed.

use kontiki_rt::config::{Config, ConfigError, Settings};
use kontiki_rt::event::decode_delivery;
use kontiki_rt::rpc::{Param, bind_arguments};
use kontiki_rt::wire::{
    Reply, RequestBody, RequestDecodeError, decode_reply, decode_request, header_text,
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
