//! The headers of outgoing messages: identity, flow and hop ids, and the caller's extras
//! (never one of Kontiki's reserved names).

use crate::error::{Error, Result};
use crate::transport::flow;
use crate::transport::wire::{self};
use lapin::types::{FieldTable, ShortString};
use serde_json::{Map, Value};
use std::sync::Arc;

pub(super) fn routing_key_short(routing_key: &str) -> Result<ShortString> {
    ShortString::try_new(routing_key).map_err(|_| Error::InvalidName {
        name: routing_key.to_owned(),
        reason: "a routing key may have at most 255 bytes".to_owned(),
    })
}

pub(super) fn check_reserved(extras: &Map<String, Value>) -> Result<()> {
    let reserved = wire::reserved_header_names(extras.keys().map(String::as_str));
    if reserved.is_empty() {
        Ok(())
    } else {
        Err(Error::ReservedHeaders(reserved))
    }
}

/// Writes user extras into `headers` (Kontiki's order: extras before the flow headers).
pub(super) fn insert_extras(headers: &mut FieldTable, extras: &Map<String, Value>) -> Result<()> {
    for (k, v) in extras {
        let key = wire::header_key(k).ok_or_else(|| {
            Error::InvalidHeader(format!("header name longer than 255 bytes: {k:.40}..."))
        })?;
        headers.insert(key, wire::json_to_amqp(v));
    }
    Ok(())
}

/// The flow of an outbound message: the explicit one, else the running handler's, else new.
pub(super) fn resolve_flow_id(
    explicit: Option<&str>,
    scope: Option<&flow::FlowContext>,
) -> Arc<str> {
    match (explicit, scope) {
        (Some(f), _) => Arc::from(f),
        (None, Some(ctx)) => ctx.flow_id.clone(),
        (None, None) => wire::new_flow_id_arc(),
    }
}

/// Writes `flow_id`, a new `hop_id`, and inside a handler `entrypoint`, `operation` and
/// `parent_hop_id`.
pub(super) fn add_flow(
    headers: &mut FieldTable,
    flow_id: &Arc<str>,
    scope: Option<&flow::FlowContext>,
) {
    headers.insert("flow_id".into(), wire::header_str(flow_id.as_bytes()));
    headers.insert("hop_id".into(), wire::header_str(wire::new_hop_id()));
    if let Some(ctx) = scope {
        headers.insert(
            "entrypoint".into(),
            wire::header_str(ctx.entrypoint.as_str()),
        );
        headers.insert(
            "operation".into(),
            wire::header_str(ctx.operation.as_bytes()),
        );
        if let Some(hop) = &ctx.inbound_hop_id {
            headers.insert("parent_hop_id".into(), wire::header_str(hop.as_bytes()));
        }
    }
}
