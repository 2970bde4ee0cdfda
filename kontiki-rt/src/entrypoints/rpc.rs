//! RPC entrypoints: the dynamic registration API generated adapters sit on, argument binding
//! (positional and keyword alike), and the server side of a call.

/// Handler errors are shared by every entrypoint kind; this path stays for compatibility.
#[doc(no_inline)]
pub use crate::handler::HandlerError;
use crate::handler::{Context, panic_message};
use crate::transport::flow::{self, EntrypointKind, FlowContext};
use crate::transport::wire::{self, Envelope, RequestBody};
use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;
use serde_json::{Map, Value};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

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

type Handler = dyn Fn(Call) -> BoxFuture<'static, Result<Value, HandlerError>> + Send + Sync;

/// An RPC method of a service: name, parameters and handler.
#[derive(Clone)]
pub struct RpcEntrypoint {
    pub(crate) name: String,
    pub(crate) params: Option<Vec<Param>>,
    pub(crate) include_headers: bool,
    pub(crate) handler: Arc<Handler>,
}

impl std::fmt::Debug for RpcEntrypoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcEntrypoint")
            .field("name", &self.name)
            .field("params", &self.params)
            .field("include_headers", &self.include_headers)
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
        Self {
            name: name.into(),
            params: None,
            include_headers: false,
            handler: Arc::new(move |call| Box::pin(handler(call))),
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

/// Runs one request through an entrypoint and returns the reply envelope. Never panics: a
/// panicking handler becomes a SERVER error and the service lives on.
pub(crate) async fn serve(
    ep: &RpcEntrypoint,
    body: &[u8],
    headers: Option<&lapin::types::FieldTable>,
    context: Context,
) -> Envelope {
    let request = match wire::decode_request(body) {
        Ok(r) => r,
        Err(e) => return Envelope::client_error("INVALID_REQUEST", e.0),
    };
    let (args, kwargs) = match &ep.params {
        Some(params) => match bind_arguments(params, request) {
            Ok(args) => (args, Map::new()),
            Err(msg) => {
                return Envelope::client_error("INVALID_ARGUMENTS", format!("{}() {msg}", ep.name));
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
        ep.name.as_str(),
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
    let fut = (ep.handler)(call);
    match flow::scope(ctx, AssertUnwindSafe(fut).catch_unwind()).await {
        Ok(Ok(value)) => Envelope::success(value),
        Ok(Err(HandlerError::Client { code, message })) => Envelope::client_error(code, message),
        Ok(Err(HandlerError::Server { message, source })) => {
            tracing::error!(error = %message, source = ?source, "rpc handler failed");
            reporter
                .container()
                .report_uncaught(&report_scope, "ServerError", &message);
            Envelope::server_error(message)
        }
        Err(panic) => {
            let what = panic_message(&panic);
            tracing::error!(panic = %what, "rpc handler panicked");
            reporter
                .container()
                .report_uncaught(&report_scope, "Panic", &what);
            Envelope::server_error("internal error: the handler panicked")
        }
    }
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
