//! `ServiceBuilder::http_layer` (issue 18, item 4): ordinary tower and tower-http layers on a
//! service's routes (a bearer-token check, CORS), the ops routes left open, the `flow_id`
//! header on what a layer refuses, and the loopback default address. No broker needed.

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use kontiki_rt::http::{HttpRequest, HttpResponse, HttpRoute, Method, StatusCode};
use kontiki_rt::{Config, Service};
use serde_json::json;

async fn require_token(req: Request, next: Next) -> Response {
    match req.headers().get("authorization") {
        Some(v) if v == "Bearer s3cret" => next.run(req).await,
        _ => StatusCode::UNAUTHORIZED.into_response(),
    }
}

#[tokio::test]
async fn layers_guard_the_routes_and_leave_the_ops_routes_open() {
    // No `kontiki.http.address`: the default binds loopback only.
    let config = Config::from_yaml_str(
        "layers.yaml",
        "kontiki:\n  amqp:\n    disable: true\n  http:\n    port: 0\n",
    )
    .expect("config");
    let running = Service::builder("guarded")
        .http(HttpRoute::new(
            Method::GET,
            "/items",
            |_r: HttpRequest| async { Ok(HttpResponse::json(StatusCode::OK, &json!([1, 2]))) },
        ))
        .http_layer(middleware::from_fn(require_token))
        .http_layer(
            tower_http::cors::CorsLayer::new()
                .allow_origin(tower_http::cors::Any)
                .allow_headers(tower_http::cors::Any),
        )
        .build()
        .expect("service")
        .start(config)
        .await
        .expect("start");
    let addr = running.http_addr().expect("http is on");
    assert!(addr.ip().is_loopback(), "default address: {addr}");
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();

    let refused = http.get(format!("{base}/items")).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    assert!(
        refused.headers().contains_key("flow_id"),
        "{:?}",
        refused.headers()
    );

    let ok = http
        .get(format!("{base}/items"))
        .header("authorization", "Bearer s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.json::<serde_json::Value>().await.unwrap(), json!([1, 2]));

    // CORS is the outer layer: a preflight is answered before the token check.
    let preflight = http
        .request(reqwest::Method::OPTIONS, format!("{base}/items"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "*",
        "{:?}",
        preflight.headers()
    );

    // The operator's routes are not behind the service's layers.
    let live = http.get(format!("{base}/live")).send().await.unwrap();
    assert_eq!(live.status(), 200);
    running.shutdown().await;
}

/// `RunningService::http_router`: with `kontiki.http.disable` the service does not listen, and
/// its routes (with their layers, flow ids and ops routes) serve from the application's own
/// axum server next to the application's routes.
#[tokio::test]
async fn the_service_routes_mount_into_an_application_router() {
    let config = Config::from_yaml_str(
        "mounted.yaml",
        "kontiki:\n  amqp:\n    disable: true\n  http:\n    disable: true\n",
    )
    .expect("config");
    let running = Service::builder("mounted")
        .http(HttpRoute::new(
            Method::POST,
            "/items/{id}",
            |r: HttpRequest| async move {
                let id: u32 = r.path_param("id")?;
                let body: serde_json::Value = r.json_body()?;
                Ok(HttpResponse::json(
                    StatusCode::CREATED,
                    &json!({"id": id, "body": body}),
                ))
            },
        ))
        .http_layer(middleware::from_fn(require_token))
        .build()
        .expect("service")
        .start(config)
        .await
        .expect("start");
    assert_eq!(
        running.http_addr(),
        None,
        "kontiki.http.disable: no listener"
    );
    let app = axum::Router::new()
        .route("/", axum::routing::get(|| async { "the application" }))
        .merge(running.http_router().expect("the service has routes"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::new();

    let own = http.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(own.text().await.unwrap(), "the application");

    let created = http
        .post(format!("{base}/items/7"))
        .header("authorization", "Bearer s3cret")
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    assert!(created.headers().contains_key("flow_id"));
    assert_eq!(
        created.json::<serde_json::Value>().await.unwrap(),
        json!({"id": 7, "body": {"name": "x"}})
    );
    let refused = http.post(format!("{base}/items/7")).send().await.unwrap();
    assert_eq!(refused.status(), 401, "the service's layer still guards it");
    let live = http.get(format!("{base}/live")).send().await.unwrap();
    assert_eq!(live.status(), 200, "the ops routes come along");

    server.abort();
    running.shutdown().await;
}
