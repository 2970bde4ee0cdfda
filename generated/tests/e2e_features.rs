//! End to end over RabbitMQ with `idl/features.kontiki`: every declared error code arrives as
//! its typed variant (generated client) and as its code (Python client); headers reach an
//! `include_headers` RPC; typed events reach their handlers through the generated publisher,
//! a multi-type handler and a session handle; the HTTP routes decode typed parameters and
//! bodies, map declared errors to their statuses and serve the generated OpenAPI documents;
//! an interval task runs.

mod support;

use kontiki_generated::features::features::{
    CreateWidgetClientError, CreateWidgetError, DeleteWidgetError, Features, FeaturesClient,
    FeaturesPublisher, FeaturesServer, FindWidgetClientError, FindWidgetError, ListWidgetsError,
    OnWidgetOrUserEvent, PatchWidgetError, PingError, PostWidgetError, PreflightError, ProbeError,
    PutWidgetError, ResetError,
};
use kontiki_generated::features::{Kind, Widget, WidgetId};
use kontiki_generated::user_events::UserCreated;
use kontiki_rt::codegen::{BoxError, Context, Headers, Json, Uuid};
use kontiki_rt::{CallOptions, RpcError};
use serde_json::json;
use tokio::sync::mpsc;

/// What the handlers saw, in order.
#[derive(Debug, PartialEq)]
enum Seen {
    Widget(String),
    User(String),
    InSession(WidgetId),
    Task(&'static str),
}

struct RustFeatures {
    seen: mpsc::UnboundedSender<Seen>,
}

fn widget(id: WidgetId, kind: Kind, title: String, tags: Vec<String>) -> Widget {
    serde_json::from_value::<Widget>(json!({
        "id": id, "created_at": "2024-01-02T03:04:05+00:00", "matrix": [], "children": {},
    }))
    .map(|w| Widget {
        r#type: kind,
        title,
        tags,
        ..w
    })
    .unwrap()
}

impl Features for RustFeatures {
    async fn create_widget(
        &self,
        _ctx: Context,
        headers: Headers,
        kind: Kind,
        title: String,
        r#type: String,
    ) -> Result<Widget, CreateWidgetError> {
        match title.as_str() {
            "taken" => Err(CreateWidgetError::widget_conflict()),
            "bad" => Err(CreateWidgetError::UserInputError {
                message: format!("`{title}` is not a title"),
            }),
            _ => {
                let tenant = headers.get("tenant").and_then(Json::as_str).unwrap_or("-");
                Ok(widget(
                    Uuid::from_u128(7),
                    kind,
                    title,
                    vec![r#type, tenant.to_owned()],
                ))
            }
        }
    }

    async fn reset(&self, _ctx: Context) -> Result<(), ResetError> {
        Ok(())
    }

    async fn find_widget(
        &self,
        _ctx: Context,
        id: WidgetId,
    ) -> Result<Option<Widget>, FindWidgetError> {
        match id.as_u128() {
            0 => Err(FindWidgetError::widget_not_found()),
            1 => Ok(None),
            _ => Ok(Some(widget(id, Kind::Small, "found".into(), vec![]))),
        }
    }

    async fn on_widget_or_user(
        &self,
        _ctx: Context,
        _headers: Headers,
        event: OnWidgetOrUserEvent,
    ) -> Result<(), BoxError> {
        let seen = match event {
            OnWidgetOrUserEvent::WidgetCreated(w) => Seen::Widget(w.title),
            OnWidgetOrUserEvent::UserCreated(u) => Seen::User(u.id),
        };
        Ok(self.seen.send(seen)?)
    }

    async fn on_deleted_everywhere(&self, _ctx: Context, _id: WidgetId) -> Result<(), BoxError> {
        Ok(())
    }

    async fn on_deleted_in_session(&self, _ctx: Context, id: WidgetId) -> Result<(), BoxError> {
        Ok(self.seen.send(Seen::InSession(id))?)
    }

    async fn on_configured(&self, _ctx: Context, _t: String, _p: Json) -> Result<(), BoxError> {
        Ok(())
    }

    async fn list_widgets(
        &self,
        _ctx: Context,
        _kind: Option<Kind>,
        _limit: u32,
    ) -> Result<Vec<Widget>, ListWidgetsError> {
        Ok(vec![])
    }

    async fn post_widget(&self, _ctx: Context, body: Widget) -> Result<Widget, PostWidgetError> {
        Ok(body)
    }

    async fn put_widget(
        &self,
        _ctx: Context,
        _id: WidgetId,
        body: Widget,
    ) -> Result<Widget, PutWidgetError> {
        Ok(body)
    }

    async fn patch_widget(
        &self,
        _ctx: Context,
        _id: WidgetId,
        _body: Json,
    ) -> Result<(), PatchWidgetError> {
        Ok(())
    }

    async fn delete_widget(&self, _ctx: Context, _id: WidgetId) -> Result<(), DeleteWidgetError> {
        Err(DeleteWidgetError::widget_not_found())
    }

    async fn ping(&self, _ctx: Context) -> Result<String, PingError> {
        Ok("pong".into())
    }

    async fn probe(&self, _ctx: Context) -> Result<(), ProbeError> {
        Ok(())
    }

    async fn preflight(&self, _ctx: Context) -> Result<(), PreflightError> {
        Ok(())
    }

    async fn every_seconds(&self, _ctx: Context) -> Result<(), BoxError> {
        Ok(())
    }

    async fn every_minutes(&self, _ctx: Context) -> Result<(), BoxError> {
        Ok(self.seen.send(Seen::Task("every_minutes"))?)
    }

    async fn every_hour(&self, _ctx: Context) -> Result<(), BoxError> {
        Ok(())
    }

    async fn every_day(&self, _ctx: Context) -> Result<(), BoxError> {
        Ok(())
    }

    async fn from_config(&self, _ctx: Context) -> Result<(), BoxError> {
        Ok(())
    }

    async fn cron_task(&self, _ctx: Context) -> Result<(), BoxError> {
        Ok(())
    }

    async fn cron_from_config(&self, _ctx: Context) -> Result<(), BoxError> {
        Ok(())
    }
}

#[tokio::test]
async fn typed_errors_headers_and_events_end_to_end() {
    let name = support::unique("e2e-features");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let config = support::service_config_with(
        &name,
        &format!(
            "app:\n  events:\n    widgets: [\"{name}.configured\"]\n  tasks:\n    interval: 3600\n    cron: \"0 3 * * *\"\n  http:\n    ping_path: /ping\n"
        ),
    );
    let svc = FeaturesServer::new(RustFeatures { seen: tx })
        .service_builder()
        .build()
        .unwrap()
        .start(config)
        .await
        .unwrap_or_else(|e| panic!("{}", support::no_broker(e)));
    let messenger = support::messenger().await;
    let client = FeaturesClient::new(messenger.clone()).with_service_name(&name);

    // Every declared code arrives as its typed variant, with the server's message.
    match client.create_widget(Kind::Large, "taken", "plain").await {
        Err(RpcError::Client {
            error: CreateWidgetClientError::WidgetConflict { message },
            ..
        }) => assert_eq!(message, "widget exists"),
        other => panic!("expected WIDGET_CONFLICT, got {other:?}"),
    }
    match client.create_widget(Kind::Large, "bad", "plain").await {
        Err(RpcError::Client {
            error: CreateWidgetClientError::UserInputError { message },
            ..
        }) => assert_eq!(message, "`bad` is not a title"),
        other => panic!("expected USER_INPUT_ERROR, got {other:?}"),
    }
    match client.find_widget(Uuid::from_u128(0)).await {
        Err(RpcError::Client {
            error: FindWidgetClientError::WidgetNotFound { message },
            ..
        }) => assert_eq!(message, "widget not found"),
        other => panic!("expected WIDGET_NOT_FOUND, got {other:?}"),
    }
    assert_eq!(client.find_widget(Uuid::from_u128(1)).await.unwrap(), None);
    let found = client
        .find_widget(Uuid::from_u128(2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((found.title.as_str(), found.r#type), ("found", Kind::Small));
    client.reset().await.unwrap();

    // Extra headers reach an include_headers RPC; enum and keyword-named fields round trip.
    let w = client
        .create_widget_with(
            CallOptions::default().header("tenant", "t1"),
            Kind::ExtraLarge,
            "ok",
            "fancy",
        )
        .await
        .unwrap();
    assert_eq!(w.r#type, Kind::ExtraLarge);
    assert_eq!(w.tags, vec!["fancy".to_owned(), "t1".to_owned()]);
    assert_eq!(
        (w.enabled, w.ratio, w.small_signed),
        (true, 0.5, -5),
        "IDL defaults"
    );

    // The Python client sees the same codes (it knows nothing of the contract).
    let mut py = support::Probe::start().await;
    let r = py
        .call(&name, "create_widget", json!(["LARGE", "taken"]))
        .await;
    assert_eq!(
        (r["error"].as_str(), r["code"].as_str()),
        (Some("client"), Some("WIDGET_CONFLICT")),
        "{r}"
    );
    let r = py
        .call(&name, "create_widget", json!(["LARGE", "bad"]))
        .await;
    assert_eq!(r["code"], json!("USER_INPUT_ERROR"), "{r}");
    let r = py
        .call(
            &name,
            "find_widget",
            json!(["00000000-0000-0000-0000-000000000000"]),
        )
        .await;
    assert_eq!(r["code"], json!("WIDGET_NOT_FOUND"), "{r}");
    let r = py.call(&name, "create_widget", json!(["huge", "x"])).await;
    assert_eq!(
        r["code"],
        json!("INVALID_ARGUMENTS"),
        "an unknown enum value: {r}"
    );
    let r = py
        .call(&name, "create_widget", json!(["small", "py"]))
        .await;
    assert_eq!(r["result"]["type"], json!("small"), "{r}");
    assert_eq!(
        r["result"]["tags"],
        json!(["plain", "-"]),
        "defaults and no headers: {r}"
    );

    // Typed events: the generated publisher, a plain publish, and a session.
    let marker = format!("w-{name}");
    FeaturesPublisher::new(messenger.clone())
        .widget_created(&widget(
            Uuid::from_u128(3),
            Kind::Small,
            marker.clone(),
            vec![],
        ))
        .await
        .unwrap();
    messenger
        .publish("user.created", &UserCreated { id: marker.clone() })
        .await
        .unwrap();
    let session = client.open_session().await.unwrap();
    session.widget_deleted(&Uuid::from_u128(9)).await.unwrap();
    let mut got = Vec::new();
    while got.len() < 4 {
        let seen = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("events did not arrive; so far {got:?}"))
            .unwrap();
        match &seen {
            Seen::Widget(t) | Seen::User(t) if *t != marker => continue,
            Seen::Task(_) if got.contains(&seen) => continue,
            _ => got.push(seen),
        }
    }
    assert!(got.contains(&Seen::Widget(marker.clone())), "{got:?}");
    assert!(got.contains(&Seen::User(marker.clone())), "{got:?}");
    assert!(
        got.contains(&Seen::InSession(Uuid::from_u128(9))),
        "{got:?}"
    );

    // HTTP: typed query, path and body; mapped error codes; the generated OpenAPI document.
    let base = format!("http://{}", svc.http_addr().expect("the routes are served"));
    let http = reqwest::Client::new();
    let r = http
        .get(format!("{base}/widgets?kind=extra-large&limit=3"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap(), json!([]));
    let r = http
        .get(format!("{base}/widgets?limit=lots"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        422,
        "a query parameter that does not fit its type"
    );
    let id = "00000000-0000-0000-0000-000000000005";
    let r = http
        .delete(format!("{base}/widgets/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "WIDGET_NOT_FOUND = 404");
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap(),
        json!({"message": "widget not found"})
    );
    let body = serde_json::to_value(widget(
        Uuid::from_u128(5),
        Kind::Large,
        "posted".into(),
        vec![],
    ))
    .unwrap();
    let r = http
        .post(format!("{base}/widgets"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "the declared success status");
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["title"],
        "posted"
    );
    let r = http
        .put(format!("{base}/widgets/not-a-uuid"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        422,
        "a path parameter that does not fit its type"
    );
    let r = http.get(format!("{base}/ping")).send().await.unwrap();
    assert_eq!(
        r.json::<String>().await.unwrap(),
        "pong",
        "a path from config"
    );
    let served: serde_json::Value = http
        .get(format!("{base}/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let generated: serde_json::Value =
        serde_json::from_str(kontiki_generated::features::features::OPENAPI_V1).unwrap();
    assert_eq!(
        served["paths"], generated["paths"],
        "the runtime serves the generated document"
    );

    svc.shutdown().await;
}
