//! Helpers generated HTTP routes use: typed path and query parameters through serde (so
//! enums, UUIDs and dates work like numbers and strings), JSON responses, mapped errors.

use crate::entrypoints::http::{FieldError, HttpError, HttpRequest, HttpResponse, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A parameter's text as `T`: first as a JSON string (strings, enums, UUIDs, dates), then as
/// JSON text (numbers, booleans).
fn from_text<T: DeserializeOwned>(raw: &str) -> Result<T, String> {
    match serde_json::from_value(Value::String(raw.to_owned())) {
        Ok(v) => Ok(v),
        Err(first) => serde_json::from_str(raw).map_err(|_| first.to_string()),
    }
}

fn invalid(kind: &str, name: &str, message: String) -> HttpError {
    HttpError::invalid(
        format!("invalid {kind} parameter `{name}`"),
        vec![FieldError::new(name, message)],
    )
}

/// The path parameter `name` as `T`; a value that does not fit is a 422 naming it.
pub fn path_param<T: DeserializeOwned>(req: &HttpRequest, name: &str) -> Result<T, HttpError> {
    let raw = req
        .path_params
        .get(name)
        .ok_or_else(|| HttpError::internal(format!("the route has no path parameter `{name}`")))?;
    from_text(raw).map_err(|e| invalid("path", name, e))
}

/// The query parameter `name` as `T`, `None` when absent; a value that does not fit is a 422.
pub fn query_param<T: DeserializeOwned>(
    req: &HttpRequest,
    name: &str,
) -> Result<Option<T>, HttpError> {
    req.query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| from_text(v).map_err(|e| invalid("query", name, e)))
        .transpose()
}

/// An optional query parameter with a default.
pub fn query_param_or<T: DeserializeOwned>(
    req: &HttpRequest,
    name: &str,
    default: impl FnOnce() -> T,
) -> Result<T, HttpError> {
    Ok(query_param(req, name)?.unwrap_or_else(default))
}

/// A required query parameter: missing is a 422 naming it.
pub fn required_query_param<T: DeserializeOwned>(
    req: &HttpRequest,
    name: &str,
) -> Result<T, HttpError> {
    query_param(req, name)?.ok_or_else(|| {
        HttpError::invalid(
            format!("missing query parameter `{name}`"),
            vec![FieldError::new(name, "required")],
        )
    })
}

fn status(code: u16) -> StatusCode {
    // The IDL checker only lets valid statuses through.
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// `value` as a JSON response with status `code`.
pub fn json_response<T: Serialize>(code: u16, value: &T) -> HttpResponse {
    HttpResponse::json(status(code), value)
}

/// An empty response with status `code` (routes without a response type).
pub fn empty_response(code: u16) -> HttpResponse {
    HttpResponse::empty(status(code))
}

/// A mapped error: `{"message": message}` with status `code`.
pub fn mapped_error(code: u16, message: impl Into<String>) -> HttpError {
    HttpError::mapped(status(code), message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_parameters_decode_through_serde() {
        assert_eq!(from_text::<u64>("42").unwrap(), 42);
        assert_eq!(from_text::<String>("42").unwrap(), "42");
        assert!(from_text::<bool>("true").unwrap());
        assert_eq!(
            from_text::<uuid::Uuid>("00000000-0000-0000-0000-000000000001").unwrap(),
            uuid::Uuid::from_u128(1)
        );
        assert_eq!(from_text::<Option<u32>>("7").unwrap(), Some(7));
        assert!(from_text::<u32>("x").is_err());
    }
}
