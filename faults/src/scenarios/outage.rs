//! 15: events across a long broker outage (issue 15, item 8).
//!
//! Kontiki declares `event_exchange` non-durable, so a broker restart drops every binding of a
//! durable competing queue whose consumer is down; until the consumer declares it again, an
//! event for it reaches no queue. The scenario measures what a publisher is told meanwhile,
//! in two parts:
//!
//! 1. **No registry.** The consumer stops, the broker restarts, and two publishers send while
//!    it is down: a default one (Kontiki's behaviour) and one with
//!    `kontiki.amqp.events.fail_when_subscribers_gone`. The default publisher gets
//!    `Unroutable` during its 30 s recovery window and confirmed-but-dropped events after it
//!    (the window this scenario documents, asserted exactly); the other gets `Unroutable` for
//!    every event and has nothing dropped silently.
//! 2. **With the Rust registry.** The registry knows the consumer's subscription and binds its
//!    queue again on its new connection, before its own `#` binding makes every event
//!    routable: events published from the restart on either reach the queue or fail, and the
//!    consumer handles every confirmed one when it returns (0 lost).

use super::{
    PublishStats, Report, messenger, publish_load, queue_depth, record_file, temp_dir,
    wait_registered, wait_until,
};
use crate::procs::{self, Spec};
use crate::{Ctx, unique};
use kontiki_rt::{Error, Messenger};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

/// Each publish waits this long (the messengers' RPC timeout bounds a publish).
const WAIT: Duration = Duration::from_secs(2);
/// The registry part waits longer: a publish right after the restart waits for the
/// reconnection, and then for the registry to bind the queue again.
const REGISTRY_WAIT: Duration = Duration::from_secs(5);
/// The registry part's 5 publishers each send one event per 200 ms (load shaping: the events
/// span the registry's reconnection).
const PACE: Duration = Duration::from_millis(200);

pub(super) async fn outage_bindings(ctx: &Ctx, name: &str) -> Result<Report, String> {
    let mut report = Report::new(name, REGISTRY_WAIT);
    let dir = temp_dir()?;
    without_registry(ctx, dir.path(), &mut report).await?;
    with_registry(ctx, dir.path(), &mut report).await?;
    report.check_common();
    Ok(report)
}

/// Publishes `n` from `m` and says whether the broker confirmed it.
async fn publish_one(m: &Messenger, event: &str, n: u64) -> Result<(), Error> {
    m.publish(event, &json!({ "n": n })).await
}

/// The handled numbers of the record files (a missing file counts as empty).
fn handled(files: &[PathBuf]) -> Result<BTreeMap<u64, u32>, String> {
    let paths: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    procs::read_records(&paths)
}

/// Waits (at most `limit`) until every number of `wanted` was handled.
async fn wait_handled(files: &[PathBuf], wanted: &[u64], limit: Duration) -> bool {
    wait_until(limit, || {
        handled(files).is_ok_and(|h| wanted.iter().all(|n| h.contains_key(n)))
    })
    .await
}

/// Whether `queue` is bound to `event_exchange` with `key` (`rabbitmqctl list_bindings`).
async fn bound(ctx: &Ctx, queue: &str, key: &str) -> Result<bool, String> {
    let node = ctx.node.clone();
    let out = tokio::task::spawn_blocking(move || {
        node.ctl(&[
            "-q",
            "list_bindings",
            "source_name",
            "destination_name",
            "routing_key",
        ])
    })
    .await
    .map_err(|e| format!("list_bindings task: {e}"))??;
    let line = format!("{}\t{queue}\t{key}", kontiki_rt::wire::EVENT_EXCHANGE);
    Ok(out.lines().any(|l| l.trim_end() == line))
}

/// The error kinds of `stats` other than `allowed`, as `kind xN`.
fn unexpected_kinds(stats: &PublishStats, allowed: &[&str]) -> Vec<String> {
    stats
        .kinds
        .iter()
        .filter(|(k, _)| !allowed.contains(k))
        .map(|(k, v)| format!("{k} x{v}"))
        .collect()
}

fn errors(stats: &PublishStats) -> u64 {
    stats.kinds.values().sum()
}

fn sent(stats: &PublishStats) -> u64 {
    stats.confirmed.len() as u64 + errors(stats) + stats.hung
}

fn add_publishes(report: &mut Report, stats: &PublishStats) {
    report.hung += stats.hung;
    report.max_latency = report.max_latency.max(stats.max_latency);
}

async fn publish_batch(m: &Messenger, event: &str, first: u64, per: u64) -> PublishStats {
    let publishers = 2;
    publish_load(
        m,
        event,
        first,
        publishers,
        per,
        None,
        WAIT,
        Arc::new(AtomicU64::new(0)),
    )
    .await
}

async fn without_registry(ctx: &Ctx, dir: &Path, report: &mut Report) -> Result<(), String> {
    let in_window = ctx.scale.pick(2, 5);
    let after_window = ctx.scale.pick(10, 250);
    let svc = unique("outage");
    let mut spec = Spec::new(&svc);
    spec.record = Some(record_file(dir, "plain-rust-1"));
    let consumer = procs::spawn_rust(ctx, &spec, "rust-1").await?;
    let plain = messenger(ctx, "faults-plain", WAIT).await?;
    let strict = messenger(ctx, "faults-strict", WAIT).await?;
    strict.set_fail_when_subscribers_gone(true);
    let mut files = vec![spec.record.clone().ok_or("no record file")?];

    // Both publishers see the event delivered while the consumer runs.
    for (m, n) in [(&plain, 0), (&strict, 1)] {
        publish_one(m, &spec.tick, n)
            .await
            .map_err(|e| format!("publish before the outage: {e}"))?;
    }
    if !wait_handled(&files, &[0, 1], Duration::from_secs(30)).await {
        return Err("the consumer did not handle the events before the outage".to_owned());
    }
    report.note(format!("consumer stop: {}", consumer.stop().await));
    let restart = Instant::now();
    ctx.node.restart().await?;
    report.note(format!(
        "no registry: broker restarted (stop_app + start_app, {:.1?}) while the consumer was down",
        restart.elapsed()
    ));

    // In the default publisher's recovery window (30 s after it reconnected): an unroutable
    // event may be a subscriber that has not bound its queue again yet, so it is retried for
    // the wait and then fails.
    let (a_plain, a_strict) = tokio::join!(
        publish_batch(&plain, &spec.tick, 1_000, in_window),
        publish_batch(&strict, &spec.tick, 2_000, in_window)
    );
    // Out of it: probe until a default publish is confirmed again (it then reaches no queue).
    let mut probes = Vec::new();
    let mut probe_errors: BTreeMap<String, u64> = BTreeMap::new();
    let probing = Instant::now();
    let mut n = 5_000;
    loop {
        let outcome = publish_one(&plain, &spec.tick, n).await;
        n += 1;
        match outcome {
            Ok(()) => {
                probes.push(n - 1);
                break;
            }
            Err(e) => {
                *probe_errors
                    .entry(super::error_kind(&e.to_string()))
                    .or_default() += 1
            }
        }
        if probing.elapsed() > Duration::from_secs(90) {
            return Err("the default publisher never got a confirmed publish again".to_owned());
        }
    }
    let window_end = restart.elapsed();
    let (b_plain, b_strict) = tokio::join!(
        publish_batch(&plain, &spec.tick, 3_000, after_window / 2),
        publish_batch(&strict, &spec.tick, 4_000, after_window / 2)
    );
    let queue = kontiki_rt::wire::competing_queue(&svc, &spec.tick);
    let depth = queue_depth(&ctx.node.url, &queue).await?;

    // The consumer comes back: it declares its binding again and handles what follows.
    spec.record = Some(record_file(dir, "plain-rust-2"));
    files.push(spec.record.clone().ok_or("no record file")?);
    let back = procs::spawn_rust(ctx, &spec, "rust-2").await?;
    let c_plain = publish_batch(&plain, &spec.tick, 6_000, 5).await;
    if !wait_handled(&files, &c_plain.confirmed, Duration::from_secs(30)).await {
        report.check(false, || {
            "events published after the consumer came back were not handled".to_owned()
        });
    }
    let h = handled(&files)?;
    let dropped = |confirmed: &[u64]| confirmed.iter().filter(|n| !h.contains_key(n)).count();

    // The default publisher: its confirmed events of the outage all reached no queue.
    let plain_confirmed: Vec<u64> = a_plain
        .confirmed
        .iter()
        .chain(&probes)
        .chain(&b_plain.confirmed)
        .copied()
        .collect();
    let plain_dropped = dropped(&plain_confirmed);
    report.note(format!(
        "no registry, default publisher: {} events in its recovery window ({} Unroutable, {} confirmed); \
         the window ended {:.1?} after the restart ({} probes failed meanwhile: {:?}); then {} confirmed of {} sent; \
         {plain_dropped} confirmed events dropped (queue depth {depth:?} before the consumer returned)",
        sent(&a_plain),
        a_plain.kinds.get("Unroutable").copied().unwrap_or(0),
        a_plain.confirmed.len(),
        window_end,
        probe_errors.values().sum::<u64>(),
        probe_errors,
        b_plain.confirmed.len() + probes.len(),
        sent(&b_plain) + probes.len() as u64,
    ));
    report.check(
        plain_dropped == plain_confirmed.len() && depth == Some(0),
        || {
            format!(
                "docs/RELIABILITY.md says a default publisher's confirmed events for a consumer that is \
                 down after a broker restart reach no queue; here {plain_dropped} of {} were dropped (depth {depth:?})",
                plain_confirmed.len()
            )
        },
    );
    let bad = unexpected_kinds(&a_plain, &["Unroutable"]);
    report.check(bad.is_empty() && a_plain.confirmed.is_empty(), || {
        format!(
            "in the recovery window the default publisher should get Unroutable only; got {bad:?} and {} confirmed",
            a_plain.confirmed.len()
        )
    });
    report.check(errors(&b_plain) == 0, || {
        format!(
            "after its recovery window the default publisher got errors: {:?}",
            b_plain.kinds
        )
    });

    // fail_when_subscribers_gone: every publish of the outage failed; none dropped silently.
    let strict_confirmed: Vec<u64> = a_strict
        .confirmed
        .iter()
        .chain(&b_strict.confirmed)
        .copied()
        .collect();
    let strict_dropped = dropped(&strict_confirmed) as u64;
    let strict_sent = sent(&a_strict) + sent(&b_strict);
    report.note(format!(
        "no registry, fail_when_subscribers_gone: {strict_sent} sent, {} confirmed, {} Unroutable, {strict_dropped} dropped silently",
        strict_confirmed.len(),
        a_strict.kinds.get("Unroutable").copied().unwrap_or(0)
            + b_strict.kinds.get("Unroutable").copied().unwrap_or(0),
    ));
    for stats in [&a_strict, &b_strict] {
        let bad = unexpected_kinds(stats, &["Unroutable"]);
        report.check(bad.is_empty(), || {
            format!("fail_when_subscribers_gone publisher: unexpected errors {bad:?}")
        });
    }
    report.sent += strict_sent;
    report.confirmed += strict_confirmed.len() as u64;
    report.handled += strict_confirmed.len() as u64 - strict_dropped;
    report.lost += strict_dropped;
    report.errors += errors(&a_strict) + errors(&b_strict);
    for stats in [&a_plain, &b_plain, &c_plain, &a_strict, &b_strict] {
        add_publishes(report, stats);
    }
    plain.close().await;
    strict.close().await;
    report.note(format!("consumer stop: {}", back.stop().await));
    Ok(())
}

async fn with_registry(ctx: &Ctx, dir: &Path, report: &mut Report) -> Result<(), String> {
    let per = ctx.scale.pick(50, 250);
    let registry = procs::spawn_registry(ctx, "registry").await?;
    let svc = unique("outage-reg");
    let mut spec = Spec::new(&svc);
    spec.registration = true;
    spec.record = Some(record_file(dir, "registry-rust-1"));
    let mut files = vec![spec.record.clone().ok_or("no record file")?];
    let consumer = procs::spawn_rust(ctx, &spec, "rust-3").await?;
    let m = messenger(ctx, "faults-publisher", REGISTRY_WAIT).await?;
    if wait_registered(
        &m,
        std::slice::from_ref(&consumer.instance_id),
        Duration::from_secs(30),
    )
    .await
    .is_none()
    {
        return Err("the consumer never showed up in the registry".to_owned());
    }
    publish_one(&m, &spec.tick, 0)
        .await
        .map_err(|e| format!("publish before the outage: {e}"))?;
    if !wait_handled(&files, &[0], Duration::from_secs(30)).await {
        return Err("the consumer did not handle the event before the outage".to_owned());
    }
    report.note(format!("consumer stop: {}", consumer.stop().await));
    ctx.node.restart().await?;
    let up = Instant::now();

    // From the restart on: a publishing load (paced over a few seconds) while the registry
    // reconnects and binds the consumer's queue again.
    let queue = kontiki_rt::wire::competing_queue(&svc, &spec.tick);
    let load = {
        let (m, tick) = (m.clone(), spec.tick.clone());
        tokio::spawn(async move {
            publish_load(
                &m,
                &tick,
                1_000,
                5,
                per / 5,
                Some(PACE),
                REGISTRY_WAIT,
                Arc::new(AtomicU64::new(0)),
            )
            .await
        })
    };
    let mut restored = None;
    while up.elapsed() < Duration::from_secs(30) {
        if bound(ctx, &queue, &spec.tick).await? {
            restored = Some(up.elapsed());
            break;
        }
    }
    let stats = load.await.map_err(|e| format!("publishers: {e}"))?;
    report.note(format!(
        "with the registry: the consumer's binding was back {} after the broker accepted connections again \
         (rabbitmqctl list_bindings polled, about 0.5 s resolution)",
        restored.map_or("never (30 s)".to_owned(), |d| format!("{d:.1?}"))
    ));
    report.check(restored.is_some(), || {
        "the registry did not bind the consumer's queue again within 30 s".to_owned()
    });
    let depth = queue_depth(&ctx.node.url, &queue).await?;

    // The consumer returns and handles the backlog.
    spec.record = Some(record_file(dir, "registry-rust-2"));
    files.push(spec.record.clone().ok_or("no record file")?);
    let back = procs::spawn_rust(ctx, &spec, "rust-4").await?;
    let settled = wait_handled(&files, &stats.confirmed, Duration::from_secs(60)).await;
    let h = handled(&files)?;
    let lost = stats
        .confirmed
        .iter()
        .filter(|n| !h.contains_key(n))
        .count() as u64;
    let duplicated: u64 = stats
        .confirmed
        .iter()
        .filter_map(|n| h.get(n))
        .map(|c| u64::from(c.saturating_sub(1)))
        .sum();
    report.note(format!(
        "with the registry: {} sent from the restart on, {} confirmed ({} waiting in the queue before the consumer returned), \
         errors {:?}, {lost} lost{}",
        sent(&stats),
        stats.confirmed.len(),
        depth.unwrap_or(0),
        stats.kinds,
        if settled { "" } else { " (not all handled within 60 s)" }
    ));
    let bad = unexpected_kinds(&stats, &["Unroutable", "NotConnected", "Connect", "Amqp"]);
    report.check(bad.is_empty(), || {
        format!("with the registry: unexpected publish errors {bad:?}")
    });
    report.sent += sent(&stats);
    report.confirmed += stats.confirmed.len() as u64;
    report.handled += stats.confirmed.len() as u64 - lost;
    report.lost += lost;
    report.duplicated += duplicated;
    report.errors += errors(&stats);
    add_publishes(report, &stats);
    m.close().await;
    report.note(format!("consumer stop: {}", back.stop().await));
    report.note(format!("registry stop: {}", registry.stop().await));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unexpected_kinds_lists_only_the_others() {
        let mut stats = PublishStats::default();
        stats.kinds.insert("Unroutable", 3);
        stats.kinds.insert("Nacked", 1);
        assert_eq!(unexpected_kinds(&stats, &["Unroutable"]), ["Nacked x1"]);
        assert_eq!(errors(&stats), 4);
    }
}
