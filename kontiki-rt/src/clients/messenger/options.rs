//! Who sends ([`Identity`]) and the options of one call or one publish.

use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;

/// Who sends: written into the `service_name`, `instance_id` and `host` headers.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The logical service name (`kontiki-standalone-<client>` for stand-alone clients).
    pub service_name: Arc<str>,
    /// A uuid4 per process (per stand-alone Messenger).
    pub instance_id: Arc<str>,
    /// The host name.
    pub host: Arc<str>,
}

impl Identity {
    /// An identity with a fresh instance id and this machine's host name.
    pub fn new(service_name: impl Into<Arc<str>>) -> Self {
        Self {
            service_name: service_name.into(),
            instance_id: Arc::from(uuid::Uuid::new_v4().to_string()),
            host: Arc::from(gethostname::gethostname().to_string_lossy().into_owned()),
        }
    }
}

/// Per-call options of [`Messenger::call_with`](crate::Messenger::call_with).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct CallOptions {
    /// Overrides the Messenger's default timeout (`kontiki.amqp.rpc.timeout`).
    pub timeout: Option<Duration>,
    /// Sends the request to one instance only (`{svc}.{method}.{instance_id}`).
    pub instance_id: Option<String>,
    /// Extra headers; Kontiki's reserved names are refused.
    pub headers: Map<String, Value>,
    /// An explicit flow id for this call only (not remembered for later calls).
    pub flow_id: Option<String>,
}

impl CallOptions {
    /// Sets the timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Targets one instance.
    pub fn instance(mut self, instance_id: impl Into<String>) -> Self {
        self.instance_id = Some(instance_id.into());
        self
    }

    /// Adds an extra header.
    pub fn header(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.headers.insert(key.into(), value.into());
        self
    }

    /// Sets the flow id of this call.
    pub fn flow_id(mut self, flow_id: impl Into<String>) -> Self {
        self.flow_id = Some(flow_id.into());
        self
    }
}

/// Per-publish options of [`Messenger::publish_with`](crate::Messenger::publish_with).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct PublishOptions {
    /// Extra headers; Kontiki's reserved names are refused.
    pub headers: Map<String, Value>,
    /// An explicit flow id for this message only.
    pub flow_id: Option<String>,
    /// Fail with [`Error::Unroutable`](crate::Error::Unroutable) when no queue is bound for the event type.
    pub mandatory: bool,
}

impl PublishOptions {
    /// Adds an extra header.
    pub fn header(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.headers.insert(key.into(), value.into());
        self
    }

    /// Sets the flow id of this message.
    pub fn flow_id(mut self, flow_id: impl Into<String>) -> Self {
        self.flow_id = Some(flow_id.into());
        self
    }

    /// Fails when nothing is subscribed to the event type.
    pub fn mandatory(mut self) -> Self {
        self.mandatory = true;
        self
    }
}
