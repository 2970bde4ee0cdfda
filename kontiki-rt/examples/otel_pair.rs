//! A service for the OpenTelemetry trace test (`tests/otel_traces.rs`), run twice as separate
//! processes, and an example of a traced service:
//!
//! ```text
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 \
//!   cargo run -p kontiki-rt --features otel --example otel_pair -- --config pair.yaml
//! ```
//!
//! - `GET /relay/{x}` calls `double(x)` on the service named by `otel_pair.peer` and answers
//!   `{"doubled": 2x}`;
//! - the RPC `double(x)` publishes the event named by `otel_pair.publish` (when set) with
//!   `{"value": 2x}` and returns `2x`;
//! - the event handler `on_doubled` takes the event types listed in `otel_pair.events` and logs
//!   `handled doubled <value>`.

use kontiki_rt::http::{HttpError, HttpRequest, HttpResponse, HttpRoute, Method, StatusCode};
use kontiki_rt::{
    BoxError, Call, Config, Event, EventEntrypoint, HandlerError, RpcEntrypoint, Service, cli,
};
use serde_json::{Map, json};
use std::process::ExitCode;

fn service(_config: &Config) -> Result<Service, BoxError> {
    Ok(Service::builder("otel-pair")
        .http(HttpRoute::new(
            Method::GET,
            "/relay/{x}",
            |req: HttpRequest| async move {
                let x: i64 = req.path_param("x")?;
                let peer = req
                    .context
                    .container()
                    .config()
                    .string("otel_pair.peer")
                    .map_err(HttpError::internal)?;
                let doubled = req
                    .context
                    .messenger()
                    .call(&peer, "double", vec![json!(x)], Map::new())
                    .await
                    .map_err(HttpError::internal)?;
                Ok(HttpResponse::json(
                    StatusCode::OK,
                    &json!({ "doubled": doubled }),
                ))
            },
        ))
        .rpc(
            RpcEntrypoint::new("double", |call: Call| async move {
                let x = call.args[0].as_i64().ok_or_else(|| {
                    HandlerError::client("INVALID_ARGUMENTS", "x must be an integer")
                })?;
                let container = call.context.container();
                if let Some(event) = container
                    .config()
                    .get::<String>("otel_pair.publish")
                    .map_err(HandlerError::internal)?
                {
                    call.context
                        .messenger()
                        .publish(&event, &json!({ "value": x * 2 }))
                        .await
                        .map_err(HandlerError::internal)?;
                }
                Ok(json!(x * 2))
            })
            .params(["x"]),
        )
        .event(EventEntrypoint::from_config(
            "on_doubled",
            "otel_pair.events",
            |event: Event| async move {
                tracing::info!("handled doubled {}", event.payload["value"]);
                Ok(())
            },
        ))
        .build()?)
}

fn main() -> ExitCode {
    cli::run_configured_main(
        "otel_pair",
        "A traced service for the OpenTelemetry test.",
        "0.0.1",
        std::env::args_os(),
        service,
    )
}
