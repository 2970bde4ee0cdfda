//! Prometheus metrics and the health routes on a real broker: a service answers RPCs (one
//! with a declared error code), handles events and HTTP requests, a stand-alone Messenger calls
//! and publishes; `GET /metrics` then shows exactly those counts, on the HTTP port and on the
//! `kontiki.metrics.port` listener, and `promtool check metrics` accepts the exposition.
//! `/live` and `/ready` answer, and a service without its broker is live but not ready.
//!
//! Metrics are process-wide, so every check filters on a service name made for this test.

mod support;

use kontiki_rt::http::{HttpRequest, HttpResponse, HttpRoute, Method, StatusCode};
use kontiki_rt::{Call, Event, EventEntrypoint, HandlerError, RpcEntrypoint, Service};
use serde_json::{Map, json};
use std::time::Duration;

/// The value of the sample `name{labels…}` whose labels include every pair of `want`.
fn sample(text: &str, name: &str, want: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (metric, labels) = match series.split_once('{') {
                Some((m, rest)) => (m, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            (metric == name).then_some((labels, value))
        })
        .find(|(labels, _)| {
            want.iter()
                .all(|(k, v)| labels.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|(_, v)| v.parse().ok())
}

async fn get(url: &str) -> (u16, String) {
    let res = reqwest::get(url).await.expect("request");
    (res.status().as_u16(), res.text().await.expect("body"))
}

#[tokio::test]
async fn metrics_count_what_the_service_did() {
    let name = support::unique("metrics");
    let event_type = format!("{name}.thing");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let svc = Service::builder(name.as_str())
        .rpc(RpcEntrypoint::new("echo", |call: Call| async move {
            let arg = call.args.first().cloned().unwrap_or_default();
            if arg == json!("bad") {
                return Err(HandlerError::client("BAD_INPUT", "bad is bad"));
            }
            Ok(arg)
        }))
        .rpc(
            RpcEntrypoint::new("stuck", |_call: Call| async move {
                std::future::pending::<()>().await;
                Ok(json!(null))
            })
            .timeout(Duration::from_millis(100)),
        )
        .event(EventEntrypoint::new(
            "on_thing",
            [event_type.as_str()],
            move |_e: Event| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(());
                    Ok(())
                }
            },
        ))
        .http(HttpRoute::new(
            Method::GET,
            "/hello/{who}",
            |req: HttpRequest| async move {
                let who: String = req.path_param("who")?;
                Ok(HttpResponse::json(StatusCode::OK, &json!({ "hello": who })))
            },
        ))
        .build()
        .expect("valid definition")
        .start(support::service_config(
            &name,
            "  http:\n    address: 127.0.0.1\n    port: 0\n  metrics:\n    port: 0\n",
        ))
        .await
        .unwrap_or_else(|e| panic!("{}", support::no_broker(e)));
    let http = svc.http_addr().expect("HTTP runs");
    let ops = svc
        .metrics_addr()
        .expect("kontiki.metrics.port runs a listener");

    let client = support::messenger().await;
    let caller = client.identity().service_name.to_string();
    // First, so that its server-side count (made after the reply) is in by the end.
    let stuck = client
        .call(&name, "stuck", vec![], Map::new())
        .await
        .expect_err("the handler timed out");
    assert!(
        stuck.to_string().contains("timed out after 0.1 s"),
        "{stuck}"
    );
    for _ in 0..3 {
        let v = client
            .call(&name, "echo", vec![json!("hi")], Map::new())
            .await
            .expect("echo");
        assert_eq!(v, json!("hi"));
    }
    let err = client
        .call(&name, "echo", vec![json!("bad")], Map::new())
        .await
        .expect_err("a client error");
    assert_eq!(err.client_code(), Some("BAD_INPUT"));
    for i in 0..2 {
        client
            .publish(&event_type, &json!({ "n": i }))
            .await
            .expect("publish");
    }
    for _ in 0..2 {
        tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("the event is handled")
            .expect("channel open");
    }
    for who in ["ada", "bob"] {
        let (status, _) = get(&format!("http://{http}/hello/{who}")).await;
        assert_eq!(status, 200);
    }

    // The event handler records after it acked: poll (with a deadline) until both are in.
    let url = format!("http://{http}/metrics");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let text = loop {
        let (status, text) = get(&url).await;
        assert_eq!(status, 200, "{text}");
        let handled = sample(
            &text,
            "kontiki_event_handled_total",
            &[("service", &name), ("outcome", "ok")],
        );
        if handled == Some(2.0) || tokio::time::Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let s = name.as_str();
    let expect = |metric: &str, labels: &[(&str, &str)], value: f64| {
        assert_eq!(
            sample(&text, metric, labels),
            Some(value),
            "{metric} {labels:?} in:\n{text}"
        );
    };
    expect(
        "kontiki_rpc_server_requests_total",
        &[("service", s), ("method", "echo"), ("outcome", "ok")],
        3.0,
    );
    expect(
        "kontiki_rpc_server_requests_total",
        &[("service", s), ("method", "echo"), ("outcome", "BAD_INPUT")],
        1.0,
    );
    expect(
        "kontiki_rpc_server_duration_seconds_count",
        &[("service", s), ("method", "echo")],
        4.0,
    );
    expect(
        "kontiki_rpc_server_requests_total",
        &[("service", s), ("method", "stuck"), ("outcome", "timeout")],
        1.0,
    );
    expect(
        "kontiki_rpc_server_requests_total",
        &[("service", s), ("method", "stuck"), ("outcome", "internal")],
        0.0,
    );
    expect(
        "kontiki_rpc_server_in_flight",
        &[("service", s), ("method", "echo")],
        0.0,
    );
    expect(
        "kontiki_event_handled_total",
        &[
            ("service", s),
            ("handler", "on_thing"),
            ("event_type", &event_type),
            ("outcome", "ok"),
        ],
        2.0,
    );
    expect(
        "kontiki_http_requests_total",
        &[
            ("service", s),
            ("route", "GET /hello/{who}"),
            ("status", "200"),
        ],
        2.0,
    );
    // Rendered from the route's own tallies (kontiki-rt's exporter is the recorder here).
    expect(
        "kontiki_http_request_duration_seconds_count",
        &[("service", s), ("route", "GET /hello/{who}")],
        2.0,
    );
    expect(
        "kontiki_http_request_duration_seconds_bucket",
        &[
            ("service", s),
            ("route", "GET /hello/{who}"),
            ("le", "+Inf"),
        ],
        2.0,
    );
    expect(
        "kontiki_rpc_client_calls_total",
        &[
            ("service", &caller),
            ("target_service", s),
            ("method", "echo"),
            ("outcome", "ok"),
        ],
        3.0,
    );
    expect(
        "kontiki_rpc_client_calls_total",
        &[
            ("service", &caller),
            ("target_service", s),
            ("outcome", "BAD_INPUT"),
        ],
        1.0,
    );
    expect(
        "kontiki_events_published_total",
        &[
            ("service", &caller),
            ("event_type", &event_type),
            ("outcome", "confirmed"),
        ],
        2.0,
    );
    // The event and client duration histograms count what they timed (rendered, like the
    // route's, from per-thread tallies).
    expect(
        "kontiki_event_handle_duration_seconds_count",
        &[
            ("service", s),
            ("handler", "on_thing"),
            ("event_type", &event_type),
        ],
        2.0,
    );
    expect(
        "kontiki_rpc_client_duration_seconds_count",
        &[
            ("service", &caller),
            ("target_service", s),
            ("method", "echo"),
        ],
        4.0,
    );
    assert!(
        text.contains("kontiki_rpc_server_duration_seconds_bucket{"),
        "durations are histograms with buckets:\n{text}"
    );

    // The dedicated listener serves the same registry, and the health routes.
    let (status, ops_text) = get(&format!("http://{ops}/metrics")).await;
    assert_eq!(status, 200);
    assert_eq!(
        sample(
            &ops_text,
            "kontiki_rpc_server_requests_total",
            &[("service", s), ("method", "echo"), ("outcome", "ok")]
        ),
        Some(3.0)
    );
    for base in [http, ops] {
        assert_eq!(get(&format!("http://{base}/live")).await.0, 200);
        let (status, body) = get(&format!("http://{base}/ready")).await;
        assert_eq!((status, body.as_str()), (200, "ready\n"));
    }

    // promtool (Debian's prometheus package; scripts/test.sh installs it) accepts it.
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("promtool is needed (apt-get install prometheus; scripts/test.sh does): {e}")
        });
    {
        use std::io::Write as _;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write");
    }
    let out = child.wait_with_output().expect("promtool runs");
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    client.close().await;
    svc.shutdown().await;
}

/// A service whose broker does not answer (with `amqp.required: false` it starts anyway) is
/// live but not ready, and says why.
#[tokio::test]
async fn a_service_without_its_broker_is_live_but_not_ready() {
    let name = support::unique("metrics-unready");
    let yaml = format!(
        "kontiki:\n  service_name: {name}\n  amqp:\n    url: \"amqp://guest:guest@127.0.0.1:1/%2f\"\n    required: false\n    connect_timeout: 1\n  registration:\n    disable: true\n  metrics:\n    port: 0\n"
    );
    let svc = Service::builder(name.as_str())
        .rpc(RpcEntrypoint::new("noop", |_c: Call| async move {
            Ok(json!(null))
        }))
        .build()
        .expect("valid definition")
        .start(kontiki_rt::Config::from_yaml_str("t.yaml", &yaml).expect("config"))
        .await
        .expect("starts without its broker");
    let ops = svc
        .metrics_addr()
        .expect("the listener runs without HTTP routes");
    assert_eq!(get(&format!("http://{ops}/live")).await.0, 200);
    let (status, body) = get(&format!("http://{ops}/ready")).await;
    assert_eq!(status, 503);
    assert_eq!(body, "not ready: no connection to the broker\n");
    svc.shutdown().await;
}
