//! RPC entrypoints: the dynamic registration API generated adapters sit on, argument binding
//! (positional and keyword alike), and the server side of a call.

/// Handler errors are shared by every entrypoint kind; this path stays for compatibility.
#[doc(no_inline)]
pub use crate::handler::HandlerError;
use crate::handler::{Context, Guarded, guard, seconds};
use crate::transport::flow::{self, EntrypointKind, FlowContext};
use crate::transport::wire::{self, Envelope, RequestBody};
use futures_util::future::BoxFuture;
use serde_json::{Map, Value};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// One declared parameter of an RPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// The wire name (the Python parameter name).
    pub name: String,
    /// A missing required parameter is an `INVALID_ARGUMENTS` error; a missing optional one
    /// is bound as `null`.
    pub required: bool,
}

/// An inbound call, as a handler sees it.
#[derive(Debug)]
#[non_exhaustive]
pub struct Call {
    /// With declared parameters: one value per parameter, in declaration order (`null` for a
    /// missing optional one). Without: the positional arguments as sent.
    pub args: Vec<Value>,
    /// Without declared parameters: the keyword arguments as sent; with them, empty.
    pub kwargs: Map<String, Value>,
    /// All AMQP headers, when the entrypoint has `include_headers` and the message had any.
    pub headers: Option<Map<String, Value>>,
    /// The service's context: messenger, identity, config.
    pub context: Context,
}

/// The future of an RPC handler registered with [`RpcEntrypoint::with_fn`].
pub type RpcFuture = BoxFuture<'static, Result<Value, HandlerError>>;

type Handler = dyn Fn(Call) -> RpcFuture + Send + Sync;

/// An RPC method of a service: name, parameters and handler.
#[derive(Clone)]
pub struct RpcEntrypoint {
    /// Shared with every handler scope's `operation` (no copy per call).
    pub(crate) name: Arc<str>,
    pub(crate) params: Option<Vec<Param>>,
    pub(crate) include_headers: bool,
    pub(crate) timeout: Option<Duration>,
    pub(crate) handler: Arc<Handler>,
}

impl std::fmt::Debug for RpcEntrypoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcEntrypoint")
            .field("name", &self.name)
            .field("params", &self.params)
            .field("include_headers", &self.include_headers)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RpcEntrypoint {
    /// An RPC named `name` (the wire name) served by `handler`. Without [`params`](Self::params)
    /// the handler gets the raw positional and keyword arguments (Python's `*args, **kwargs`).
    pub fn new<F, Fut>(name: impl Into<String>, handler: F) -> Self
    where
        F: Fn(Call) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, HandlerError>> + Send + 'static,
    {
        Self::boxed(name.into(), Arc::new(move |call| Box::pin(handler(call))))
    }

    /// An RPC served by a plain function over shared state: `handler(&state, call)`. A service
    /// registers all its methods this way through one closure type, so each method costs
    /// rustc only its function (generated adapters use it).
    pub fn with_fn<S: Send + Sync + 'static>(
        name: impl Into<String>,
        state: Arc<S>,
        handler: fn(&Arc<S>, Call) -> RpcFuture,
    ) -> Self {
        Self::boxed(name.into(), Arc::new(move |call| handler(&state, call)))
    }

    fn boxed(name: String, handler: Arc<Handler>) -> Self {
        Self {
            name: Arc::from(name),
            params: None,
            include_headers: false,
            timeout: None,
            handler,
        }
    }

    /// Declares the parameters, all required, in order: arguments are then bound from
    /// positional and keyword form alike.
    pub fn params<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.params = Some(
            names
                .into_iter()
                .map(|n| Param {
                    name: n.into(),
                    required: true,
                })
                .collect(),
        );
        self
    }

    /// Declares one more parameter, required or optional.
    pub fn param(mut self, name: impl Into<String>, required: bool) -> Self {
        self.params.get_or_insert_with(Vec::new).push(Param {
            name: name.into(),
            required,
        });
        self
    }

    /// Hands the message's headers to the handler (Kontiki's `include_headers=True`).
    pub fn include_headers(mut self, yes: bool) -> Self {
        self.include_headers = yes;
        self
    }

    /// How long the handler may run on one call (default `kontiki.handler_timeout`, 300 s;
    /// `kontiki.handler_timeouts.<name>` wins over this). A handler still running then is
    /// cancelled at its next `.await` and the caller gets a server error saying so. Code that
    /// blocks its thread cannot be cancelled: run it under `tokio::task::spawn_blocking`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The wire name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Binds `args` and `kwargs` to declared parameters, by position then by name.
pub fn bind_arguments(params: &[Param], body: RequestBody) -> Result<Vec<Value>, String> {
    let RequestBody { args, mut kwargs } = body;
    if args.len() > params.len() {
        return Err(format!(
            "takes {} positional argument{} but {} {} given",
            params.len(),
            if params.len() == 1 { "" } else { "s" },
            args.len(),
            if args.len() == 1 { "was" } else { "were" }
        ));
    }
    let mut bound = Vec::with_capacity(params.len());
    let mut missing = Vec::new();
    let given = args.len();
    let mut args = args.into_iter();
    for (i, p) in params.iter().enumerate() {
        if i < given {
            if kwargs.contains_key(&p.name) {
                return Err(format!("got multiple values for argument `{}`", p.name));
            }
            bound.push(args.next().unwrap_or(Value::Null));
        } else if let Some(v) = kwargs.remove(&p.name) {
            bound.push(v);
        } else if p.required {
            missing.push(format!("`{}`", p.name));
            bound.push(Value::Null);
        } else {
            bound.push(Value::Null);
        }
    }
    if !kwargs.is_empty() {
        let mut unknown: Vec<_> = kwargs.keys().map(|k| format!("`{k}`")).collect();
        unknown.sort();
        return Err(format!(
            "got unexpected keyword argument{} {}",
            if unknown.len() == 1 { "" } else { "s" },
            unknown.join(", ")
        ));
    }
    if !missing.is_empty() {
        return Err(format!(
            "missing required argument{} {}",
            if missing.len() == 1 { "" } else { "s" },
            missing.join(", ")
        ));
    }
    Ok(bound)
}

/// A new id for an internal error: in the reply and in the log line that has the details.
fn error_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..16].to_owned()
}

/// The message of an internal error reply: generic, with the id of the log line that has the
/// details, unless `kontiki.amqp.rpc.expose_internal_errors` asks for them (development).
fn internal_message(container: &crate::handler::Container, id: &str, details: &str) -> String {
    if container.settings.amqp.expose_internal_errors {
        format!("{details} (error id {id})")
    } else {
        format!("internal error (error id {id}; the service's log has the details)")
    }
}

/// The reply to one request, and whether its handler ran out of time.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) envelope: Envelope,
    pub(crate) timed_out: bool,
}

impl From<Envelope> for Answer {
    fn from(envelope: Envelope) -> Self {
        Self {
            envelope,
            timed_out: false,
        }
    }
}

/// Runs one request through an entrypoint, for at most its timeout, and returns the reply.
/// Never panics: a panicking handler becomes a SERVER error and the service lives on; so does
/// one that times out.
pub(crate) async fn serve(
    ep: &RpcEntrypoint,
    body: &[u8],
    headers: Option<&lapin::types::FieldTable>,
    context: Context,
) -> Answer {
    let request = match wire::decode_request(body) {
        Ok(r) => r,
        Err(e) => return Envelope::client_error("INVALID_REQUEST", e.0).into(),
    };
    let (args, kwargs) = match &ep.params {
        Some(params) => match bind_arguments(params, request) {
            Ok(args) => (args, Map::new()),
            Err(msg) => {
                return Envelope::client_error("INVALID_ARGUMENTS", format!("{}() {msg}", ep.name))
                    .into();
            }
        },
        None => (request.args, request.kwargs),
    };
    let headers_json = if ep.include_headers {
        headers.map(wire::table_to_json).filter(|m| !m.is_empty())
    } else {
        None
    };
    let ctx = FlowContext::inbound(
        EntrypointKind::Rpc,
        ep.name.clone(),
        wire::header_text(headers, "flow_id"),
        wire::header_text(headers, "hop_id"),
    );
    let reporter = context.clone();
    let report_scope = ctx.clone();
    let call = Call {
        args,
        kwargs,
        headers: headers_json,
        context,
    };
    let limit = reporter
        .container()
        .settings
        .handlers
        .timeout_for(&ep.name, ep.timeout);
    let fut = (ep.handler)(call);
    let envelope = match guard(limit, flow::scope(ctx, fut)).await {
        Guarded::Returned(Ok(value)) => Envelope::success(value),
        Guarded::Returned(Err(HandlerError::Client { code, message })) => {
            Envelope::client_error(code, message)
        }
        Guarded::Returned(Err(HandlerError::Server { message, source })) => {
            let id = error_id();
            tracing::error!(error_id = %id, error = %message, source = ?source, "rpc handler failed");
            let container = reporter.container();
            container.report_uncaught(&report_scope, "ServerError", &message);
            Envelope::server_error(internal_message(container, &id, &message))
        }
        Guarded::Panicked(what) => {
            let id = error_id();
            tracing::error!(error_id = %id, panic = %what, "rpc handler panicked");
            let container = reporter.container();
            container.report_uncaught(&report_scope, "Panic", &what);
            Envelope::server_error(internal_message(
                container,
                &id,
                &format!("the handler panicked: {what}"),
            ))
        }
        Guarded::TimedOut => {
            let message = format!(
                "the handler of `{}` timed out after {}",
                ep.name,
                seconds(limit)
            );
            tracing::error!(method = %ep.name, timeout = %seconds(limit), "rpc handler timed out; cancelled");
            reporter
                .container()
                .report_uncaught(&report_scope, "HandlerTimeout", &message);
            return Answer {
                envelope: Envelope::server_error(message),
                timed_out: true,
            };
        }
    };
    envelope.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(names: &[(&str, bool)]) -> Vec<Param> {
        names
            .iter()
            .map(|(n, r)| Param {
                name: (*n).to_owned(),
                required: *r,
            })
            .collect()
    }

    fn body(v: Value) -> RequestBody {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn binds_positional_and_keyword_alike() {
        let p = params(&[("a", true), ("b", true), ("c", false)]);
        assert_eq!(
            bind_arguments(&p, body(json!({"args": [1, 2]}))).unwrap(),
            vec![json!(1), json!(2), Value::Null]
        );
        assert_eq!(
            bind_arguments(&p, body(json!({"kwargs": {"b": 2, "a": 1, "c": 3}}))).unwrap(),
            vec![json!(1), json!(2), json!(3)]
        );
        assert_eq!(
            bind_arguments(&p, body(json!({"args": [1], "kwargs": {"b": 2}}))).unwrap(),
            vec![json!(1), json!(2), Value::Null]
        );
    }

    #[test]
    fn binding_errors_say_what_is_wrong() {
        let p = params(&[("a", true), ("b", true)]);
        assert_eq!(
            bind_arguments(&p, body(json!({"args": [1, 2, 3]}))).unwrap_err(),
            "takes 2 positional arguments but 3 were given"
        );
        assert_eq!(
            bind_arguments(&p, body(json!({"args": [1], "kwargs": {"a": 1, "b": 2}}))).unwrap_err(),
            "got multiple values for argument `a`"
        );
        assert_eq!(
            bind_arguments(&p, body(json!({"kwargs": {"a": 1, "zzz": 2, "b": 1}}))).unwrap_err(),
            "got unexpected keyword argument `zzz`"
        );
        assert_eq!(
            bind_arguments(&p, body(json!({}))).unwrap_err(),
            "missing required arguments `a`, `b`"
        );
    }
}
