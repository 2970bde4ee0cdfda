//! A small service run by the kontiki-rt integration tests as a separate process, and an
//! example of the runner: `cargo run -p kontiki-rt --example testsvc -- --config svc.yaml`.
//!
//! RPCs: `double(x)` → `2x`, `slow(ms)` → sleeps then returns `[ms, instance_id]`,
//! `whoami()` → the instance id. It logs `service started` with its instance id to stderr.

use kontiki_rt::{Call, HandlerError, RpcEntrypoint, Service, cli};
use serde_json::json;
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let service = Service::builder("testsvc")
        .rpc(
            RpcEntrypoint::new("double", |call: Call| async move {
                let x = call.args[0].as_i64().ok_or_else(|| {
                    HandlerError::client("INVALID_ARGUMENTS", "x must be an integer")
                })?;
                Ok(json!(x * 2))
            })
            .params(["x"]),
        )
        .rpc(
            RpcEntrypoint::new("slow", |call: Call| async move {
                let ms = call.args[0].as_u64().unwrap_or(0);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                let iid = call.context.container().identity().instance_id.to_string();
                Ok(json!([ms, iid]))
            })
            .params(["ms"]),
        )
        .rpc(RpcEntrypoint::new("whoami", |call: Call| async move {
            Ok(json!(
                call.context.container().identity().instance_id.to_string()
            ))
        }))
        .build();
    match service {
        Ok(service) => cli::run(service, "kontiki-rt test service.", "0.0.1"),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
