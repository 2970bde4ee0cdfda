//! What every entrypoint shares: the error a handler returns ([`HandlerError`]), catching a
//! handler's panic, and the per-call [`Context`] with its service's [`Container`].

mod context;
mod delegate;

pub use context::{Container, Context};
pub use delegate::Delegate;
pub(crate) use delegate::DynDelegate;

use crate::error::BoxError;

/// What a handler returns when it does not return a value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandlerError {
    /// The caller's fault: Kontiki's `rpc_error(code, message)`; sent as a CLIENT error.
    #[error("{code}: {message}")]
    Client {
        /// The error code, e.g. `USER_INPUT_ERROR`.
        code: String,
        /// The message for the caller.
        message: String,
    },
    /// The server's fault; sent as a SERVER error with code `INTERNAL_ERROR`.
    #[error("{message}")]
    Server {
        /// The message sent to the caller.
        message: String,
        /// The cause, kept for logs and the registry.
        #[source]
        source: Option<BoxError>,
    },
}

impl HandlerError {
    /// A client error (Kontiki's `rpc_error(code, message)`).
    pub fn client(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Client {
            code: code.into(),
            message: message.into(),
        }
    }

    /// A server error with a message for the caller.
    pub fn server(message: impl Into<String>) -> Self {
        Self::Server {
            message: message.into(),
            source: None,
        }
    }

    /// A server error caused by `err`; the caller sees its text, as with Kontiki.
    pub fn internal(err: impl Into<BoxError>) -> Self {
        let source = err.into();
        Self::Server {
            message: source.to_string(),
            source: Some(source),
        }
    }
}

/// The text of a caught panic (`panic!("...")` payloads are `&str` or `String`).
pub(crate) fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}
