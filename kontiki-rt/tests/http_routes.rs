//! HTTP entrypoints through a real client on 127.0.0.1:0 (no broker: `kontiki.amqp.disable`):
//! every kind of route, every error path with its exact status and body, the `flow_id` header,
//! the handler's flow, the documentation routes, `kontiki.http.disable`, and the graceful drain.

use kontiki_rt::http::{HttpError, HttpRequest, HttpResponse, HttpRoute, Method, StatusCode};
use kontiki_rt::{Config, RunningService, Service, ServiceBuilder};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::{Notify, oneshot};

#[derive(Debug, Deserialize, Serialize)]
struct Tag {
    label: String,
}

#[derive(Debug, Deserialize, Serialize)]
struct NewItem {
    name: String,
    qty: u32,
    #[serde(default)]
    tags: Vec<Tag>,
}

const V1_DOC: &str = r#"{"openapi": "3.1.0", "info": {"title": "from the IDL", "version": "v1"}, "paths": {"/items": {"post": {"responses": {"201": {"description": "created"}}}}}}"#;
const V2_DOC: &str =
    r#"{"openapi": "3.1.0", "info": {"title": "v2 api", "version": "v2"}, "paths": {}}"#;

/// A config without AMQP; `extra` goes under `kontiki.http`.
fn config(extra: &str) -> Config {
    config_with(5, 0, extra)
}

fn config_with(grace_seconds: u32, port: u16, extra: &str) -> Config {
    let yaml = format!(
        "kontiki:\n  amqp:\n    disable: true\n  shutdown:\n    grace_seconds: {grace_seconds}\n  http:\n    address: 127.0.0.1\n    port: {port}\n    max_body_bytes: 1024\n{extra}app:\n  http:\n    ping_path: /configured/ping\n"
    );
    Config::from_yaml_str("http-test.yaml", &yaml).expect("test config")
}

/// The routes of the test service: one of each kind.
fn demo(slow: Option<Slow>) -> ServiceBuilder {
    let mut b = Service::builder("http-demo")
        .http(
            HttpRoute::new(Method::GET, "/hello/{who}", |req: HttpRequest| async move {
                let who: String = req.path_param("who")?;
                Ok(HttpResponse::json(StatusCode::OK, &json!({ "hello": who })))
            })
            .version("v1")
            .name("hello"),
        )
        .http(
            HttpRoute::new(Method::GET, "/items/{id}", |req: HttpRequest| async move {
                let id: u64 = req.path_param("id")?;
                let deleted = req.query_opt::<bool>("deleted")?.unwrap_or(false);
                let cursor: Option<String> = req.query_opt("cursor")?;
                Ok(HttpResponse::json(
                    StatusCode::OK,
                    &json!({ "id": id, "deleted": deleted, "cursor": cursor }),
                ))
            })
            .version("v1"),
        )
        .http(HttpRoute::new(
            Method::POST,
            "/items",
            |req: HttpRequest| async move {
                let item: NewItem = req.json_body()?;
                match item.name.as_str() {
                    "conflict" => Err(HttpError::mapped(StatusCode::CONFLICT, "conflict happened")),
                    "boom" => Err(HttpError::internal(std::io::Error::other(
                        "database exploded: secret-credentials-7f3a",
                    ))),
                    "panic" => panic!("secret panic payload 91c2"),
                    _ => Ok(HttpResponse::json(StatusCode::CREATED, &item)),
                }
            },
        ))
        .http(HttpRoute::new(
            Method::DELETE,
            "/items/{id}",
            |req: HttpRequest| async move {
                let _: u64 = req.path_param("id")?;
                Ok(HttpResponse::empty(StatusCode::NO_CONTENT))
            },
        ))
        .http(HttpRoute::new(
            Method::GET,
            "/search",
            |req: HttpRequest| async move {
                let q: String = req.query_param("q")?;
                let limit: u32 = req.query_param("limit")?;
                let tags: Vec<String> = req.query_all("tag")?;
                Ok(HttpResponse::json(
                    StatusCode::OK,
                    &json!({ "q": q, "limit": limit, "tags": tags }),
                ))
            },
        ))
        .http(HttpRoute::new(
            Method::PUT,
            "/upload",
            |req: HttpRequest| async move {
                Ok(HttpResponse::text(
                    StatusCode::OK,
                    req.body.len().to_string(),
                ))
            },
        ))
        .http(HttpRoute::from_config(
            Method::GET,
            "app.http.ping_path",
            |_req: HttpRequest| async move { Ok(HttpResponse::text(StatusCode::OK, "pong")) },
        ))
        .http(HttpRoute::new(
            Method::GET,
            "/flow",
            |req: HttpRequest| async move {
                let scope = kontiki_rt::flow::current().expect("a handler runs in a flow scope");
                Ok(HttpResponse::json(
                    StatusCode::OK,
                    &json!({
                        "flow_id": &*kontiki_rt::flow::current_flow_id().expect("flow id"),
                        "context_flow_id": req.context.flow_id().as_deref(),
                        "entrypoint": scope.entrypoint.as_str(),
                        "operation": &*scope.operation,
                        "hop": scope.inbound_hop_id.as_deref(),
                    }),
                ))
            },
        ))
        .openapi("v1", V1_DOC)
        .openapi("v2", V2_DOC);
    if let Some(slow) = slow {
        b = b.http(HttpRoute::new(
            Method::GET,
            "/slow",
            move |_req: HttpRequest| {
                let slow = slow.clone();
                async move {
                    slow.started.notify_one();
                    let release = slow
                        .release
                        .lock()
                        .unwrap()
                        .take()
                        .expect("one slow request");
                    release.await.expect("released");
                    Ok(HttpResponse::text(StatusCode::OK, "done"))
                }
            },
        ));
    }
    b
}

#[derive(Clone)]
struct Slow {
    started: Arc<Notify>,
    release: Arc<Mutex<Option<oneshot::Receiver<()>>>>,
}

async fn start(extra: &str) -> (RunningService, String) {
    let svc = demo(None)
        .build()
        .expect("valid definition")
        .start(config(extra))
        .await
        .expect("service starts");
    let addr = svc.http_addr().expect("HTTP runs");
    (svc, format!("http://{addr}"))
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// The response's status, `flow_id` header (checked: 12 hex digits) and body.
async fn send(
    req: reqwest::RequestBuilder,
) -> (StatusCode, String, reqwest::header::HeaderMap, String) {
    let res = req.send().await.expect("request");
    let status = StatusCode::from_u16(res.status().as_u16()).expect("status");
    let headers = res.headers().clone();
    let flow = headers
        .get("flow_id")
        .unwrap_or_else(|| panic!("no flow_id header on a {status} response"))
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        flow.len() == 12 && flow.chars().all(|c| c.is_ascii_hexdigit()),
        "flow_id {flow:?}"
    );
    let body = res.text().await.expect("body");
    (status, flow, headers, body)
}

fn json_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

#[tokio::test]
async fn each_route_kind_answers_with_its_status_and_body() {
    let (svc, base) = start("").await;
    let c = client();

    let (s, _, h, b) = send(c.get(format!("{base}/hello/a%20b"))).await;
    assert_eq!((s, json_of(&b)), (StatusCode::OK, json!({"hello": "a b"})));
    assert_eq!(h["content-type"], "application/json");

    let (s, _, _, b) = send(c.get(format!("{base}/items/42"))).await;
    assert_eq!(
        (s, json_of(&b)),
        (
            StatusCode::OK,
            json!({"id": 42, "deleted": false, "cursor": null})
        )
    );
    let (s, _, _, b) = send(c.get(format!("{base}/items/7?deleted=true&cursor=x%26y"))).await;
    assert_eq!(
        (s, json_of(&b)),
        (
            StatusCode::OK,
            json!({"id": 7, "deleted": true, "cursor": "x&y"})
        )
    );

    let item = json!({"name": "ok", "qty": 2, "tags": [{"label": "a"}]});
    let (s, _, _, b) = send(c.post(format!("{base}/items")).json(&item)).await;
    assert_eq!((s, json_of(&b)), (StatusCode::CREATED, item));

    let (s, _, _, b) = send(c.delete(format!("{base}/items/3"))).await;
    assert_eq!((s, b.as_str()), (StatusCode::NO_CONTENT, ""));

    let (s, _, _, b) = send(c.get(format!("{base}/search?q=cat&limit=5&tag=a&tag=b"))).await;
    assert_eq!(
        (s, json_of(&b)),
        (
            StatusCode::OK,
            json!({"q": "cat", "limit": 5, "tags": ["a", "b"]})
        )
    );

    let (s, _, h, b) = send(c.get(format!("{base}/configured/ping"))).await;
    assert_eq!((s, b.as_str()), (StatusCode::OK, "pong"));
    assert_eq!(h["content-type"], "text/plain; charset=utf-8");

    let (s, _, _, b) = send(c.put(format!("{base}/upload")).body(vec![b'x'; 1024])).await;
    assert_eq!(
        (s, b.as_str()),
        (StatusCode::OK, "1024"),
        "exactly the limit is fine"
    );
    svc.shutdown().await;
}

#[tokio::test]
async fn each_error_path_has_its_status_and_json_body() {
    let (svc, base) = start("").await;
    let c = client();
    let post = |body: &'static str| {
        c.post(format!("{base}/items"))
            .header("content-type", "application/json")
            .body(body)
    };

    let (s, _, h, b) = send(post(r#"{"name": "conflict", "qty": 1}"#)).await;
    assert_eq!(
        (s, json_of(&b)),
        (
            StatusCode::CONFLICT,
            json!({"message": "conflict happened"})
        )
    );
    assert_eq!(h["content-type"], "application/json");

    for (name, secret) in [("boom", "secret-credentials-7f3a"), ("panic", "91c2")] {
        let body: &'static str = if name == "boom" {
            r#"{"name": "boom", "qty": 1}"#
        } else {
            r#"{"name": "panic", "qty": 1}"#
        };
        let (s, _, _, b) = send(post(body)).await;
        assert_eq!(
            (s, json_of(&b)),
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"message": "internal server error"})
            ),
            "{name}"
        );
        assert!(!b.contains(secret), "{name} leaked its cause: {b}");
    }

    let (s, _, _, b) = send(post(r#"{"name": "x", "qty": "#)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let message = json_of(&b)["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        message.starts_with("malformed JSON: EOF while parsing"),
        "{b}"
    );

    let (s, _, _, b) = send(post(
        r#"{"name": "x", "qty": 1, "tags": [{"label": "a"}, {"label": 5}]}"#,
    ))
    .await;
    assert_eq!(
        (s, json_of(&b)),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"message": "invalid request body", "errors": [
                {"path": "tags[1].label", "message": "invalid type: integer `5`, expected a string"}
            ]})
        )
    );
    let (s, _, _, b) = send(post(r#"{"qty": 1}"#)).await;
    assert_eq!(
        (s, json_of(&b)),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"message": "invalid request body", "errors": [
                {"path": "", "message": "missing field `name`"}
            ]})
        )
    );

    let (s, _, _, b) = send(c.get(format!("{base}/items/abc"))).await;
    assert_eq!(
        (s, json_of(&b)),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"message": "invalid path parameter `id`", "errors": [
                {"path": "id", "message": "invalid digit found in string"}
            ]})
        )
    );
    let (s, _, _, b) = send(c.get(format!("{base}/items/1?deleted=maybe"))).await;
    assert_eq!(
        (s, json_of(&b)),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"message": "invalid query parameter `deleted`", "errors": [
                {"path": "deleted", "message": "provided string was not `true` or `false`"}
            ]})
        )
    );
    let (s, _, _, b) = send(c.get(format!("{base}/search?q=x"))).await;
    assert_eq!(
        (s, json_of(&b)),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"message": "missing query parameter `limit`", "errors": [
                {"path": "limit", "message": "required"}
            ]})
        )
    );

    let (s, _, _, b) = send(c.get(format!("{base}/nowhere"))).await;
    assert_eq!(
        (s, json_of(&b)),
        (StatusCode::NOT_FOUND, json!({"message": "not found"}))
    );
    let (s, _, h, b) = send(c.patch(format!("{base}/items"))).await;
    assert_eq!(
        (s, json_of(&b)),
        (
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"message": "method not allowed"})
        )
    );
    assert_eq!(h["allow"], "POST");

    // Over `kontiki.http.max_body_bytes` (1024), with and without a content-length.
    let (s, _, _, b) = send(c.put(format!("{base}/upload")).body(vec![b'x'; 1025])).await;
    assert_eq!(
        (s, json_of(&b)),
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            json!({"message": "the request body is larger than 1024 bytes"})
        )
    );
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        vec![Ok(vec![b'x'; 1000]), Ok(vec![b'y'; 100])];
    let stream = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let (s, _, _, _) = send(c.put(format!("{base}/upload")).body(stream)).await;
    assert_eq!(
        s,
        StatusCode::PAYLOAD_TOO_LARGE,
        "chunked body over the limit"
    );
    svc.shutdown().await;
}

#[tokio::test]
async fn every_response_has_a_new_flow_and_the_handler_runs_in_it() {
    let (svc, base) = start("").await;
    let c = client();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..3 {
        // A client's flow_id header is ignored: HTTP always starts a new flow (protocol §4).
        let (s, flow, _, b) = send(
            c.get(format!("{base}/flow"))
                .header("flow_id", "abcdefabcdef"),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert_ne!(flow, "abcdefabcdef");
        assert_eq!(
            json_of(&b),
            json!({
                "flow_id": flow,
                "context_flow_id": flow,
                "entrypoint": "http",
                "operation": "GET /flow",
                "hop": null,
            })
        );
        assert!(seen.insert(flow), "flow ids repeat");
    }
    for url in ["/nowhere", "/items/abc", "/hello/x"] {
        let (_, flow, _, _) = send(c.get(format!("{base}{url}"))).await;
        assert!(seen.insert(flow), "flow ids repeat");
    }
    svc.shutdown().await;
}

/// Log lines written while the test binary runs (a global subscriber: the server's tasks log
/// from worker threads).
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter("kontiki_rt=debug")
            .with_ansi(false)
            .with_writer(move || Writer(sink.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("only subscriber");
        buf
    })
    .clone()
}

struct Writer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Writer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn internal_errors_and_panics_are_logged_once_with_their_cause_and_flow() {
    let logs = captured_logs();
    let (svc, base) = start("").await;
    let c = client();
    let (s, boom_flow, _, _) = send(
        c.post(format!("{base}/items"))
            .json(&json!({"name": "boom", "qty": 1})),
    )
    .await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    let (s, panic_flow, _, _) = send(
        c.post(format!("{base}/items"))
            .json(&json!({"name": "panic", "qty": 1})),
    )
    .await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    svc.shutdown().await;
    let text = String::from_utf8(logs.lock().unwrap().clone()).expect("utf-8 logs");
    let lines_with =
        |needle: &str| -> Vec<&str> { text.lines().filter(|l| l.contains(needle)).collect() };
    let boom = lines_with("database exploded: secret-credentials-7f3a");
    assert_eq!(boom.len(), 1, "logged once: {boom:#?}");
    assert!(
        boom[0].contains("ERROR") && boom[0].contains(&boom_flow),
        "{}",
        boom[0]
    );
    // The route recorded its name in the request's span.
    assert!(boom[0].contains(r#"route="POST /items""#), "{}", boom[0]);
    let panic = lines_with("secret panic payload 91c2");
    // The panic hook prints the panic once to stderr; the log has it once.
    assert_eq!(panic.len(), 1, "logged once: {panic:#?}");
    assert!(
        panic[0].contains("ERROR") && panic[0].contains(&panic_flow),
        "{}",
        panic[0]
    );
    assert!(panic[0].contains("POST /items"), "{}", panic[0]);
}

#[tokio::test]
async fn docs_serve_each_document_and_a_self_contained_swagger_ui() {
    let (svc, base) = start("").await;
    let c = client();
    for (version, doc) in [("v1", V1_DOC), ("v2", V2_DOC)] {
        let (s, _, h, b) = send(c.get(format!("{base}/api/{version}/openapi.json"))).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(h["content-type"], "application/json");
        assert_eq!(b, doc, "served exactly as given");

        let (s, _, h, _) = send(c.get(format!("{base}/api/{version}/docs"))).await;
        assert!(s.is_redirection(), "{s}");
        assert_eq!(h["location"], format!("/api/{version}/docs/swagger"));

        for page in ["swagger", ""] {
            let (s, _, h, html) = send(c.get(format!("{base}/api/{version}/docs/{page}"))).await;
            assert_eq!(s, StatusCode::OK);
            assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
            assert!(html.contains("swagger-ui"), "{html}");
            assert!(
                !html.contains("http://") && !html.contains("https://"),
                "the page must not load anything from elsewhere:\n{html}"
            );
            // Every asset the page names loads from the service itself.
            let assets = asset_refs(&html);
            assert!(assets.len() >= 4, "{assets:?}");
            for asset in assets {
                let (s, _, _, body) = send(c.get(format!(
                    "{base}/api/{version}/docs/{}",
                    asset.trim_start_matches("./")
                )))
                .await;
                assert_eq!(s, StatusCode::OK, "{asset}");
                assert!(!body.is_empty(), "{asset}");
                if asset.ends_with("swagger-initializer.js") {
                    assert!(
                        body.contains(&format!("\"/api/{version}/openapi.json\"")),
                        "the page loads this version's document: {body}"
                    );
                    assert!(body.contains("\"validatorUrl\": \"none\""), "{body}");
                }
            }
        }
        let (s, _, _, b) = send(c.get(format!("{base}/api/{version}/docs/nope.js"))).await;
        assert_eq!(
            (s, json_of(&b)),
            (StatusCode::NOT_FOUND, json!({"message": "not found"}))
        );
    }
    let (s, _, _, _) = send(c.get(format!("{base}/api/v3/openapi.json"))).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    svc.shutdown().await;
}

/// `href="..."` and `src="..."` values of a page.
fn asset_refs(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["href=\"", "src=\""] {
        let mut rest = html;
        while let Some(i) = rest.find(attr) {
            rest = &rest[i + attr.len()..];
            let end = rest.find('"').expect("closing quote");
            out.push(rest[..end].to_owned());
            rest = &rest[end..];
        }
    }
    out
}

#[tokio::test]
async fn docs_config_sets_title_template_or_turns_them_off() {
    let (svc, base) = start(
        "    documentation:\n      title: Shop API\n      description: Buy things\n      path_template: /docs/{version}\n",
    )
    .await;
    let c = client();
    let (s, _, _, b) = send(c.get(format!("{base}/docs/v1.json"))).await;
    assert_eq!(s, StatusCode::OK);
    let mut want = json_of(V1_DOC);
    want["info"]["title"] = json!("Shop API");
    want["info"]["description"] = json!("Buy things");
    assert_eq!(json_of(&b), want);
    let (s, _, _, _) = send(c.get(format!("{base}/docs/v2/swagger"))).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _, _) = send(c.get(format!("{base}/api/v1/openapi.json"))).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    svc.shutdown().await;

    let (svc, base) = start("    documentation:\n      enabled: false\n").await;
    for path in ["/api/v1/openapi.json", "/api/v1/docs/swagger"] {
        let (s, _, _, _) = send(c.get(format!("{base}{path}"))).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}");
    }
    let (s, _, _, _) = send(c.get(format!("{base}/hello/x"))).await;
    assert_eq!(s, StatusCode::OK, "routes are still served");
    svc.shutdown().await;
}

#[tokio::test]
async fn http_disable_or_no_routes_means_no_server() {
    let svc = demo(None)
        .build()
        .unwrap()
        .start(config("    disable: true\n"))
        .await
        .unwrap();
    assert_eq!(svc.http_addr(), None);
    svc.shutdown().await;
    let svc = Service::builder("no-routes")
        .openapi("v1", V1_DOC)
        .build()
        .unwrap()
        .start(config(""))
        .await
        .unwrap();
    assert_eq!(svc.http_addr(), None);
    svc.shutdown().await;
}

#[tokio::test]
async fn bad_definitions_are_refused() {
    let ok = |_req: HttpRequest| async move { Ok(HttpResponse::empty(StatusCode::OK)) };
    let build_err = |b: ServiceBuilder| b.build().expect_err("refused").to_string();
    let base = || Service::builder("bad");
    let twice = base()
        .http(HttpRoute::new(Method::GET, "/a", ok))
        .http(HttpRoute::new(Method::GET, "/a", ok));
    assert!(build_err(twice).contains("`GET /a` is declared twice"));
    assert!(build_err(base().http(HttpRoute::new(Method::GET, "/a/:id", ok))).contains("`{name}`"));
    assert!(
        build_err(base().http(HttpRoute::new(Method::GET, "a", ok)))
            .contains("must start with `/`")
    );
    assert!(build_err(base().openapi("v1", "{not json")).contains("not JSON"));
    assert!(build_err(base().openapi("v1", "[]")).contains("not a JSON object"));
    assert!(
        build_err(base().openapi("v1", "{}").openapi("v1", "{}")).contains("two OpenAPI documents")
    );

    // Known only at start: paths from config, and paths of one shape.
    let start_err = |b: ServiceBuilder, port: u16| async move {
        b.build()
            .unwrap()
            .start(config_with(5, port, ""))
            .await
            .expect_err("refused")
            .to_string()
    };
    let shapes = base()
        .http(HttpRoute::new(Method::GET, "/a/{x}", ok))
        .http(HttpRoute::new(Method::POST, "/a/{y}", ok));
    assert!(
        start_err(shapes, 0)
            .await
            .contains("match the same requests")
    );
    let missing = base().http(HttpRoute::from_config(Method::GET, "app.nope", ok));
    assert!(start_err(missing, 0).await.contains("app.nope"));
    let dup = base()
        .http(HttpRoute::new(Method::GET, "/configured/ping", ok))
        .http(HttpRoute::from_config(
            Method::GET,
            "app.http.ping_path",
            ok,
        ));
    assert!(start_err(dup, 0).await.contains("declared twice"));
    let clash = base()
        .http(HttpRoute::new(Method::GET, "/api/v1/openapi.json", ok))
        .openapi("v1", "{}");
    assert!(start_err(clash, 0).await.contains("conflicts"));
    let busy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = busy.local_addr().unwrap().port();
    let taken = base().http(HttpRoute::new(Method::GET, "/a", ok));
    assert!(
        start_err(taken, port)
            .await
            .contains("could not listen for HTTP")
    );
}

#[tokio::test]
async fn shutdown_stops_accepting_and_finishes_the_request_in_flight() {
    let (release_tx, release_rx) = oneshot::channel();
    let slow = Slow {
        started: Arc::new(Notify::new()),
        release: Arc::new(Mutex::new(Some(release_rx))),
    };
    let svc = demo(Some(slow.clone()))
        .build()
        .unwrap()
        .start(config(""))
        .await
        .unwrap();
    let addr = svc.http_addr().unwrap();
    let in_flight = tokio::spawn(send(client().get(format!("http://{addr}/slow"))));
    slow.started.notified().await;

    let shutdown = tokio::spawn(svc.shutdown());
    // The listener closes first: new connections are refused while the slow request runs.
    tokio::time::timeout(Duration::from_secs(10), async {
        while tokio::net::TcpStream::connect(addr).await.is_ok() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the listener closes at shutdown");
    assert!(
        !shutdown.is_finished(),
        "shutdown waits for the request in flight"
    );
    assert!(!in_flight.is_finished());

    release_tx.send(()).unwrap();
    let (s, _, _, b) = in_flight.await.unwrap();
    assert_eq!((s, b.as_str()), (StatusCode::OK, "done"));
    tokio::time::timeout(Duration::from_secs(10), shutdown)
        .await
        .expect("shutdown ends once the request finished")
        .unwrap();
}

#[tokio::test]
async fn a_request_longer_than_the_grace_period_does_not_hold_shutdown() {
    let (_release_tx, release_rx) = oneshot::channel::<()>();
    let slow = Slow {
        started: Arc::new(Notify::new()),
        release: Arc::new(Mutex::new(Some(release_rx))),
    };
    let cfg = config_with(1, 0, "");
    let svc = demo(Some(slow.clone()))
        .build()
        .unwrap()
        .start(cfg)
        .await
        .unwrap();
    let addr = svc.http_addr().unwrap();
    let _in_flight = tokio::spawn(send(client().get(format!("http://{addr}/slow"))));
    slow.started.notified().await;
    let started = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(10), svc.shutdown())
        .await
        .expect("shutdown is bounded by the grace period");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
}
