//! `example-client`: calls the example services of `examples/` through their generated clients
//! and publishes their events, as another team's program would (Kontiki's stand-alone
//! `Messenger` and `RpcProxy`). The broker is `KONTIKI_AMQP_URL` (default: the local RabbitMQ).
//!
//! Run with: `cargo run -p example-client -- compute 21` (prints `42`); `--help` lists the
//! commands. Each example's README says which to use.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kontiki_generated::api_gateway::api_gateway::ApiGatewayClient;
use kontiki_generated::billing::billing::BillingClient;
use kontiki_generated::broadcast::CacheInvalidate;
use kontiki_generated::broadcast::cache_service::CacheServicePublisher;
use kontiki_generated::compute::compute_api::ComputeApiClient;
use kontiki_generated::heartbeat::heartbeat_service::HeartbeatServiceClient;
use kontiki_generated::rpc_service::rpc_service::RpcServiceClient;
use kontiki_generated::session::Step;
use kontiki_generated::session::session_service::SessionServiceClient;
use kontiki_rt::{BoxError, Messenger};
use serde_json::Value;

/// Calls the example services through their generated clients.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// compute-api.compute(X): prints 2X.
    Compute {
        /// The number to double.
        #[arg(allow_negative_numbers = true)]
        x: i64,
    },
    /// rpc-service.rpc_example(FEATURE): prints "ok", or the client error for `bad_input`.
    RpcExample {
        /// The feature value.
        feature: String,
    },
    /// api-gateway.compute(FEATURE), which calls rpc-service.
    Gateway {
        /// The feature value.
        feature: String,
    },
    /// billing.create_invoice(USER_ID): prints the invoice (billing publishes user.created).
    CreateInvoice {
        /// The user billed.
        user_id: String,
    },
    /// Publishes an event with a JSON payload.
    Publish {
        /// The event type, such as `thing_happened`.
        event_type: String,
        /// The payload, as JSON.
        payload: String,
    },
    /// Publishes cache.invalidate {"key": KEY} (every cache-service replica gets it).
    Invalidate {
        /// The cache key.
        key: String,
    },
    /// Opens a session with one session-service replica and sends it N steps.
    Session {
        /// How many steps.
        #[arg(default_value_t = 3)]
        steps: u32,
    },
    /// heartbeat-service.ping(): prints "pong".
    Ping,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let url = std::env::var("KONTIKI_AMQP_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned());
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&url, cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(url: &str, command: Command) -> Result<(), BoxError> {
    let messenger = Messenger::builder(url)
        .client_name("example-client")
        .connect()
        .await
        .map_err(|e| format!("could not connect: {e}"))?;
    let result = call(&messenger, command).await;
    messenger.close().await;
    result
}

async fn call(m: &Messenger, command: Command) -> Result<(), BoxError> {
    match command {
        Command::Compute { x } => {
            println!("{}", ComputeApiClient::new(m.clone()).compute(x).await?);
        }
        Command::RpcExample { feature } => {
            let r = RpcServiceClient::new(m.clone())
                .rpc_example(feature)
                .await?;
            println!("{}", Value::String(r));
        }
        Command::Gateway { feature } => {
            let r = ApiGatewayClient::new(m.clone()).compute(feature).await?;
            println!("{}", Value::String(r));
        }
        Command::CreateInvoice { user_id } => {
            let invoice = BillingClient::new(m.clone())
                .create_invoice(user_id)
                .await?;
            println!(
                "invoice {} for {} at {}",
                invoice.id,
                invoice.user_id,
                invoice.created_at.to_rfc3339()
            );
        }
        Command::Publish {
            event_type,
            payload,
        } => {
            let payload: Value = serde_json::from_str(&payload)
                .map_err(|e| format!("the payload is not JSON: {e}"))?;
            m.publish(&event_type, &payload).await?;
            println!("published {event_type} {payload}");
        }
        Command::Invalidate { key } => {
            CacheServicePublisher::new(m.clone())
                .cache_invalidate(&CacheInvalidate { key: key.clone() })
                .await?;
            println!(
                "published cache.invalidate {}",
                serde_json::json!({ "key": key })
            );
        }
        Command::Session { steps } => {
            let session = SessionServiceClient::new(m.clone()).open_session().await?;
            for seq in 1..=steps {
                session
                    .session_step(&Step {
                        seq,
                        data: format!("step {seq}"),
                    })
                    .await?;
            }
            println!(
                "sent {steps} steps in session {} to instance {}",
                session.session().session_id(),
                session.session().instance_id()
            );
        }
        Command::Ping => {
            let r = HeartbeatServiceClient::new(m.clone()).ping().await?;
            println!("{}", Value::String(r));
        }
    }
    Ok(())
}
