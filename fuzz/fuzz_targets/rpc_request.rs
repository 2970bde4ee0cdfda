//! The RPC decoders never panic: a request body through `wire::decode_request` and
//! `rpc::bind_arguments` (as the server does), and the same bytes as a reply body through
//! `wire::decode_reply` (as the client does).
#![no_main]

use kontiki_rt::rpc::{Param, bind_arguments};
use kontiki_rt::wire::{decode_reply, decode_request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(body) = decode_request(data) {
        let params = [
            Param {
                name: "a".to_owned(),
                required: true,
            },
            Param {
                name: "b".to_owned(),
                required: false,
            },
        ];
        let _ = bind_arguments(&params, body);
    }
    let _ = decode_reply(data);
});
