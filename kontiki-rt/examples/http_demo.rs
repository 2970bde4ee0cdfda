//! A small HTTP service (no broker: `kontiki.amqp.disable`) with its OpenAPI document and
//! Swagger UI, for `scripts/swagger-screenshot.sh` and `scripts/http-bench.sh`.
//!
//! Run with: `cargo run -p kontiki-rt --example http_demo -- 8080`, then open
//! <http://127.0.0.1:8080/api/v1/docs>. It prints:
//!
//! ```text
//! kontiki-rt http://127.0.0.1:8080
//! ```
//!
//! With a second port (`-- 8080 8081`) it also serves, there, the two routes the benchmark
//! measures as bare axum handlers doing the same work (`GET /api/v1/health` and
//! `POST /api/v1/items/{id}`, a path parameter and a JSON body in, JSON out), the baseline of
//! `make bench`, and prints `bare-axum http://127.0.0.1:8081`. A third port (`-- 8080 8081
//! 8082`) serves the same bare axum routes once more, the A/A control of `make bench`'s HTTP
//! section (and of `scripts/bench/http_alt.py --aa`), and prints `bare-axum-2
//! http://127.0.0.1:8082` before the baseline's line.

use kontiki_rt::http::{
    Bytes, HttpError, HttpFuture, HttpRequest, HttpResponse, HttpRoute, Method, StatusCode,
};
use kontiki_rt::{BoxError, Config, Service};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;

#[derive(Debug, Deserialize, Serialize)]
struct NewItem {
    name: String,
    qty: u32,
}

/// What `POST /api/v1/items/{id}` answers: the item under its id.
#[derive(Debug, Serialize)]
struct StoredItem {
    id: u64,
    name: String,
    qty: u32,
}

impl StoredItem {
    fn new(id: u64, item: NewItem) -> Self {
        Self {
            id,
            name: item.name,
            qty: item.qty,
        }
    }
}

const OPENAPI_V1: &str = r##"{
  "openapi": "3.1.0",
  "info": {"title": "http-demo", "description": "Replaced by kontiki.http.documentation", "version": "v1"},
  "tags": [{"name": "ops"}, {"name": "items"}],
  "paths": {
    "/api/v1/health": {"get": {"tags": ["ops"], "summary": "health check", "operationId": "health",
      "responses": {"200": {"description": "alive", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}}}}},
    "/hello/{who}": {"get": {"tags": ["ops"], "summary": "say hello", "operationId": "hello",
      "parameters": [{"name": "who", "in": "path", "required": true, "schema": {"type": "string"}}],
      "responses": {"200": {"description": "a greeting", "content": {"application/json": {"schema": {"type": "object", "properties": {"hello": {"type": "string"}}}}}}}}},
    "/items": {"post": {"tags": ["items"], "summary": "create an item", "operationId": "create_item",
      "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewItem"}}}},
      "responses": {
        "201": {"description": "created", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewItem"}}}},
        "409": {"description": "conflict happened", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
        "422": {"description": "the body does not fit NewItem", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}}},
    "/api/v1/items/{id}": {"post": {"tags": ["items"], "summary": "store an item under an id", "operationId": "put_item",
      "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "integer", "minimum": 0}}],
      "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewItem"}}}},
      "responses": {
        "200": {"description": "the stored item", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/StoredItem"}}}},
        "422": {"description": "the id or the body does not fit", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}}},
    "/items/{id}": {"get": {"tags": ["items"], "summary": "get an item", "operationId": "get_item",
      "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "integer", "minimum": 0}},
                     {"name": "deleted", "in": "query", "schema": {"type": "boolean", "default": false}}],
      "responses": {"200": {"description": "the item", "content": {"application/json": {"schema": {"type": "object"}}}}}}}
  },
  "components": {"schemas": {
    "Health": {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}},
    "NewItem": {"type": "object", "required": ["name", "qty"], "properties": {"name": {"type": "string"}, "qty": {"type": "integer", "minimum": 0}}},
    "StoredItem": {"type": "object", "required": ["id", "name", "qty"], "properties": {"id": {"type": "integer", "minimum": 0}, "name": {"type": "string"}, "qty": {"type": "integer", "minimum": 0}}},
    "Error": {"type": "object", "required": ["message"], "properties": {"message": {"type": "string"},
      "errors": {"type": "array", "items": {"type": "object", "properties": {"path": {"type": "string"}, "message": {"type": "string"}}}}}}
  }}
}"##;

fn service() -> Result<Service, BoxError> {
    Ok(Service::builder("http-demo")
        .http(
            HttpRoute::new(
                Method::GET,
                "/api/v1/health",
                |_req: HttpRequest| async move {
                    // The same answer as the bare axum handler's, made the same way.
                    Ok(HttpResponse::bytes(
                        StatusCode::OK,
                        "application/json",
                        Bytes::from_static(HEALTH),
                    ))
                },
            )
            .version("v1")
            .name("health"),
        )
        .http(
            HttpRoute::new(Method::GET, "/hello/{who}", |req: HttpRequest| async move {
                let who: String = req.path_param("who")?;
                Ok(HttpResponse::json(StatusCode::OK, &json!({ "hello": who })))
            })
            .version("v1")
            .name("hello"),
        )
        .http(
            HttpRoute::new(Method::POST, "/items", |req: HttpRequest| async move {
                let item: NewItem = req.json_body()?;
                if item.name == "conflict" {
                    return Err(HttpError::mapped(StatusCode::CONFLICT, "conflict happened"));
                }
                Ok(HttpResponse::json(StatusCode::CREATED, &item))
            })
            .version("v1")
            .name("create_item"),
        )
        .http(
            HttpRoute::new(Method::GET, "/items/{id}", |req: HttpRequest| async move {
                let id: u64 = req.path_param("id")?;
                let deleted = req.query_opt::<bool>("deleted")?.unwrap_or(false);
                Ok(HttpResponse::json(
                    StatusCode::OK,
                    &json!({ "id": id, "deleted": deleted }),
                ))
            })
            .version("v1")
            .name("get_item"),
        )
        .http(
            HttpRoute::new(
                Method::POST,
                "/api/v1/items/{id}",
                |req: HttpRequest| async move {
                    let id: u64 = req.path_param("id")?;
                    let item: NewItem = req.json_body()?;
                    Ok(HttpResponse::json(
                        StatusCode::OK,
                        &StoredItem::new(id, item),
                    ))
                },
            )
            .version("v1")
            .name("put_item"),
        )
        .http(
            // The same route registered as generated code registers it (`with_fn`: one shared
            // instantiation of the serving code, a boxed future per request), for
            // `scripts/bench/http_cost.py`; not in the OpenAPI document.
            HttpRoute::with_fn(
                Method::POST,
                "/api/v1/fn-items/{id}",
                Arc::new(()),
                put_item_fn,
            )
            .name("put_item_fn"),
        )
        .openapi("v1", OPENAPI_V1)
        .build()?)
}

/// `POST /api/v1/fn-items/{id}`: `put_item` as a plain function over (no) shared state.
fn put_item_fn(_: &Arc<()>, req: HttpRequest) -> HttpFuture {
    Box::pin(async move {
        let id: u64 = req.path_param("id")?;
        let item: NewItem = req.json_body()?;
        Ok(HttpResponse::json(
            StatusCode::OK,
            &StoredItem::new(id, item),
        ))
    })
}

/// The baseline of `POST /api/v1/items/{id}`: the same work as the kontiki route (the id
/// parsed from the path, the body read and decoded into `NewItem`, the answer written as JSON).
/// axum's `json` feature is off in this workspace, so the body is decoded as its `Json`
/// extractor would.
async fn bare_put_item(
    axum::extract::Path(id): axum::extract::Path<u64>,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let json = [(axum::http::header::CONTENT_TYPE, "application/json")];
    match serde_json::from_slice::<NewItem>(&body) {
        Ok(item) => match serde_json::to_vec(&StoredItem::new(id, item)) {
            Ok(out) => (json, out).into_response(),
            Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        },
        Err(_) => {
            let body = r#"{"message":"malformed JSON"}"#;
            (StatusCode::BAD_REQUEST, json, body).into_response()
        }
    }
}

/// What `GET /api/v1/health` answers on both ports.
const HEALTH: &[u8] = br#"{"status":"ok"}"#;

/// The baseline: the same answers from bare axum handlers, announced as `label` (then
/// `ready` is told).
async fn bare_axum(
    port: u16,
    label: &str,
    ready: Option<tokio::sync::oneshot::Sender<()>>,
) -> Result<(), BoxError> {
    let app = axum::Router::new()
        .route(
            "/api/v1/health",
            axum::routing::get(|| async {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    Bytes::from_static(HEALTH),
                )
            }),
        )
        .route("/api/v1/items/{id}", axum::routing::post(bare_put_item))
        .route("/api/v1/fn-items/{id}", axum::routing::post(bare_put_item));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("{label} http://{}", listener.local_addr()?);
    if let Some(ready) = ready {
        let _ = ready.send(());
    }
    axum::serve(listener, app).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    kontiki_rt::cli::init_tracing();
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().map_or(Ok(8080), |p| p.parse())?;
    let bare_port: Option<u16> = args.next().map(|p| p.parse()).transpose()?;
    let control_port: Option<u16> = args.next().map(|p| p.parse()).transpose()?;
    // `HTTP_DEMO_METRICS=off` serves without metrics (what they cost, in `make bench`).
    let metrics = std::env::var("HTTP_DEMO_METRICS").map_or(true, |v| v != "off");
    let config = Config::from_yaml_str(
        "http-demo.yaml",
        &format!(
            "kontiki:\n  metrics:\n    enabled: {metrics}\n  amqp:\n    disable: true\n  http:\n    address: 127.0.0.1\n    port: {port}\n    documentation:\n      title: kontiki-rs HTTP demo\n      description: Routes declared in the IDL, served by kontiki-rt on axum.\n"
        ),
    )?;
    let running = service()?.start(config).await?;
    let addr = running.http_addr().ok_or("HTTP did not start")?;
    println!("kontiki-rt http://{addr}");
    if let Some(control) = control_port {
        // Bound and announced before the baseline: its line is the one scripts wait for.
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let served = bare_axum(control, "bare-axum-2", Some(ready_tx)).await;
            if let Err(e) = served {
                eprintln!("second bare axum server failed: {e}");
            }
        });
        ready_rx.await?;
    }
    if let Some(bare) = bare_port {
        tokio::spawn(async move {
            if let Err(e) = bare_axum(bare, "bare-axum", None).await {
                eprintln!("bare axum server failed: {e}");
            }
        });
    }
    kontiki_rt::shutdown_signal().await;
    running.shutdown().await;
    Ok(())
}
