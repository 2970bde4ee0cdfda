//! Every example of `examples/` started as `make run-<name>` starts it (its binary, the three
//! config files, the broker from `KONTIKI_AMQP_URL`), doing what its README says.

use examples_tests::{Example, Tap, messenger};
use kontiki_rt::{CallOptions, RpcError};
use serde_json::{Value, json};

fn marker(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// `make -n run-<name>` runs the binary with the config files the tests use (after a
/// `RUST_LOG=...` default).
#[test]
fn make_targets_run_each_example_with_its_config_files() {
    let root = examples_tests::repo_root();
    for name in examples_tests::EXAMPLES {
        let out = std::process::Command::new("make")
            .args(["-s", "-n", &format!("run-{name}")])
            .current_dir(&root)
            .output()
            .expect("run make -n");
        let printed = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "make -n run-{name}: {printed}");
        let configs: Vec<String> = examples_tests::config_files(name)
            .iter()
            .map(|p| {
                let rel = p.strip_prefix(&root).expect("under the root");
                format!("--config {}", rel.display())
            })
            .collect();
        let expected = format!("cargo run -q -p {name} -- {}", configs.join(" "));
        assert!(
            printed.trim().ends_with(&expected),
            "make run-{name} runs {printed:?}, expected it to end with {expected:?}"
        );
    }
}

/// The three files of every example merge without a conflict and give a valid config.
#[test]
fn every_config_merges() {
    for name in examples_tests::EXAMPLES {
        let config = kontiki_rt::Config::load(&examples_tests::config_files(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let settings =
            kontiki_rt::Settings::from_config(&config).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(settings.amqp.url, examples_tests::amqp_url(), "{name}");
        assert_eq!(settings.registration.group, "examples", "{name}: env.yaml");
    }
}

#[tokio::test]
async fn compute_api_doubles_and_processes_things() {
    use kontiki_generated::compute::compute_api::ComputeApiClient;
    let mut tap = Tap::bind("event_exchange", "thing_processed").await;
    let svc = Example::start("compute-api", &[]).await;
    svc.wait_for_line("delegate ready: cache ttl 300 s (app.cache.ttl_seconds)")
        .await;
    let m = messenger().await;
    let client = ComputeApiClient::new(m.clone());
    assert_eq!(client.compute(21).await.unwrap(), 42);
    let (code, out, err) = examples_tests::example_client(&["compute", "21"]);
    assert_eq!((code, out.as_str()), (Some(0), "42\n"), "{err}");
    let at_ours = client
        .compute_with(CallOptions::default().instance(&svc.instance_id), 5)
        .await
        .unwrap();
    assert_eq!(at_ours, 10);
    svc.wait_for_line("compute(5) -> 10").await;
    let overflow = client.compute(i64::MAX).await;
    assert!(
        matches!(overflow, Err(RpcError::Server { .. })),
        "{overflow:?}"
    );

    let mark = marker("thing");
    m.publish("thing_happened", &json!({ "mark": mark }))
        .await
        .unwrap();
    let processed = tap
        .next_matching("thing_processed", |b| b["payload"]["mark"] == json!(mark))
        .await;
    assert_eq!(processed, json!({"payload": {"mark": mark}}));
    assert_eq!(svc.stop().await, Some(0), "a graceful stop exits 0");
}

/// `KONTIKI_LOG_FORMAT=json`: one JSON object a line, and a handler's line carries the
/// service, the instance and the flow id of the call in its span.
#[tokio::test]
async fn compute_api_logs_json_lines_with_the_flow() {
    use kontiki_generated::compute::compute_api::ComputeApiClient;
    let svc = Example::start("compute-api", &[("KONTIKI_LOG_FORMAT", "json")]).await;
    let flow = marker("flow");
    let client = ComputeApiClient::new(messenger().await);
    let doubled = client
        .compute_with(
            CallOptions::default()
                .instance(&svc.instance_id)
                .flow_id(&flow),
            8,
        )
        .await
        .unwrap();
    assert_eq!(doubled, 16);
    let line = svc.wait_for_line("compute(8) -> 16").await;
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(v["level"], json!("INFO"), "{v}");
    assert_eq!(v["fields"]["message"], json!("compute(8) -> 16"), "{v}");
    assert_eq!(v["span"]["service"], json!("compute-api"), "{v}");
    assert_eq!(v["span"]["instance_id"], json!(svc.instance_id), "{v}");
    assert_eq!(v["span"]["flow_id"], json!(flow), "{v}");
    for l in svc.log().lines() {
        assert!(
            serde_json::from_str::<Value>(l).is_ok(),
            "every line is JSON, not {l:?}"
        );
    }
    assert_eq!(svc.stop().await, Some(0));
}

#[tokio::test]
async fn rpc_service_returns_its_declared_error() {
    use rpc_service::idl::rpc_service::{RpcExampleClientError, RpcServiceClient};
    let svc = Example::start("rpc-service", &[]).await;
    let client = RpcServiceClient::new(messenger().await)
        .with_options(CallOptions::default().instance(&svc.instance_id));
    assert_eq!(client.rpc_example("ok").await.unwrap(), "ok");
    match client.rpc_example("bad_input").await {
        Err(RpcError::Client {
            error: RpcExampleClientError::UserInputError { message },
            ..
        }) => assert_eq!(message, "Invalid feature value"),
        other => panic!("expected USER_INPUT_ERROR, got {other:?}"),
    }
    svc.wait_for_line("rpc_example(\"bad_input\") -> USER_INPUT_ERROR")
        .await;
    let (code, out, err) = examples_tests::example_client(&["rpc-example", "bad_input"]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert_eq!(
        err.trim(),
        "error: client error from rpc-service.rpc_example: USER_INPUT_ERROR: Invalid feature value"
    );
}

#[tokio::test]
async fn api_gateway_calls_rpc_service_through_its_client() {
    use kontiki_generated::api_gateway::api_gateway::{ApiGatewayClient, ComputeClientError};
    let _upstream = Example::start("rpc-service", &[]).await;
    let gateway = Example::start("api-gateway", &[]).await;
    let client = ApiGatewayClient::new(messenger().await)
        .with_options(CallOptions::default().instance(&gateway.instance_id));
    assert_eq!(client.compute("fast").await.unwrap(), "ok");
    gateway
        .wait_for_line("compute(\"fast\") -> rpc-service.rpc_example -> \"ok\"")
        .await;
    match client.compute("bad_input").await {
        Err(RpcError::Client {
            error: ComputeClientError::UserInputError { message },
            ..
        }) => assert_eq!(message, "Invalid feature value"),
        other => panic!("expected USER_INPUT_ERROR from the gateway, got {other:?}"),
    }
    gateway
        .wait_for_line(
            "compute(\"bad_input\") -> rpc-service.rpc_example -> USER_INPUT_ERROR: Invalid feature value",
        )
        .await;
}

#[tokio::test]
async fn billing_announces_users_that_user_events_welcomes() {
    use kontiki_generated::billing::billing::BillingClient;
    let users = Example::start("user-events", &[]).await;
    let billing = Example::start("billing", &[]).await;
    let user = marker("u");
    let invoice = BillingClient::new(messenger().await)
        .create_invoice(user.as_str())
        .await
        .unwrap();
    assert_eq!(invoice.user_id, user);
    billing
        .wait_for_line(&format!("invoice {}", invoice.id))
        .await;
    users
        .wait_for_line(&format!("user.created: welcome, {user}"))
        .await;
}

#[tokio::test]
async fn http_simple_serves_routes_errors_and_swagger_ui() {
    let svc = Example::start("http-simple", &[("HTTP_SIMPLE_PORT", "0")]).await;
    let base = format!("http://{}", svc.http_addr().await);
    let http = reqwest::Client::new();

    let r = http.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"message": "ok"}));

    let name = marker("item");
    let r = http
        .post(format!("{base}/items"))
        .json(&json!({"name": name, "qty": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let item: Value = r.json().await.unwrap();
    assert_eq!((&item["name"], &item["qty"]), (&json!(name), &json!(2)));
    let r = http
        .get(format!("{base}/items/{}", item["id"]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap(), item);

    // The mapped error: CONFLICT = 409 with the contract's message.
    let r = http
        .post(format!("{base}/items"))
        .json(&json!({"name": name}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"message": "conflict happened"})
    );
    // The validated body: a missing field and a wrong type are 422 with the field's path.
    let r = http
        .post(format!("{base}/items"))
        .json(&json!({"qty": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let r = http
        .post(format!("{base}/items"))
        .json(&json!({"name": "x", "qty": "lots"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["errors"][0]["path"], json!("qty"), "{body}");
    let r = http
        .get(format!("{base}/items/987654321"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"message": "not found"})
    );

    // Swagger UI and the OpenAPI document.
    let r = http
        .get(format!("{base}/api/v1/docs/swagger"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(page.contains("swagger-ui"), "{page}");
    let doc: Value = http
        .get(format!("{base}/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["info"]["title"], json!("http-simple"));
    assert!(doc["paths"]["/health"]["get"].is_object(), "{doc}");
}

#[tokio::test]
async fn task_service_runs_its_interval_tasks_at_start_and_schedules_the_cron_task() {
    let mut registry = Tap::bind("registry_admin_exchange", "registry.register").await;
    let svc = Example::start("task-service", &[]).await;
    svc.wait_for_line("tick #1 (every 10 s, the first at start)")
        .await;
    svc.wait_for_line("cleanup #1 (every 30 s, from app.cleanup.interval)")
        .await;
    // The cron task is not immediate: it is in the catalogue sent to the registry with its
    // schedule (as the cron parser prints `0 3 * * MON-FRI`), and has not run.
    let iid = svc.instance_id.clone();
    let register = registry
        .next_matching("registry.register of task-service", |b| {
            b["instance_id"] == json!(iid)
        })
        .await;
    let tasks: Vec<&Value> = register["entrypoints"]
        .as_array()
        .expect("entrypoints")
        .iter()
        .filter(|e| e["type"] == json!("task"))
        .collect();
    assert!(
        tasks.contains(
            &&json!({"type": "task", "handler": "nightly_report", "schedule": "0 3 * * 1-5"})
        ),
        "{tasks:?}"
    );
    assert!(
        tasks.contains(&&json!({"type": "task", "handler": "tick", "schedule": 10})),
        "{tasks:?}"
    );
    assert!(
        tasks.contains(&&json!({"type": "task", "handler": "cleanup", "schedule": 30})),
        "{tasks:?}"
    );
    assert!(!svc.log().contains("nightly report"), "{}", svc.log());
}

#[tokio::test]
async fn broadcast_reaches_every_replica() {
    use kontiki_generated::broadcast::CacheInvalidate;
    use kontiki_generated::broadcast::cache_service::CacheServicePublisher;
    let a = Example::start("broadcast", &[]).await;
    let b = Example::start("broadcast", &[]).await;
    let key = marker("key");
    CacheServicePublisher::new(messenger().await)
        .cache_invalidate(&CacheInvalidate { key: key.clone() })
        .await
        .unwrap();
    for replica in [&a, &b] {
        replica
            .wait_for_line(&format!(
                "cache.invalidate {key:?} reached instance {}",
                replica.instance_id
            ))
            .await;
    }
}

#[tokio::test]
async fn session_steps_reach_the_replica_that_opened_the_session() {
    use kontiki_generated::session::Step;
    use kontiki_generated::session::session_service::SessionServiceClient;
    let a = Example::start("session", &[]).await;
    let b = Example::start("session", &[]).await;
    let client = SessionServiceClient::new(messenger().await);
    // Open sessions until each replica holds one (opening is a competing RPC).
    let (mut on_a, mut on_b) = (None, None);
    for _ in 0..50 {
        let s = client.open_session().await.unwrap();
        let iid = s.session().instance_id().to_owned();
        if iid == a.instance_id {
            on_a.get_or_insert(s);
        } else if iid == b.instance_id {
            on_b.get_or_insert(s);
        } else {
            panic!("a session with an unknown instance {iid}");
        }
        if on_a.is_some() && on_b.is_some() {
            break;
        }
    }
    let (on_a, on_b) = (on_a.expect("a session on A"), on_b.expect("a session on B"));
    let (for_a, for_b) = (marker("a"), marker("b"));
    for seq in 1..=3 {
        on_a.session_step(&Step {
            seq,
            data: for_a.clone(),
        })
        .await
        .unwrap();
        on_b.session_step(&Step {
            seq,
            data: for_b.clone(),
        })
        .await
        .unwrap();
    }
    for (replica, mine) in [(&a, &for_a), (&b, &for_b)] {
        replica
            .wait_for_line(&format!(
                "session.step #3 {mine:?} reached instance {}",
                replica.instance_id
            ))
            .await;
    }
    for (replica, other) in [(&a, &for_b), (&b, &for_a)] {
        assert!(
            !replica.log().contains(other.as_str()),
            "a step of the other session reached {}:\n{}",
            replica.instance_id,
            replica.log()
        );
    }
}

#[tokio::test]
async fn heartbeat_reports_degraded_while_the_directory_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ready");
    let dir_str = dir.to_str().expect("a UTF-8 temp path").to_owned();
    let mut heartbeats = Tap::bind("registry_admin_exchange", "registry.heartbeat").await;
    let svc = Example::start("heartbeat", &[("HEARTBEAT_DIR", &dir_str)]).await;
    let iid = svc.instance_id.clone();
    let degraded = heartbeats
        .next_matching("a degraded heartbeat", |b| {
            b["instance_id"] == json!(iid) && b["degraded"] == json!(true)
        })
        .await;
    // Kontiki's keys, plus the instance's counters (`stats`, kontiki-rs only).
    let mut degraded = degraded;
    let stats = degraded
        .as_object_mut()
        .and_then(|b| b.remove("stats"))
        .expect("the heartbeat carries the instance's counters");
    assert_eq!(stats["rpc_ok"], json!(0), "{stats}");
    assert_eq!(
        degraded,
        json!({
            "service_name": "heartbeat-service",
            "instance_id": iid,
            "degraded": true,
            "reason": format!("directory {dir_str} is missing"),
        })
    );
    svc.wait_for_line(&format!("degraded: directory {dir_str} is missing"))
        .await;
    std::fs::create_dir(&dir).unwrap();
    let healthy = heartbeats
        .next_matching("a healthy heartbeat", |b| {
            b["instance_id"] == json!(iid) && b["degraded"] == json!(false)
        })
        .await;
    assert!(healthy.get("reason").is_none(), "{healthy}");
    svc.wait_for_line("healthy").await;
}

/// The quickstart (README's first command) against the broker of the tests.
#[test]
fn quickstart_prints_the_tour() {
    quickstart_tour(
        Some(&examples_tests::amqp_url()),
        "kontiki-rs quickstart over amqp://",
    );
}

/// The quickstart as README's first command runs it: no `KONTIKI_AMQP_URL`, so over its own
/// in-process `memory://` broker; no RabbitMQ is involved.
#[test]
fn quickstart_runs_without_a_broker() {
    quickstart_tour(None, "kontiki-rs quickstart over memory://");
}

fn quickstart_tour(url: Option<&str>, first_line: &str) {
    let mut cmd = std::process::Command::new(examples_tests::example_bin("quickstart"));
    cmd.current_dir(examples_tests::repo_root());
    match url {
        Some(url) => cmd.env("KONTIKI_AMQP_URL", url),
        None => cmd.env_remove("KONTIKI_AMQP_URL"),
    };
    let out = cmd.output().expect("run the quickstart");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "quickstart failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    let expected = [
        first_line,
        "compute-api.compute(21)              -> 42 (the delegate read app.cache.ttl_seconds = 60)",
        "rpc-service.rpc_example(\"ok\")        -> \"ok\"",
        "rpc-service.rpc_example(\"bad_input\") -> client error USER_INPUT_ERROR: Invalid feature value",
        "api-gateway.compute(\"bad_input\")     -> client error USER_INPUT_ERROR: Invalid feature value (passed on from rpc-service)",
        "published thing_happened {\"id\":7}    -> compute-api handled it and published thing_processed {\"payload\":{\"id\":7}}",
        "GET /health (http-simple)            -> 200 {\"message\":\"ok\"}",
        "nobody.anything                      -> unknown service `nobody`",
    ];
    assert_eq!(lines.len(), expected.len(), "{stdout}");
    for (line, start) in lines.iter().zip(expected) {
        assert!(
            line.starts_with(start),
            "expected {start:?}, got {line:?}\n{stdout}"
        );
    }
}

#[tokio::test]
async fn tenant_api_passes_the_tenant_header_from_call_to_event() {
    use tenant_api::tenants::tenant_api::{SaveNoteClientError, TenantApiClient, headers};
    let svc = Example::start("tenant-api", &[]).await;
    let options = CallOptions::default().instance(&svc.instance_id);
    let client = TenantApiClient::new(messenger().await).with_options(options.clone());
    let note = marker("note");
    let tenant = marker("tenant");
    let acting = TenantApiClient::new(messenger().await)
        .with_options(options.header(headers::TENANT, tenant.as_str()));
    assert_eq!(acting.save_note(&note).await.unwrap(), tenant);
    svc.wait_for_line(&format!("note.saved for tenant {tenant}: {note}"))
        .await;
    match client.save_note(&note).await {
        Err(RpcError::Client {
            error: SaveNoteClientError::NoTenant { message },
            ..
        }) => assert_eq!(message, "the tenant header is missing"),
        other => panic!("expected NO_TENANT, got {other:?}"),
    }
}

#[tokio::test]
async fn orders_worker_dead_letters_then_ships_on_replay() {
    use orders_worker::orders::OrderPlaced;
    use orders_worker::orders::orders_worker::{OrdersWorkerClient, SERVICE_NAME, events};
    let svc = Example::start("orders-worker", &[]).await;
    let m = messenger().await;
    // Leftovers of an earlier run would be replayed too: start from an empty failed queue.
    let left = m
        .list_failed(SERVICE_NAME, events::ORDER_PLACED, 0)
        .await
        .unwrap()
        .count;
    m.drop_failed(SERVICE_NAME, events::ORDER_PLACED, left)
        .await
        .unwrap();
    let id = marker("o");
    m.publish(events::ORDER_PLACED, &OrderPlaced { id: id.clone() })
        .await
        .unwrap();
    // Three deliveries fail, then the broker dead-letters the event.
    let closed = format!("order {id}: the warehouse is closed; failing");
    svc.wait_for_lines(&closed, 3).await;
    let deadline = tokio::time::Instant::now() + examples_tests::WAIT;
    let failed = loop {
        let page = m
            .list_failed(SERVICE_NAME, events::ORDER_PLACED, 10)
            .await
            .unwrap();
        if page.count > 0 {
            break page;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not dead-lettered; log:\n{}",
            svc.log()
        );
        // The broker moves it right after the third nack; ask again shortly.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(failed.count, 1);
    assert_eq!(failed.messages[0].body["id"], id.as_str());
    assert_eq!(svc.log().matches(&closed).count(), 3, "{}", svc.log());

    let client = OrdersWorkerClient::new(m.clone())
        .with_options(CallOptions::default().instance(&svc.instance_id));
    assert!(client.shipped().await.unwrap().is_empty());
    client.open_warehouse().await.unwrap();
    assert_eq!(
        m.replay_failed(SERVICE_NAME, events::ORDER_PLACED, 10)
            .await
            .unwrap(),
        1
    );
    svc.wait_for_line(&format!("order {id} shipped")).await;
    assert_eq!(client.shipped().await.unwrap(), [id]);
}
