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
