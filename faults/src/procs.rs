//! The processes a scenario runs: Rust `faults-svc` instances, Python replicas and the
//! registry, each with its config in a temporary file and its log kept in memory.

use crate::Ctx;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncBufReadExt as _;
use tokio::process::{Child, Command};

/// `kontiki.amqp.rebalance_interval` of every Rust instance and Messenger of the suite
/// (seconds): with the cluster's three URLs, a process that failed over moves back to its
/// home node this long after it answers again (scenarios 13 and 14 check it).
pub const REBALANCE_SECS: u64 = 2;

/// How to start one service instance.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The service name (`kontiki.service_name`).
    pub service: String,
    /// The event type `on_tick` handles.
    pub tick: String,
    /// The event type `on_note` (broadcast) handles.
    pub note: String,
    /// The event type `on_session` (in_session) handles.
    pub session: String,
    /// The file handled ticks are appended to.
    pub record: Option<PathBuf>,
    /// Milliseconds each tick takes.
    pub handle_ms: u64,
    /// Whether the registry client runs.
    pub registration: bool,
    /// `kontiki.handler_timeouts`: seconds, by entrypoint name.
    pub handler_timeouts: BTreeMap<String, f64>,
    /// The file each run of `slow` with a call number appends that number to.
    pub rpc_record: Option<PathBuf>,
}

impl Spec {
    /// A service named `service` with event types `{service}.tick`, `{service}.note` and
    /// `{service}.session`.
    pub fn new(service: &str) -> Spec {
        Spec {
            service: service.to_owned(),
            tick: format!("{service}.tick"),
            note: format!("{service}.note"),
            session: format!("{service}.session"),
            record: None,
            handle_ms: 0,
            registration: false,
            handler_timeouts: BTreeMap::new(),
            rpc_record: None,
        }
    }

    fn config_yaml(&self, url: &str) -> String {
        let mut timeouts = String::new();
        if !self.handler_timeouts.is_empty() {
            timeouts.push_str("  handler_timeouts:\n");
            for (name, secs) in &self.handler_timeouts {
                timeouts.push_str(&format!("    {name}: {secs}\n"));
            }
        }
        format!(
            "kontiki:\n  service_name: {}\n  amqp:\n    url: \"{url}\"\n    rebalance_interval: {REBALANCE_SECS}\n    rpc:\n      timeout: 5\n  \
             heartbeat:\n    interval: 1\n  registration:\n    disable: {}\n    delay: 0\n  \
             shutdown:\n    grace_seconds: 5\n{timeouts}app:\n  events:\n    tick: \"{}\"\n    note: \"{}\"\n    session: \"{}\"\n",
            self.service, !self.registration, self.tick, self.note, self.session
        )
    }
}

/// A running child process (killed when dropped).
#[derive(Debug)]
pub struct Proc {
    /// `rust`, `python` or `registry`, with a number.
    pub label: String,
    /// The instance id the process reported.
    pub instance_id: String,
    /// The file it records handled ticks in, if any.
    pub record: Option<PathBuf>,
    child: Child,
    _config: tempfile::NamedTempFile,
    log: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    /// Its pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    fn signal(&self, sig: &str) -> Result<(), String> {
        let pid = self
            .pid()
            .ok_or_else(|| format!("{} already exited", self.label))?;
        let status = std::process::Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .map_err(|e| format!("cannot run kill: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("kill {sig} {pid} ({}) failed", self.label))
        }
    }

    /// SIGKILL.
    pub fn kill9(&self) -> Result<(), String> {
        self.signal("-KILL")
    }

    /// SIGTERM.
    pub fn terminate(&self) -> Result<(), String> {
        self.signal("-TERM")
    }

    /// Waits at most `limit` for the exit; returns the exit code (None: killed by a signal).
    pub async fn wait_exit(&mut self, limit: Duration) -> Result<Option<i32>, String> {
        match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(Ok(status)) => Ok(status.code()),
            Ok(Err(e)) => Err(format!("waiting for {}: {e}", self.label)),
            Err(_) => Err(format!(
                "{} did not exit within {limit:?}; its log:\n{}",
                self.label,
                self.log()
            )),
        }
    }

    /// SIGTERM and wait (at most 10 s, then SIGKILL); says how it went.
    pub async fn stop(mut self) -> String {
        let start = std::time::Instant::now();
        if let Err(e) = self.terminate() {
            return e;
        }
        match self.wait_exit(Duration::from_secs(10)).await {
            Ok(code) => format!("{} exit {code:?} in {:.1?}", self.label, start.elapsed()),
            Err(_) => {
                let _ = self.kill9();
                format!(
                    "{} did not exit within 10 s of SIGTERM (killed)",
                    self.label
                )
            }
        }
    }

    /// What it logged so far (stderr).
    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }
}

fn write_config(yaml: &str) -> Result<tempfile::NamedTempFile, String> {
    let mut file = tempfile::NamedTempFile::new().map_err(|e| format!("temp config: {e}"))?;
    file.write_all(yaml.as_bytes())
        .map_err(|e| format!("write config: {e}"))?;
    Ok(file)
}

/// Reads `reader` line by line into `log`; the first line for which `ready` gives an id is
/// sent through the returned channel.
fn pump<R>(
    reader: R,
    log: Arc<Mutex<Vec<String>>>,
    ready: fn(&str) -> Option<String>,
) -> tokio::sync::oneshot::Receiver<String>
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(reader).lines();
        let mut tx = Some(tx);
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(id) = ready(&line)
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(id);
            }
            if let Ok(mut log) = log.lock() {
                log.push(line);
            }
        }
    });
    rx
}

fn rust_ready(line: &str) -> Option<String> {
    if !line.contains("service started") {
        return None;
    }
    line.split("instance_id=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .map(str::to_owned)
}

fn python_ready(line: &str) -> Option<String> {
    line.strip_prefix("READY ")
        .and_then(|rest| rest.split_whitespace().nth(1))
        .map(str::to_owned)
}

async fn wait_ready(
    label: &str,
    rx: tokio::sync::oneshot::Receiver<String>,
    log: &Arc<Mutex<Vec<String>>>,
) -> Result<String, String> {
    match tokio::time::timeout(Duration::from_secs(60), rx).await {
        Ok(Ok(id)) => Ok(id),
        _ => Err(format!(
            "{label} did not start within 60 s; its log:\n{}",
            log.lock().map(|l| l.join("\n")).unwrap_or_default()
        )),
    }
}

/// Starts a Rust `faults-svc` and waits until it consumes.
pub async fn spawn_rust(ctx: &Ctx, spec: &Spec, label: &str) -> Result<Proc, String> {
    let config = write_config(&spec.config_yaml(&ctx.node.url))?;
    let mut cmd = Command::new(&ctx.svc_bin);
    cmd.arg("--config")
        .arg(config.path())
        .env("RUST_LOG", "info")
        .env("FAULTS_HANDLE_MS", spec.handle_ms.to_string());
    if let Some(record) = &spec.record {
        cmd.env("FAULTS_RECORD", record);
    }
    if let Some(record) = &spec.rpc_record {
        cmd.env("FAULTS_RPC_RECORD", record);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", ctx.svc_bin.display()))?;
    let log = Arc::default();
    let stderr = child.stderr.take().ok_or("no stderr pipe")?;
    let rx = pump(stderr, Arc::clone(&log), rust_ready);
    let instance_id = wait_ready(label, rx, &log).await?;
    Ok(Proc {
        label: label.to_owned(),
        instance_id,
        record: spec.record.clone(),
        child,
        _config: config,
        log,
    })
}

/// The Python of the Kontiki venv: `KONTIKI_PY`, else the one scripts/python-env.sh makes.
pub fn python() -> Result<PathBuf, String> {
    if let Ok(p) = std::env::var("KONTIKI_PY") {
        return Ok(PathBuf::from(p));
    }
    let script = crate::repo_root().join("scripts/python-env.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    match stdout.lines().last() {
        Some(path) if out.status.success() => Ok(PathBuf::from(path.trim())),
        _ => Err(format!(
            "{} failed (the Python Kontiki 2.3.2 venv); set KONTIKI_PY to a python with \
             kontiki==2.3.2:\n{}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        )),
    }
}

/// Starts the Python Kontiki replica (`faults/py/replica.py`) and waits until it consumes.
pub async fn spawn_python(ctx: &Ctx, spec: &Spec, label: &str) -> Result<Proc, String> {
    let config = write_config(&spec.config_yaml(&ctx.node.url))?;
    let script = crate::repo_root().join("faults/py/replica.py");
    let record = spec
        .record
        .clone()
        .ok_or("the Python replica needs a record file")?;
    let mut child = Command::new(python()?)
        .arg(&script)
        .arg("--config")
        .arg(config.path())
        .env("FAULTS_TICK", &spec.tick)
        .env("FAULTS_RECORD", &record)
        .env("FAULTS_HANDLE_MS", spec.handle_ms.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", script.display()))?;
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let stdout = child.stdout.take().ok_or("no stdout pipe")?;
    let stderr = child.stderr.take().ok_or("no stderr pipe")?;
    let rx = pump(stdout, Arc::clone(&log), python_ready);
    // stderr only goes to the log; nothing waits for a line of it.
    drop(pump(stderr, Arc::clone(&log), |_| None));
    let instance_id = wait_ready(label, rx, &log).await?;
    Ok(Proc {
        label: label.to_owned(),
        instance_id,
        record: Some(record),
        child,
        _config: config,
        log,
    })
}

/// Starts the Rust registry (`kontiki-faults registry`) and waits until it consumes.
pub async fn spawn_registry(ctx: &Ctx, label: &str) -> Result<Proc, String> {
    let yaml = format!(
        "kontiki:\n  amqp:\n    url: \"{}\"\n  http:\n    port: 0\nregistry:\n  \
         register_again_grace_seconds: 0\n",
        ctx.node.url
    );
    let config = write_config(&yaml)?;
    let mut child = Command::new(&ctx.runner_bin)
        .arg("registry")
        .arg("--config")
        .arg(config.path())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", ctx.runner_bin.display()))?;
    let log = Arc::default();
    let stderr = child.stderr.take().ok_or("no stderr pipe")?;
    let rx = pump(stderr, Arc::clone(&log), rust_ready);
    let instance_id = wait_ready(label, rx, &log).await?;
    Ok(Proc {
        label: label.to_owned(),
        instance_id,
        record: None,
        child,
        _config: config,
        log,
    })
}

/// How often each number was recorded in `files` (a missing file counts as empty).
pub fn read_records(files: &[&Path]) -> Result<BTreeMap<u64, u32>, String> {
    let mut counts = BTreeMap::new();
    for file in files {
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("cannot read {}: {e}", file.display())),
        };
        for line in text.lines().filter(|l| !l.is_empty()) {
            let n: u64 = line
                .parse()
                .map_err(|e| format!("{}: bad record line {line:?}: {e}", file.display()))?;
            *counts.entry(n).or_insert(0) += 1;
        }
    }
    Ok(counts)
}
