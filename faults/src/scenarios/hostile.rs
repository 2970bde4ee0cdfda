//! 16: hostile input to services and the registry under call load (issue 15, item 6).
//!
//! Two instances of a service (registration on) and the Rust registry serve while 4 callers
//! call `slow(5 ms)`. Then, per round (CI 1, full 5): a 20 MiB event and a 20 MiB request
//! through a `Messenger` (each must fail alone with `MessageTooLarge`, before anything is
//! sent); headers nested 20,000 arrays deep, published by Python aio-pika, on a request to the
//! service, a request to the registry and a heartbeat (each request must be answered); and,
//! straight to the registry's intake, a registration with `heartbeat_interval` 1e20, bodies
//! that are not UTF-8 or not JSON, and JSON of the wrong shapes. Every call beside them must
//! succeed, every process must still run, and the registry must still list both instances.

use super::{Report, call_load, fill_calls, messenger, wait_registered};
use crate::procs::{self, Spec};
use crate::{Ctx, unique};
use kontiki_rt::{Error, RpcError};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const CALL_TIMEOUT: Duration = Duration::from_secs(5);
const MIB: usize = 1024 * 1024;
/// Bodies the registry's intake gets for each kind, besides the absurd registration.
const BAD_BODIES: [&[u8]; 4] = [
    b"\xff\xfe\x00{not json",
    b"[1, 2, 3]",
    br#"{"service_name": 5, "instance_id": {"a": []}}"#,
    br#"{"service_name": "\u00e9\ud800"}"#,
];
const INTAKE_KINDS: [&str; 5] = [
    "register",
    "heartbeat",
    "unregister",
    "exception",
    "context",
];

pub(super) async fn hostile_input(ctx: &Ctx, name: &str) -> Result<Report, String> {
    let mut report = Report::new(name, CALL_TIMEOUT);
    let rounds = ctx.scale.pick(1, 5);
    let registry = procs::spawn_registry(ctx, "registry").await?;
    let svc = unique("hostile");
    let mut spec = Spec::new(&svc);
    spec.registration = true;
    let rust1 = procs::spawn_rust(ctx, &spec, "rust-1").await?;
    let rust2 = procs::spawn_rust(ctx, &spec, "rust-2").await?;
    let ids = vec![rust1.instance_id.clone(), rust2.instance_id.clone()];
    let m = messenger(ctx, "faults-hostile", CALL_TIMEOUT).await?;
    let registered = wait_registered(&m, &ids, Duration::from_secs(30)).await;
    report.check(registered.is_some(), || {
        "the 2 instances never showed up in the registry".to_owned()
    });

    let stop = Arc::new(AtomicBool::new(false));
    let (stats, tasks) = call_load(&m, vec![svc.clone()], 4, 5, CALL_TIMEOUT, stop.clone());
    let (intake_conn, intake) = intake_channel(&ctx.node.url).await?;
    let big = "x".repeat(20 * MIB);
    let (mut oversize_typed, mut deep_answered, mut intake_confirmed) = (0u64, 0u64, 0u64);
    let mut sent = 0u64;
    for round in 0..rounds {
        // Oversize: one typed error each, nothing torn down.
        sent += 2;
        match m.publish(&spec.tick, &json!(big)).await {
            Err(Error::MessageTooLarge { .. }) => oversize_typed += 1,
            other => report.check(false, || format!("a 20 MiB event: {other:?}")),
        }
        match m
            .call(&svc, "echo", vec![json!(big)], serde_json::Map::new())
            .await
        {
            Err(RpcError::Transport(Error::MessageTooLarge { .. })) => oversize_typed += 1,
            other => report.check(false, || {
                format!("a 20 MiB request: {:?}", other.map(|_| "a result"))
            }),
        }
        // Headers nested 20,000 deep on a request to the service, a request to the registry
        // and a heartbeat.
        for (service, method, key) in [
            (svc.as_str(), "echo", None),
            (
                "ServiceRegistry",
                "list_instances",
                Some("registry.heartbeat"),
            ),
        ] {
            sent += 1 + u64::from(key.is_some());
            match deep_headers(&ctx.node.url, service, method, key, &svc).await {
                Ok(reply) if reply["success"] == json!(true) => deep_answered += 1,
                other => report.check(false, || {
                    format!("round {round}: the deep request to {service}: {other:?}")
                }),
            }
        }
        // The registry's intake: an absurd interval, then bodies it cannot read.
        let absurd = json!({
            "service_name": svc, "instance_id": format!("huge-interval-{round}"), "pid": 1,
            "host": "h", "heartbeat_interval": 1e20,
        });
        sent += 1 + (INTAKE_KINDS.len() * BAD_BODIES.len()) as u64;
        intake_confirmed += publish_intake(&intake, "register", absurd.to_string().as_bytes())
            .await
            .map_err(|e| format!("intake: {e}"))?;
        for kind in INTAKE_KINDS {
            for body in BAD_BODIES {
                intake_confirmed += publish_intake(&intake, kind, body)
                    .await
                    .map_err(|e| format!("intake: {e}"))?;
            }
        }
        // Its heartbeat makes the absurd instance active (computing its status with that
        // interval overflowed a Duration and panicked the registry's handlers once).
        let beat = json!({"service_name": svc, "instance_id": format!("huge-interval-{round}")});
        sent += 1;
        intake_confirmed += publish_intake(&intake, "heartbeat", beat.to_string().as_bytes())
            .await
            .map_err(|e| format!("intake: {e}"))?;
    }
    let _ = intake_conn.close(200, "done".into()).await;

    // Calls go on after all that, and the registry still knows both instances.
    let still = wait_registered(&m, &ids, Duration::from_secs(30)).await;
    report.check(still.is_some(), || {
        "the registry no longer lists the instances after the hostile input".to_owned()
    });
    // The registry reads its intake in its own time: poll until the absurd registrations show.
    let mut huge_listed = 0;
    let mut last_listed = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while tokio::time::Instant::now() < deadline {
        let listed = m
            .call(
                "ServiceRegistry",
                "list_instances",
                vec![json!(svc)],
                serde_json::Map::new(),
            )
            .await
            .map_err(|e| format!("list_instances after the hostile input: {e}"))?
            .to_string();
        huge_listed = (0..rounds)
            .filter(|r| listed.contains(&format!("huge-interval-{r}")))
            .count();
        last_listed = listed;
        if huge_listed == rounds {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    {
        let s = stats.lock().map_err(|_| "stats lock poisoned")?;
        fill_calls(&mut report, &s);
        let bad = s.sent - s.ok;
        report.check(bad == 0 && s.sent > 0, || {
            format!("{bad} of {} calls beside the hostile input failed", s.sent)
        });
    }
    let expected_oversize = 2 * rounds as u64;
    report.check(oversize_typed == expected_oversize, || {
        format!("{oversize_typed} of {expected_oversize} oversize messages got MessageTooLarge")
    });
    report.check(deep_answered == 2 * rounds as u64, || {
        format!(
            "{deep_answered} of {} deep-header requests answered",
            2 * rounds
        )
    });
    report.check(huge_listed == rounds, || {
        format!(
            "{huge_listed} of {rounds} registrations with a 1e20 s interval listed: {}",
            last_listed.chars().take(600).collect::<String>()
        )
    });
    for p in [&rust1, &rust2, &registry] {
        report.check(p.pid().is_some(), || format!("{} exited", p.label));
    }
    report.sent += sent;
    report.confirmed += oversize_typed + deep_answered + intake_confirmed;
    report.handled += deep_answered;
    report.errors += oversize_typed;
    report.note(format!(
        "{rounds} round(s): oversize {oversize_typed} of {expected_oversize} MessageTooLarge \
         (20 MiB event and request); deep headers (20,000 levels): {deep_answered} of {} \
         requests answered, {rounds} heartbeat(s) sent; registry intake: {intake_confirmed} \
         confirmed ({rounds} with heartbeat_interval 1e20, {} unreadable bodies), the 1e20 \
         instance(s) listed: {huge_listed}",
        2 * rounds,
        rounds * INTAKE_KINDS.len() * BAD_BODIES.len()
    ));
    report.note(format!(
        "after it all: both instances registered again within {}, every process running",
        still.map_or("never".to_owned(), |d| format!("{d:.2?}"))
    ));
    report.check_common();
    m.close().await;
    rust1.stop().await;
    rust2.stop().await;
    registry.stop().await;
    Ok(report)
}

/// A confirming channel on the node for the registry's intake.
async fn intake_channel(url: &str) -> Result<(lapin::Connection, lapin::Channel), String> {
    let conn = lapin::Connection::connect(url, lapin::ConnectionProperties::default())
        .await
        .map_err(|e| format!("connect to {url}: {e}"))?;
    let ch = conn
        .create_channel()
        .await
        .map_err(|e| format!("channel: {e}"))?;
    ch.confirm_select(lapin::options::ConfirmSelectOptions::default())
        .await
        .map_err(|e| format!("confirms: {e}"))?;
    Ok((conn, ch))
}

/// Publishes `body` to the registry intake `kind`; 1 when the broker confirmed it.
async fn publish_intake(ch: &lapin::Channel, kind: &str, body: &[u8]) -> lapin::Result<u64> {
    let confirm = ch
        .basic_publish(
            kontiki_registry::ADMIN_EXCHANGE.into(),
            format!("registry.{kind}").as_str().into(),
            lapin::options::BasicPublishOptions::default(),
            body,
            lapin::BasicProperties::default(),
        )
        .await?
        .await?;
    Ok(u64::from(matches!(confirm, lapin::Confirmation::Ack(_))))
}

/// Runs kontiki-rt's `deep_headers.py` (lapin cannot write such headers) and returns the reply
/// to its request.
async fn deep_headers(
    url: &str,
    service: &str,
    method: &str,
    registry_key: Option<&str>,
    svc: &str,
) -> Result<Value, String> {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../kontiki-rt/tests/py/deep_headers.py");
    let event = format!("{svc}.nobody");
    let mut cmd = tokio::process::Command::new(procs::python()?);
    cmd.arg(script)
        .args(["--url", url, "--service", service, "--method", method])
        .args(["--event", &event, "--depth", "20000"]);
    if let Some(key) = registry_key {
        cmd.args(["--registry-key", key]);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .map_err(|_| "deep_headers.py did not end within 60 s".to_owned())?
        .map_err(|e| format!("deep_headers.py: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line: Value = serde_json::from_str(stdout.trim())
        .map_err(|e| format!("deep_headers.py printed {stdout:?}: {e}"))?;
    Ok(line["reply"].clone())
}
