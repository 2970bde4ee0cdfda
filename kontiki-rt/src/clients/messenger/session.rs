//! Sessions (Kontiki's `open_session`): events that reach one chosen instance's `in_session`
//! handlers.

use super::{Messenger, PublishOptions};
use crate::error::{Error, Result, RpcError};
use crate::transport::wire::{self};
use serde::Serialize;
use serde_json::{Map, Value};

impl Messenger {
    /// Opens a session with one instance of `service` (Kontiki's `open_session`).
    pub async fn open_session(&self, service: &str) -> Result<Session, RpcError> {
        let result = self
            .call(service, wire::SESSION_OPEN_METHOD, Vec::new(), Map::new())
            .await?;
        let pair = result.as_array().filter(|a| a.len() == 2);
        let (Some(Value::String(instance_id)), Some(Value::String(session_id))) =
            (pair.and_then(|a| a.first()), pair.and_then(|a| a.get(1)))
        else {
            return Err(RpcError::InvalidReply {
                service: service.to_owned(),
                method: wire::SESSION_OPEN_METHOD.to_owned(),
                reason: format!("expected [instance_id, session_id], got {result}"),
            });
        };
        Ok(Session {
            messenger: self.clone(),
            service: service.to_owned(),
            instance_id: instance_id.clone(),
            session_id: session_id.clone(),
        })
    }
}

/// A session with one instance of a service: events published through it reach only that
/// instance's `in_session` handlers.
#[derive(Debug, Clone)]
pub struct Session {
    messenger: Messenger,
    service: String,
    instance_id: String,
    session_id: String,
}

impl Session {
    /// The instance the session is pinned to.
    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// The session id the service handed out.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// The service the session was opened with.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// Publishes an event to the pinned instance (routing key `{event}.{instance_id}`).
    pub async fn publish(&self, event_type: &str, payload: &impl Serialize) -> Result<()> {
        self.publish_with(event_type, payload, PublishOptions::default())
            .await
    }

    /// Publishes with options. The `event_type` header is the plain event type (Kontiki
    /// writes the routing key there, protocol §11 #7; no receiver reads it).
    pub async fn publish_with(
        &self,
        event_type: &str,
        payload: &impl Serialize,
        options: PublishOptions,
    ) -> Result<()> {
        let body = serde_json::to_vec(payload).map_err(Error::Encode)?;
        self.publish_encoded(event_type, body, options).await
    }

    /// Publishes a payload already encoded as JSON bytes.
    pub(crate) async fn publish_encoded(
        &self,
        event_type: &str,
        body: Vec<u8>,
        options: PublishOptions,
    ) -> Result<()> {
        let routing_key = format!("{event_type}.{}", self.instance_id);
        self.messenger
            .publish_event(
                &routing_key,
                event_type,
                body,
                &options,
                Some(&self.session_id),
            )
            .await
    }
}
