//! Footprint benchmark helper (`make bench`, `scripts/bench/run.py`): one service with five
//! RPC entrypoints that does nothing but wait, to measure the time from spawn to ready and the
//! idle memory (RSS).
//!
//! Run: `idle_service kontiki-rs|raw-lapin SERVICE_NAME` (broker from `KONTIKI_AMQP_URL`).
//!
//! * `kontiki-rs`: a [`Service`] with RPCs `m1` … `m5` (`echo`), registration disabled, on a
//!   multi-threaded tokio runtime like the generated `main`.
//! * `raw-lapin`: the minimum that puts the same five consumers on the wire: one connection,
//!   one channel with prefetch 10, `rpc_exchange` declared as kontiki-rs declares it, five durable queues
//!   `{name}.m{i}.queue` bound with `{name}.m{i}` and consumed; deliveries are acked and dropped.
//!
//! Both print `READY` on stdout once every consumer is consuming (for kontiki-rs: when
//! [`Service::start`] has returned), then wait for SIGINT/SIGTERM.

use futures_util::StreamExt as _;
use kontiki_rt::{BoxError, Call, Config, RpcEntrypoint, Service};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicQosOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use serde_json::Value;
use std::io::Write as _;

const METHODS: [&str; 5] = ["m1", "m2", "m3", "m4", "m5"];

async fn kontiki_rs(url: &str, name: &str) -> Result<(), BoxError> {
    let mut builder = Service::builder(name);
    for m in METHODS {
        builder = builder.rpc(
            RpcEntrypoint::new(m, |call: Call| async move {
                Ok(call.args.into_iter().next().unwrap_or(Value::Null))
            })
            .params(["x"]),
        );
    }
    let yaml = format!(
        "kontiki:\n  service_name: {name}\n  amqp:\n    url: \"{url}\"\n  registration:\n    disable: true\n  shutdown:\n    grace_seconds: 1\n"
    );
    let config = Config::from_yaml_str("idle.yaml", &yaml)?;
    let running = builder.build()?.start(config).await?;
    ready();
    kontiki_rt::shutdown_signal().await;
    running.shutdown().await;
    Ok(())
}

async fn raw_lapin(url: &str, name: &str) -> Result<(), BoxError> {
    let conn = Connection::connect(url, ConnectionProperties::default()).await?;
    let channel = conn.create_channel().await?;
    channel
        .basic_qos(10, BasicQosOptions { global: false })
        .await?;
    channel
        .exchange_declare(
            kontiki_rt::wire::RPC_EXCHANGE.into(),
            lapin::ExchangeKind::Topic,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await?;
    for m in METHODS {
        let queue = kontiki_rt::wire::rpc_queue(name, m);
        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        channel
            .queue_declare(queue.as_str().into(), durable, FieldTable::default())
            .await?;
        channel
            .queue_bind(
                queue.as_str().into(),
                kontiki_rt::wire::RPC_EXCHANGE.into(),
                format!("{name}.{m}").into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let mut consumer = channel
            .basic_consume(
                queue.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        tokio::spawn(async move {
            while let Some(Ok(delivery)) = consumer.next().await {
                let _ = delivery.acker.ack(BasicAckOptions::default()).await;
            }
        });
    }
    ready();
    kontiki_rt::shutdown_signal().await;
    let _ = conn.close(200, "bye".into()).await;
    Ok(())
}

fn ready() {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "READY");
    let _ = out.flush();
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let url = std::env::var("KONTIKI_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned());
    let result = match (args.first().map(String::as_str), args.get(1)) {
        (Some("kontiki-rs"), Some(name)) => kontiki_rs(&url, name).await,
        (Some("raw-lapin"), Some(name)) => raw_lapin(&url, name).await,
        _ => {
            eprintln!("usage: idle_service kontiki-rs|raw-lapin SERVICE_NAME");
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("idle_service: {e}");
        std::process::exit(1);
    }
}
