//! The `memory://` broker at the AMQP level, through lapin. Where the behaviour is AMQP's (or
//! RabbitMQ's), each check runs twice: `memory_*` on an in-process broker, `amqp_*` on
//! RabbitMQ at `KONTIKI_AMQP_URL`, so the in-process broker is judged against the real one.
//! The last tests feed the in-process broker bad input (memory only).

mod support;

use futures_util::StreamExt as _;
use kontiki_rt::memory::Broker;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions,
    BasicQosOptions, BasicRejectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Runs `check` as two tests: `$mem` on a fresh in-process broker, `$amqp` on RabbitMQ.
macro_rules! both {
    ($($check:ident => $mem:ident, $amqp:ident;)*) => {$(
        #[tokio::test]
        async fn $mem() {
            let broker = Broker::start().expect("start the memory broker");
            $check(&broker.url()).await;
        }
        #[tokio::test]
        async fn $amqp() {
            $check(&support::amqp_url()).await;
        }
    )*};
}

both! {
    passive_declare_of_a_missing_queue_is_404 => memory_passive_declare_404, amqp_passive_declare_404;
    exclusive_queue_of_another_connection_is_405 => memory_exclusive_queue_405, amqp_exclusive_queue_405;
    direct_reply_to_round_trip => memory_direct_reply_to, amqp_direct_reply_to;
    mandatory_unroutable_is_returned_before_the_ack => memory_basic_return_312, amqp_basic_return_312;
    delivery_limit_dead_letters_with_headers => memory_delivery_limit_to_dlx, amqp_delivery_limit_to_dlx;
    reject_and_expiry_dead_letter => memory_reject_and_expiry_dead_letter, amqp_reject_and_expiry_dead_letter;
    channel_errors_keep_the_connection => memory_channel_errors, amqp_channel_errors;
    prefetch_and_redelivery => memory_prefetch_and_redelivery, amqp_prefetch_and_redelivery;
    large_bodies_cross_frames => memory_large_bodies, amqp_large_bodies;
    exchange_to_exchange_bindings => memory_exchange_to_exchange, amqp_exchange_to_exchange;
}

async fn connect(url: &str) -> Connection {
    tokio::time::timeout(
        Duration::from_secs(10),
        Connection::connect(url, ConnectionProperties::default()),
    )
    .await
    .unwrap_or_else(|_| panic!("{}", support::no_broker("connect timed out")))
    .unwrap_or_else(|e| panic!("{}", support::no_broker(e)))
}

fn passive() -> QueueDeclareOptions {
    QueueDeclareOptions {
        passive: true,
        ..Default::default()
    }
}

fn long(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

fn text(v: Option<&AMQPValue>) -> String {
    match v {
        Some(AMQPValue::LongString(s)) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        Some(AMQPValue::ShortString(s)) => s.as_str().to_owned(),
        other => panic!("expected a string, got {other:?}"),
    }
}

fn int(v: Option<&AMQPValue>) -> i64 {
    match v {
        Some(AMQPValue::LongLongInt(n)) => *n,
        Some(AMQPValue::LongInt(n)) => i64::from(*n),
        Some(AMQPValue::ShortInt(n)) => i64::from(*n),
        Some(AMQPValue::ShortShortInt(n)) => i64::from(*n),
        Some(AMQPValue::LongUInt(n)) => i64::from(*n),
        Some(AMQPValue::ShortShortUInt(n)) => i64::from(*n),
        other => panic!("expected an integer, got {other:?}"),
    }
}

/// `basic.get` until a message comes, for at most 10 s.
async fn get_one(ch: &Channel, queue: &str) -> lapin::message::BasicGetMessage {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(m) = ch
            .basic_get(queue.into(), BasicGetOptions { no_ack: false })
            .await
            .expect("basic.get")
        {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "nothing arrived in {queue} in 10 s"
        );
        tokio::task::yield_now().await;
    }
}

async fn delete(conn: &Connection, queues: &[&str]) {
    let ch = conn.create_channel().await.expect("channel");
    for q in queues {
        let _ = ch
            .queue_delete((*q).into(), QueueDeleteOptions::default())
            .await;
    }
}

async fn passive_declare_of_a_missing_queue_is_404(url: &str) {
    let conn = connect(url).await;
    let ch = conn.create_channel().await.unwrap();
    let q = support::unique("mb-missing");
    let err = ch
        .queue_declare(q.as_str().into(), passive(), FieldTable::default())
        .await
        .expect_err("a passive declare of a missing queue fails");
    let text = err.to_string();
    assert!(text.contains("NOT_FOUND"), "{text}");
    assert!(text.contains(&q), "the reply names the queue: {text}");
    // Only the channel closed: the connection still works.
    let ch2 = conn
        .create_channel()
        .await
        .expect("the connection survives");
    let ok = ch2
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    assert!(
        ok.name().as_str().starts_with("amq.gen-"),
        "server-named: {}",
        ok.name()
    );
    let _ = conn.close(200, "done".into()).await;
}

async fn exclusive_queue_of_another_connection_is_405(url: &str) {
    let owner = connect(url).await;
    let other = connect(url).await;
    let q = support::unique("mb-excl");
    let och = owner.create_channel().await.unwrap();
    och.queue_declare(
        q.as_str().into(),
        QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    for attempt in ["declare", "consume"] {
        let ch = other.create_channel().await.unwrap();
        let err = match attempt {
            "declare" => ch
                .queue_declare(q.as_str().into(), passive(), FieldTable::default())
                .await
                .map(|_| ())
                .expect_err("locked"),
            _ => ch
                .basic_consume(
                    q.as_str().into(),
                    "".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map(|_| ())
                .expect_err("locked"),
        };
        assert!(
            err.to_string().contains("RESOURCE_LOCKED"),
            "{attempt}: {err}"
        );
    }
    owner.close(200, "bye".into()).await.unwrap();
    // Deleted with its connection.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ch = other.create_channel().await.unwrap();
        match ch
            .queue_declare(q.as_str().into(), passive(), FieldTable::default())
            .await
        {
            Err(e) if e.to_string().contains("NOT_FOUND") => break,
            other => assert!(
                Instant::now() < deadline,
                "exclusive queue still there: {other:?}"
            ),
        }
        tokio::task::yield_now().await;
    }
    let _ = other.close(200, "done".into()).await;
}

async fn direct_reply_to_round_trip(url: &str) {
    let conn = connect(url).await;
    let server = conn.create_channel().await.unwrap();
    let client = conn.create_channel().await.unwrap();
    let q = support::unique("mb-rpc");
    server
        .queue_declare(
            q.as_str().into(),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();

    // Without the reply consumer on the channel, the publish is refused (406).
    let lone = conn.create_channel().await.unwrap();
    let _ = lone
        .basic_publish(
            "".into(),
            q.as_str().into(),
            BasicPublishOptions::default(),
            b"orphan",
            BasicProperties::default().with_reply_to("amq.rabbitmq.reply-to".into()),
        )
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while lone.status().connected() {
        assert!(Instant::now() < deadline, "the channel was not closed");
        tokio::task::yield_now().await;
    }

    let mut replies = client
        .basic_consume(
            "amq.rabbitmq.reply-to".into(),
            "replies".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut requests = server
        .basic_consume(
            q.as_str().into(),
            "server".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    client
        .basic_publish(
            "".into(),
            q.as_str().into(),
            BasicPublishOptions::default(),
            b"ping",
            BasicProperties::default()
                .with_reply_to("amq.rabbitmq.reply-to".into())
                .with_correlation_id("c-1".into()),
        )
        .await
        .unwrap();
    let req = tokio::time::timeout(Duration::from_secs(10), requests.next())
        .await
        .expect("request within 10 s")
        .unwrap()
        .unwrap();
    let reply_to = req.properties.reply_to().clone().expect("a reply-to");
    assert!(
        reply_to.as_str().starts_with("amq.rabbitmq.reply-to."),
        "rewritten to a unique address: {reply_to}"
    );
    req.acker.ack(BasicAckOptions::default()).await.unwrap();
    server
        .basic_publish(
            "".into(),
            reply_to,
            BasicPublishOptions::default(),
            b"pong",
            BasicProperties::default().with_correlation_id("c-1".into()),
        )
        .await
        .unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(10), replies.next())
        .await
        .expect("reply within 10 s")
        .unwrap()
        .unwrap();
    assert_eq!(reply.data, b"pong");
    assert_eq!(
        reply
            .properties
            .correlation_id()
            .as_ref()
            .map(ShortString::as_str),
        Some("c-1")
    );
    let _ = conn.close(200, "done".into()).await;
}

async fn mandatory_unroutable_is_returned_before_the_ack(url: &str) {
    let conn = connect(url).await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    let key = support::unique("mb-nowhere");
    let confirm = ch
        .basic_publish(
            "".into(),
            key.as_str().into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            b"lost",
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(confirm.is_ack(), "unroutable is still acked: {confirm:?}");
    let returned = confirm.take_message().expect("the message came back");
    assert_eq!(returned.reply_code, 312);
    assert_eq!(returned.reply_text.as_str(), "NO_ROUTE");
    assert_eq!(returned.delivery.data, b"lost");
    assert_eq!(returned.delivery.routing_key.as_str(), key);
    // Not mandatory: acked, nothing returned.
    let confirm = ch
        .basic_publish(
            "".into(),
            key.as_str().into(),
            BasicPublishOptions::default(),
            b"dropped",
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(confirm.is_ack());
    assert!(confirm.take_message().is_none());
    let _ = conn.close(200, "done".into()).await;
}

/// A quorum work queue with `x-delivery-limit` and a dead-letter exchange into `dlq`.
async fn work_and_dead_letter_queues(ch: &Channel, base: &str, limit: i64) -> (String, String) {
    let dlx = format!("{base}.dlx");
    let (work, dlq) = (format!("{base}.work"), format!("{base}.dlq"));
    ch.exchange_declare(
        dlx.as_str().into(),
        ExchangeKind::Topic,
        ExchangeDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_declare(
        dlq.as_str().into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_bind(
        dlq.as_str().into(),
        dlx.as_str().into(),
        "dead.#".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), long("quorum"));
    args.insert("x-delivery-limit".into(), AMQPValue::LongInt(limit as i32));
    args.insert("x-dead-letter-exchange".into(), long(&dlx));
    args.insert("x-dead-letter-routing-key".into(), long("dead.work"));
    ch.queue_declare(
        work.as_str().into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        args,
    )
    .await
    .unwrap();
    (work, dlq)
}

async fn delivery_limit_dead_letters_with_headers(url: &str) {
    let conn = connect(url).await;
    let ch = conn.create_channel().await.unwrap();
    let base = support::unique("mb-limit");
    let (work, dlq) = work_and_dead_letter_queues(&ch, &base, 1).await;
    ch.confirm_select(Default::default()).await.unwrap();
    ch.basic_publish(
        "".into(),
        work.as_str().into(),
        BasicPublishOptions::default(),
        b"poison",
        BasicProperties::default(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    // Delivery 1: not redelivered, no count. Delivery 2: redelivered, x-delivery-count 1.
    let first = get_one(&ch, &work).await;
    assert!(!first.delivery.redelivered);
    first
        .delivery
        .acker
        .reject(BasicRejectOptions { requeue: true })
        .await
        .unwrap();
    let second = get_one(&ch, &work).await;
    assert!(
        second.delivery.redelivered,
        "a returned message is redelivered"
    );
    let headers = second
        .delivery
        .properties
        .headers()
        .clone()
        .unwrap_or_default();
    assert_eq!(
        int(headers.inner().get("x-delivery-count")),
        1,
        "{headers:?}"
    );
    // The second return goes beyond the limit of 1: dead-lettered.
    second
        .delivery
        .acker
        .nack(BasicNackOptions {
            multiple: false,
            requeue: true,
        })
        .await
        .unwrap();
    let dead = get_one(&ch, &dlq).await;
    assert_eq!(dead.delivery.data, b"poison");
    assert_eq!(dead.delivery.routing_key.as_str(), "dead.work");
    let headers = dead.delivery.properties.headers().clone().expect("headers");
    let h = headers.inner();
    let Some(AMQPValue::FieldArray(deaths)) = h.get("x-death") else {
        panic!("x-death missing: {headers:?}");
    };
    let Some(AMQPValue::FieldTable(death)) = deaths.as_slice().first() else {
        panic!("x-death entry: {deaths:?}");
    };
    let d = death.inner();
    assert_eq!(text(d.get("reason")), "delivery_limit");
    assert_eq!(text(d.get("queue")), work);
    assert_eq!(text(d.get("exchange")), "");
    assert_eq!(int(d.get("count")), 1);
    match d.get("routing-keys") {
        Some(AMQPValue::FieldArray(keys)) => assert_eq!(text(keys.as_slice().first()), work),
        other => panic!("routing-keys: {other:?}"),
    }
    assert_eq!(text(h.get("x-first-death-reason")), "delivery_limit");
    assert_eq!(text(h.get("x-first-death-queue")), work);
    // As RabbitMQ does: the x-last-death-* headers come with a second death only.
    assert!(!h.contains_key("x-last-death-reason"), "{headers:?}");
    dead.delivery
        .acker
        .ack(BasicAckOptions::default())
        .await
        .unwrap();
    delete(&conn, &[&work, &dlq]).await;
    let _ = conn.close(200, "done".into()).await;
}

async fn reject_and_expiry_dead_letter(url: &str) {
    let conn = connect(url).await;
    let ch = conn.create_channel().await.unwrap();
    let base = support::unique("mb-dlx");
    let (work, dlq) = work_and_dead_letter_queues(&ch, &base, 5).await;
    // A classic queue with a dead-letter exchange for expiry.
    let ttl_q = format!("{base}.ttl");
    let mut args = FieldTable::default();
    args.insert(
        "x-dead-letter-exchange".into(),
        long(&format!("{base}.dlx")),
    );
    args.insert("x-dead-letter-routing-key".into(), long("dead.ttl"));
    ch.queue_declare(ttl_q.as_str().into(), QueueDeclareOptions::default(), args)
        .await
        .unwrap();

    ch.basic_publish(
        "".into(),
        work.as_str().into(),
        BasicPublishOptions::default(),
        b"refused",
        BasicProperties::default(),
    )
    .await
    .unwrap();
    let m = get_one(&ch, &work).await;
    m.delivery
        .acker
        .reject(BasicRejectOptions { requeue: false })
        .await
        .unwrap();
    let dead = get_one(&ch, &dlq).await;
    assert_eq!(dead.delivery.data, b"refused");
    let headers = dead.delivery.properties.headers().clone().expect("headers");
    assert_eq!(
        text(headers.inner().get("x-first-death-reason")),
        "rejected"
    );
    dead.delivery
        .acker
        .ack(BasicAckOptions::default())
        .await
        .unwrap();

    ch.basic_publish(
        "".into(),
        ttl_q.as_str().into(),
        BasicPublishOptions::default(),
        b"stale",
        BasicProperties::default().with_expiration("30".into()),
    )
    .await
    .unwrap();
    let dead = get_one(&ch, &dlq).await;
    assert_eq!(dead.delivery.data, b"stale");
    assert!(
        dead.delivery.properties.expiration().is_none(),
        "the expiration is not carried over"
    );
    let headers = dead.delivery.properties.headers().clone().expect("headers");
    assert_eq!(text(headers.inner().get("x-first-death-reason")), "expired");
    dead.delivery
        .acker
        .ack(BasicAckOptions::default())
        .await
        .unwrap();
    delete(&conn, &[&work, &dlq, &ttl_q]).await;
    let _ = conn.close(200, "done".into()).await;
}

async fn channel_errors_keep_the_connection(url: &str) {
    let conn = connect(url).await;
    let base = support::unique("mb-errors");
    // Publishing to a missing exchange closes the channel (404).
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    let res = match ch
        .basic_publish(
            format!("{base}.missing").as_str().into(),
            "k".into(),
            BasicPublishOptions::default(),
            b"x",
            BasicProperties::default(),
        )
        .await
    {
        Ok(confirm) => confirm.await.map(|_| ()),
        Err(e) => Err(e),
    };
    let err = res.expect_err("publishing to a missing exchange fails");
    assert!(err.to_string().contains("NOT_FOUND"), "{err}");
    // Redeclaring an exchange with another type: 406.
    let ex = format!("{base}.ex");
    let ch = conn.create_channel().await.unwrap();
    let opts = ExchangeDeclareOptions {
        auto_delete: true,
        ..Default::default()
    };
    ch.exchange_declare(
        ex.as_str().into(),
        ExchangeKind::Topic,
        opts,
        FieldTable::default(),
    )
    .await
    .unwrap();
    let err = ch
        .exchange_declare(
            ex.as_str().into(),
            ExchangeKind::Direct,
            opts,
            FieldTable::default(),
        )
        .await
        .expect_err("type mismatch");
    assert!(err.to_string().contains("PRECONDITION_FAILED"), "{err}");
    // Acking an unknown delivery tag: 406.
    let ch = conn.create_channel().await.unwrap();
    let _ = ch.basic_ack(99, BasicAckOptions::default()).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while ch.status().connected() {
        assert!(
            Instant::now() < deadline,
            "an unknown tag did not close the channel"
        );
        tokio::task::yield_now().await;
    }
    let ch = conn
        .create_channel()
        .await
        .expect("the connection survives");
    ch.exchange_delete(ex.as_str().into(), Default::default())
        .await
        .unwrap();
    let _ = conn.close(200, "done".into()).await;
}

async fn prefetch_and_redelivery(url: &str) {
    let conn = connect(url).await;
    let ch = conn.create_channel().await.unwrap();
    let q = support::unique("mb-prefetch");
    ch.queue_declare(
        q.as_str().into(),
        QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    for i in 0..5u8 {
        ch.basic_publish(
            "".into(),
            q.as_str().into(),
            BasicPublishOptions::default(),
            &[i],
            BasicProperties::default(),
        )
        .await
        .unwrap();
    }
    let cch = conn.create_channel().await.unwrap();
    cch.basic_qos(2, BasicQosOptions::default()).await.unwrap();
    let mut consumer = cch
        .basic_consume(
            q.as_str().into(),
            "c".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let a = consumer.next().await.unwrap().unwrap();
    let b = consumer.next().await.unwrap().unwrap();
    assert_eq!((a.data[0], b.data[0]), (0, 1));
    // Two out, three held back by the broker.
    let count = ch
        .queue_declare(q.as_str().into(), passive(), FieldTable::default())
        .await
        .unwrap()
        .message_count();
    assert_eq!(count, 3);
    // Nack with requeue: back at the head, redelivered.
    a.acker
        .nack(BasicNackOptions {
            multiple: false,
            requeue: true,
        })
        .await
        .unwrap();
    let again = consumer.next().await.unwrap().unwrap();
    assert_eq!(again.data[0], 0);
    assert!(again.redelivered);
    // Closing the channel returns what it held: redelivered to the next consumer.
    cch.close(200, "bye".into()).await.unwrap();
    let mut rest = Vec::new();
    loop {
        let m = get_one(&ch, &q).await;
        rest.push((m.delivery.data[0], m.delivery.redelivered));
        m.delivery
            .acker
            .ack(BasicAckOptions::default())
            .await
            .unwrap();
        if rest.len() == 5 {
            break;
        }
    }
    rest.sort_unstable();
    assert_eq!(
        rest,
        [(0, true), (1, true), (2, false), (3, false), (4, false)]
    );
    let _ = conn.close(200, "done".into()).await;
}

async fn large_bodies_cross_frames(url: &str) {
    let conn = connect(url).await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    let q = support::unique("mb-large");
    ch.queue_declare(
        q.as_str().into(),
        QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    let body: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    for b in [&body[..], &[][..]] {
        let confirm = ch
            .basic_publish(
                "".into(),
                q.as_str().into(),
                BasicPublishOptions::default(),
                b,
                BasicProperties::default(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(confirm.is_ack());
        let got = get_one(&ch, &q).await;
        assert_eq!(got.delivery.data.len(), b.len());
        assert!(got.delivery.data == b, "body changed in transit");
        got.delivery
            .acker
            .ack(BasicAckOptions::default())
            .await
            .unwrap();
    }
    let _ = conn.close(200, "done".into()).await;
}

async fn exchange_to_exchange_bindings(url: &str) {
    let conn = connect(url).await;
    let ch = conn.create_channel().await.unwrap();
    let base = support::unique("mb-e2e");
    let (source, dest) = (format!("{base}.source"), format!("{base}.dest"));
    let opts = ExchangeDeclareOptions {
        auto_delete: true,
        ..Default::default()
    };
    for (ex, kind) in [
        (&source, ExchangeKind::Topic),
        (&dest, ExchangeKind::Fanout),
    ] {
        ch.exchange_declare(ex.as_str().into(), kind, opts, FieldTable::default())
            .await
            .unwrap();
    }
    ch.exchange_bind(
        dest.as_str().into(),
        source.as_str().into(),
        "orders.*".into(),
        Default::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let q = format!("{base}.tap");
    ch.queue_declare(
        q.as_str().into(),
        QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_bind(
        q.as_str().into(),
        dest.as_str().into(),
        "".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    for key in [
        "orders.created",
        "orders.a.b",
        "users.created",
        "orders.paid",
    ] {
        ch.basic_publish(
            source.as_str().into(),
            key.into(),
            BasicPublishOptions::default(),
            key.as_bytes(),
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
    let count = ch
        .queue_declare(q.as_str().into(), passive(), FieldTable::default())
        .await
        .unwrap()
        .message_count();
    assert_eq!(
        count, 2,
        "orders.created and orders.paid pass the topic binding"
    );
    let first = get_one(&ch, &q).await;
    assert_eq!(first.delivery.data, b"orders.created");
    assert_eq!(first.delivery.exchange.as_str(), source);
    let _ = conn.close(200, "done".into()).await;
}

/// Reads from `socket` until EOF (at most 10 s), returning what came.
async fn read_to_end(socket: &mut tokio::net::TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut out))
        .await
        .expect("the broker closes the socket within 10 s")
        .expect("read");
    out
}

#[tokio::test]
async fn memory_bad_input_closes_only_that_connection() {
    let broker = Broker::start().unwrap();
    let addr = ("127.0.0.1", broker.port());

    // Not AMQP: the broker answers with the protocol header it speaks and closes.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    assert_eq!(read_to_end(&mut s).await, b"AMQP\x00\x00\x09\x01");

    // A frame bigger than frame_max: connection.close 501, then the socket closes.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"AMQP\x00\x00\x09\x01").await.unwrap();
    s.write_all(&[1, 0, 0, 0x7f, 0xff, 0xff, 0xff])
        .await
        .unwrap();
    let got = read_to_end(&mut s).await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.contains("FRAME_ERROR"), "{text}");

    // A well-sized frame with a malformed method.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"AMQP\x00\x00\x09\x01").await.unwrap();
    s.write_all(&[1, 0, 0, 0, 0, 0, 4, 0xde, 0xad, 0xbe, 0xef, 0xce])
        .await
        .unwrap();
    let got = read_to_end(&mut s).await;
    assert!(String::from_utf8_lossy(&got).contains("FRAME_ERROR"));

    // A message announced larger than 128 MiB: the channel is closed (406), nothing is read.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"AMQP\x00\x00\x09\x01").await.unwrap();
    let frames = {
        use amq_protocol::frame::{AMQPContentHeader, AMQPFrame, WriteContext, gen_frame};
        use amq_protocol::protocol::{AMQPClass, basic, channel, connection};
        let mut buf = Vec::new();
        let mut push = |f: AMQPFrame| {
            let taken = std::mem::take(&mut buf);
            buf = gen_frame(&f)(WriteContext::from(taken))
                .unwrap()
                .into_inner()
                .0;
        };
        push(AMQPFrame::Method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
                client_properties: FieldTable::default(),
                mechanism: "PLAIN".into(),
                response: LongString::from("\0guest\0guest"),
                locale: "en_US".into(),
            })),
        ));
        push(AMQPFrame::Method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::TuneOk(connection::TuneOk {
                channel_max: 16,
                frame_max: 131_072,
                heartbeat: 0,
            })),
        ));
        push(AMQPFrame::Method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open {
                virtual_host: "/".into(),
            })),
        ));
        push(AMQPFrame::Method(
            1,
            AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
        ));
        push(AMQPFrame::Method(
            1,
            AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
                exchange: "".into(),
                routing_key: "q".into(),
                mandatory: false,
                immediate: false,
            })),
        ));
        push(AMQPFrame::Header(
            1,
            AMQPContentHeader {
                class_id: 60,
                body_size: 1 << 40,
                properties: BasicProperties::default(),
            },
        ));
        buf
    };
    s.write_all(&frames).await.unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !String::from_utf8_lossy(&got).contains("PRECONDITION_FAILED") {
        assert!(Instant::now() < deadline, "no channel.close: {got:?}");
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk))
            .await
            .expect("a reply within 10 s")
            .unwrap();
        assert!(
            n > 0,
            "the broker closed the connection instead of the channel"
        );
        got.extend_from_slice(&chunk[..n]);
    }
    assert!(String::from_utf8_lossy(&got).contains("larger than configured max size"));

    // The broker still serves everyone else.
    let conn = connect(&broker.url()).await;
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare(
        "after".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let _ = conn.close(200, "done".into()).await;
    assert_eq!(broker.queues(), ["after"]);
}

#[tokio::test]
async fn memory_broker_stops_when_its_last_handle_drops() {
    let broker = Broker::start().unwrap();
    let url = broker.url();
    let conn = connect(&url).await;
    assert_eq!(broker.connections(), 1);
    drop(broker);
    let deadline = Instant::now() + Duration::from_secs(10);
    while conn.status().connected() {
        assert!(
            Instant::now() < deadline,
            "the connection outlived the broker"
        );
        tokio::task::yield_now().await;
    }
    assert!(
        Connection::connect(&url, ConnectionProperties::default())
            .await
            .is_err(),
        "nothing listens any more"
    );
}
