//! The documentation routes: each version's OpenAPI document and a Swagger UI whose assets the
//! service serves itself (vendored by `utoipa-swagger-ui`, so a machine without internet access
//! shows a working page). Without the `swagger-ui` feature only the documents are served.

use crate::config::DocumentationSettings;
use crate::error::{Error, Result};
use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::routing::get;
use serde_json::Value;
#[cfg(feature = "swagger-ui")]
use {
    super::response::json_error,
    axum::extract::Path,
    axum::http::StatusCode,
    axum::response::{IntoResponse, Redirect, Response},
    std::sync::Arc,
    utoipa_swagger_ui::Config as SwaggerConfig,
};

/// Checks that `version` can be put into a path.
pub(super) fn check_version(version: &str) -> Result<()> {
    let ok = !version.is_empty()
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Error::Definition(format!(
            "API version {version:?} must be letters, digits, `.`, `_` or `-`"
        )))
    }
}

/// Parses an OpenAPI document: a JSON object.
pub(super) fn parse_document(version: &str, json: &str) -> Result<serde_json::Map<String, Value>> {
    match serde_json::from_str::<Value>(json) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Error::Definition(format!(
            "the OpenAPI document of version `{version}` is not a JSON object"
        ))),
        Err(e) => Err(Error::Definition(format!(
            "the OpenAPI document of version `{version}` is not JSON: {e}"
        ))),
    }
}

/// The docs paths of one version: `(ui, openapi.json)`. The template's `{version}` is replaced;
/// the document goes where a trailing `/docs` becomes `/openapi.json`, else at `<ui>.json`
/// (as Kontiki does).
pub(super) fn paths(template: &str, version: &str) -> (String, String) {
    let ui = template.replace("{version}", version);
    let ui = ui.trim_end_matches('/').to_owned();
    let json = match ui.strip_suffix("/docs") {
        Some(base) => format!("{base}/openapi.json"),
        None => format!("{ui}.json"),
    };
    (ui, json)
}

/// Adds the docs routes of every document to `router`.
pub(super) fn add_routes(
    mut router: Router,
    documents: &[(String, String)],
    settings: &DocumentationSettings,
    route_shapes: &std::collections::BTreeMap<String, String>,
) -> Result<Router> {
    let template = &settings.path_template;
    if !template.starts_with('/') {
        return Err(Error::Definition(format!(
            "kontiki.http.documentation.path_template must start with `/`: {template:?}"
        )));
    }
    if documents.len() > 1 && !template.contains("{version}") {
        return Err(Error::Definition(format!(
            "kontiki.http.documentation.path_template {template:?} has no `{{version}}` but \
             there are {} API versions",
            documents.len()
        )));
    }
    for (version, json) in documents {
        let (ui, json_path) = paths(template, version);
        for path in [&ui, &json_path] {
            if let Some(route) = route_shapes.get(&super::routing::shape_of(path)) {
                return Err(Error::Definition(format!(
                    "http path {route:?} conflicts with the docs path {path:?} of version \
                     `{version}` (kontiki.http.documentation.path_template)"
                )));
            }
        }
        let body = document_bytes(version, json, settings)?;
        let json_route = get(move || {
            let body = body.clone();
            async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    )],
                    body,
                )
            }
        });
        router = super::routing::try_route(router, &json_path, json_route)?;
        #[cfg(feature = "swagger-ui")]
        {
            router = add_ui_routes(router, &ui, &json_path)?;
        }
    }
    Ok(router)
}

/// The Swagger UI of one document: `<ui>` redirects to `<ui>/swagger`, Kontiki's address of the
/// page; relative asset paths resolve the same from `<ui>/` and `<ui>/swagger`.
#[cfg(feature = "swagger-ui")]
fn add_ui_routes(mut router: Router, ui: &str, json_path: &str) -> Result<Router> {
    let config = Arc::new(
        SwaggerConfig::new([json_path.to_owned()])
            // The validator badge would fetch from validator.swagger.io: stay offline.
            .validator_url("none"),
    );
    let swagger = format!("{ui}/swagger");
    let index_config = config.clone();
    router = super::routing::try_route(
        router,
        ui,
        get(move || {
            let to = swagger.clone();
            async move { Redirect::to(&to) }
        }),
    )?;
    router = super::routing::try_route(
        router,
        &format!("{ui}/"),
        get(move || {
            let config = index_config.clone();
            async move { asset("", config) }
        }),
    )?;
    super::routing::try_route(
        router,
        &format!("{ui}/{{*file}}"),
        get(move |Path(file): Path<String>| {
            let config = config.clone();
            async move { asset(&file, config) }
        }),
    )
}

/// The document as served: as given, or with `info.title` / `info.description` from config.
fn document_bytes(version: &str, json: &str, settings: &DocumentationSettings) -> Result<Bytes> {
    if settings.title.is_none() && settings.description.is_none() {
        return Ok(Bytes::from(json.to_owned()));
    }
    let mut doc = parse_document(version, json)?;
    let info = doc
        .entry("info")
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    if !info.is_object() {
        *info = Value::Object(serde_json::Map::new());
    }
    if let Value::Object(info) = info {
        if let Some(t) = &settings.title {
            info.insert("title".to_owned(), Value::String(t.clone()));
        }
        if let Some(d) = &settings.description {
            info.insert("description".to_owned(), Value::String(d.clone()));
        }
    }
    serde_json::to_vec(&doc)
        .map(Bytes::from)
        .map_err(|e| Error::Definition(format!("OpenAPI document of `{version}`: {e}")))
}

/// One Swagger UI file; `swagger` (Kontiki's page name) and `` are the page itself.
#[cfg(feature = "swagger-ui")]
fn asset(file: &str, config: Arc<SwaggerConfig<'static>>) -> Response {
    let file = if file == "swagger" { "" } else { file };
    match utoipa_swagger_ui::serve(file, config) {
        Ok(Some(f)) => {
            let content_type = HeaderValue::from_str(&f.content_type)
                .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
            (
                [(header::CONTENT_TYPE, content_type)],
                Bytes::from(f.bytes.into_owned()),
            )
                .into_response()
        }
        Ok(None) => json_error(StatusCode::NOT_FOUND, "not found"),
        Err(e) => super::HttpError::internal(e.to_string()).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_kontiki() {
        assert_eq!(
            paths("/api/{version}/docs", "v1"),
            ("/api/v1/docs".to_owned(), "/api/v1/openapi.json".to_owned())
        );
        assert_eq!(
            paths("/docs/{version}", "v2"),
            ("/docs/v2".to_owned(), "/docs/v2.json".to_owned())
        );
    }

    #[test]
    fn versions_must_fit_in_a_path() {
        assert!(check_version("v1").is_ok());
        assert!(check_version("2024-01").is_ok());
        assert!(check_version("").is_err());
        assert!(check_version("v1/x").is_err());
        assert!(check_version("{v}").is_err());
    }
}
