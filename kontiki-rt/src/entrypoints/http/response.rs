//! What a route handler returns: a response or an error that becomes one.

use crate::error::BoxError;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::sync::Arc;

/// One field of a request that did not fit its type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// Where: `items[2].qty` in a body, the parameter name for path and query parameters
    /// (empty for the body as a whole).
    pub path: String,
    /// Why, e.g. `invalid type: string "x", expected u32`.
    pub message: String,
}

impl FieldError {
    /// A field error at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Why a route handler did not produce its response. Becomes a JSON response through
/// [`IntoResponse`]; internal errors show no detail and are logged once.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// An error code the route maps to a status (`raises CONFLICT = 409` in the IDL):
    /// `{"message": message}` with that status, as Kontiki's `http_error_handlers`.
    #[error("{status}: {message}")]
    Mapped {
        /// The status.
        status: StatusCode,
        /// The message for the client.
        message: String,
    },
    /// The request cannot be read (malformed JSON): 400 `{"message": ...}`.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The request was read but does not fit its types: 422
    /// `{"message": ..., "errors": [{"path": ..., "message": ...}]}`.
    #[error("{message}")]
    Invalid {
        /// What was invalid (`invalid request body`).
        message: String,
        /// Each field that did not fit.
        errors: Vec<FieldError>,
    },
    /// Anything else: 500 `{"message": "internal server error"}`; the cause is logged, never
    /// sent.
    #[error("internal error: {0}")]
    Internal(#[source] BoxError),
}

impl HttpError {
    /// A mapped error: `{"message": message}` with `status`.
    pub fn mapped(status: StatusCode, message: impl Into<String>) -> Self {
        Self::Mapped {
            status,
            message: message.into(),
        }
    }

    /// A 422 with the fields that did not fit.
    pub fn invalid(message: impl Into<String>, errors: Vec<FieldError>) -> Self {
        Self::Invalid {
            message: message.into(),
            errors,
        }
    }

    /// A 500 caused by `err` (logged, not sent).
    pub fn internal(err: impl Into<BoxError>) -> Self {
        Self::Internal(err.into())
    }

    /// The status the error is sent with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Mapped { status, .. } => *status,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// The cause of a 500, handed in the response's extensions to the layer that logs it (once).
#[derive(Debug, Clone)]
pub(crate) struct InternalError(pub(crate) Arc<BoxError>);

#[derive(Serialize)]
struct ErrorBody<'a> {
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a [FieldError]>,
}

pub(crate) fn json_error(status: StatusCode, message: &str) -> Response {
    error_response(
        status,
        &ErrorBody {
            message,
            errors: None,
        },
    )
}

fn error_response(status: StatusCode, body: &ErrorBody<'_>) -> Response {
    // Serializing two strings and a list of string pairs cannot fail.
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        bytes,
    )
        .into_response()
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        match self {
            Self::Mapped { status, message } => json_error(status, &message),
            Self::BadRequest(message) => json_error(StatusCode::BAD_REQUEST, &message),
            Self::Invalid { message, errors } => error_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                &ErrorBody {
                    message: &message,
                    errors: Some(&errors),
                },
            ),
            Self::Internal(source) => {
                let mut res =
                    json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal server error");
                res.extensions_mut().insert(InternalError(Arc::new(source)));
                res
            }
        }
    }
}

/// A route handler's response.
#[derive(Debug)]
pub struct HttpResponse {
    repr: Repr,
}

#[derive(Debug)]
enum Repr {
    Ready {
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
    },
    /// The body could not be serialized: sent as an internal error.
    Failed(HttpError),
}

impl HttpResponse {
    /// `value` as JSON with `status`. A value serde cannot write as JSON (a map with non-string
    /// keys) gives a 500, logged.
    pub fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(bytes) => Self::with_body(status, "application/json", bytes.into()),
            Err(e) => Self {
                repr: Repr::Failed(HttpError::internal(e)),
            },
        }
    }

    /// No body.
    pub fn empty(status: StatusCode) -> Self {
        Self {
            repr: Repr::Ready {
                status,
                headers: HeaderMap::new(),
                body: Bytes::new(),
            },
        }
    }

    /// Plain text (`text/plain; charset=utf-8`).
    pub fn text(status: StatusCode, text: impl Into<String>) -> Self {
        Self::with_body(status, "text/plain; charset=utf-8", text.into().into())
    }

    /// `body` as is, with a `content-type`.
    pub fn bytes(status: StatusCode, content_type: &'static str, body: Bytes) -> Self {
        Self::with_body(status, content_type, body)
    }

    fn with_body(status: StatusCode, content_type: &'static str, body: Bytes) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        Self {
            repr: Repr::Ready {
                status,
                headers,
                body,
            },
        }
    }

    /// Adds a header (replacing one of the same name).
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        if let Repr::Ready { headers, .. } = &mut self.repr {
            headers.insert(name, value);
        }
        self
    }

    /// The status that will be sent.
    pub fn status(&self) -> StatusCode {
        match &self.repr {
            Repr::Ready { status, .. } => *status,
            Repr::Failed(e) => e.status(),
        }
    }

    /// The body that will be sent (empty for a failed one).
    pub fn body(&self) -> &[u8] {
        match &self.repr {
            Repr::Ready { body, .. } => body,
            Repr::Failed(_) => &[],
        }
    }
}

impl IntoResponse for HttpResponse {
    fn into_response(self) -> Response {
        match self.repr {
            Repr::Ready {
                status,
                headers,
                body,
            } => {
                let mut res = Response::new(Body::from(body));
                *res.status_mut() = status;
                *res.headers_mut() = headers;
                res
            }
            Repr::Failed(e) => e.into_response(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(res: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn internal_errors_hide_their_cause() {
        let res = HttpError::internal("db password is hunter2").into_response();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let cause = res
            .extensions()
            .get::<InternalError>()
            .unwrap()
            .0
            .to_string();
        assert_eq!(cause, "db password is hunter2");
        assert_eq!(
            body_of(res).await,
            serde_json::json!({"message": "internal server error"})
        );
    }

    #[tokio::test]
    async fn unserializable_json_is_an_internal_error() {
        let mut map = std::collections::BTreeMap::new();
        map.insert(vec![1u8], 1);
        let res = HttpResponse::json(StatusCode::OK, &map);
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let res = res.into_response();
        assert!(res.extensions().get::<InternalError>().is_some());
    }
}
