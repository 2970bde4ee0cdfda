//! The example of docs/testing.md, kept true: a service implemented from its generated trait
//! (`idl/compute.kontiki`), run on a `kontiki_rt::testing::TestBed`, called through its typed
//! client, fed an event and checked for what it published, with no sleeps.

mod support;

use kontiki_generated::compute::ThingProcessed;
use kontiki_generated::compute::compute_api::{
    ComputeApi, ComputeApiClient, ComputeApiPublisher, ComputeApiServer, ComputeError,
};
use kontiki_rt::codegen::{BoxError, Context, Json};
use kontiki_rt::testing::{Outcome, TestBed};
use serde_json::json;

struct Compute;

impl ComputeApi for Compute {
    async fn compute(&self, _ctx: Context, x: i64) -> Result<i64, ComputeError> {
        Ok(x * 2)
    }

    async fn on_thing(&self, ctx: Context, payload: Json) -> Result<(), BoxError> {
        ComputeApiPublisher::new(ctx.messenger().clone())
            .thing_processed(&ThingProcessed { payload })
            .await?;
        Ok(())
    }
}

/// As docs/testing.md shows it: `TestBed::new()`, a broker of the bed's own (`memory://`).
#[tokio::test]
async fn a_generated_service_under_test() {
    let bed = TestBed::new().await.unwrap();
    assert!(bed.url().starts_with("memory://"), "{}", bed.url());
    under_test(bed, "compute-api").await;
}

/// The same on RabbitMQ, under a name of its own (tests share the broker's vhost).
#[tokio::test]
async fn a_generated_service_under_test_on_rabbitmq() {
    let bed = TestBed::with_url(support::amqp_url())
        .await
        .unwrap_or_else(|e| panic!("{}", support::no_broker(e)));
    under_test(bed, &support::unique("compute-api")).await;
}

async fn under_test(bed: TestBed, name: &str) {
    let service = ComputeApiServer::new(Compute)
        .service_builder()
        .build()
        .unwrap();
    let compute = bed
        .start_with(service, bed.config(name).unwrap())
        .await
        .unwrap();

    // Typed client → typed result.
    let client = ComputeApiClient::new(bed.messenger().clone()).with_service_name(name);
    assert_eq!(client.compute(21).await.unwrap(), 42);

    // An event in; wait until this one is handled (other tests may publish the same type).
    let id = uuid::Uuid::new_v4().to_string();
    bed.messenger()
        .publish("thing_happened", &json!({"id": id}))
        .await
        .unwrap();
    let handled = compute
        .wait_for("our thing_happened", |h| h.body["id"] == json!(id))
        .await
        .unwrap();
    assert_eq!(handled.outcome, Outcome::Ok);
    let published = compute.published();
    let ours = published
        .iter()
        .find(|p| p.payload["payload"]["id"] == json!(id))
        .expect("thing_processed published for our event");
    assert_eq!(ours.event_type, "thing_processed");

    compute.shutdown().await;
    bed.shutdown().await;
}
