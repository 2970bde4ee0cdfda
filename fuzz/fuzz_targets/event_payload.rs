//! The event delivery decoder never panics: the first byte is the length of an AMQP field
//! table (the delivery's headers, parsed by lapin's parser), the rest is the body; both go
//! through `event::decode_delivery` and the header lookups the runtime does.
#![no_main]

use kontiki_rt::event::decode_delivery;
use kontiki_rt::wire::header_text;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n).min(rest.len());
    let (table, body) = rest.split_at(n);
    let headers = amq_protocol_types::parsing::parse_field_table(table)
        .ok()
        .map(|(_, t)| t);
    let _ = header_text(headers.as_ref(), "flow_id");
    let _ = header_text(headers.as_ref(), "hop_id");
    let _ = decode_delivery(body, headers.as_ref(), true);
});
