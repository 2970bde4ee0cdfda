//! The kontiki-rs tour: `compute-api`, `rpc-service`, `api-gateway` and `http-simple` (the
//! example crates of `examples/`) in one process, called through their generated clients.
//!
//! Run with: `cargo run -p quickstart`. The broker is `KONTIKI_AMQP_URL` when it is set
//! (`amqp://…` for RabbitMQ), else `memory://`, the in-process broker, so a fresh machine
//! needs nothing else. It prints what happened and exits 0:
//!
//! ```text
//! kontiki-rs quickstart over amqp://127.0.0.1:5672/kontiki-examples
//! compute-api.compute(21)              -> 42 (the delegate read app.cache.ttl_seconds = 60)
//! rpc-service.rpc_example("ok")        -> "ok"
//! rpc-service.rpc_example("bad_input") -> client error USER_INPUT_ERROR: Invalid feature value
//! api-gateway.compute("bad_input")     -> client error USER_INPUT_ERROR: Invalid feature value (passed on from rpc-service)
//! published thing_happened {"id":7}    -> compute-api handled it and published thing_processed {"payload":{"id":7}}
//! GET /health (http-simple)            -> 200 {"message":"ok"}
//! nobody.anything                      -> unknown service `nobody`: no queue is bound for nobody.anything (answered at once)
//! ```

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use api_gateway as gateway;
use kontiki_generated::api_gateway::api_gateway::{ApiGatewayClient, ComputeClientError};
use kontiki_generated::compute::compute_api::{ComputeApiClient, events};
use kontiki_rt::{
    BoxError, Config, Event, EventEntrypoint, EventMode, Messenger, RpcError, RunningService,
    Service,
};
use rpc_service::idl::rpc_service::{RpcExampleClientError, RpcServiceClient};
use serde_json::{Value, json};

/// The broker when `KONTIKI_AMQP_URL` is not set: kontiki-rt's in-process broker.
const DEFAULT_URL: &str = "memory://";

/// How long the tour waits for an event or an HTTP answer.
const WAIT: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    let url = std::env::var("KONTIKI_AMQP_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| DEFAULT_URL.to_owned());
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(tour(&url)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            if url.starts_with("memory:") {
                eprintln!(
                    "hint: set KONTIKI_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2f to use a RabbitMQ (`make run-amqp` starts one)"
                );
            } else {
                eprintln!(
                    "hint: is a RabbitMQ answering at KONTIKI_AMQP_URL? `make run-amqp` starts one; unset the variable to use the in-process broker"
                );
            }
            ExitCode::FAILURE
        }
    }
}

/// The URL without its user and password, for the first line.
fn shown(url: &str) -> String {
    match (url.split_once("://"), url.rsplit_once('@')) {
        (Some((scheme, _)), Some((_, host))) => format!("{scheme}://{host}"),
        _ => url.to_owned(),
    }
}

/// The config of one service of the tour: the broker, no registry, HTTP on a free port.
fn config(url: &str, service: &str) -> Result<Config, BoxError> {
    let yaml = format!(
        "kontiki:\n  amqp:\n    url: {url}\n    rpc:\n      timeout: 10\n  registration:\n    disable: true\n  shutdown:\n    grace_seconds: 2\n  http:\n    address: 127.0.0.1\n    port: 0\napp:\n  cache:\n    ttl_seconds: 60\n",
        url = json!(url),
    );
    Config::from_yaml_str(format!("quickstart/{service}.yaml"), &yaml)
        .map_err(|e| format!("the config of {service}: {e}").into())
}

async fn start(service: Service, url: &str) -> Result<RunningService, BoxError> {
    let name = service.name().to_owned();
    let config = config(url, &name)?;
    service
        .start(config)
        .await
        .map_err(|e| format!("{name} did not start: {e}").into())
}

async fn tour(url: &str) -> Result<(), BoxError> {
    println!("kontiki-rs quickstart over {}", shown(url));

    // The four example services, as their own binaries would run them.
    let doubler = Arc::new(compute_api::Doubler::default());
    let mut running = vec![
        start(compute_api::service_with(doubler.clone())?, url).await?,
        start(rpc_service::service()?, url).await?,
        start(gateway::service()?, url).await?,
        start(http_simple::service()?, url).await?,
    ];

    // A listener for what compute-api publishes (its own queue, gone when it stops).
    let (tx, mut processed) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let listener = Service::builder("quickstart-listener")
        .event(
            EventEntrypoint::new(
                "on_processed",
                [kontiki_generated::compute::compute_api::events::THING_PROCESSED],
                move |ev: Event| {
                    let tx = tx.clone();
                    async move {
                        let _ = tx.send(ev.payload);
                        Ok(())
                    }
                },
            )
            .mode(EventMode::Broadcast),
        )
        .build()?;
    running.push(start(listener, url).await?);

    let result = calls(url, &doubler, &running, &mut processed).await;
    for service in running.into_iter().rev() {
        service.shutdown().await;
    }
    result
}

async fn calls(
    url: &str,
    doubler: &compute_api::Doubler,
    running: &[RunningService],
    processed: &mut tokio::sync::mpsc::UnboundedReceiver<Value>,
) -> Result<(), BoxError> {
    let messenger = Messenger::builder(url)
        .client_name("quickstart")
        .connect()
        .await
        .map_err(|e| format!("the client could not connect: {e}"))?;

    // compute-api through its generated client.
    let x = ComputeApiClient::new(messenger.clone()).compute(21).await?;
    let ttl = doubler
        .ttl_seconds()
        .ok_or("the delegate's setup did not run")?;
    println!(
        "compute-api.compute(21)              -> {x} (the delegate read app.cache.ttl_seconds = {ttl})"
    );

    // rpc-service through the client its build.rs generated.
    let rpc = RpcServiceClient::new(messenger.clone());
    let ok = rpc.rpc_example("ok").await?;
    println!("rpc-service.rpc_example(\"ok\")        -> {}", json!(ok));
    match rpc.rpc_example(rpc_service::BAD_INPUT).await {
        Err(RpcError::Client {
            error: error @ RpcExampleClientError::UserInputError { .. },
            ..
        }) => println!("rpc-service.rpc_example(\"bad_input\") -> client error {error}"),
        other => return Err(format!("expected USER_INPUT_ERROR, got {other:?}").into()),
    }

    // api-gateway calls rpc-service and passes the declared error on.
    match ApiGatewayClient::new(messenger.clone())
        .compute(rpc_service::BAD_INPUT)
        .await
    {
        Err(RpcError::Client {
            error: error @ ComputeClientError::UserInputError { .. },
            ..
        }) => println!(
            "api-gateway.compute(\"bad_input\")     -> client error {error} (passed on from rpc-service)"
        ),
        other => return Err(format!("expected USER_INPUT_ERROR, got {other:?}").into()),
    }

    // An event: compute-api handles thing_happened and publishes thing_processed.
    let payload = json!({"id": 7});
    messenger.publish(events::THING_HAPPENED, &payload).await?;
    let expected = json!({ "payload": payload });
    let seen = tokio::time::timeout(WAIT, async {
        while let Some(p) = processed.recv().await {
            if p == expected {
                return Some(p);
            }
        }
        None
    })
    .await
    .map_err(|_| format!("no thing_processed {expected} within {WAIT:?}"))?
    .ok_or("the listener stopped")?;
    println!(
        "published thing_happened {payload}    -> compute-api handled it and published thing_processed {seen}"
    );

    // http-simple's route.
    let addr = running
        .iter()
        .find_map(RunningService::http_addr)
        .ok_or("http-simple serves no HTTP")?;
    let response = reqwest::Client::builder()
        .timeout(WAIT)
        .build()?
        .get(format!("http://{addr}/health"))
        .send()
        .await?;
    let status = response.status().as_u16();
    let body: Value = response.json().await?;
    println!("GET /health (http-simple)            -> {status} {body}");

    // Nobody serves this: the call fails at once instead of waiting for the timeout.
    match messenger
        .call("nobody", "anything", Vec::new(), serde_json::Map::new())
        .await
    {
        Err(e @ RpcError::UnknownService { .. }) => {
            println!("nobody.anything                      -> {e} (answered at once)")
        }
        other => return Err(format!("expected an unknown service, got {other:?}").into()),
    }
    messenger.close().await;
    Ok(())
}
