//! The IDL parser and checker never panic: `kontiki_idl::load_str` on any UTF-8 text.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = kontiki_idl::load_str("fuzz.kontiki", text);
    }
});
