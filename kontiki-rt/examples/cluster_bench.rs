//! Scale-out benchmark helper (`make bench`, the `cluster` section of `scripts/bench/run.py`):
//! replicas of one service and a load generator, each a process of its own, on the broker(s)
//! of `KONTIKI_AMQP_URL` (a comma-separated list for the three-node cluster).
//!
//! Run:
//!
//! * `cluster_bench serve NAME`: the service `NAME` with the RPC `echo(x) -> x`, the RPC
//!   `handled() -> n` (events this instance handled) and the competing event handler `on_tick`
//!   on `NAME.tick` (counts, nothing else); registration disabled. Prints `READY <instance id>`
//!   on stdout once it consumes, then waits for SIGINT/SIGTERM.
//! * `cluster_bench load NAME IID[,IID…] --calls N --concurrency C --events N --publishers P`:
//!   one stand-alone `Messenger` calls `NAME.echo` N times from C tasks (after 200 warm-up
//!   calls), then publishes N `NAME.tick` events from P tasks (each publish confirmed) and waits
//!   until the replicas IID… together handled them all (asking each its `handled()` every
//!   50 ms). Prints one JSON line: `calls_per_s` (calls / time of the calls), `events_per_s`
//!   (events / time from the first publish to the last one handled), and the error counts.

use kontiki_rt::{BoxError, Call, CallOptions, Config, Event, EventEntrypoint, Messenger};
use kontiki_rt::{RpcEntrypoint, Service};
use serde_json::{Value, json};
use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

async fn serve(url: &str, name: &str) -> Result<(), BoxError> {
    let handled = Arc::new(AtomicU64::new(0));
    let count = handled.clone();
    let service = Service::builder(name)
        .rpc(
            RpcEntrypoint::new("echo", |call: Call| async move {
                Ok(call.args.into_iter().next().unwrap_or(Value::Null))
            })
            .params(["x"]),
        )
        .rpc(RpcEntrypoint::new("handled", move |_call: Call| {
            let n = count.load(Ordering::Relaxed);
            async move { Ok(json!(n)) }
        }))
        .event(EventEntrypoint::new(
            "on_tick",
            [format!("{name}.tick")],
            move |_ev: Event| {
                handled.fetch_add(1, Ordering::Relaxed);
                async { Ok(()) }
            },
        ))
        .build()?;
    let yaml = format!(
        "kontiki:\n  service_name: {name}\n  amqp:\n    url: \"{url}\"\n  registration:\n    disable: true\n  shutdown:\n    grace_seconds: 1\n"
    );
    let config = Config::from_yaml_str("cluster_bench.yaml", &yaml)?;
    let running = service.start(config).await?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "READY {}", running.identity().instance_id)?;
        out.flush()?;
    }
    kontiki_rt::shutdown_signal().await;
    running.shutdown().await;
    Ok(())
}

/// The value of `--flag N`.
fn flag(args: &[String], name: &str) -> Result<u64, BoxError> {
    let at = args
        .iter()
        .position(|a| a == name)
        .ok_or_else(|| format!("{name} is missing"))?;
    let v = args
        .get(at + 1)
        .ok_or_else(|| format!("{name} needs a value"))?;
    Ok(v.parse().map_err(|e| format!("{name} {v}: {e}"))?)
}

/// Sum of `handled()` over the replicas.
async fn handled(m: &Messenger, name: &str, iids: &[String]) -> Result<u64, BoxError> {
    let mut sum = 0;
    for iid in iids {
        let body = serde_json::to_vec(&json!({"args": [], "kwargs": {}}))?;
        let n = m
            .call_raw(
                name,
                "handled",
                body,
                CallOptions::default().instance(iid.clone()),
            )
            .await?;
        sum += n.as_u64().ok_or("handled() did not return a number")?;
    }
    Ok(sum)
}

/// Runs `total` operations from `tasks` tasks; returns (seconds, errors).
async fn run_tasks<F, Fut>(total: u64, tasks: u64, op: F) -> (f64, u64)
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let (next, errors, op) = (next.clone(), errors.clone(), op.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        break;
                    }
                    if !op(i).await {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for h in handles {
        let _ = h.await;
    }
    (
        start.elapsed().as_secs_f64(),
        errors.load(Ordering::Relaxed),
    )
}

async fn load(url: &str, name: &str, iids: &str, args: &[String]) -> Result<(), BoxError> {
    let iids: Vec<String> = iids.split(',').map(str::to_owned).collect();
    let (calls, concurrency) = (flag(args, "--calls")?, flag(args, "--concurrency")?);
    let (events, publishers) = (flag(args, "--events")?, flag(args, "--publishers")?);
    let m = Messenger::builder(url)
        .client_name("cluster-bench")
        .rpc_timeout(Duration::from_secs(10))
        .connect()
        .await?;
    let call = {
        let (m, name) = (m.clone(), name.to_owned());
        move |i: u64| {
            let (m, name) = (m.clone(), name.clone());
            async move {
                m.call(&name, "echo", vec![json!(i)], Default::default())
                    .await
                    .is_ok()
            }
        }
    };
    run_tasks(200, concurrency, call.clone()).await;
    let (call_secs, call_errors) = run_tasks(calls, concurrency, call).await;

    let before = handled(&m, name, &iids).await?;
    let start = Instant::now();
    let publish = {
        let (m, event) = (m.clone(), format!("{name}.tick"));
        move |i: u64| {
            let (m, event) = (m.clone(), event.clone());
            async move { m.publish(&event, &json!({ "n": i })).await.is_ok() }
        }
    };
    let (_, publish_errors) = run_tasks(events, publishers, publish).await;
    let want = before + events - publish_errors;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let now = handled(&m, name, &iids).await?;
        if now >= want {
            break;
        }
        if Instant::now() >= deadline {
            return Err(
                format!("only {} of {events} events handled in 120 s", now - before).into(),
            );
        }
        // Polling the replicas' counters; the figure is taken when they reach the total.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let event_secs = start.elapsed().as_secs_f64();
    m.close().await;
    println!(
        "{}",
        json!({
            "calls": calls,
            "calls_per_s": calls as f64 / call_secs,
            "call_errors": call_errors,
            "events": events,
            "events_per_s": events as f64 / event_secs,
            "publish_errors": publish_errors,
        })
    );
    Ok(())
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let url = std::env::var("KONTIKI_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned());
    let result = match (args.first().map(String::as_str), args.get(1), args.get(2)) {
        (Some("serve"), Some(name), _) => serve(&url, name).await,
        (Some("load"), Some(name), Some(iids)) => load(&url, name, iids, &args[3..]).await,
        _ => {
            eprintln!(
                "usage: cluster_bench serve NAME | cluster_bench load NAME IID[,IID...] \
                 --calls N --concurrency C --events N --publishers P"
            );
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("cluster_bench: {e}");
        std::process::exit(1);
    }
}
