//! Errors of the runtime: [`Error`] for local failures, [`RpcError`] for calls.

use std::time::Duration;

/// `Result` with the runtime's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A local failure of the runtime: configuration, connection, declaration, publishing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration could not be loaded or is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The broker could not be reached.
    #[error("could not connect to the broker at {url}: {source}")]
    Connect {
        /// The broker URL, password hidden.
        url: String,
        /// What lapin reported.
        #[source]
        source: lapin::Error,
    },
    /// The TLS handshake with the broker failed: the server certificate is not trusted by the
    /// configured CA or does not match the URL's host name, the broker refused the client
    /// certificate, or the port does not speak TLS. `reason` says which, naming the files.
    #[error("TLS with the broker at {url} failed: {reason}")]
    Tls {
        /// The broker URL, password hidden.
        url: String,
        /// What went wrong, in words, with the CA or certificate file concerned (boxed: it keeps
        /// the error small).
        reason: Box<str>,
        /// What lapin reported (the TLS library's error inside).
        #[source]
        source: lapin::Error,
    },
    /// Connecting took longer than the connect timeout.
    #[error("connecting to the broker at {url} timed out after {timeout:?}")]
    ConnectTimeout {
        /// The broker URL, password hidden.
        url: String,
        /// The timeout that ran out.
        timeout: Duration,
    },
    /// An AMQP operation failed.
    #[error("AMQP {operation} failed: {source}")]
    Amqp {
        /// What was being done, e.g. `declare queue orders.get.queue`.
        operation: String,
        /// What lapin reported.
        #[source]
        source: lapin::Error,
    },
    /// The connection is down and did not come back within the wait allowed.
    #[error("the broker connection is not available (waited {waited:?})")]
    NotConnected {
        /// How long the operation waited for the connection.
        waited: Duration,
    },
    /// The in-process `memory://` broker could not be started or the URL is not valid.
    #[error("could not start the in-process broker for {url}: {reason}")]
    MemoryBroker {
        /// The `memory://` URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The runtime was shut down.
    #[error("the connection was closed by shutdown")]
    Closed,
    /// User headers used names Kontiki reserves.
    #[error("reserved header names are not allowed in extra headers: {}", .0.join(", "))]
    ReservedHeaders(Vec<String>),
    /// A header value or name could not be sent.
    #[error("invalid header: {0}")]
    InvalidHeader(String),
    /// A name (service, event type, method) is not usable on the wire.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName {
        /// The name.
        name: String,
        /// Why it is refused.
        reason: String,
    },
    /// The broker did not route a published message to any queue.
    #[error(
        "no queue is bound to {exchange} with routing key {routing_key}: the message was returned"
    )]
    Unroutable {
        /// The exchange published to.
        exchange: String,
        /// The routing key used.
        routing_key: String,
    },
    /// The broker refused a published message (negative confirm).
    #[error(
        "the broker refused the message published to {exchange} with routing key {routing_key}"
    )]
    Nacked {
        /// The exchange published to.
        exchange: String,
        /// The routing key used.
        routing_key: String,
    },
    /// The broker did not confirm a published message within the wait (for example while a
    /// resource alarm blocks publishing connections); the message may or may not have been
    /// routed.
    #[error(
        "the broker did not confirm the message published to {exchange} with routing key \
         {routing_key} within {waited:?} (is publishing blocked by a resource alarm?)"
    )]
    PublishTimeout {
        /// The exchange published to.
        exchange: String,
        /// The routing key used.
        routing_key: String,
        /// How long it waited.
        waited: std::time::Duration,
    },
    /// A message is larger than `kontiki.amqp.max_message_size`; it was not sent.
    #[error(
        "message to {exchange:?} with routing key {routing_key} is {size} bytes, more than the \
         {max} of kontiki.amqp.max_message_size; it was not sent"
    )]
    MessageTooLarge {
        /// The exchange it was for.
        exchange: String,
        /// The routing key it was for.
        routing_key: String,
        /// Its size in bytes.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A payload could not be encoded as JSON.
    #[error("could not encode the payload as JSON: {0}")]
    Encode(#[source] serde_json::Error),
    /// A delegate's lifecycle hook failed.
    #[error("delegate `{delegate}` failed in {phase}: {source}")]
    Delegate {
        /// The delegate's name.
        delegate: String,
        /// `setup`, `start` or `stop`.
        phase: &'static str,
        /// What it reported.
        #[source]
        source: BoxError,
    },
    /// The service definition is inconsistent (duplicate entrypoints, bad names).
    #[error("invalid service definition: {0}")]
    Definition(String),
    /// The OTLP trace exporter the `OTEL_*` environment variables ask for could not be set
    /// up (feature `otel`).
    #[error("cannot export traces as the OTEL_* environment variables ask: {0}")]
    Telemetry(#[source] BoxError),
    /// The HTTP server could not listen on `kontiki.http.address` / `kontiki.http.port`.
    #[error("could not listen for HTTP on {address}: {source}")]
    HttpBind {
        /// The address and port asked for.
        address: String,
        /// What the OS reported.
        #[source]
        source: std::io::Error,
    },
}

/// A boxed error from user code (delegates, handlers).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error that crossed the wire in a reply envelope.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RemoteError {
    /// The error code (`USER_INPUT_ERROR`, `INTERNAL_ERROR`), when the server sent one.
    pub code: Option<String>,
    /// The message, when the server sent one.
    pub message: Option<String>,
}

impl std::fmt::Display for RemoteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.code, &self.message) {
            (Some(c), Some(m)) => write!(f, "{c}: {m}"),
            (Some(c), None) => f.write_str(c),
            (None, Some(m)) => f.write_str(m),
            (None, None) => f.write_str("(no code, no message)"),
        }
    }
}

/// Why an RPC call did not return a result.
///
/// `C` is the type of client errors: [`RemoteError`] for the dynamic API, a typed enum of the
/// declared error codes for generated clients.
#[derive(Debug)]
#[non_exhaustive]
pub enum RpcError<C: std::fmt::Debug + std::fmt::Display = RemoteError> {
    /// The server answered with a client error (Kontiki's `rpc_error(code, message)`).
    Client {
        /// The service called.
        service: String,
        /// The method called.
        method: String,
        /// The error.
        error: C,
    },
    /// The server failed while handling the call (`INTERNAL_ERROR`).
    Server {
        /// The service called.
        service: String,
        /// The method called.
        method: String,
        /// The code and message the server sent.
        error: RemoteError,
    },
    /// No reply came within the timeout.
    Timeout {
        /// The service called.
        service: String,
        /// The method called.
        method: String,
        /// The timeout that ran out.
        timeout: Duration,
    },
    /// No service of that name is running (no queue took the request).
    UnknownService {
        /// The service called.
        service: String,
        /// The method called.
        method: String,
    },
    /// The service exists but has no such method (or no such instance).
    UnknownMethod {
        /// The service called.
        service: String,
        /// The method called.
        method: String,
        /// The instance targeted, if any.
        instance_id: Option<String>,
    },
    /// The broker connection was lost while the call was in flight.
    ConnectionLost {
        /// The service called.
        service: String,
        /// The method called.
        method: String,
    },
    /// The reply could not be read.
    InvalidReply {
        /// The service called.
        service: String,
        /// The method called.
        method: String,
        /// What was wrong.
        reason: String,
    },
    /// The request could not be sent.
    Transport(Error),
}

impl<C: std::fmt::Debug + std::fmt::Display> From<Error> for RpcError<C> {
    fn from(error: Error) -> Self {
        Self::Transport(error)
    }
}

/// An [`RpcError`] with its client error seen as `dyn Display`: what [`fmt_rpc_error`] reads,
/// so that formatting is compiled once rather than once per client-error type.
enum Shown<'a> {
    Client(&'a str, &'a str, &'a dyn std::fmt::Display),
    Server(&'a str, &'a str, &'a RemoteError),
    Timeout(&'a str, &'a str, Duration),
    UnknownService(&'a str, &'a str),
    UnknownMethod(&'a str, &'a str, Option<&'a str>),
    ConnectionLost(&'a str, &'a str),
    InvalidReply(&'a str, &'a str, &'a str),
    Transport(&'a Error),
}

fn fmt_rpc_error(shown: Shown<'_>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    match shown {
        Shown::Client(service, method, error) => {
            write!(f, "client error from {service}.{method}: {error}")
        }
        Shown::Server(service, method, error) => {
            write!(f, "server error from {service}.{method}: {error}")
        }
        Shown::Timeout(service, method, timeout) => write!(
            f,
            "{service}.{method} [RPC_TIMEOUT]: no reply within {timeout:?}"
        ),
        Shown::UnknownService(service, method) => write!(
            f,
            "unknown service `{service}`: no queue is bound for {service}.{method}"
        ),
        Shown::UnknownMethod(service, method, instance) => {
            write!(f, "service `{service}` has no method `{method}`")?;
            match instance {
                Some(i) => write!(f, " on instance {i}"),
                None => Ok(()),
            }
        }
        Shown::ConnectionLost(service, method) => write!(
            f,
            "the broker connection was lost during {service}.{method}"
        ),
        Shown::InvalidReply(service, method, reason) => {
            write!(f, "invalid reply from {service}.{method}: {reason}")
        }
        Shown::Transport(error) => std::fmt::Display::fmt(error, f),
    }
}

impl<C: std::fmt::Debug + std::fmt::Display> std::fmt::Display for RpcError<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        fmt_rpc_error(
            match self {
                Self::Client {
                    service,
                    method,
                    error,
                } => Shown::Client(service, method, error),
                Self::Server {
                    service,
                    method,
                    error,
                } => Shown::Server(service, method, error),
                Self::Timeout {
                    service,
                    method,
                    timeout,
                } => Shown::Timeout(service, method, *timeout),
                Self::UnknownService { service, method } => Shown::UnknownService(service, method),
                Self::UnknownMethod {
                    service,
                    method,
                    instance_id,
                } => Shown::UnknownMethod(service, method, instance_id.as_deref()),
                Self::ConnectionLost { service, method } => Shown::ConnectionLost(service, method),
                Self::InvalidReply {
                    service,
                    method,
                    reason,
                } => Shown::InvalidReply(service, method, reason),
                Self::Transport(error) => Shown::Transport(error),
            },
            f,
        )
    }
}

impl<C: std::fmt::Debug + std::fmt::Display> std::error::Error for RpcError<C> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        // As `#[error(transparent)]` did: a transport error stands in for itself.
        match self {
            Self::Transport(error) => std::error::Error::source(error),
            _ => None,
        }
    }
}

impl<C: std::fmt::Debug + std::fmt::Display> RpcError<C> {
    /// True for [`RpcError::Timeout`].
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout { .. })
    }

    /// The wire error code of a client or server error, if any.
    pub fn remote_code(&self) -> Option<&str> {
        match self {
            Self::Server { error, .. } => error.code.as_deref(),
            _ => None,
        }
    }

    /// Converts the client-error type, keeping every other variant.
    pub fn map_client<D: std::fmt::Debug + std::fmt::Display>(
        self,
        f: impl FnOnce(C) -> D,
    ) -> RpcError<D> {
        match self {
            Self::Client {
                service,
                method,
                error,
            } => RpcError::Client {
                service,
                method,
                error: f(error),
            },
            Self::Server {
                service,
                method,
                error,
            } => RpcError::Server {
                service,
                method,
                error,
            },
            Self::Timeout {
                service,
                method,
                timeout,
            } => RpcError::Timeout {
                service,
                method,
                timeout,
            },
            Self::UnknownService { service, method } => {
                RpcError::UnknownService { service, method }
            }
            Self::UnknownMethod {
                service,
                method,
                instance_id,
            } => RpcError::UnknownMethod {
                service,
                method,
                instance_id,
            },
            Self::ConnectionLost { service, method } => {
                RpcError::ConnectionLost { service, method }
            }
            Self::InvalidReply {
                service,
                method,
                reason,
            } => RpcError::InvalidReply {
                service,
                method,
                reason,
            },
            Self::Transport(e) => RpcError::Transport(e),
        }
    }
}

impl RpcError<RemoteError> {
    /// The client error's code, for the dynamic API.
    pub fn client_code(&self) -> Option<&str> {
        match self {
            Self::Client { error, .. } => error.code.as_deref(),
            _ => None,
        }
    }
}

pub(crate) use crate::config::redact::redact_url;
