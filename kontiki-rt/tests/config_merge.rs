//! Configuration: multi-file merge rules, `${VAR}` substitution, typed settings and lookups.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kontiki_rt::config::{Config, ConfigError, Settings, get_parameter};
use serde_json::json;

/// Fixture path, relative to the package root (the working directory of integration tests).
fn fixture(name: &str) -> PathBuf {
    Path::new("tests/fixtures/config").join(name)
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    move |name| {
        pairs
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| (*value).to_owned())
    }
}

fn yaml(name: &str, text: &str) -> Result<Config, ConfigError> {
    Config::from_yaml_str_with_env(name, text, no_env)
}

fn parse_settings(text: &str) -> Result<Settings, ConfigError> {
    Settings::from_config(&yaml("env.yaml", text)?)
}

fn err_text<T: std::fmt::Debug>(result: Result<T, ConfigError>) -> String {
    result.expect_err("expected a config error").to_string()
}

/// Records the messages of `WARN` events while `f` runs.
fn warnings<R>(f: impl FnOnce() -> R) -> (R, Vec<String>) {
    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Level, Metadata, Subscriber};

    #[derive(Default)]
    struct Capture(Arc<Mutex<Vec<String>>>);

    struct Message(String);

    impl Visit for Message {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            if field.name() == "message" {
                self.0 = format!("{value:?}");
            }
        }
    }

    impl Subscriber for Capture {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            if *event.metadata().level() == Level::WARN {
                let mut message = Message(String::new());
                event.record(&mut message);
                self.0.lock().expect("lock").push(message.0);
            }
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    let messages = Arc::new(Mutex::new(Vec::new()));
    let result = tracing::subscriber::with_default(Capture(messages.clone()), f);
    let messages = messages.lock().expect("lock").clone();
    (result, messages)
}

// ----- merge rules -----

#[test]
fn files_merge_added_keys_and_nested_mappings() {
    let config =
        Config::load_with_env(&[fixture("base.yaml"), fixture("env.yaml")], no_env).unwrap();
    assert_eq!(
        config.root(),
        &json!({
            "kontiki": {
                "service_name": "orders",
                "amqp": {"url": "amqp://guest:guest@rabbit:5672/%2f", "rpc": {"timeout": 2.5}},
                "heartbeat": {"interval": 15},
            },
            "app": {
                "cache": {"ttl_seconds": 30, "size": 500},
                "events": ["orders.created", "orders.cancelled"],
            },
        })
    );
    assert_eq!(config.files(), [fixture("base.yaml"), fixture("env.yaml")]);
    assert_eq!(
        config.defined_in("kontiki.amqp.url"),
        [fixture("base.yaml")]
    );
    assert_eq!(config.defined_in("kontiki.amqp.rpc"), [fixture("env.yaml")]);
    assert_eq!(
        config.defined_in("app.cache"),
        [fixture("base.yaml"), fixture("env.yaml")]
    );
    assert!(config.defined_in("app.nope").is_empty());
}

#[test]
fn equal_leaf_is_a_warning_naming_both_files() {
    let (config, warned) =
        warnings(|| Config::load_with_env(&[fixture("base.yaml"), fixture("env.yaml")], no_env));
    config.unwrap();
    assert_eq!(
        warned,
        [format!(
            "`app.events` is defined twice with the same value (in {} and {})",
            fixture("base.yaml").display(),
            fixture("env.yaml").display()
        )]
    );
}

#[test]
fn equal_numbers_compare_like_python_and_equal_mappings_merge() {
    let mut config = yaml("a.yaml", "x: 1\nm: {k: [1, 2]}").unwrap();
    let (merged, warned) =
        warnings(|| config.merge_yaml_str("b.yaml", "x: 1.0\nm: {k: [1, 2]}", no_env));
    merged.unwrap();
    assert_eq!(warned.len(), 2, "{warned:?}");
    assert_eq!(
        config.get::<i64>("x").unwrap(),
        Some(1),
        "the first value is kept"
    );
    assert_eq!(
        config.defined_in("m.k"),
        [Path::new("a.yaml"), Path::new("b.yaml")]
    );
}

#[test]
fn conflicting_leaf_is_an_error_naming_path_files_and_values() {
    let err = Config::load_with_env(&[fixture("base.yaml"), fixture("conflict.yaml")], no_env)
        .unwrap_err();
    let ConfigError::MergeConflict {
        path,
        first_file,
        first_value,
        second_file,
        second_value,
    } = &err
    else {
        panic!("expected MergeConflict, got {err:?}");
    };
    assert_eq!(path, "kontiki.amqp.url");
    assert_eq!(first_file, &fixture("base.yaml"));
    assert_eq!(second_file, &fixture("conflict.yaml"));
    assert_eq!(**first_value, json!("amqp://guest:guest@rabbit:5672/%2f"));
    assert_eq!(**second_value, json!("amqp://other:5672/%2f"));
    assert_eq!(
        err.to_string(),
        format!(
            "config: `kontiki.amqp.url` is defined twice with different values, \
             \"amqp://guest:guest@rabbit:5672/%2f\" in {} and \"amqp://other:5672/%2f\" in {} \
             (a later file cannot override an earlier one)",
            fixture("base.yaml").display(),
            fixture("conflict.yaml").display()
        )
    );
    assert_eq!(err.path(), Some("kontiki.amqp.url"));
}

#[test]
fn mapping_against_scalar_is_a_conflict() {
    let err = Config::load_with_env(
        &[fixture("base.yaml"), fixture("scalar_vs_mapping.yaml")],
        no_env,
    )
    .unwrap_err();
    assert!(
        matches!(&err, ConfigError::MergeConflict { path, .. } if path == "app.cache"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "config: `app.cache` is defined twice with different values, {{\"ttl_seconds\":30}} in {} \
             and \"disabled\" in {} (a later file cannot override an earlier one)",
            fixture("base.yaml").display(),
            fixture("scalar_vs_mapping.yaml").display()
        )
    );

    // And the other way round, with in-memory documents.
    let mut config = yaml("a.yaml", "app: {cache: 5}").unwrap();
    let err = config
        .merge_yaml_str("b.yaml", "app: {cache: {size: 1}}", no_env)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "config: `app.cache` is defined twice with different values, 5 in a.yaml and {\"size\":1} in b.yaml \
         (a later file cannot override an earlier one)"
    );
    // A failed merge leaves the config as it was.
    assert_eq!(config.root(), &json!({"app": {"cache": 5}}));
    assert_eq!(config.files(), [Path::new("a.yaml")]);
}

#[test]
fn later_files_cannot_override_even_with_null() {
    let mut config = yaml("a.yaml", "x: 1").unwrap();
    let err = config.merge_yaml_str("b.yaml", "x:", no_env).unwrap_err();
    assert!(matches!(err, ConfigError::MergeConflict { .. }), "{err:?}");
}

#[test]
fn empty_and_comment_only_files_are_empty_mappings() {
    let config = Config::load_with_env(
        &[
            fixture("empty.yaml"),
            fixture("base.yaml"),
            fixture("comments_only.yaml"),
        ],
        no_env,
    )
    .unwrap();
    assert_eq!(config.files().len(), 3);
    assert_eq!(
        config.get::<u32>("app.cache.ttl_seconds").unwrap(),
        Some(30)
    );
    assert_eq!(yaml("e.yaml", "").unwrap().root(), &json!({}));
}

#[test]
fn missing_file_is_an_io_error_with_the_path() {
    let missing = fixture("does_not_exist.yaml");
    let err = Config::load_with_env(&[fixture("base.yaml"), missing.clone()], no_env).unwrap_err();
    let ConfigError::Io { path, source } = &err else {
        panic!("expected Io, got {err:?}");
    };
    assert_eq!(path, &missing);
    assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
    assert!(std::error::Error::source(&err).is_some());
    assert!(
        err.to_string()
            .starts_with(&format!("config: cannot read {}: ", missing.display())),
        "{err}"
    );
}

#[test]
fn bad_yaml_reports_line_and_column() {
    let err = Config::load_with_env(&[fixture("bad_yaml.yaml")], no_env).unwrap_err();
    let ConfigError::Yaml {
        path, line, column, ..
    } = &err
    else {
        panic!("expected Yaml, got {err:?}");
    };
    assert_eq!(path, &fixture("bad_yaml.yaml"));
    assert_eq!((*line, *column), (Some(4), Some(7)));
    assert_eq!(
        err.to_string(),
        format!(
            "config: invalid YAML in {} at line 4, column 7: did not find expected ',' or ']', \
             while parsing a flow sequence",
            fixture("bad_yaml.yaml").display()
        )
    );
    assert!(std::error::Error::source(&err).is_some());

    assert_eq!(
        err_text(yaml("dup.yaml", "a: 1\na: 2")),
        "config: invalid YAML in dup.yaml at line 1, column 1: duplicate entry with key \"a\""
    );
}

#[test]
fn top_level_must_be_a_mapping() {
    let err = Config::load_with_env(&[fixture("list_top.yaml")], no_env).unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::NotAMapping {
                found: "a list",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "config: the top level of {} must be a mapping, found a list",
            fixture("list_top.yaml").display()
        )
    );
    assert_eq!(
        err_text(yaml("s.yaml", "just text")),
        "config: the top level of s.yaml must be a mapping, found a string"
    );
    assert_eq!(
        err_text(Config::from_value(json!([1]))),
        "config: the top level of the configuration must be a mapping, found a list"
    );
    assert_eq!(Config::from_value(json!(null)).unwrap().root(), &json!({}));
}

#[test]
fn non_string_keys_become_strings() {
    let config = yaml(
        "k.yaml",
        "codes:\n  404: not found\n  true: yes\n  ~: nothing\n  1.5: half",
    )
    .unwrap();
    assert_eq!(
        config.value("codes"),
        Some(&json!({"404": "not found", "true": "yes", "null": "nothing", "1.5": "half"}))
    );
    assert_eq!(
        config.get::<String>("codes.404").unwrap().as_deref(),
        Some("not found")
    );
    assert_eq!(
        err_text(yaml("k.yaml", "m:\n  1: a\n  \"1\": b")),
        "config: `m` has the key `1` twice once keys are converted to strings (in k.yaml)"
    );
    assert_eq!(
        err_text(yaml("k.yaml", "m:\n  ? [1, 2]\n  : b")),
        "config: `m` has a key that is a list; only scalar keys are supported (in k.yaml)"
    );
}

#[test]
fn yaml_tags_anchors_and_special_floats() {
    assert_eq!(
        err_text(yaml("t.yaml", "a:\n  b: !secret xyz")),
        "config: `a.b` uses the YAML tag `!secret`, which is not supported \
         (only `!env_var` and `!raw_env_var` are) (in t.yaml)"
    );
    assert_eq!(
        yaml("t.yaml", "a: !!str 123").unwrap().value("a"),
        Some(&json!("123"))
    );
    assert_eq!(
        err_text(yaml("t.yaml", "a:\n  - 1\n  - .inf")),
        "config: `a[1]` must be a finite number, found .inf (in t.yaml)"
    );
    let config = yaml(
        "t.yaml",
        "base: &base {host: h, port: 1}\nsvc:\n  <<: *base\n  port: 2",
    )
    .unwrap();
    assert_eq!(config.value("svc"), Some(&json!({"host": "h", "port": 2})));
}

// ----- environment substitution -----

#[test]
fn env_substitution_plain_default_typed_splice_and_escape() {
    let env = env_of(&[
        ("AMQP_PASSWORD", "s3cret"),
        ("AMQP_HOST", "rabbit"),
        ("HTTP_PORT", "9000"),
    ]);
    let config = Config::load_with_env(&[fixture("substituted.yaml")], env).unwrap();
    assert_eq!(
        config.value("kontiki.amqp.url"),
        Some(&json!("amqp://guest:s3cret@rabbit:5672/%2f"))
    );
    assert_eq!(config.value("kontiki.http.port"), Some(&json!(9000)));
    assert_eq!(config.value("kontiki.http.disable"), Some(&json!(false)));
    assert_eq!(
        config.value("kontiki.heartbeat.interval"),
        Some(&json!(7.5))
    );
    assert_eq!(config.value("app.literal"), Some(&json!("${NOT_A_VAR}")));
    assert_eq!(config.value("app.quoted_port"), Some(&json!(9000)));
    assert_eq!(config.value("app.raw_port"), Some(&json!("9000")));
    assert_eq!(config.value("app.tagged_port"), Some(&json!(9000)));

    let settings = Settings::from_config(&config).unwrap();
    assert_eq!(settings.http.port, 9000);
    assert_eq!(settings.heartbeat.interval, Duration::from_millis(7500));
}

#[test]
fn env_defaults_apply_when_unset_or_empty() {
    let env = env_of(&[
        ("AMQP_PASSWORD", "pw"),
        ("AMQP_HOST", ""),
        ("HTTP_DISABLE", "TRUE"),
    ]);
    let config = Config::load_with_env(&[fixture("substituted.yaml")], env).unwrap();
    assert_eq!(
        config.value("kontiki.amqp.url"),
        Some(&json!("amqp://guest:pw@localhost:5672/%2f"))
    );
    assert_eq!(config.value("kontiki.http.port"), Some(&json!(8080)));
    assert_eq!(config.value("kontiki.http.disable"), Some(&json!(true)));
}

#[test]
fn whole_value_expressions_are_read_as_plain_scalars() {
    let env = env_of(&[
        ("INT", "42"),
        ("NEG", "-7"),
        ("HEX", "0x10"),
        ("FLOAT", "0.25"),
        ("BOOL", "false"),
        ("NULL", "~"),
        ("ZIP", "007"),
        ("YES", "yes"),
        ("EMPTY", ""),
        ("LIST", "[1, 2]"),
        ("MAP", "a: b"),
        ("SPACED", " 8"),
    ]);
    let text = "v:
  int: '${INT}'
  neg: ${NEG}
  hex: ${HEX}
  float: ${FLOAT}
  bool: ${BOOL}
  null: ${NULL}
  zip: ${ZIP}
  yes: ${YES}
  empty: ${EMPTY}
  list: ${LIST}
  map: ${MAP}
  spaced: ${SPACED}
  text: port ${INT}
";
    let config = Config::from_yaml_str_with_env("v.yaml", text, env).unwrap();
    assert_eq!(
        config.value("v"),
        Some(&json!({
            "int": 42, "neg": -7, "hex": 16, "float": 0.25, "bool": false, "null": null,
            "zip": "007", "yes": "yes", "empty": "", "list": "[1, 2]", "map": "a: b", "spaced": " 8",
            "text": "port 42",
        }))
    );
}

#[test]
fn unset_variable_without_default_names_variable_file_and_path() {
    let err = Config::load_with_env(&[fixture("unset_var.yaml")], no_env).unwrap_err();
    let ConfigError::UnsetEnvVar { var, file, path } = &err else {
        panic!("expected UnsetEnvVar, got {err:?}");
    };
    assert_eq!(
        (var.as_str(), file, path.as_str()),
        ("AMQP_HOST", &fixture("unset_var.yaml"), "kontiki.amqp.url")
    );
    assert_eq!(
        err.to_string(),
        format!(
            "config: environment variable `AMQP_HOST` is not set and has no default \
             (used by `kontiki.amqp.url` in {})",
            fixture("unset_var.yaml").display()
        )
    );
    assert_eq!(
        err_text(yaml("l.yaml", "hosts: [a, '${H}']")),
        "config: environment variable `H` is not set and has no default (used by `hosts[1]` in l.yaml)"
    );
}

#[test]
fn malformed_expressions_are_errors() {
    assert_eq!(
        err_text(yaml("m.yaml", "a: x${B")),
        "config: `a` has an unterminated `${` (write `$${` for a literal `${`) (in m.yaml)"
    );
    assert_eq!(
        err_text(yaml("m.yaml", "a: ${B:8080}")),
        "config: `a` has an unsupported expression `${B:8080}` \
         (use `${VAR}` or `${VAR:-default}`, or `$${` for a literal `${`) (in m.yaml)"
    );
    // A lone `$` is just text.
    assert_eq!(
        yaml("m.yaml", "a: cost $5").unwrap().value("a"),
        Some(&json!("cost $5"))
    );
}

#[test]
fn substitution_happens_per_file_before_merging() {
    let env = env_of(&[("PORT", "8080")]);
    let mut config = Config::from_yaml_str_with_env("a.yaml", "p: ${PORT}", &env).unwrap();
    let (merged, warned) = warnings(|| config.merge_yaml_str("b.yaml", "p: 8080", &env));
    merged.unwrap();
    assert_eq!(
        warned,
        ["`p` is defined twice with the same value (in a.yaml and b.yaml)"]
    );
    let err = config
        .merge_yaml_str("c.yaml", "p: ${PORT}1", &env)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "config: `p` is defined twice with different values, 8080 in a.yaml and \"80801\" in c.yaml \
         (a later file cannot override an earlier one)"
    );
}

#[test]
fn process_environment_is_the_default() {
    // PATH is set in every test environment; the exact value does not matter.
    let config = Config::from_yaml_str("p.yaml", "path: 'x:${PATH}'").unwrap();
    assert!(
        config
            .get::<String>("path")
            .unwrap()
            .unwrap()
            .starts_with("x:")
    );
    assert!(matches!(
        Config::from_yaml_str("p.yaml", "v: ${KONTIKI_RS_TEST_SURELY_UNSET_VARIABLE}"),
        Err(ConfigError::UnsetEnvVar { .. })
    ));
}

// ----- settings -----

#[test]
fn settings_defaults_are_kontikis() {
    let settings = Settings::from_config(&Config::empty()).unwrap();
    assert_eq!(settings, Settings::default());

    assert_eq!(settings.service_name, None);
    assert!(settings.peers.is_empty());
    assert_eq!(settings.amqp.url, "amqp://guest:guest@localhost:5672/%2f");
    assert!(settings.amqp.required);
    assert!(!settings.amqp.disable);
    assert_eq!(settings.amqp.rpc_timeout, Duration::from_secs(10));
    assert_eq!(settings.amqp.max_pending_messages, 10);
    assert_eq!(settings.amqp.max_attempts, 3);
    assert!(!settings.amqp.tls.enabled);
    assert_eq!(settings.amqp.tls.ca_cert, None);
    assert_eq!(settings.amqp.tls.client_cert, None);
    assert_eq!(settings.amqp.tls.client_key, None);
    assert_eq!(settings.amqp.connect_timeout, Duration::from_secs(10));
    assert_eq!(settings.shutdown.grace, Duration::from_secs(25));
    assert!(!settings.registration.disable);
    assert_eq!(settings.registration.delay, Duration::from_secs(2));
    assert_eq!(settings.registration.group, "business");
    assert!(settings.registration.report_uncaught_exceptions);
    assert_eq!(settings.heartbeat.interval, Duration::from_secs(60));
    assert!(!settings.http.disable);
    assert_eq!(settings.http.address, "127.0.0.1");
    assert_eq!(settings.http.port, 8080);
    assert_eq!(settings.http.max_body_bytes, 2 * 1024 * 1024);
    assert!(settings.http.documentation.enabled);
    assert_eq!(
        settings.http.documentation.path_template,
        "/api/{version}/docs"
    );
    assert_eq!(settings.http.documentation.title, None);
    assert_eq!(settings.http.documentation.description, None);
    assert_eq!(settings.public, None);

    // Empty mappings, nulls and unrelated keys change nothing either.
    let sparse = settings_of(
        "kontiki:\n  amqp: {tls: {}}\n  http:\n  registration: {group: '  '}\npublic: {}\nlogging: {}",
    );
    assert_eq!(sparse, Settings::default());
}

fn settings_of(text: &str) -> Settings {
    parse_settings(text).unwrap()
}

#[test]
fn settings_read_every_key() {
    let config = Config::load_with_env(&[fixture("full.yaml")], no_env).unwrap();
    let (settings, warned) = warnings(|| Settings::from_config(&config));
    let settings = settings.unwrap();
    assert!(warned.is_empty(), "{warned:?}");

    assert_eq!(settings.service_name.as_deref(), Some("billing"));
    assert_eq!(
        settings.peers,
        BTreeMap::from([
            ("ledger".to_owned(), "ledger".to_owned()),
            ("payments".to_owned(), "payments-v2".to_owned()),
        ])
    );
    let amqp = &settings.amqp;
    assert_eq!(amqp.url, "amqps://u:p@broker:5671/prod");
    assert!(!amqp.required);
    assert!(!amqp.disable);
    assert_eq!(amqp.rpc_timeout, Duration::from_secs(30));
    assert_eq!(amqp.max_pending_messages, 50);
    assert_eq!(amqp.max_attempts, 5);
    assert!(amqp.tls.enabled);
    assert_eq!(
        amqp.tls.ca_cert.as_deref(),
        Some(Path::new("/etc/ssl/ca.pem"))
    );
    assert_eq!(
        amqp.tls.client_cert.as_deref(),
        Some(Path::new("/etc/ssl/client.pem"))
    );
    assert_eq!(
        amqp.tls.client_key.as_deref(),
        Some(Path::new("/etc/ssl/client.key"))
    );
    assert_eq!(amqp.connect_timeout, Duration::from_millis(500));
    assert_eq!(settings.shutdown.grace, Duration::from_secs(5));
    assert!(settings.registration.disable);
    assert_eq!(settings.registration.delay, Duration::ZERO);
    assert_eq!(settings.registration.group, "infra");
    assert!(!settings.registration.report_uncaught_exceptions);
    assert_eq!(settings.heartbeat.interval, Duration::from_secs(2));
    let http = &settings.http;
    assert!(http.disable);
    assert_eq!(http.address, "127.0.0.1");
    assert_eq!(http.port, 9090);
    assert_eq!(http.max_body_bytes, 1024);
    assert!(!http.documentation.enabled);
    assert_eq!(http.documentation.path_template, "/docs/{version}");
    assert_eq!(http.documentation.title.as_deref(), Some("Billing"));
    assert_eq!(
        http.documentation.description.as_deref(),
        Some("Billing API")
    );
    assert_eq!(
        settings.public.map(serde_json::Value::Object),
        Some(json!({"region": "eu-west-1", "features": ["refunds"]}))
    );
}

#[test]
fn settings_type_errors_have_exact_messages() {
    let config = Config::load_with_env(&[fixture("bad_types.yaml")], no_env).unwrap();
    assert_eq!(
        err_text(Settings::from_config(&config)),
        format!(
            "config: `kontiki.amqp.rpc.timeout` must be a number of seconds, found \"ten\" (in {})",
            fixture("bad_types.yaml").display()
        )
    );

    let cases = [
        (
            "kontiki: {amqp: {rpc: {timeout: ten}}}",
            "config: `kontiki.amqp.rpc.timeout` must be a number of seconds, found \"ten\" (in env.yaml)",
        ),
        (
            "kontiki: {http: {port: '8080'}}",
            "config: `kontiki.http.port` must be an integer, found \"8080\" (in env.yaml)",
        ),
        (
            "kontiki: {http: {port: 80.5}}",
            "config: `kontiki.http.port` must be an integer, found 80.5 (in env.yaml)",
        ),
        (
            "kontiki: {http: {port: 70000}}",
            "config: `kontiki.http.port` must be between 0 and 65535, found 70000 (in env.yaml)",
        ),
        (
            "kontiki: {amqp: {max_pending_messages: -1}}",
            "config: `kontiki.amqp.max_pending_messages` must be between 0 and 65535, found -1 (in env.yaml)",
        ),
        (
            "kontiki: {amqp: {max_attempts: 0}}",
            "config: `kontiki.amqp.max_attempts` must be between 1 and 4294967295, found 0 (in env.yaml)",
        ),
        (
            "kontiki: {amqp: {required: yes}}",
            "config: `kontiki.amqp.required` must be `true` or `false`, found \"yes\" (in env.yaml)",
        ),
        (
            "kontiki: {heartbeat: {interval: -5}}",
            "config: `kontiki.heartbeat.interval` must not be negative, found -5 (in env.yaml)",
        ),
        (
            "kontiki: {shutdown: {grace_seconds: -0.5}}",
            "config: `kontiki.shutdown.grace_seconds` must not be negative, found -0.5 (in env.yaml)",
        ),
        (
            "kontiki: {heartbeat: {interval: 0}}",
            "config: `kontiki.heartbeat.interval` must be greater than zero, found 0 (in env.yaml)",
        ),
        (
            "kontiki: {amqp: {connect_timeout: 1e300}}",
            "config: `kontiki.amqp.connect_timeout` is too large a number of seconds, found 1e+300 (in env.yaml)",
        ),
        (
            "kontiki: {service_name: ''}",
            "config: `kontiki.service_name` must be a non-empty string, found \"\" (in env.yaml)",
        ),
        (
            "kontiki: {service_name: 12}",
            "config: `kontiki.service_name` must be a string, found 12 (in env.yaml)",
        ),
        (
            "kontiki: {peers: {billing: ''}}",
            "config: `kontiki.peers.billing` must be a non-empty service name, found \"\" (in env.yaml)",
        ),
        (
            "kontiki: {amqp: 5}",
            "config: `kontiki.amqp` must be a mapping, found 5 (in env.yaml)",
        ),
        (
            "kontiki: [a]",
            "config: `kontiki` must be a mapping, found [\"a\"] (in env.yaml)",
        ),
        (
            "public: [a]",
            "config: `public` must be a mapping, found [\"a\"] (in env.yaml)",
        ),
        (
            "kontiki: {amqp: {tls: {enabled: true}}}",
            "config: `kontiki.amqp.tls.ca_cert` is required when `kontiki.amqp.tls.enabled` is true",
        ),
        (
            "kontiki: {amqp: {tls: {client_key: k.pem}}}",
            "config: `kontiki.amqp.tls.client_cert` is required when `kontiki.amqp.tls.client_key` is set",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(err_text(parse_settings(text)), expected, "for {text}");
    }
}

#[test]
fn type_errors_name_every_file_that_defined_the_value() {
    let mut config = yaml("a.yaml", "kontiki: {http: {port: '80'}}").unwrap();
    config
        .merge_yaml_str("b.yaml", "kontiki: {http: {port: '80'}}", no_env)
        .unwrap();
    assert_eq!(
        err_text(Settings::from_config(&config)),
        "config: `kontiki.http.port` must be an integer, found \"80\" (in a.yaml, b.yaml)"
    );
}

#[test]
fn amqp_disable_rules() {
    // Alone, it turns registration off and makes AMQP optional.
    let settings = settings_of("kontiki: {amqp: {disable: true}}");
    assert!(settings.amqp.disable);
    assert!(!settings.amqp.required);
    assert!(settings.registration.disable);

    // Explicit values that agree are fine.
    let settings = settings_of(
        "kontiki: {amqp: {disable: true, required: false}, registration: {disable: true}}",
    );
    assert!(settings.registration.disable);

    // Kontiki's rule: an explicit contradiction is an error.
    assert_eq!(
        err_text(parse_settings(
            "kontiki: {amqp: {disable: true, required: true}}"
        )),
        "config: `kontiki.amqp.disable` cannot be true while `kontiki.amqp.required` is true (in env.yaml)"
    );
    let mut config = yaml("a.yaml", "kontiki: {amqp: {disable: true}}").unwrap();
    config
        .merge_yaml_str(
            "b.yaml",
            "kontiki: {registration: {disable: false}}",
            no_env,
        )
        .unwrap();
    let err = Settings::from_config(&config).unwrap_err();
    assert!(
        matches!(&err, ConfigError::InvalidValue { path, .. } if path == "kontiki.amqp.disable")
    );
    assert_eq!(
        err.to_string(),
        "config: `kontiki.amqp.disable` cannot be true while `kontiki.registration.disable` is false \
         (in a.yaml, b.yaml)"
    );

    // `required: true` without `disable` is the default and fine.
    assert!(
        settings_of("kontiki: {amqp: {required: true, disable: false}}")
            .amqp
            .required
    );
}

#[test]
fn settings_normalisation() {
    assert_eq!(
        settings_of("kontiki: {registration: {group: ''}}")
            .registration
            .group,
        "business"
    );
    assert_eq!(
        settings_of("kontiki: {registration: {group: ops}}")
            .registration
            .group,
        "ops"
    );
    assert_eq!(settings_of("public: {}").public, None);
    assert_eq!(settings_of("public:").public, None);
    assert_eq!(
        settings_of("kontiki: {amqp: {max_pending_messages: 0}}")
            .amqp
            .max_pending_messages,
        0
    );
    assert_eq!(settings_of("kontiki: {http: {port: 0}}").http.port, 0);
    assert_eq!(
        settings_of("kontiki: {amqp: {rpc: {timeout: 0.001}}}")
            .amqp
            .rpc_timeout,
        Duration::from_millis(1)
    );
}

#[test]
fn unknown_and_obsolete_kontiki_keys_warn() {
    let config = yaml(
        "w.yaml",
        "kontiki:\n  amqp: {serialization: json}\n  http: {prot: 1}\n  peers: {anything: x}\napp: {whatever: 1}",
    )
    .unwrap();
    let (settings, mut warned) = warnings(|| Settings::from_config(&config));
    settings.unwrap();
    warned.sort();
    assert_eq!(
        warned,
        [
            "`kontiki.amqp.serialization` is a Kontiki 1.x key and is ignored",
            "`kontiki.http.prot` is not a known Kontiki setting and is ignored",
        ]
    );
}

#[test]
fn handler_timeouts_default_global_and_per_entrypoint() {
    let defaults = Settings::default();
    assert_eq!(defaults.handlers.timeout, Duration::from_secs(300));
    assert!(defaults.handlers.timeouts.is_empty());

    let config = yaml(
        "t.yaml",
        "kontiki:\n  handler_timeout: 30\n  handler_timeouts:\n    get_order: 2.5\n    registry.register.queue: 1\n    unset: null\n",
    )
    .unwrap();
    let (settings, warned) = warnings(|| Settings::from_config(&config));
    let handlers = settings.unwrap().handlers;
    // Entrypoint names are keys, not paths: a dot in one is neither a warning nor a level.
    assert!(warned.is_empty(), "{warned:?}");
    assert_eq!(handlers.timeout, Duration::from_secs(30));
    assert_eq!(
        handlers.timeouts,
        BTreeMap::from([
            ("get_order".to_owned(), Duration::from_millis(2500)),
            ("registry.register.queue".to_owned(), Duration::from_secs(1)),
        ])
    );
    // Config per entrypoint, then the entrypoint's own `.timeout(..)`, then the global one.
    let own = Some(Duration::from_secs(7));
    assert_eq!(
        handlers.timeout_for("get_order", own),
        Duration::from_millis(2500)
    );
    assert_eq!(handlers.timeout_for("other", own), Duration::from_secs(7));
    assert_eq!(handlers.timeout_for("other", None), Duration::from_secs(30));

    for (text, expected) in [
        (
            "kontiki: {handler_timeout: 0}",
            "config: `kontiki.handler_timeout` must be greater than zero, found 0 (in env.yaml)",
        ),
        (
            "kontiki: {handler_timeouts: {get_order: 0}}",
            "config: `kontiki.handler_timeouts.get_order` must be greater than zero, found 0 (in env.yaml)",
        ),
        (
            "kontiki: {handler_timeouts: {get_order: soon}}",
            "config: `kontiki.handler_timeouts.get_order` must be a number of seconds, found \"soon\" (in env.yaml)",
        ),
        (
            "kontiki: {handler_timeouts: 5}",
            "config: `kontiki.handler_timeouts` must be a mapping, found 5 (in env.yaml)",
        ),
    ] {
        assert_eq!(err_text(parse_settings(text)), expected, "for {text}");
    }
}

// ----- lookups -----

#[test]
fn get_and_get_parameter_with_defaults_and_types() {
    let config =
        Config::load_with_env(&[fixture("base.yaml"), fixture("env.yaml")], no_env).unwrap();
    assert_eq!(
        config.get::<u64>("app.cache.ttl_seconds").unwrap(),
        Some(30)
    );
    assert_eq!(config.get::<u64>("app.cache.missing").unwrap(), None);
    assert_eq!(config.get::<u64>("nope.deeper.still").unwrap(), None);
    assert_eq!(
        get_parameter(&config, "app.cache.ttl_seconds", 60_u64).unwrap(),
        30
    );
    assert_eq!(get_parameter(&config, "app.cache.ttl", 60_u64).unwrap(), 60);
    assert_eq!(
        get_parameter(&config, "app.cache.size", 0_u16).unwrap(),
        500
    );
    assert_eq!(
        config.get_or("app.name", "orders".to_owned()).unwrap(),
        "orders"
    );
    assert_eq!(
        config.get::<Vec<String>>("app.events").unwrap(),
        Some(vec![
            "orders.created".to_owned(),
            "orders.cancelled".to_owned()
        ])
    );

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Cache {
        ttl_seconds: u32,
        size: u32,
    }
    assert_eq!(
        config.get::<Cache>("app.cache").unwrap(),
        Some(Cache {
            ttl_seconds: 30,
            size: 500
        })
    );

    let err = get_parameter(&config, "app.events", 0_u16).unwrap_err();
    assert!(
        std::error::Error::source(&err).is_some(),
        "the serde error is kept"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "config: `app.events` must be a value of type `u16`, found [\"orders.created\",\"orders.cancelled\"] \
             (in {}, {})",
            fixture("base.yaml").display(),
            fixture("env.yaml").display()
        )
    );
    assert_eq!(
        err_text(config.get::<BTreeMap<String, String>>("app.cache")),
        format!(
            "config: `app.cache` must be a value of type `BTreeMap<String, String>`, found \
             {{\"size\":500,\"ttl_seconds\":30}} (in {}, {})",
            fixture("base.yaml").display(),
            fixture("env.yaml").display()
        )
    );
}

#[test]
fn paths_through_scalars_are_type_errors_and_nulls_are_missing() {
    let config = yaml("p.yaml", "a: 5\nn:\nm: {x: ~}").unwrap();
    assert_eq!(
        err_text(config.get::<u8>("a.b.c")),
        "config: `a` must be a mapping, found 5 (in p.yaml)"
    );
    assert_eq!(config.value("a.b"), None);
    assert_eq!(config.get::<u8>("n.b").unwrap(), None);
    assert_eq!(config.get::<u8>("n").unwrap(), None);
    assert_eq!(config.get_or("m.x", 3_u8).unwrap(), 3);
    assert_eq!(config.value("m.x"), Some(&serde_json::Value::Null));
    assert_eq!(config.value(""), Some(config.root()));
    assert_eq!(
        err_text(config.require::<u8>("m.x")),
        "config: `m.x` is required but not set"
    );
    assert_eq!(config.require::<u8>("a").unwrap(), 5);
}

#[test]
fn from_value_configs_have_no_files() {
    let config = Config::from_value(json!({"kontiki": {"http": {"port": "x"}}})).unwrap();
    assert!(config.files().is_empty());
    assert_eq!(
        err_text(Settings::from_config(&config)),
        "config: `kontiki.http.port` must be an integer, found \"x\""
    );
}

#[test]
fn use_config_event_types() {
    let config = yaml(
        "u.yaml",
        "one: a.b\nmany: [a.b, c.d]\nempty: ''\nnone: []\nblank_item: [a, '']\nnumber: 5",
    )
    .unwrap();
    assert_eq!(config.event_types("one").unwrap(), ["a.b"]);
    assert_eq!(config.event_types("many").unwrap(), ["a.b", "c.d"]);
    for path in ["empty", "none", "blank_item", "number"] {
        let err = config.event_types(path).unwrap_err();
        assert!(
            matches!(err, ConfigError::WrongType { .. }),
            "{path}: {err:?}"
        );
    }
    assert_eq!(
        err_text(config.event_types("none")),
        "config: `none` must be a non-empty string or a non-empty list of non-empty strings, found [] (in u.yaml)"
    );
    assert_eq!(
        err_text(config.event_types("missing.path")),
        "config: `missing.path` is required but not set"
    );
}

#[test]
fn use_config_duration_and_string() {
    let config = yaml(
        "u.yaml",
        "i: 30\nf: 0.5\nz: 0\nneg: -1\ns: '10'\npath: /ping\ncron: '*/5 * * * *'",
    )
    .unwrap();
    assert_eq!(config.duration("i").unwrap(), Duration::from_secs(30));
    assert_eq!(config.duration("f").unwrap(), Duration::from_millis(500));
    assert_eq!(config.duration("z").unwrap(), Duration::ZERO);
    assert_eq!(
        err_text(config.duration("neg")),
        "config: `neg` must not be negative, found -1 (in u.yaml)"
    );
    assert_eq!(
        err_text(config.duration("s")),
        "config: `s` must be a number of seconds, found \"10\" (in u.yaml)"
    );
    assert_eq!(
        err_text(config.duration("nope")),
        "config: `nope` is required but not set"
    );
    assert_eq!(config.string("path").unwrap(), "/ping");
    assert_eq!(config.string("cron").unwrap(), "*/5 * * * *");
    assert_eq!(
        err_text(config.string("i")),
        "config: `i` must be a string, found 30 (in u.yaml)"
    );
    assert!(matches!(
        config.string("nope"),
        Err(ConfigError::MissingKey { .. })
    ));
}

#[test]
fn load_from_temporary_files() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.yaml");
    let b = dir.path().join("b.yaml");
    std::fs::write(&a, "kontiki:\n  http:\n    port: ${PORT:-8081}\n").unwrap();
    std::fs::write(&b, "kontiki:\n  http:\n    address: 127.0.0.1\n").unwrap();
    let config = Config::load_with_env(&[&a, &b], no_env).unwrap();
    let settings = Settings::from_config(&config).unwrap();
    assert_eq!(
        (settings.http.address.as_str(), settings.http.port),
        ("127.0.0.1", 8081)
    );

    // Not UTF-8: an I/O error (invalid data), not a panic.
    let c = dir.path().join("c.yaml");
    std::fs::write(&c, [0xff, 0xfe, 0x00]).unwrap();
    assert!(matches!(
        Config::load_with_env(&[&c], no_env),
        Err(ConfigError::Io { .. })
    ));
    // No files at all: an empty config.
    let none: [&Path; 0] = [];
    assert_eq!(Config::load(&none).unwrap(), Config::empty());
}
