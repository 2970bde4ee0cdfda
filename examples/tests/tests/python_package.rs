//! The generated Python package (`generated/python/kontiki_generated`, from
//! `kontiki-codegen python`) against Rust over RabbitMQ, with the real Python Kontiki 2.3.2:
//!
//! - its typed clients call the Rust example services (and a Rust `proto-svc` for every special
//!   wire type and kind of error); each declared error code arrives as its exception class;
//! - Python services built on its base classes (`py/typed_service.py`) are called by the
//!   generated Rust clients;
//! - events go both ways: a typed Python publisher to the Rust compute-api, and a Rust
//!   publication to a typed Python handler whose typed publisher answers.
//!
//! Python is `KONTIKI_PY` (scripts/test.sh sets it), else the venv scripts/python-env.sh makes;
//! without it the tests fail saying so, they never skip.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use examples_tests::{Tap, WAIT, amqp_url, messenger, no_broker, repo_root};
use kontiki_generated::compute::compute_api::ComputeApiClient;
use kontiki_generated::proto_svc::proto_svc::{
    BoomError, ClientErrClientError, ClientErrError, EchoError, ModelArgError, ProtoSvc,
    ProtoSvcClient, ProtoSvcServer, RetNoneError, TypesError,
};
use kontiki_generated::proto_svc::{Echoed, Item, ModelArg, Types};
use kontiki_generated::session::Step;
use kontiki_generated::session::session_service::{
    SessionService, SessionServiceClient, SessionServiceServer,
};
use kontiki_rt::codegen::{Bytes, Context, DateTime, Headers, Uuid};
use kontiki_rt::{Config, RpcError, RunningService, Service};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// A service name no other test or earlier run uses.
fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let rand = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}-{n}-{}", std::process::id(), &rand[..8])
}

/// A config for a test service; `extra` is appended as is (indent it to extend `kontiki:`).
fn config(service_name: &str, extra: &str) -> Config {
    let yaml = format!(
        "kontiki:\n  service_name: {service_name}\n  amqp:\n    url: \"{}\"\n    rpc:\n      timeout: 10\n  shutdown:\n    grace_seconds: 5\n  registration:\n    disable: true\n  http:\n    address: 127.0.0.1\n    port: 0\n{extra}",
        amqp_url()
    );
    Config::from_yaml_str("test.yaml", &yaml).expect("test config")
}

async fn start(service: kontiki_rt::Result<Service>, name: &str, extra: &str) -> RunningService {
    service
        .expect("build the service")
        .start(config(name, extra))
        .await
        .unwrap_or_else(|e| panic!("start {name}: {}", no_broker(e)))
}

/// The venv's python: `KONTIKI_PY`, else made (or reused) by scripts/python-env.sh.
fn python() -> PathBuf {
    if let Ok(p) = std::env::var("KONTIKI_PY") {
        return PathBuf::from(p);
    }
    let out = std::process::Command::new("bash")
        .arg(repo_root().join("scripts/python-env.sh"))
        .output()
        .expect("run scripts/python-env.sh");
    assert!(
        out.status.success(),
        "these tests need the Python venv with kontiki==2.3.2 (set KONTIKI_PY or run \
         scripts/test.sh); scripts/python-env.sh failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    PathBuf::from(stdout.lines().last().unwrap_or_default().trim())
}

fn py_script(name: &str) -> PathBuf {
    repo_root().join("examples/tests/py").join(name)
}

fn python_command(script: &str) -> Command {
    let mut cmd = Command::new(python());
    cmd.arg(py_script(script))
        .env("PYTHONPATH", repo_root().join("generated/python"))
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// proto_svc.py's behaviour, in Rust, from the generated trait.
struct RustProto;

impl ProtoSvc for RustProto {
    async fn echo(&self, _ctx: Context, text: String, n: i64) -> Result<Echoed, EchoError> {
        Ok(Echoed {
            args: vec![json!(text), json!(n)],
            kwargs: Default::default(),
        })
    }

    async fn client_err(&self, _ctx: Context) -> Result<(), ClientErrError> {
        Err(ClientErrError::not_found())
    }

    async fn boom(&self, _ctx: Context) -> Result<(), BoomError> {
        Err(BoomError::internal("kaboom"))
    }

    async fn ret_none(&self, _ctx: Context) -> Result<(), RetNoneError> {
        Ok(())
    }

    async fn types(&self, _ctx: Context) -> Result<Types, TypesError> {
        Ok(expected_types())
    }

    async fn model_arg(
        &self,
        _ctx: Context,
        item: Item,
        other: Option<Item>,
    ) -> Result<ModelArg, ModelArgError> {
        let other_type = if other.is_some() { "Item" } else { "NoneType" };
        Ok(ModelArg {
            item,
            item_type: "Item".into(),
            other,
            other_type: other_type.into(),
        })
    }
}

/// A session-service that reports each step it handles: (session id header, seq, data).
struct Steps(tokio::sync::mpsc::UnboundedSender<(String, u32, String)>);

impl SessionService for Steps {
    async fn on_step(
        &self,
        _ctx: Context,
        headers: Headers,
        payload: Step,
    ) -> Result<(), kontiki_rt::BoxError> {
        let session = headers
            .get("session_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let _ = self.0.send((session, payload.seq, payload.data));
        Ok(())
    }
}

/// What proto-svc's `types()` returns, in Rust and in Python.
fn expected_types() -> Types {
    Types {
        dt: "2024-01-02T03:04:05+00:00".parse::<DateTime>().unwrap(),
        d: "2024-01-02".parse().unwrap(),
        u: Uuid::from_u128(1),
        b: Bytes(vec![0, 1, b'h', b'i']),
        t: vec![1, 2],
        model: Item {
            name: "x".into(),
            qty: 1,
        },
        none: Value::Null,
    }
}

fn client_error(r: &Value, class: &str, code: &str, message: &str) {
    assert_eq!(
        (
            r["ok"].as_bool(),
            r["class"].as_str(),
            r["code"].as_str(),
            r["message"].as_str(),
            r["is_rpc_client_error"].as_bool()
        ),
        (
            Some(false),
            Some(class),
            Some(code),
            Some(message),
            Some(true)
        ),
        "{r}"
    );
}

fn ok(r: &Value, ty: &str, value: Value) {
    assert_eq!(
        (r["ok"].as_bool(), r["type"].as_str(), &r["value"]),
        (Some(true), Some(ty), &value),
        "{r}"
    );
}

#[tokio::test]
async fn generated_python_client_calls_the_rust_services() {
    let rpc_name = unique("py-pkg-rpc");
    let names = [
        unique("py-pkg-gateway"),
        unique("py-pkg-compute"),
        unique("py-pkg-heartbeat"),
        unique("py-pkg-billing"),
        unique("py-pkg-proto"),
    ];
    let [
        gateway_name,
        compute_name,
        heartbeat_name,
        billing_name,
        proto_name,
    ] = &names;
    let session_name = unique("py-pkg-session");
    let rpc = start(rpc_service::service(), &rpc_name, "").await;
    let gateway = start(
        api_gateway::service(),
        gateway_name,
        &format!("  peers:\n    rpc_service: {rpc_name}\n"),
    )
    .await;
    let compute = start(compute_api::service(), compute_name, "").await;
    let dir = tempfile::tempdir().expect("a directory for heartbeat's degraded check");
    let hb = start(
        heartbeat::service(),
        heartbeat_name,
        &format!(
            "app:\n  heartbeat:\n    required_dir: {}\n",
            dir.path().display()
        ),
    )
    .await;
    let bill = start(billing::service(), billing_name, "").await;
    let proto = start(
        Ok(ProtoSvcServer::new(RustProto)
            .service_builder()
            .build()
            .expect("build proto-svc")),
        proto_name,
        "",
    )
    .await;
    let (steps_tx, mut steps) = tokio::sync::mpsc::unbounded_channel();
    let sessions = start(
        Ok(SessionServiceServer::new(Steps(steps_tx))
            .service_builder()
            .build()
            .expect("build session-service")),
        &session_name,
        "",
    )
    .await;
    let mut processed = Tap::bind("event_exchange", "thing_processed").await;
    let event_id = unique("py-pkg-event");

    let out = python_command("typed_client.py")
        .args(["--url", &amqp_url(), "--rpc", &rpc_name])
        .args(["--gateway", gateway_name, "--compute", compute_name])
        .args(["--heartbeat", heartbeat_name, "--billing", billing_name])
        .args(["--proto", proto_name, "--session", &session_name])
        .args(["--event-id", &event_id])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), out)
        .await
        .expect("typed_client.py finishes within 120 s")
        .expect("run typed_client.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "typed_client.py failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("typed_client.py printed {stdout:?}: {e}"));

    ok(&r["rpc_ok"], "str", json!("ok"));
    client_error(
        &r["rpc_bad"],
        "UserInputError",
        "USER_INPUT_ERROR",
        "Invalid feature value",
    );
    assert_eq!(
        r["rpc_except"],
        json!("caught UserInputError: Invalid feature value")
    );
    ok(&r["gateway_ok"], "str", json!("ok"));
    client_error(
        &r["gateway_bad"],
        "UserInputError",
        "USER_INPUT_ERROR",
        "Invalid feature value",
    );
    ok(&r["compute"], "int", json!(42));
    ok(&r["ping"], "str", json!("pong"));

    let invoice = &r["invoice"];
    assert_eq!(
        (
            invoice["type"].as_str(),
            invoice["id_type"].as_str(),
            invoice["created_at_type"].as_str(),
            invoice["created_at_aware"].as_bool(),
            invoice["wire"]["user_id"].as_str()
        ),
        (
            Some("Invoice"),
            Some("UUID"),
            Some("datetime"),
            Some(true),
            Some("u_py")
        ),
        "{invoice}"
    );

    ok(
        &r["echo"],
        "Echoed",
        json!({"args": ["hi", 2], "kwargs": {}}),
    );
    client_error(
        &r["client_err"],
        "NotFoundError",
        "NOT_FOUND",
        "no such thing",
    );
    assert_eq!(
        (
            r["boom"]["class"].as_str(),
            r["boom"]["code"].as_str(),
            r["boom"]["is_rpc_client_error"].as_bool()
        ),
        (Some("RpcServerError"), Some("INTERNAL_ERROR"), Some(false)),
        "{}",
        r["boom"]
    );
    ok(&r["ret_none"], "NoneType", Value::Null);
    // The Python model re-encodes to exactly the JSON the Rust service sent.
    let types = &r["types"];
    assert_eq!(
        types["wire"],
        serde_json::to_value(expected_types()).unwrap(),
        "{types}"
    );
    assert_eq!(types["b"], json!(["bytes", "00016869"]), "{types}");
    assert_eq!(
        types["dt"],
        json!(["datetime", "2024-01-02T03:04:05+00:00"]),
        "{types}"
    );
    assert_eq!(types["d"], json!(["date", "2024-01-02"]), "{types}");
    assert_eq!(
        types["u"],
        json!(["UUID", "00000000-0000-0000-0000-000000000001"]),
        "{types}"
    );
    assert_eq!(types["model"], json!("Item"), "{types}");
    ok(
        &r["model_arg"],
        "ModelArg",
        json!({"item": {"name": "a", "qty": 2}, "item_type": "Item", "other": null, "other_type": "NoneType"}),
    );
    assert_eq!(
        (
            r["timeout"]["class"].as_str(),
            r["timeout"]["code"].as_str()
        ),
        (Some("RpcTimeoutError"), Some("RPC_TIMEOUT")),
        "{}",
        r["timeout"]
    );
    let waited = r["timeout_seconds"].as_f64().unwrap_or(f64::MAX);
    assert!(
        (0.4..5.0).contains(&waited),
        "a 0.5 s per-call timeout took {waited} s"
    );

    // The typed Python publisher's thing_happened reached the Rust compute-api, which answered.
    assert_eq!(r["published"], json!(event_id));
    let body = processed
        .next_matching("thing_processed from the Rust compute-api", |b| {
            *b == json!({"payload": {"id": event_id}})
        })
        .await;
    assert_eq!(body, json!({"payload": {"id": event_id}}));

    // The typed session handle's step reached the pinned Rust instance, with its session id.
    let step = tokio::time::timeout(WAIT, steps.recv())
        .await
        .expect("the session step arrives")
        .expect("the session service is running");
    assert_eq!(
        step,
        (
            r["session_id"].as_str().unwrap_or("<none>").to_owned(),
            7,
            event_id.clone()
        )
    );

    for svc in [sessions, proto, bill, hb, compute, gateway, rpc] {
        svc.shutdown().await;
    }
}

/// `py/typed_service.py KIND` under `service_name`; waits for its `READY` line.
struct PyService {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    /// What `READY` carried after the service name (the HTTP port).
    ready: Vec<String>,
    /// Lines printed before `READY` and not looked at yet.
    early: Vec<String>,
    /// The service name.
    name: String,
    _config: tempfile::NamedTempFile,
}

impl PyService {
    async fn start(kind: &str, service_name: &str) -> PyService {
        PyService::start_with(kind, service_name, "").await
    }

    /// With `extra` appended to the config (top-level YAML).
    async fn start_with(kind: &str, service_name: &str, extra: &str) -> PyService {
        use std::io::Write as _;
        let mut file = tempfile::NamedTempFile::new().expect("temp config");
        write!(
            file,
            "kontiki:\n  service_name: {service_name}\n  amqp:\n    url: \"{}\"\n  registration:\n    disable: true\n  shutdown:\n    grace_seconds: 2\n  http:\n    address: 127.0.0.1\n    port: 0\n{extra}",
            amqp_url()
        )
        .expect("write config");
        let mut child = python_command("typed_service.py")
            .arg(kind)
            .arg("--config")
            .arg(file.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn typed_service.py");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut ready = None;
        let mut before = Vec::new();
        while ready.is_none() {
            let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
                .await
                .unwrap_or_else(|_| {
                    panic!("typed_service.py {kind} did not print READY within 60 s")
                })
                .expect("read stdout")
                .unwrap_or_else(|| panic!("typed_service.py {kind} exited before READY"));
            match line.strip_prefix("READY ") {
                Some(rest) => ready = Some(rest.to_owned()),
                None => before.push(line),
            }
        }
        let ready = ready.unwrap_or_default();
        let mut words = ready.split_whitespace().map(str::to_owned);
        assert_eq!(words.next().as_deref(), Some(service_name), "{ready}");
        PyService {
            child,
            lines,
            ready: words.collect(),
            early: before,
            name: service_name.to_owned(),
            _config: file,
        }
    }

    /// Waits (at most 60 s) for the line `want`.
    async fn wait_line(&mut self, want: &str) {
        if let Some(i) = self.early.iter().position(|l| l == want) {
            self.early.remove(i);
            return;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let line = tokio::time::timeout_at(deadline, self.lines.next_line())
                .await
                .unwrap_or_else(|_| panic!("typed_service.py printed no {want} within 60 s"))
                .expect("read stdout")
                .unwrap_or_else(|| panic!("typed_service.py exited before printing {want}"));
            if line == want {
                return;
            }
            self.early.push(line);
        }
    }

    /// SIGTERM, then wait for the exit.
    async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        let _ = tokio::time::timeout(Duration::from_secs(15), self.child.wait()).await;
    }
}

#[tokio::test]
async fn generated_rust_client_calls_python_services_on_the_generated_base_classes() {
    let proto_name = unique("py-pkg-typed-proto");
    let compute_name = unique("py-pkg-typed-compute");
    let proto = PyService::start("proto", &proto_name).await;
    let compute = PyService::start("compute", &compute_name).await;
    let m = messenger().await;

    let client = ProtoSvcClient::new(m.clone()).with_service_name(&proto_name);
    let echoed = client.echo("hi", 2).await.unwrap();
    assert_eq!(echoed.args, vec![json!("hi"), json!(2)]);
    assert!(echoed.kwargs.is_empty());
    match client.client_err().await {
        Err(RpcError::Client {
            error: ClientErrClientError::NotFound { message },
            ..
        }) => assert_eq!(message, "no such thing"),
        other => panic!("client_err: {other:?}"),
    }
    match client.boom().await {
        Err(RpcError::Server { error, .. }) => {
            assert_eq!(
                (error.code.as_deref(), error.message.as_deref()),
                (Some("INTERNAL_ERROR"), Some("kaboom"))
            )
        }
        other => panic!("boom: {other:?}"),
    }
    client.ret_none().await.unwrap();
    assert_eq!(client.types().await.unwrap(), expected_types());
    let r = client
        .model_arg(
            Item {
                name: "a".into(),
                qty: 2,
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        (
            r.item.name.as_str(),
            r.item.qty,
            r.other,
            r.other_type.as_str()
        ),
        ("a", 2, None, "NoneType")
    );
    let r = client
        .model_arg(
            Item {
                name: "b".into(),
                qty: 1,
            },
            Some(Item {
                name: "c".into(),
                qty: 3,
            }),
        )
        .await
        .unwrap();
    assert_eq!(
        (r.item_type.as_str(), r.other_type.as_str()),
        ("Item", "Item")
    );
    // Arguments the contract refuses are the caller's fault, as kontiki-rs answers them.
    match m
        .call(
            &proto_name,
            "echo",
            vec![json!("hi"), json!("two")],
            Default::default(),
        )
        .await
    {
        Err(RpcError::Client { error, .. }) => {
            assert_eq!(error.code.as_deref(), Some("INVALID_ARGUMENTS"));
            let message = error.message.unwrap_or_default();
            assert!(message.starts_with("n: "), "{message}");
        }
        other => panic!("echo(\"hi\", \"two\"): {other:?}"),
    }

    // A Rust session with the typed Python session-service: the step reaches its in_session
    // handler, typed, with the session's headers.
    let mut sessions = PyService::start("session", &unique("py-pkg-typed-session")).await;
    let pinned = SessionServiceClient::new(m.clone())
        .with_service_name(&sessions.name)
        .open_session()
        .await
        .unwrap();
    pinned
        .session_step(&Step {
            seq: 3,
            data: "three".into(),
        })
        .await
        .unwrap();
    sessions
        .wait_line(&format!("STEP {} 3 three", pinned.session().session_id()))
        .await;
    sessions.stop().await;

    let compute_client = ComputeApiClient::new(m.clone()).with_service_name(&compute_name);
    assert_eq!(compute_client.compute(21).await.unwrap(), 42);

    // A Rust publication reaches the typed Python handler, whose typed publisher answers.
    let mut processed = Tap::bind("event_exchange", "thing_processed").await;
    let event_id = unique("py-pkg-typed-event");
    m.publish("thing_happened", &json!({"id": event_id}))
        .await
        .unwrap();
    let want = json!({"payload": {"handled_by": "python", "original": {"id": event_id}}});
    let body = processed
        .next_matching("thing_processed from the typed Python compute-api", |b| {
            *b == want
        })
        .await;
    assert_eq!(body, want, "within {WAIT:?}");

    proto.stop().await;
    compute.stop().await;
}

#[tokio::test]
async fn python_http_routes_and_tasks_on_the_generated_base_classes() {
    let http = PyService::start("http", &unique("py-pkg-typed-http")).await;
    let port = http
        .ready
        .first()
        .cloned()
        .expect("READY carries the HTTP port");
    let base = format!("http://127.0.0.1:{port}");
    let web = reqwest::Client::new();
    let get = |path: &str| web.get(format!("{base}{path}")).send();
    let answer = |r: reqwest::Response| async move {
        let status = r.status().as_u16();
        let text = r.text().await.expect("read the body");
        (
            status,
            serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text)),
        )
    };

    let r = answer(get("/health").await.unwrap()).await;
    assert_eq!(r, (200, json!({"message": "ok"})));
    // The body is validated into NewItem (its declared default filled in), the status is the
    // route's.
    let post = |body: Value| web.post(format!("{base}/items")).json(&body).send();
    let r = answer(post(json!({"name": "n"})).await.unwrap()).await;
    assert_eq!(r, (201, json!({"id": 1, "name": "n", "qty": 1})));
    let r = answer(post(json!({"name": "taken"})).await.unwrap()).await;
    assert_eq!(r, (409, json!({"message": "conflict happened"})));
    let r = answer(post(json!({"qty": 2})).await.unwrap()).await;
    assert_eq!(r.0, 422, "{r:?}");
    // Path and query parameters arrive typed.
    let r = answer(get("/items/7?deleted=true").await.unwrap()).await;
    assert_eq!(r, (200, json!({"id": 7, "name": "deleted=True", "qty": 1})));
    let r = answer(get("/items/7").await.unwrap()).await;
    assert_eq!(
        r,
        (200, json!({"id": 7, "name": "deleted=False", "qty": 1}))
    );
    let r = answer(get("/items/404").await.unwrap()).await;
    assert_eq!(r, (404, json!({"message": "no item 404"})));
    let r = answer(get("/items/seven").await.unwrap()).await;
    assert_eq!(r.0, 400, "{r:?}");
    let r = answer(get("/owners/bob/items?order=desc&cursor=c1").await.unwrap()).await;
    assert_eq!(
        r,
        (200, json!([{"id": 20, "name": "bob/desc/c1", "qty": 1}]))
    );
    let r = answer(get("/owners/bob/items?order=sideways").await.unwrap()).await;
    assert_eq!(r.0, 400, "{r:?}");
    http.stop().await;

    // Interval tasks run at start (`immediate`), one from config included.
    let mut tasks = PyService::start_with(
        "tasks",
        &unique("py-pkg-typed-tasks"),
        "app:\n  cleanup:\n    interval: 3600\n",
    )
    .await;
    tasks.wait_line("TICK").await;
    tasks.wait_line("CLEANUP").await;
    tasks.stop().await;
}
