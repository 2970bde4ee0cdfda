//! Flow and hop ids (protocol §4): a task-local context carries the inbound `flow_id` and
//! `hop_id` of a handler to every message the handler sends.
//!
//! Unlike Kontiki, a flow id given to one call is never written back into the context, so a
//! stand-alone client does not reuse it for later calls (protocol §11 #6).

use std::future::Future;
use std::sync::Arc;

/// The kind of entrypoint a handler runs for; written as the `entrypoint` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntrypointKind {
    /// An RPC handler.
    Rpc,
    /// An event handler.
    Event,
    /// An HTTP route.
    Http,
    /// A periodic task.
    Task,
}

impl EntrypointKind {
    /// The wire name: `rpc`, `event`, `http` or `task`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rpc => "rpc",
            Self::Event => "event",
            Self::Http => "http",
            Self::Task => "task",
        }
    }
}

/// What a handler's scope knows about the message that started it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowContext {
    /// The flow this handler belongs to.
    pub flow_id: Arc<str>,
    /// The `hop_id` of the inbound message, if it had one (rpc and event only).
    pub inbound_hop_id: Option<Arc<str>>,
    /// The entrypoint kind.
    pub entrypoint: EntrypointKind,
    /// The operation: method name, event type, `"GET /path"`, or task name.
    pub operation: Arc<str>,
}

impl FlowContext {
    /// A scope for an inbound message: keeps its flow id when it has a non-empty one.
    pub fn inbound(
        entrypoint: EntrypointKind,
        operation: impl Into<Arc<str>>,
        flow_id: Option<&str>,
        hop_id: Option<&str>,
    ) -> Self {
        let flow_id = match flow_id {
            Some(f) if !f.is_empty() => Arc::from(f),
            _ => crate::transport::wire::new_flow_id_arc(),
        };
        Self {
            flow_id,
            inbound_hop_id: hop_id.filter(|h| !h.is_empty()).map(Arc::from),
            entrypoint,
            operation: operation.into(),
        }
    }

    /// A scope that starts a new flow (HTTP requests and task runs).
    pub fn fresh(entrypoint: EntrypointKind, operation: impl Into<Arc<str>>) -> Self {
        Self::inbound(entrypoint, operation, None, None)
    }
}

tokio::task_local! {
    static CURRENT: FlowContext;
}

/// Runs `fut` inside the handler scope `ctx`.
pub fn scope<F: Future>(ctx: FlowContext, fut: F) -> impl Future<Output = F::Output> {
    CURRENT.scope(ctx, fut)
}

/// [`scope`] as a future whose type can be named (a field of a hand-written future).
#[cfg(feature = "http")]
pub(crate) fn named_scope<F: Future>(
    ctx: FlowContext,
    fut: F,
) -> tokio::task::futures::TaskLocalFuture<FlowContext, F> {
    CURRENT.scope(ctx, fut)
}

/// The scope of the running handler, if any.
pub fn current() -> Option<FlowContext> {
    CURRENT.try_with(Clone::clone).ok()
}

/// The flow id of the running handler, if any.
pub fn current_flow_id() -> Option<Arc<str>> {
    CURRENT.try_with(|c| c.flow_id.clone()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn scope_is_visible_inside_and_gone_outside() {
        assert!(current().is_none());
        let ctx = FlowContext::inbound(EntrypointKind::Rpc, "m", Some("abc"), Some("h1"));
        scope(ctx, async {
            let c = current().unwrap();
            assert_eq!(&*c.flow_id, "abc");
            assert_eq!(c.inbound_hop_id.as_deref(), Some("h1"));
        })
        .await;
        assert!(current().is_none());
    }

    #[test]
    fn empty_inbound_flow_gets_a_new_one() {
        let ctx = FlowContext::inbound(EntrypointKind::Event, "e", Some(""), None);
        assert_eq!(ctx.flow_id.len(), 12);
    }
}
