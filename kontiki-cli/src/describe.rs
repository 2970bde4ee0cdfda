//! `kontiki describe SERVICE`: a running service's contract as `.kontiki` text, built from what
//! the registry knows about it (Rust kontiki-registry or Python `kontiki_registry` alike).
//!
//! The registry knows, from each instance's `registry.register` body (protocol §5.1, §5.6):
//! the service name and version, and its entrypoint catalogue: event handlers with their event
//! types, mode and `max_attempts`, RPC method names, HTTP methods and paths, task schedules.
//! Its timeline (`get_filtered_events`, §5.5) holds the headers of the messages the service
//! sent: the events it publishes and the RPCs it calls. It knows no types: parameters, results
//! and payloads, error codes and headers are not on the wire anywhere the registry looks. The
//! contract marks each gap with a placeholder that still checks (`json` payloads and results,
//! RPCs without parameters, `string` path parameters) and says so in its header comment, so the
//! text is a starting point to complete, for a Python service most of all.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde_json::{Map, Value, json};

use crate::cli::DescribeArgs;
use crate::conn::Broker;
use crate::exit::{Exit, Failure};
use crate::registry::registry_call;

/// `kontiki describe`.
pub(crate) async fn describe(broker: &Broker, args: DescribeArgs) -> Result<(), Failure> {
    let m = broker.messenger().await?;
    let services = registry_call(&m, "get_services", json!({})).await;
    let timeline = match (&services, args.no_timeline) {
        (Ok(_), false) => Some(
            registry_call(
                &m,
                "get_filtered_events",
                json!({"filter_field": "service_name", "value": args.service}),
            )
            .await,
        ),
        _ => None,
    };
    m.close().await;
    let services = services?;
    let Some(all) = services.as_object() else {
        return Err(Failure::new(
            Exit::Failure,
            "INVALID_REPLY",
            format_args!(
                "ServiceRegistry.get_services returned something that is not {{service: {{instance: ...}}}}: {services}"
            ),
        ));
    };
    let Some(instances) = all.get(&args.service).and_then(Value::as_object) else {
        let known: Vec<&str> = all.keys().map(String::as_str).collect();
        return Err(Failure::new(
            Exit::UnknownService,
            "UNKNOWN_SERVICE",
            format_args!(
                "the registry knows no service `{}` (it knows: {})",
                args.service,
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ),
        ));
    };
    // The timeline is optional: a registry with `activity_tracker.disable` has none.
    let timeline = match timeline {
        Some(Ok(Value::Array(entries))) => Timeline::Entries(entries),
        Some(Ok(_)) | Some(Err(_)) => Timeline::Unavailable,
        None => Timeline::Skipped,
    };
    if !topic_word(&args.service) {
        return Err(Failure::new(
            Exit::Failure,
            "UNSUPPORTED_NAME",
            format_args!(
                "`{}` is not one routing-key word (letters, digits, `_`, `-`), so no contract can name it",
                args.service
            ),
        ));
    }
    let text = contract(&args.service, instances, &timeline);
    let name = format!("{}.kontiki", package_name(&args.service));
    let checked = kontiki_idl::fmt::format_source(&name, &text)
        .and_then(|formatted| kontiki_idl::load_str(&name, &formatted).map(|_| formatted));
    match checked {
        Ok(formatted) => {
            let _ = crate::out::line(formatted.trim_end());
            Ok(())
        }
        // A contract that does not check is a bug here: print it and the diagnostics.
        Err(e) => {
            let _ = crate::out::line(text.trim_end());
            Err(Failure::new(
                Exit::Failure,
                "INVALID_CONTRACT",
                format_args!(
                    "the contract written for `{}` does not check (please report it):\n{}",
                    args.service,
                    e.render_with(&kontiki_idl::diagnostic::plain_handler())
                ),
            ))
        }
    }
}

/// The registry's timeline of what the service sent.
#[derive(Debug)]
pub(crate) enum Timeline {
    /// The entries (message headers) whose `service_name` is the service.
    Entries(Vec<Value>),
    /// The registry did not answer the timeline query.
    Unavailable,
    /// `--no-timeline`.
    Skipped,
}

/// One event handler as the catalogue lists it, its event types merged.
struct Handler {
    mode: String,
    max_attempts: Option<u64>,
    events: Vec<String>,
}

/// What the instances of a service registered, merged.
#[derive(Default)]
struct Catalogue {
    versions: BTreeSet<String>,
    groups: BTreeSet<String>,
    kontiki_versions: BTreeSet<String>,
    statuses: BTreeMap<String, usize>,
    handlers: Vec<(String, Handler)>,
    rpcs: Vec<String>,
    http: Vec<(String, String, String)>,
    tasks: Vec<(String, Value)>,
    conflicts: Vec<String>,
}

impl Catalogue {
    fn from_instances(instances: &Map<String, Value>) -> Catalogue {
        let mut c = Catalogue::default();
        // Active instances first, so their catalogue wins where instances disagree.
        let mut ordered: Vec<(&String, &Value)> = instances.iter().collect();
        ordered.sort_by_key(|(iid, info)| (info["status"] != "active", (*iid).clone()));
        for (_, info) in ordered {
            let status = info["status"].as_str().unwrap_or("unknown").to_owned();
            *c.statuses.entry(status).or_default() += 1;
            let meta = &info["metadata"];
            let text = |k: &str| meta.get(k).and_then(Value::as_str).map(str::to_owned);
            c.versions.extend(text("service_version"));
            c.groups.extend(text("group"));
            c.kontiki_versions.extend(text("kontiki_version"));
            for entry in meta["entrypoints"].as_array().into_iter().flatten() {
                c.add(entry);
            }
        }
        c
    }

    fn add(&mut self, e: &Value) {
        let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("");
        match s("type") {
            "event" => {
                let (name, handler, mode) = (s("name"), s("handler"), s("mode"));
                if name.is_empty() || handler.is_empty() {
                    return;
                }
                let max_attempts = e.get("max_attempts").and_then(Value::as_u64);
                match self.handlers.iter_mut().find(|(h, _)| h == handler) {
                    Some((_, h)) => {
                        if h.mode != mode || h.max_attempts != max_attempts {
                            let text = format!(
                                "handler `{handler}` is registered as {mode} and as {} by different instances",
                                h.mode
                            );
                            if !self.conflicts.contains(&text) {
                                self.conflicts.push(text);
                            }
                        }
                        if !h.events.iter().any(|x| x == name) {
                            h.events.push(name.to_owned());
                        }
                    }
                    None => self.handlers.push((
                        handler.to_owned(),
                        Handler {
                            mode: mode.to_owned(),
                            max_attempts,
                            events: vec![name.to_owned()],
                        },
                    )),
                }
            }
            "rpc" => {
                let name = s("name");
                if !name.is_empty() && !self.rpcs.iter().any(|r| r == name) {
                    self.rpcs.push(name.to_owned());
                }
            }
            "http" => {
                let entry = (
                    s("handler").to_owned(),
                    s("method").to_ascii_uppercase(),
                    s("path").to_owned(),
                );
                if !entry.2.is_empty() && !self.http.contains(&entry) {
                    self.http.push(entry);
                }
            }
            "task" => {
                let handler = s("handler");
                if !handler.is_empty() && !self.tasks.iter().any(|(h, _)| h == handler) {
                    self.tasks.push((
                        handler.to_owned(),
                        e.get("schedule").cloned().unwrap_or_default(),
                    ));
                }
            }
            _ => {}
        }
    }
}

/// A valid IDL identifier made from `s` (kept as is when it is one).
fn ident(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "h_");
    }
    out
}

/// The package name for a service: snake case.
pub(crate) fn package_name(service: &str) -> String {
    let mut out = String::new();
    for c in service.chars() {
        if c.is_ascii_alphanumeric() {
            if c.is_ascii_uppercase() && !out.is_empty() && !out.ends_with('_') {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('_') {
            out.push('_');
        }
    }
    let out = out.trim_end_matches('_').to_owned();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        format!("svc_{out}")
    } else {
        out
    }
}

/// The service identifier: Pascal case.
fn service_ident(service: &str) -> String {
    let mut out = String::new();
    for word in service.split(|c: char| !c.is_ascii_alphanumeric()) {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            out.push(first.to_ascii_uppercase());
            out.extend(chars);
        }
    }
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        format!("S{out}")
    } else {
        out
    }
}

/// A string literal of the IDL.
fn quoted(s: &str) -> String {
    let mut out = String::from('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Whether the IDL takes `name` as a service name: one topic word.
fn topic_word(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Whether the IDL takes `name` as an event type (a topic of non-empty words, no wildcard).
fn valid_event(name: &str) -> bool {
    !name.is_empty()
        && name.split('.').all(|w| {
            !w.is_empty() && !w.contains(|c: char| c == '*' || c == '#' || c.is_whitespace())
        })
}

/// Whether one member line checks in a service of its own (for what the IDL may refuse: cron
/// expressions, HTTP paths).
fn member_checks(line: &str) -> bool {
    let text = format!("package probe;\nservice Probe {{\n    {line}\n}}\n");
    kontiki_idl::load_str("probe.kontiki", &text).is_ok()
}

/// `every N<unit>` for a number of seconds, with a note when it had to be rounded.
fn interval(seconds: f64) -> (String, Option<String>) {
    let whole = seconds.round().max(1.0);
    let note = ((whole - seconds).abs() > f64::EPSILON)
        .then(|| format!("the registered interval is {seconds} s; the IDL takes whole seconds"));
    // Bounded: `whole` is at least 1 and intervals beyond u64 are not meaningful.
    let n = if whole >= u64::MAX as f64 {
        u64::MAX
    } else {
        whole as u64
    };
    let text = match n {
        n if n % 86_400 == 0 => format!("every {}d", n / 86_400),
        n if n % 3_600 == 0 => format!("every {}h", n / 3_600),
        n if n % 60 == 0 => format!("every {}m", n / 60),
        n => format!("every {n}s"),
    };
    (text, note)
}

/// `{name}` and aiohttp's `{name:regex}` path parameters, and the path with plain `{name}`.
fn http_path(path: &str) -> (String, Vec<String>) {
    let mut out = String::new();
    let mut params = Vec::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        let inner = &rest[open + 1..open + close];
        let name = ident(inner.split(':').next().unwrap_or(inner));
        out.push_str(&rest[..open]);
        let _ = write!(out, "{{{name}}}");
        if !params.contains(&name) {
            params.push(name);
        }
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    (out, params)
}

/// The `.kontiki` text for `service` (not yet formatted).
pub(crate) fn contract(
    service: &str,
    instances: &Map<String, Value>,
    timeline: &Timeline,
) -> String {
    let cat = Catalogue::from_instances(instances);
    let mut emits: Vec<String> = Vec::new();
    let mut calls: BTreeSet<String> = BTreeSet::new();
    if let Timeline::Entries(entries) = timeline {
        for e in entries {
            if e["service_name"] != json!(service) {
                continue;
            }
            if let Some(ev) = e["event_type"].as_str() {
                if ev == "registry.context.recorded" {
                    continue;
                }
                // A session publish's routing key ends with the target instance id.
                let ev = match (e.get("session_id"), ev.rsplit_once('.')) {
                    (Some(Value::String(_)), Some((base, _))) => base,
                    _ => ev,
                };
                if !emits.iter().any(|x| x == ev) {
                    emits.push(ev.to_owned());
                }
            } else if let (Some(svc), Some(method)) =
                (e["rpc_service"].as_str(), e["remote_method"].as_str())
            {
                calls.insert(format!("{svc}.{method}"));
            }
        }
        emits.sort();
    }

    let mut out = String::new();
    let mut line = |s: &str| {
        out.push_str(s);
        out.push('\n');
    };

    // The header comment: where this comes from and what is a placeholder.
    line(&format!("//! The contract of `{service}`,"));
    line(&format!("//! written by `kontiki describe {service}`"));
    line("//! from what the Kontiki registry knows about its running instances. It is a starting");
    line("//! point: the registry knows names, not types.");
    line("//!");
    line("//! Known: the service name and version, the event types each handler consumes with its");
    line("//! mode and `max_attempts`, RPC method names, HTTP methods and paths, task schedules,");
    line("//! and (from the registry's timeline) the events the service published.");
    line("//!");
    line("//! Placeholders to replace (the registry cannot know them):");
    line("//! - every event payload is `json` (any JSON value);");
    line("//! - RPCs have no parameters and return `json`: add the parameters in the order a");
    line("//!   Python caller passes them, the result type and the error codes (`raises`);");
    line("//! - HTTP path parameters are `string`, routes have no body, response or `version`;");
    line("//! - headers, docs and task `immediate` flags are not known.");
    let statuses: Vec<String> = cat
        .statuses
        .iter()
        .map(|(s, n)| format!("{n} {s}"))
        .collect();
    line("//!");
    line(&format!(
        "//! Instances: {}; group: {}; Kontiki version: {}.",
        if statuses.is_empty() {
            "none".to_owned()
        } else {
            statuses.join(", ")
        },
        list_or(&cat.groups, "unknown"),
        list_or(&cat.kontiki_versions, "unknown"),
    ));
    if cat.versions.len() > 1 {
        line(&format!(
            "//! Versions registered: {} (`version` below is the first active instance's).",
            list_or(&cat.versions, "")
        ));
    }
    for c in &cat.conflicts {
        line(&format!("//! Note: {c}."));
    }
    match timeline {
        Timeline::Entries(_) => {}
        Timeline::Unavailable => {
            line("//! The registry's timeline did not answer: `emits` may be missing.")
        }
        Timeline::Skipped => line("//! Timeline not read (`--no-timeline`): `emits` is left out."),
    }
    line("");
    line(&format!("package {};", package_name(service)));
    line("");

    // Every event type handled or published, declared with a `json` payload.
    let mut events: Vec<&str> = Vec::new();
    let mut skipped: Vec<String> = Vec::new();
    for ev in cat
        .handlers
        .iter()
        .flat_map(|(_, h)| h.events.iter())
        .chain(emits.iter())
    {
        if !valid_event(ev) {
            if !skipped.contains(ev) {
                skipped.push(ev.clone());
            }
        } else if !events.contains(&ev.as_str()) {
            events.push(ev);
        }
    }
    for ev in &events {
        line("/// Payload type unknown to the registry.");
        line(&format!("event {}: json;", quoted(ev)));
    }
    if !events.is_empty() {
        line("");
    }

    // The service.
    let version = instances_version(instances).or_else(|| cat.versions.iter().next().cloned());
    line(&format!("/// `{service}` as its instances registered it."));
    line(&format!("service {} {{", service_ident(service)));
    line(&format!("    name = {};", quoted(service)));
    if let Some(v) = version {
        line(&format!("    version = {};", quoted(&v)));
    }
    for ev in &skipped {
        line(&format!(
            "    // Event type {} is not a topic the IDL takes (wildcard or empty word): left out.",
            quoted(ev)
        ));
    }
    let mut names: BTreeSet<String> = BTreeSet::new();
    let mut unique = |name: &str| -> (String, Option<String>) {
        let base = ident(name);
        let key = |s: &str| s.to_ascii_lowercase().replace('_', "");
        let mut candidate = base.clone();
        let mut n = 2;
        while names.contains(&key(&candidate)) {
            candidate = format!("{base}_{n}");
            n += 1;
        }
        names.insert(key(&candidate));
        let note = (candidate != name).then(|| format!("registered as `{name}`"));
        (candidate, note)
    };
    if !cat.rpcs.is_empty() {
        line("");
        line("    // Parameters, results and error codes unknown to the registry: placeholders.");
    }
    for rpc in &cat.rpcs {
        let (name, note) = unique(rpc);
        member(&mut line, note, format!("rpc {name}() -> json;"));
    }
    for (handler, h) in &cat.handlers {
        let types: Vec<String> = h
            .events
            .iter()
            .filter(|e| valid_event(e))
            .map(|e| quoted(e))
            .collect();
        if types.is_empty() {
            continue;
        }
        let (name, note) = unique(handler);
        let mut options = Vec::new();
        match h.mode.as_str() {
            "broadcast" => options.push("broadcast".to_owned()),
            "in_session" => options.push("in_session".to_owned()),
            _ => {
                if let Some(n) = h.max_attempts.filter(|n| *n != 3 && *n >= 1) {
                    options.push(format!("max_attempts = {n}"));
                }
            }
        }
        let options = if options.is_empty() {
            String::new()
        } else {
            format!(" [{}]", options.join(", "))
        };
        line("");
        member(
            &mut line,
            note,
            format!("on_event {name}({}){options};", types.join(", ")),
        );
    }
    for (handler, method, path) in &cat.http {
        let (name, note) = unique(if handler.is_empty() { path } else { handler });
        let (path, params) = http_path(path);
        let params = if params.is_empty() {
            String::new()
        } else {
            format!(
                " ({})",
                params
                    .iter()
                    .map(|p| format!("{p}: string"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let text = format!("http {name} {method} {}{params};", quoted(&path));
        line("");
        if member_checks(&text) {
            member(&mut line, note, text);
        } else {
            line(&format!(
                "    // Not expressible in the IDL: {method} {}.",
                quoted(&path)
            ));
        }
    }
    for (handler, schedule) in &cat.tasks {
        let (name, note) = unique(handler);
        let (text, rounding) = match schedule {
            Value::Number(n) => {
                let (every, rounding) = interval(n.as_f64().unwrap_or(1.0));
                (format!("task {name} {every};"), rounding)
            }
            Value::String(cron) => (format!("task {name} cron {};", quoted(cron)), None),
            other => (
                format!("task {name} every 1s;"),
                Some(format!("schedule {other} unknown")),
            ),
        };
        line("");
        if let Some(r) = rounding {
            line(&format!("    // {r}"));
        }
        if member_checks(&text) {
            member(&mut line, note, text);
        } else {
            line(&format!(
                "    // Task `{handler}`: schedule {schedule} is not one the IDL takes."
            ));
        }
    }
    let emitted: Vec<String> = emits
        .iter()
        .filter(|e| valid_event(e))
        .map(|e| quoted(e))
        .collect();
    if !emitted.is_empty() {
        line("");
        line("    // Seen in the registry's timeline.");
        line(&format!("    emits {};", emitted.join(", ")));
    }
    if !calls.is_empty() {
        line("");
        line("    // RPCs it called (the registry's timeline):");
        for c in &calls {
            line(&format!("    // - {c}"));
        }
    }
    line("}");
    out
}

/// Writes a service member, after a note on its name when it had to change.
fn member(line: &mut dyn FnMut(&str), note: Option<String>, text: String) {
    if let Some(n) = note {
        line(&format!("    // {n}"));
    }
    line(&format!("    {text}"));
}

/// The version of the first active instance (by instance id), if any registered one.
fn instances_version(instances: &Map<String, Value>) -> Option<String> {
    let mut ordered: Vec<(&String, &Value)> = instances.iter().collect();
    ordered.sort_by_key(|(iid, info)| (info["status"] != "active", (*iid).clone()));
    ordered.iter().find_map(|(_, info)| {
        info["metadata"]["service_version"]
            .as_str()
            .map(str::to_owned)
    })
}

fn list_or(set: &BTreeSet<String>, none: &str) -> String {
    if set.is_empty() {
        none.to_owned()
    } else {
        set.iter().cloned().collect::<Vec<_>>().join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `get_services()[svc]` as Kontiki's registry answers it (protocol §5.4, §5.6).
    fn python_instances() -> Map<String, Value> {
        let meta = json!({
            "service_name": "proto-svc",
            "instance_id": "i1",
            "service_version": "9.9.9",
            "kontiki_version": "2.3.2",
            "group": "business",
            "entrypoints": [
                {"type": "event", "name": "proto.multi.a", "handler": "on_multi", "mode": "competing", "max_attempts": 3},
                {"type": "event", "name": "proto.multi.b", "handler": "on_multi", "mode": "competing", "max_attempts": 3},
                {"type": "event", "name": "proto.fail", "handler": "on_fail", "mode": "competing", "max_attempts": 5},
                {"type": "event", "name": "proto.bcast", "handler": "on_bcast", "mode": "broadcast"},
                {"type": "event", "name": "proto.sess", "handler": "on_sess", "mode": "in_session"},
                {"type": "event", "name": "bad.*", "handler": "on_wild", "mode": "competing", "max_attempts": 3},
                {"type": "rpc", "name": "echo", "handler": "echo"},
                {"type": "rpc", "name": "Echo", "handler": "Echo"},
                {"type": "http", "method": "get", "path": "/hello/{who}/{n:\\d+}", "handler": "hello"},
                {"type": "task", "handler": "tick", "schedule": 3600},
                {"type": "task", "handler": "half", "schedule": 0.5},
                {"type": "task", "handler": "nightly", "schedule": "0 3 * * *"},
                {"type": "task", "handler": "bad_cron", "schedule": "not a cron"},
            ],
        });
        let mut m = Map::new();
        m.insert(
            "i1".into(),
            json!({"status": "active", "last_heartbeat": null, "degraded_reason": null, "metadata": meta}),
        );
        m
    }

    fn checked(text: &str) -> kontiki_idl::Model {
        let formatted = kontiki_idl::fmt::format_source("t.kontiki", text)
            .unwrap_or_else(|e| panic!("{e:?}\n{text}"));
        kontiki_idl::load_str("t.kontiki", &formatted).unwrap_or_else(|e| panic!("{e:?}\n{text}"))
    }

    #[test]
    fn a_catalogue_becomes_a_contract_that_checks() {
        let timeline = Timeline::Entries(vec![
            json!({"service_name": "proto-svc", "event_type": "proto.out", "flow_id": "f"}),
            json!({"service_name": "proto-svc", "event_type": "proto.sess.iid-9", "session_id": "s"}),
            json!({"service_name": "proto-svc", "event_type": "registry.context.recorded"}),
            json!({"service_name": "other", "event_type": "not.mine"}),
            json!({"service_name": "proto-svc", "rpc_service": "billing", "remote_method": "charge"}),
        ]);
        let text = contract("proto-svc", &python_instances(), &timeline);
        let model = checked(&text);
        let pkg = model.root_package().unwrap();
        assert_eq!(pkg.name, "proto_svc");
        let svc = &pkg.services[0];
        assert_eq!(
            (svc.name.as_str(), svc.wire_name.as_str()),
            ("ProtoSvc", "proto-svc")
        );
        assert_eq!(svc.version.as_deref(), Some("9.9.9"));
        let rpcs: Vec<&str> = svc.rpcs.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(rpcs, ["echo", "Echo_2"], "{text}");
        assert!(
            svc.rpcs.iter().all(
                |r| r.params.is_empty() && r.returns == Some(kontiki_idl::model::TypeRef::Json)
            )
        );
        let handlers: Vec<(&str, kontiki_idl::model::EventMode, u32)> = svc
            .handlers
            .iter()
            .map(|h| (h.name.as_str(), h.mode, h.max_attempts))
            .collect();
        use kontiki_idl::model::EventMode::*;
        assert_eq!(
            handlers,
            [
                ("on_multi", Competing, 3),
                ("on_fail", Competing, 5),
                ("on_bcast", Broadcast, 3),
                ("on_sess", InSession, 3)
            ],
            "{text}"
        );
        let emits: Vec<&str> = svc.emits.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(emits, ["proto.out", "proto.sess"]);
        assert!(text.contains("// - billing.charge"), "{text}");
        assert!(text.contains("\"bad.*\" is not a topic"), "{text}");
        assert_eq!(svc.routes.len(), 1);
        assert_eq!(
            svc.routes[0]
                .path_params
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>(),
            ["who", "n"]
        );
        let tasks: Vec<&str> = svc.tasks.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(tasks, ["tick", "half", "nightly"], "{text}");
        assert!(
            text.contains("schedule \"not a cron\" is not one the IDL takes"),
            "{text}"
        );
        assert!(text.contains("0.5 s"), "{text}");
        assert!(text.starts_with("//! The contract of `proto-svc`"));
    }

    #[test]
    fn odd_names_still_check() {
        let mut instances = Map::new();
        instances.insert(
            "x".into(),
            json!({"status": "down", "metadata": {"entrypoints": [
                {"type": "rpc", "name": "9lives", "handler": "9lives"},
                {"type": "http", "method": "POST", "path": "/a b/{x-y}", "handler": "POST /a b/{x-y}"},
                {"type": "task", "handler": "t", "schedule": null},
                {"type": "mystery"},
                "not an object",
            ]}}),
        );
        assert!(!topic_word("9-lives.svc") && !topic_word("") && !topic_word("a b"));
        for service in ["9-lives", "ServiceRegistry", "a", "-", "__"] {
            assert!(topic_word(service));
            let text = contract(service, &instances, &Timeline::Unavailable);
            checked(&text);
            assert!(text.contains("timeline did not answer"));
        }
        assert_eq!(package_name("ServiceRegistry"), "service_registry");
        assert_eq!(package_name("compute-api"), "compute_api");
        assert_eq!(service_ident("compute-api"), "ComputeApi");
    }

    #[test]
    fn an_instance_without_entrypoints_gives_an_empty_service() {
        let mut instances = Map::new();
        instances.insert("x".into(), json!({"status": "active", "metadata": {}}));
        let text = contract("quiet", &instances, &Timeline::Skipped);
        let model = checked(&text);
        let svc = &model.root_package().unwrap().services[0];
        assert!(svc.rpcs.is_empty() && svc.handlers.is_empty() && svc.version.is_none());
        assert!(text.contains("--no-timeline"));
    }
}
