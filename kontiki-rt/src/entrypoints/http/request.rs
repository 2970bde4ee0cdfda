//! The request a route handler gets, and the helpers that decode it into IDL types.

use super::response::{FieldError, HttpError};
use crate::handler::Context;
use axum::body::Bytes;
use axum::extract::RawPathParams;
use axum::http::{HeaderMap, Method};
use serde::de::DeserializeOwned;
use std::fmt::Display;
use std::str::FromStr;

/// The path parameters of a request (`{id}` segments), percent-decoded, in path order.
///
/// They stay as the router read them (shared, not copied into strings of their own).
#[derive(Debug, Default)]
pub struct PathParams(Option<RawPathParams>);

impl PathParams {
    pub(super) fn new(raw: RawPathParams) -> Self {
        Self(Some(raw))
    }

    /// The value of the parameter `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    /// `(name, value)` of each parameter, in path order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().flat_map(RawPathParams::iter)
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }
}

/// An inbound HTTP request, as a route handler sees it.
#[derive(Debug)]
#[non_exhaustive]
pub struct HttpRequest {
    /// The method.
    pub method: Method,
    /// The path parameters (`{id}` segments), percent-decoded.
    pub path_params: PathParams,
    /// The query string as decoded `(name, value)` pairs, in order (a name may repeat).
    pub query: Vec<(String, String)>,
    /// The request headers.
    pub headers: HeaderMap,
    /// The body, at most `kontiki.http.max_body_bytes` long.
    pub body: Bytes,
    /// The service's context: messenger, identity, config.
    pub context: Context,
}

impl HttpRequest {
    /// Decodes the body as JSON into `T`.
    ///
    /// Malformed JSON is a 400 with serde's message; JSON that does not fit `T` is a 422 that
    /// names the field: `{"message": "invalid request body", "errors": [{"path":
    /// "items[2].qty", "message": "invalid type: string \"x\", expected u32"}]}`.
    pub fn json_body<T: DeserializeOwned>(&self) -> Result<T, HttpError> {
        decode_json(&self.body)
    }

    /// The path parameter `name` parsed as `T`; a value that does not parse is a 422 naming
    /// the parameter.
    pub fn path_param<T>(&self, name: &str) -> Result<T, HttpError>
    where
        T: FromStr,
        T::Err: Display,
    {
        let raw = self.path_params.get(name).ok_or_else(|| {
            // The route's path has no such segment: a definition mistake, not the caller's.
            HttpError::internal(format!("the route has no path parameter `{name}`"))
        })?;
        raw.parse().map_err(|e: T::Err| {
            HttpError::invalid(
                format!("invalid path parameter `{name}`"),
                vec![FieldError::new(name, e.to_string())],
            )
        })
    }

    /// The query parameter `name` parsed as `T`; missing or not parsing is a 422 naming it.
    /// When it repeats, the first value counts.
    pub fn query_param<T>(&self, name: &str) -> Result<T, HttpError>
    where
        T: FromStr,
        T::Err: Display,
    {
        self.query_opt(name)?.ok_or_else(|| {
            HttpError::invalid(
                format!("missing query parameter `{name}`"),
                vec![FieldError::new(name, "required")],
            )
        })
    }

    /// The optional query parameter `name` parsed as `T` (`None` when absent); a value that
    /// does not parse is a 422 naming it.
    pub fn query_opt<T>(&self, name: &str) -> Result<Option<T>, HttpError>
    where
        T: FromStr,
        T::Err: Display,
    {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| parse_query(name, v))
            .transpose()
    }

    /// Every value of the query parameter `name` (`?tag=a&tag=b`), each parsed as `T`.
    pub fn query_all<T>(&self, name: &str) -> Result<Vec<T>, HttpError>
    where
        T: FromStr,
        T::Err: Display,
    {
        self.query
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| parse_query(name, v))
            .collect()
    }

    /// The header `name` as text, if present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

fn parse_query<T>(name: &str, value: &str) -> Result<T, HttpError>
where
    T: FromStr,
    T::Err: Display,
{
    value.parse().map_err(|e: T::Err| {
        HttpError::invalid(
            format!("invalid query parameter `{name}`"),
            vec![FieldError::new(name, e.to_string())],
        )
    })
}

/// JSON → `T`: syntax errors are 400, shape errors 422 with the path of the field.
///
/// A float with no fraction (`2.0`) is read as an integer first: JSON Schema's `integer`
/// accepts it, and so does Kontiki's pydantic.
pub(crate) fn decode_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, HttpError> {
    // With no fraction or exponent in the body there is no float to rewrite, and `T` reads the
    // same numbers straight from the text as from a `Value`: no tree to build. A body that
    // does not decode this way takes the long way below, which words the error (and accepts
    // what only the `Value` reading accepts, a repeated field).
    if !has_float_syntax(body)
        && let Ok(value) = serde_json::from_slice(body)
    {
        return Ok(value);
    }
    let mut value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| HttpError::BadRequest(format!("malformed JSON: {e}")))?;
    integral_floats_to_integers(&mut value);
    serde_path_to_error::deserialize::<_, T>(&value).map_err(|e| {
        let path = e.path().to_string();
        HttpError::invalid(
            "invalid request body",
            vec![FieldError::new(
                if path == "." { String::new() } else { path },
                strip_position(e.inner()),
            )],
        )
    })
}

/// Whether the JSON text `json` may hold a number with a fraction or an exponent (`2.0`,
/// `1e3`): a `.`, `e` or `E` right after a digit. Such a number always has one; a string may
/// too (`"v1.2"`), which only sends its body the long way.
fn has_float_syntax(json: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // Whether a byte of `word` is zero: exact as a whole (a false alarm only ever sits above a
    // real zero byte), which is all the test below needs.
    let has_zero = |word: u64| word.wrapping_sub(ONES) & !word & HIGHS != 0;
    let mut prev = b' ';
    let mut chunks = json.chunks_exact(8);
    for chunk in &mut chunks {
        let bytes: [u8; 8] = chunk.try_into().unwrap_or([b' '; 8]);
        // `.` and `e` are 0x2e and 0x65, `E` 0x45; with bit 5 set both letters are `e`.
        let folded = u64::from_le_bytes(bytes) | (0x20 * ONES);
        if (has_zero(folded ^ (u64::from(b'.') * ONES))
            || has_zero(folded ^ (u64::from(b'e') * ONES)))
            && after_digit(prev, &bytes)
        {
            return true;
        }
        prev = bytes[7];
    }
    after_digit(prev, chunks.remainder())
}

/// Whether `.`, `e` or `E` follows a digit in `bytes` (the byte before them being `prev`).
fn after_digit(mut prev: u8, bytes: &[u8]) -> bool {
    for &b in bytes {
        if prev.is_ascii_digit() && (b == b'.' || (b | 0x20) == b'e') {
            return true;
        }
        prev = b;
    }
    false
}

fn integral_floats_to_integers(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|f| n.is_f64() && f.fract() == 0.0) {
                // The bounds are exact powers of two, so the casts below are exact.
                if (0.0..18_446_744_073_709_551_616.0).contains(&f) {
                    *n = (f as u64).into();
                } else if (-9_223_372_036_854_775_808.0..0.0).contains(&f) {
                    *n = (f as i64).into();
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_floats_to_integers),
        Value::Object(map) => map.values_mut().for_each(integral_floats_to_integers),
        _ => {}
    }
}

/// serde_json's data errors end with ` at line L column C`, which says nothing once the path
/// names the field.
fn strip_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(i) if e.line() > 0 => text[..i].to_owned(),
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code, reason = "fields are only decoded")]
    struct Line {
        qty: u32,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code, reason = "fields are only decoded")]
    struct Order {
        name: String,
        items: Vec<Line>,
    }

    #[test]
    fn a_wrong_field_is_named_by_its_path() {
        let body = br#"{"name": "a", "items": [{"qty": 1}, {"qty": 2}, {"qty": "x"}]}"#;
        match decode_json::<Order>(body) {
            Err(HttpError::Invalid { message, errors }) => {
                assert_eq!(message, "invalid request body");
                assert_eq!(
                    errors,
                    vec![FieldError::new(
                        "items[2].qty",
                        "invalid type: string \"x\", expected u32"
                    )]
                );
            }
            other => panic!("expected a 422, got {other:?}"),
        }
    }

    #[test]
    fn integral_floats_fit_integer_fields() {
        let order: Order = decode_json(br#"{"name": "a", "items": [{"qty": 2.0}]}"#).unwrap();
        assert_eq!(order.items[0].qty, 2);
        let e = decode_json::<Order>(br#"{"name": "a", "items": [{"qty": 2.5}]}"#).unwrap_err();
        assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let big: serde_json::Value = decode_json(b"[1e300, -3.0, 0.5]").unwrap();
        assert_eq!(big, serde_json::json!([1e300, -3, 0.5]));
    }

    #[test]
    fn float_syntax_is_found_in_every_float() {
        for float in [
            &b"2.0"[..],
            b"[1e3]",
            b"{\"a\": -0.5}",
            b"{\"a\": 1E-2}",
            b"{\"s\": \"x\\\"\", \"a\": 3.25}",
            // A string like a float only takes the long way.
            b"{\"name\": \"2.0e5\", \"qty\": 3}",
        ] {
            assert!(has_float_syntax(float), "{:?}", std::str::from_utf8(float));
        }
        for integral in [
            &b"2"[..],
            b"{\"name\": \"widget\", \"qty\": 3}",
            b"[true, false, null, -7, \"e.\"]",
            b"",
        ] {
            assert!(
                !has_float_syntax(integral),
                "{:?}",
                std::str::from_utf8(integral)
            );
        }
    }

    #[test]
    fn float_scan_agrees_with_a_plain_scan_at_every_position() {
        let plain = |json: &[u8]| {
            json.windows(2)
                .any(|w| w[0].is_ascii_digit() && matches!(w[1], b'.' | b'e' | b'E'))
        };
        for len in 0..40 {
            for at in 0..len {
                for (a, b) in [
                    (b'7', b'.'),
                    (b'0', b'e'),
                    (b'9', b'E'),
                    (b'x', b'.'),
                    (b'7', b'x'),
                    (b'\x0e', b'e'),
                    (b'5', b'\x0e'),
                ] {
                    let mut json = vec![b'"'; len];
                    json[at] = a;
                    if at + 1 < len {
                        json[at + 1] = b;
                    }
                    assert_eq!(has_float_syntax(&json), plain(&json), "{json:?}");
                }
            }
        }
    }

    #[test]
    fn both_readings_decode_alike() {
        // The straight reading (no float) and the `Value` one (a float) give the same answers.
        let order: Order = decode_json(br#"{"name": "1.5e3", "items": [{"qty": 2}]}"#).unwrap();
        assert_eq!((order.name.as_str(), order.items[0].qty), ("1.5e3", 2));
        let value: serde_json::Value = decode_json(br#"{"a": [1, -2, "3.0"], "b": true}"#).unwrap();
        assert_eq!(value, serde_json::json!({"a": [1, -2, "3.0"], "b": true}));
        // A repeated field: the last one counts, as it always did.
        let order: Order = decode_json(br#"{"name": "a", "name": "b", "items": []}"#).unwrap();
        assert_eq!(order.name, "b");
        // Errors are worded as before, with the field's path.
        match decode_json::<Order>(br#"{"name": "a", "items": [{"qty": -1}]}"#) {
            Err(HttpError::Invalid { errors, .. }) => {
                assert_eq!(errors[0].path, "items[0].qty");
                assert!(!errors[0].message.contains(" at line "), "{errors:?}");
            }
            other => panic!("expected a 422, got {other:?}"),
        }
    }

    #[test]
    fn a_missing_field_is_a_422_and_bad_json_a_400() {
        let e = decode_json::<Order>(br#"{"items": []}"#).unwrap_err();
        assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY);
        for bad in [&b"{"[..], b"not json", b"", b"{} trailing"] {
            let e = decode_json::<serde_json::Value>(bad).unwrap_err();
            assert!(
                matches!(&e, HttpError::BadRequest(m) if m.starts_with("malformed JSON")),
                "{bad:?}: {e:?}"
            );
        }
    }
}
