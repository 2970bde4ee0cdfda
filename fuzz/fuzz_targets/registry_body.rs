//! The registry's intake decoding never panics: a routing key (`registry.register`,
//! `registry.heartbeat`, ...), a NUL byte, then the body, through
//! `kontiki_registry::decode_intake`. Seeds: `fuzz/seeds/registry_body/`; the test command
//! replays them (`kontiki-registry/tests/registry_hostile.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (key, body) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&data[..0], data),
    };
    let key = String::from_utf8_lossy(key);
    let _ = kontiki_registry::decode_intake(&key, body);
});
