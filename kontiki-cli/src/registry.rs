//! `kontiki services` and `kontiki failed`: RPCs of the Kontiki registry (`ServiceRegistry`,
//! idl/registry.kontiki), Rust (kontiki-registry) or Python (kontiki_registry) alike.

use crate::cli::{FailedAction, FailedCommand, ServicesArgs};
use crate::conn::Broker;
use crate::exit::{Exit, Failure};
use crate::out;
use chrono::{DateTime, Utc};
use kontiki_rt::{Messenger, RpcError};
use serde_json::{Map, Value, json};

/// The registry's service name; Kontiki's clients hard-code it.
const REGISTRY: &str = "ServiceRegistry";

/// Calls a registry RPC with keyword arguments (kontiki-tui's form, which both registries take).
pub(crate) async fn registry_call(
    m: &Messenger,
    method: &str,
    kwargs: Value,
) -> Result<Value, Failure> {
    let kwargs = match kwargs {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    m.call(REGISTRY, method, Vec::new(), kwargs)
        .await
        .map_err(|e| match e {
            RpcError::UnknownService { .. } => Failure::new(
                Exit::UnknownService,
                "UNKNOWN_SERVICE",
                "no registry (ServiceRegistry) runs on this broker and vhost: start kontiki-registry",
            ),
            // A registry that ran before leaves its durable request queues behind: the
            // request waits there for the timeout.
            RpcError::Timeout { .. } => {
                let mut f = Failure::from_rpc(&e);
                f.line.push_str(" (is a registry running? start kontiki-registry)");
                f
            }
            other => Failure::from_rpc(&other),
        })
}

fn invalid_reply(method: &str, what: &str, got: &Value) -> Failure {
    Failure::new(
        Exit::Failure,
        "INVALID_REPLY",
        format_args!("{REGISTRY}.{method} returned {what}: {got}"),
    )
}

/// `kontiki services`.
pub(crate) async fn services(broker: &Broker, args: ServicesArgs) -> Result<(), Failure> {
    let m = broker.messenger().await?;
    let kwargs = match &args.status {
        Some(s) => json!({ "status": s }),
        None => json!({}),
    };
    let result = registry_call(&m, "get_services", kwargs).await;
    m.close().await;
    let services = result?;
    if args.json {
        let _ = out::json(&services, false);
        return Ok(());
    }
    let rows = service_rows(&services, Utc::now()).ok_or_else(|| {
        invalid_reply(
            "get_services",
            "something that is not {service: {instance: ...}}",
            &services,
        )
    })?;
    let _ = out::line(&out::table(
        &[
            "SERVICE",
            "INSTANCE",
            "STATUS",
            "VERSION",
            "HOST",
            "LAST HEARTBEAT",
            "REASON",
            "CALLS OK/ERR/FAIL",
            "MEAN",
            "EVENTS OK/RETRY/DEAD",
            "BUSY",
        ],
        &rows,
    ));
    Ok(())
}

/// The table rows of a `get_services` answer, sorted by service then instance; `None` when
/// it does not have the documented shape.
fn service_rows(services: &Value, now: DateTime<Utc>) -> Option<Vec<Vec<String>>> {
    let text = |v: Option<&Value>| match v {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "-".to_owned(),
    };
    let mut rows = Vec::new();
    // serde_json's map iterates in key order: rows come out sorted.
    for (service, instances) in services.as_object()? {
        for (iid, info) in instances.as_object()? {
            let meta = info.get("metadata");
            let mut row = vec![
                service.clone(),
                iid.clone(),
                text(info.get("status")),
                text(meta.and_then(|m| m.get("service_version"))),
                text(meta.and_then(|m| m.get("host"))),
                heartbeat(info.get("last_heartbeat"), now),
                text(info.get("degraded_reason")),
            ];
            row.extend(stats_columns(info.get("stats")));
            rows.push(row);
        }
    }
    Some(rows)
}

/// The counters a kontiki-rs instance sends with its heartbeats (the Rust registry keeps the
/// last): calls `ok/err/fail`, the mean answer time, events `ok/retried/dead-lettered` and the
/// work in flight; `-` for an instance that sends none (Python Kontiki).
fn stats_columns(stats: Option<&Value>) -> [String; 4] {
    let Some(stats) = stats.filter(|s| s.is_object()) else {
        return ["-", "-", "-", "-"].map(str::to_owned);
    };
    let n = |k: &str| stats.get(k).and_then(Value::as_u64).unwrap_or(0);
    let mean = stats
        .get("rpc_mean_ms")
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    [
        format!("{}/{}/{}", n("rpc_ok"), n("rpc_errors"), n("rpc_failed")),
        format!("{mean:.1} ms"),
        format!(
            "{}/{}/{}",
            n("events_ok"),
            n("events_retried"),
            n("events_dead_lettered")
        ),
        n("in_flight").to_string(),
    ]
}

/// `2026-11-29 14:30:01 (3s ago)`; `never` when the instance sent none.
fn heartbeat(value: Option<&Value>, now: DateTime<Utc>) -> String {
    let Some(Value::String(s)) = value else {
        return "never".to_owned();
    };
    let Ok(t) = DateTime::parse_from_rfc3339(s) else {
        return s.clone();
    };
    let t = t.with_timezone(&Utc);
    let age = (now - t).num_seconds().max(0);
    let ago = match age {
        0..120 => format!("{age}s"),
        120..7200 => format!("{}m", age / 60),
        7200..172_800 => format!("{}h", age / 3600),
        _ => format!("{}d", age / 86_400),
    };
    format!("{} ({ago} ago)", t.format("%Y-%m-%d %H:%M:%S"))
}

/// `kontiki failed list|replay|drop`.
pub(crate) async fn failed(broker: &Broker, cmd: FailedCommand) -> Result<(), Failure> {
    let m = broker.messenger().await?;
    let result = failed_with(&m, cmd).await;
    m.close().await;
    result
}

async fn failed_with(m: &Messenger, cmd: FailedCommand) -> Result<(), Failure> {
    match cmd {
        FailedCommand::List {
            service,
            event,
            limit,
            json,
        } => {
            let answer = list(m, &service, &event, limit).await?;
            if json {
                let _ = out::json(&answer, false);
                return Ok(());
            }
            let count = count_of(&answer, "list_failed_messages", "count")?;
            let messages = answer
                .get("messages")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let mut lines = vec![format!(
                "{count} failed message{} in {service}.{event}.failed{}",
                if count == 1 { "" } else { "s" },
                if messages.is_empty() {
                    String::new()
                } else {
                    format!(", {} shown, oldest first:", messages.len())
                }
            )];
            lines.extend(messages.iter().map(Value::to_string));
            let _ = out::line(&lines.join("\n"));
            Ok(())
        }
        FailedCommand::Replay(a) => act(m, a, "replay_failed_messages", "replayed").await,
        FailedCommand::Drop(a) => act(m, a, "drop_failed_messages", "dropped").await,
    }
}

async fn list(m: &Messenger, service: &str, event: &str, limit: u32) -> Result<Value, Failure> {
    registry_call(
        m,
        "list_failed_messages",
        json!({ "service_name": service, "name": event, "limit": limit }),
    )
    .await
}

fn count_of(answer: &Value, method: &str, key: &str) -> Result<u64, Failure> {
    answer
        .get(key)
        .and_then(Value::as_u64)
        .ok_or_else(|| invalid_reply(method, &format!("no `{key}` count"), answer))
}

/// Replay or drop: `--all` counts the queue first, so messages that fail again and come
/// back are not taken a second time.
async fn act(m: &Messenger, a: FailedAction, method: &str, key: &str) -> Result<(), Failure> {
    let count = if a.all {
        let answer = list(m, &a.service, &a.event, 0).await?;
        count_of(&answer, "list_failed_messages", "count")?
    } else {
        u64::from(a.count)
    };
    let answer = if count == 0 {
        json!({ key: 0 })
    } else {
        registry_call(
            m,
            method,
            json!({ "service_name": a.service, "name": a.event, "count": count }),
        )
        .await?
    };
    if a.json {
        let _ = out::json(&answer, false);
    } else {
        let n = count_of(&answer, method, key)?;
        let _ = out::line(&format!("{key} {n}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_become_sorted_rows() {
        let now = DateTime::parse_from_rfc3339("2026-11-29T04:20:50+00:00")
            .unwrap()
            .with_timezone(&Utc);
        let answer = json!({
            "proto-svc": {"77470e96": {"status": "degraded",
                "last_heartbeat": "2026-11-29T04:20:47.181931+00:00", "degraded_reason": "manual degrade",
                "metadata": {"service_version": "9.9.9", "host": "vm"},
                "stats": {"rpc_ok": 12, "rpc_errors": 2, "rpc_failed": 1, "rpc_mean_ms": 3.25,
                    "events_ok": 40, "events_retried": 3, "events_dead_lettered": 1, "in_flight": 2}}},
            "a-svc": {"i2": {"status": "down", "last_heartbeat": null, "degraded_reason": null, "metadata": {}}}
        });
        let rows = service_rows(&answer, now).unwrap();
        assert_eq!(
            rows,
            vec![
                vec![
                    "a-svc", "i2", "down", "-", "-", "never", "-", "-", "-", "-", "-"
                ],
                vec![
                    "proto-svc",
                    "77470e96",
                    "degraded",
                    "9.9.9",
                    "vm",
                    "2026-11-29 04:20:47 (2s ago)",
                    "manual degrade",
                    "12/2/1",
                    "3.2 ms",
                    "40/3/1",
                    "2"
                ],
            ]
        );
        assert!(service_rows(&json!([1]), now).is_none());
    }

    #[test]
    fn heartbeat_ages_read_well() {
        let now = DateTime::parse_from_rfc3339("2026-11-29T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let at = |s: &str| heartbeat(Some(&json!(s)), now);
        assert_eq!(at("2026-11-29T11:55:00Z"), "2026-11-29 11:55:00 (5m ago)");
        assert_eq!(
            at("2026-11-29T06:00:00+00:00"),
            "2026-11-29 06:00:00 (6h ago)"
        );
        assert_eq!(at("2026-11-20T12:00:00Z"), "2026-11-20 12:00:00 (9d ago)");
        assert_eq!(at("yesterday"), "yesterday");
    }
}
