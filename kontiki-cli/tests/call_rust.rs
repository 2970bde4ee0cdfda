//! `kontiki call` against a Rust service (in this process; the registry test runs one as a
//! separate process).

mod support;

use serde_json::json;
use support::{kontiki, kontiki_env, rust_service, unique};

#[tokio::test]
async fn call_prints_the_result_and_exit_codes_tell_what_failed() {
    let name = unique("cli-rs");
    let svc = rust_service(&name, false).await;
    let iid = svc.identity().instance_id.to_string();

    // The result, as JSON on stdout.
    assert_eq!(kontiki(&["call", &name, "double", "21"]).await.ok(), "42");
    assert_eq!(kontiki(&["call", &name, "double", "-4"]).await.ok(), "-8");
    // Keyword arguments bind to the declared parameter.
    assert_eq!(
        kontiki(&["call", &name, "double", "--kwargs", r#"{"x": 5}"#])
            .await
            .ok(),
        "10"
    );

    // A client error: its code first on stderr, exit 3.
    let run = kontiki(&["call", &name, "double", r#""x""#]).await;
    assert_eq!(run.fails(3), "INVALID_ARGUMENTS: x must be an integer");

    // Unknown method (7) and unknown service (6), at once, not after the timeout.
    let started = std::time::Instant::now();
    let run = kontiki(&["call", &name, "triple", "1"]).await;
    let err = run.fails(7);
    assert!(err.starts_with("UNKNOWN_METHOD: "), "{err}");
    assert!(err.contains("triple"), "{err}");
    let nobody = unique("nobody");
    let run = kontiki(&["call", &nobody, "anything"]).await;
    let err = run.fails(6);
    assert!(err.starts_with("UNKNOWN_SERVICE: "), "{err}");
    assert!(err.contains(&nobody), "{err}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(8),
        "unknown service/method took {:?}",
        started.elapsed()
    );

    // A timeout: exit 5 once --timeout ran out.
    let started = std::time::Instant::now();
    let run = kontiki(&["call", &name, "slow", "3000", "--timeout", "0.5"]).await;
    assert_eq!(
        run.fails(5),
        format!("RPC_TIMEOUT: no reply from {name}.slow within 0.5 s")
    );
    assert!(started.elapsed() < std::time::Duration::from_millis(2900));

    // --instance: the request goes to that instance; an unknown one is an unknown method.
    let run = kontiki(&["call", &name, "whoami", "--instance", &iid]).await;
    assert_eq!(run.json(), json!(iid));
    let run = kontiki(&["call", &name, "whoami", "--instance", "no-such-instance"]).await;
    let err = run.fails(7);
    assert!(err.contains("no-such-instance"), "{err}");

    // --pretty indents.
    let run = kontiki(&["call", &name, "slow", "1", "--pretty"]).await;
    assert_eq!(run.ok(), format!("[\n  1,\n  \"{}\"\n]", iid));
    support::stop_rust_service(svc).await;
}

#[tokio::test]
async fn headers_and_flow_id_reach_the_handler() {
    let name = unique("cli-hdr");
    let svc = rust_service(&name, false).await;

    let run = kontiki(&[
        "call",
        &name,
        "headers",
        "--header",
        "tenant=t1",
        "--header",
        "n=5",
        "--header",
        "flag=true",
        "--header",
        r#"obj={"a":[1,2]}"#,
        "--flow-id",
        "cliflow00001",
    ])
    .await;
    let h = run.json();
    assert_eq!(h["tenant"], json!("t1"));
    assert_eq!(h["n"], json!(5));
    assert_eq!(h["flag"], json!(true));
    assert_eq!(h["obj"], json!({"a": [1, 2]}));
    assert_eq!(h["flow_id"], json!("cliflow00001"));
    assert_eq!(h["rpc_service"], json!(name));
    assert_eq!(h["remote_method"], json!("headers"));
    assert_eq!(h["service_name"], json!("kontiki-standalone-kontiki_cli"));

    // A reserved name is refused before anything is sent.
    let run = kontiki(&["call", &name, "headers", "--header", "hop_id=x"]).await;
    let err = run.fails(2);
    assert!(
        err.contains("`hop_id` is a header name Kontiki reserves"),
        "{err}"
    );

    support::stop_rust_service(svc).await;
}

#[tokio::test]
async fn the_broker_comes_from_the_option_the_environment_or_a_config_file() {
    let name = unique("cli-cfg");
    let svc = rust_service(&name, false).await;

    // No KONTIKI_AMQP_URL: the URL comes from the config file.
    let mut file = tempfile::NamedTempFile::new().expect("temp");
    std::io::Write::write_all(
        &mut file,
        format!("kontiki:\n  amqp:\n    url: \"{}\"\n", support::amqp_url()).as_bytes(),
    )
    .expect("write config");
    let path = file.path().to_str().expect("utf-8 path");
    let run = kontiki_env(
        &["call", &name, "double", "2", "--config", path],
        &[("KONTIKI_AMQP_URL", "")],
    )
    .await;
    assert_eq!(run.ok(), "4");

    // --amqp-url wins over the environment: a closed port fails to connect (exit 8).
    let run = kontiki(&[
        "--amqp-url",
        "amqp://guest:guest@127.0.0.1:1/%2f",
        "call",
        &name,
        "double",
        "2",
    ])
    .await;
    let err = run.fails(8);
    assert!(
        err.starts_with(
            "CONNECTION_FAILED: could not connect to the broker at amqp://guest:***@127.0.0.1:1/"
        ),
        "{err}"
    );
    support::stop_rust_service(svc).await;
}

#[tokio::test]
async fn arguments_that_are_not_json_are_usage_errors() {
    // Nothing is sent: no broker is needed for these.
    let run = kontiki(&["call", "rpc-service", "rpc_example", "bad_input"]).await;
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr.contains("did you mean '\"bad_input\"'?"),
        "{}",
        run.stderr
    );
    let run = kontiki(&["call", "s", "m", "--kwargs", "[1]"]).await;
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr.contains("expected a JSON object"),
        "{}",
        run.stderr
    );
    let run = kontiki(&["call", "s", "m", "--timeout", "0"]).await;
    assert_eq!(run.code, Some(2), "{run:?}");

    // --help documents the exit codes.
    let help = kontiki(&["--help"]).await;
    let text = help.ok();
    for line in [
        "3  the RPC returned a client error",
        "5  no reply within the timeout",
        "8  the broker could not be reached",
    ] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
}
