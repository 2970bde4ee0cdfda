//! The kontiki-rs tour in one program: two services and a client over RabbitMQ.
//!
//! Run with: `scripts/quickstart.sh` (starts a local RabbitMQ when none answers), or
//! `cargo run -p kontiki-rt --example quickstart` with a broker at `KONTIKI_AMQP_URL`
//! (default `amqp://guest:guest@127.0.0.1:5672/%2f`). It prints:
//!
//! ```text
//! compute-api.compute(21)             -> 42   (delegate cache ttl 60 s, from app.cache.ttl_seconds)
//! rpc-service.rpc_example("ok")       -> "ok"
//! rpc-service.rpc_example("bad_input") -> client error USER_INPUT_ERROR: Invalid feature value
//! published thing_happened {"id": 7}  -> compute-api handled it and published thing_processed {"payload": {"id": 7}}
//! nobody.anything                     -> unknown service `nobody` (answered at once, no timeout)
//! ```

use kontiki_rt::{
    BoxError, Call, Config, Container, Delegate, Event, EventEntrypoint, HandlerError, Messenger,
    RpcEntrypoint, RpcError, Service,
};
use serde_json::{Map, json};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Business logic of compute-api, with the setting it reads in `setup`.
#[derive(Debug, Default)]
struct Doubler {
    ttl_seconds: OnceLock<u64>,
}

impl Doubler {
    fn double(&self, x: i64) -> i64 {
        x * 2
    }
}

impl Delegate for Doubler {
    async fn setup(&self, container: &Container) -> Result<(), BoxError> {
        let ttl = kontiki_rt::get_parameter(container.config(), "app.cache.ttl_seconds", 60u64)?;
        let _ = self.ttl_seconds.set(ttl);
        Ok(())
    }
}

fn config(url: &str, service: &str) -> Result<Config, BoxError> {
    let yaml = format!(
        "kontiki:\n  service_name: {service}\n  amqp:\n    url: \"{url}\"\n  registration:\n    disable: true\napp:\n  cache:\n    ttl_seconds: 60\n"
    );
    Ok(Config::from_yaml_str(format!("{service}.yaml"), &yaml)?)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let url = std::env::var("KONTIKI_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned());

    let doubler = Arc::new(Doubler::default());
    let d = doubler.clone();
    let compute_api = Service::builder("compute-api")
        .delegate(doubler.clone())
        .rpc(
            RpcEntrypoint::new("compute", move |call: Call| {
                let doubler = d.clone();
                async move {
                    let x = call.args[0].as_i64().ok_or_else(|| {
                        HandlerError::client("USER_INPUT_ERROR", "x must be an integer")
                    })?;
                    Ok(json!(doubler.double(x)))
                }
            })
            .params(["x"]),
        )
        .event(EventEntrypoint::new(
            "on_thing",
            ["thing_happened"],
            |ev: Event| async move {
                ev.context
                    .messenger()
                    .publish("thing_processed", &json!({"payload": ev.payload}))
                    .await
                    .map_err(HandlerError::internal)
            },
        ))
        .build()?
        .start(config(&url, "compute-api")?)
        .await?;

    let rpc_service = Service::builder("rpc-service")
        .rpc(
            RpcEntrypoint::new("rpc_example", |call: Call| async move {
                match call.args[0].as_str() {
                    Some("bad_input") => Err(HandlerError::client(
                        "USER_INPUT_ERROR",
                        "Invalid feature value",
                    )),
                    _ => Ok(json!("ok")),
                }
            })
            .params(["feature"]),
        )
        .build()?
        .start(config(&url, "rpc-service")?)
        .await?;

    // A listener for what compute-api publishes, so the tour can show it.
    let (tx, mut processed) = tokio::sync::mpsc::channel(1);
    let listener = Service::builder("quickstart-listener")
        .event(EventEntrypoint::new(
            "on_processed",
            ["thing_processed"],
            move |ev: Event| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(ev.payload).await;
                    Ok(())
                }
            },
        ))
        .build()?
        .start(config(&url, "quickstart-listener")?)
        .await?;

    let client = Messenger::builder(url.as_str())
        .client_name("quickstart")
        .connect()
        .await?;
    let r = client
        .call("compute-api", "compute", vec![json!(21)], Map::new())
        .await?;
    let ttl = doubler.ttl_seconds.get().copied().unwrap_or_default();
    println!(
        "compute-api.compute(21)             -> {r}   (delegate cache ttl {ttl} s, from app.cache.ttl_seconds)"
    );
    let r = client
        .call("rpc-service", "rpc_example", vec![json!("ok")], Map::new())
        .await?;
    println!("rpc-service.rpc_example(\"ok\")       -> {r}");
    match client
        .call(
            "rpc-service",
            "rpc_example",
            vec![json!("bad_input")],
            Map::new(),
        )
        .await
    {
        Err(RpcError::Client { error, .. }) => {
            println!("rpc-service.rpc_example(\"bad_input\") -> client error {error}")
        }
        other => return Err(format!("expected a client error, got {other:?}").into()),
    }
    client.publish("thing_happened", &json!({"id": 7})).await?;
    let seen = tokio::time::timeout(Duration::from_secs(10), processed.recv())
        .await?
        .ok_or("listener stopped")?;
    println!(
        "published thing_happened {{\"id\": 7}}  -> compute-api handled it and published thing_processed {seen}"
    );
    match client.call("nobody", "anything", vec![], Map::new()).await {
        Err(e @ RpcError::UnknownService { .. }) => {
            println!("nobody.anything                     -> {e} (answered at once, no timeout)")
        }
        other => return Err(format!("expected an unknown service, got {other:?}").into()),
    }

    client.close().await;
    listener.shutdown().await;
    rpc_service.shutdown().await;
    compute_api.shutdown().await;
    Ok(())
}
