//! The service the fault-injection scenarios run as subprocesses (`faults-svc --config FILE`).
//!
//! * RPCs: `echo(x)` → `x`; `slow(ms, call=None)` → sleeps `ms` then returns `[ms,
//!   instance_id]`; with a `call` number and `FAULTS_RPC_RECORD` set, it first appends the
//!   number and a newline to that file, so each run of the handler is one line (the scenarios
//!   count re-executions from it).
//! * `on_tick` (competing, `max_attempts` 3) on the event types of `app.events.tick`: the
//!   payload must be `{"n": <unsigned integer>}`, else the handler fails (so a malformed event
//!   is retried and dead-lettered). It sleeps `FAULTS_HANDLE_MS` (default 0) milliseconds, then
//!   appends `n` and a newline to the file `FAULTS_RECORD` with one `write` on a file opened in
//!   append mode, before the delivery is acked: what was written survives a SIGKILL, so the
//!   scenarios count handled events exactly (a kill between the write and the ack gives a
//!   duplicate, never a loss).
//!   A payload `{"n": <u64>, "hang": true}` is recorded the same way, then the handler waits
//!   forever: each delivery of it is one line, and only the handler timeout ends it.
//! * `maybe_hang(n, hang)` → `n`, or, when `hang` is true, never returns.
//! * `on_note` (broadcast) on `app.events.note` and `on_session` (in_session) on
//!   `app.events.session`: the same payload rule, nothing recorded.
//!
//! It logs `service started` with its instance id to stderr, like every kontiki-rt service.

use kontiki_rt::{
    Call, Event, EventEntrypoint, EventMode, HandlerError, RpcEntrypoint, Service, cli,
};
use serde_json::{Value, json};
use std::io::Write as _;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn tick_number(payload: &Value) -> Result<u64, HandlerError> {
    payload.get("n").and_then(Value::as_u64).ok_or_else(|| {
        HandlerError::server(format!("payload is not {{\"n\": u64}}: {payload:.80}"))
    })
}

/// The file the environment variable `var` names, opened for appending (`None` when unset);
/// `Err` (said on stderr) when it cannot be opened.
fn open_record(var: &str) -> Result<Option<Arc<Mutex<std::fs::File>>>, ()> {
    let Some(path) = std::env::var_os(var) else {
        return Ok(None);
    };
    match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
    {
        Ok(f) => Ok(Some(Arc::new(Mutex::new(f)))),
        Err(e) => {
            eprintln!("error: cannot open {var} {}: {e}", path.to_string_lossy());
            Err(())
        }
    }
}

fn main() -> ExitCode {
    let handle_ms: u64 = std::env::var("FAULTS_HANDLE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let Ok(record) = open_record("FAULTS_RECORD") else {
        return ExitCode::FAILURE;
    };
    let Ok(rpc_record) = open_record("FAULTS_RPC_RECORD") else {
        return ExitCode::FAILURE;
    };
    let service = Service::builder("faults-svc")
        .rpc(
            RpcEntrypoint::new("echo", |call: Call| async move { Ok(call.args[0].clone()) })
                .params(["x"]),
        )
        .rpc(
            RpcEntrypoint::new("maybe_hang", |call: Call| async move {
                if call.args[1] == Value::Bool(true) {
                    std::future::pending::<()>().await;
                }
                Ok(call.args[0].clone())
            })
            .params(["n", "hang"]),
        )
        .rpc(
            RpcEntrypoint::new("slow", move |call: Call| {
                let rpc_record = rpc_record.clone();
                async move {
                    let ms = call.args[0].as_u64().unwrap_or(0);
                    if let (Some(n), Some(file)) = (call.args[1].as_u64(), rpc_record) {
                        let mut file = file
                            .lock()
                            .map_err(|_| HandlerError::server("record file lock poisoned"))?;
                        file.write_all(format!("{n}\n").as_bytes()).map_err(|e| {
                            HandlerError::server(format!("cannot record call {n}: {e}"))
                        })?;
                    }
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    let iid = call.context.container().identity().instance_id.to_string();
                    Ok(json!([ms, iid]))
                }
            })
            .param("ms", true)
            .param("call", false),
        )
        .event(
            EventEntrypoint::from_config("on_tick", "app.events.tick", move |ev: Event| {
                let record = record.clone();
                async move {
                    let n = tick_number(&ev.payload)?;
                    let hang = ev.payload.get("hang") == Some(&Value::Bool(true));
                    if handle_ms > 0 && !hang {
                        tokio::time::sleep(Duration::from_millis(handle_ms)).await;
                    }
                    if let Some(file) = record {
                        let line = format!("{n}\n");
                        let mut file = file
                            .lock()
                            .map_err(|_| HandlerError::server("record file lock poisoned"))?;
                        file.write_all(line.as_bytes())
                            .map_err(|e| HandlerError::server(format!("cannot record {n}: {e}")))?;
                    }
                    if hang {
                        std::future::pending::<()>().await;
                    }
                    Ok(())
                }
            })
            .max_attempts(3),
        )
        .event(
            EventEntrypoint::from_config("on_note", "app.events.note", |ev: Event| async move {
                tick_number(&ev.payload).map(|_| ())
            })
            .mode(EventMode::Broadcast),
        )
        .event(
            EventEntrypoint::from_config(
                "on_session",
                "app.events.session",
                |ev: Event| async move { tick_number(&ev.payload).map(|_| ()) },
            )
            .mode(EventMode::InSession),
        )
        .build();
    match service {
        Ok(service) => cli::run(service, "kontiki-rs fault-injection test service.", "0.0.1"),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
