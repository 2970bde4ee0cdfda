//! The configuration merger never panics: two YAML documents (split at the first NUL byte)
//! merged in order, with `${VAR}` substitution, then read as the runtime reads them.
#![no_main]

use kontiki_rt::{Config, Settings};
use libfuzzer_sys::fuzz_target;

fn env(name: &str) -> Option<String> {
    match name {
        "A" => Some("1".to_owned()),
        "B" => Some("x: [1, 2]".to_owned()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (a, b) = text.split_once('\0').unwrap_or((text, ""));
    let mut config = Config::empty();
    if config.merge_yaml_str("a.yaml", a, env).is_err() {
        return;
    }
    let _ = config.merge_yaml_str("b.yaml", b, env);
    let _ = Settings::from_config(&config);
    let _ = config.get::<serde_json::Value>("kontiki.amqp");
    let _ = config.duration("kontiki.shutdown.grace_seconds");
    let _ = config.defined_in("kontiki.service_name");
});
