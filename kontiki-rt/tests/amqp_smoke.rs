//! The broker is really there: connect, declare a uniquely named queue, publish one message,
//! consume it back and clean up. Fails (never skips) when no broker answers.

mod support;

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use std::time::Duration;

#[tokio::test]
async fn publish_and_consume_one_message_on_a_real_broker() {
    let conn = tokio::time::timeout(
        Duration::from_secs(10),
        Connection::connect(&support::amqp_url(), ConnectionProperties::default()),
    )
    .await
    .unwrap_or_else(|_| panic!("{}", support::no_broker("connect timed out")))
    .unwrap_or_else(|e| panic!("{}", support::no_broker(e)));
    let channel = conn.create_channel().await.expect("channel");
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm mode");

    let queue = support::unique("smoke");
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("declare queue");

    let body = format!("hello {queue}");
    let confirm = channel
        .basic_publish(
            "".into(),
            queue.as_str().into(),
            BasicPublishOptions::default(),
            body.as_bytes(),
            BasicProperties::default(),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    assert!(
        confirm.is_ack(),
        "broker did not ack the publish: {confirm:?}"
    );

    let mut consumer = channel
        .basic_consume(
            queue.as_str().into(),
            "smoke-consumer".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let delivery = tokio::time::timeout(Duration::from_secs(10), consumer.next())
        .await
        .expect("no delivery within 10 s")
        .expect("consumer stream ended")
        .expect("delivery error");
    assert_eq!(delivery.data, body.as_bytes());
    delivery.ack(BasicAckOptions::default()).await.expect("ack");

    let deleted = channel
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await
        .expect("delete queue");
    assert_eq!(deleted, 0, "the queue should be empty after the ack");
    conn.close(200, "done".into()).await.expect("close");
}
