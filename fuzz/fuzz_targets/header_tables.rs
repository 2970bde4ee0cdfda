//! Header tables nested deep (tables and arrays, as a hostile publisher may send): the
//! conversion to the JSON handlers get is cut at `wire::MAX_HEADER_DEPTH` whatever the depth,
//! and a table lapin's parser can take parses back to what was encoded. Two bytes give the
//! depth (up to 2048), the rest the shape. `kontiki-rt/tests/fuzz_props.rs` runs the same
//! checks as a property test and replays `fuzz/seeds/header_tables/`.
#![no_main]

use amq_protocol_types::{AMQPValue, FieldArray, FieldTable, LongString};
use kontiki_rt::wire::{MAX_HEADER_DEPTH, table_to_json};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn nested(depth: usize, shape: &[u8]) -> FieldTable {
    let mut value = AMQPValue::LongString(LongString::from("leaf"));
    for level in (0..depth).rev() {
        let b = shape.get(level % shape.len().max(1)).copied().unwrap_or(0);
        value = if b & 1 == 1 {
            AMQPValue::FieldArray(FieldArray::from(vec![value]))
        } else {
            let mut t = FieldTable::default();
            t.insert("n".into(), value);
            AMQPValue::FieldTable(t)
        };
    }
    let mut top = FieldTable::default();
    top.insert("h".into(), value);
    top
}

fn depth_of(v: &Value) -> usize {
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

fuzz_target!(|data: &[u8]| {
    let Some((d, shape)) = data.split_first_chunk::<2>() else {
        return;
    };
    let depth = usize::from(u16::from_be_bytes(*d)) % 2049;
    let table = nested(depth, shape);
    let json = Value::Object(table_to_json(&table));
    assert_eq!(depth_of(&json), 1 + depth.min(MAX_HEADER_DEPTH));
});
