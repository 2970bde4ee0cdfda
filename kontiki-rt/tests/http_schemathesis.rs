//! The OpenAPI document of a live service, checked two ways: it is served as given and passes
//! openapi-spec-validator, and a property-based run of schemathesis (PyPI, pinned in
//! tests/py/requirements.txt) with every check on finds no 500 and no response that contradicts
//! the document. The document is written by hand here; kontiki-codegen generates them for real
//! services.

mod support;

use kontiki_rt::http::{HttpError, HttpRequest, HttpResponse, HttpRoute, Method, StatusCode};
use kontiki_rt::{Config, Service};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::process::Stdio;

#[derive(Debug, Deserialize, Serialize)]
struct Tag {
    label: String,
}

#[derive(Debug, Deserialize, Serialize)]
struct NewItem {
    name: String,
    qty: u32,
    #[serde(default)]
    tags: Vec<Tag>,
}

/// What kontiki-codegen would write for the routes below (OpenAPI 3.1, as it emits).
const DOC: &str = r##"{
  "openapi": "3.1.0",
  "info": {"title": "http-prop", "version": "v1"},
  "paths": {
    "/api/v1/health": {
      "get": {
        "operationId": "health",
        "responses": {
          "200": {"description": "alive", "content": {"application/json": {"schema": {
            "type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}
          }}}}
        }
      }
    },
    "/hello/{who}": {
      "get": {
        "operationId": "hello",
        "parameters": [{"name": "who", "in": "path", "required": true, "schema": {"type": "string", "minLength": 1}}],
        "responses": {
          "200": {"description": "greeting", "content": {"application/json": {"schema": {
            "type": "object", "required": ["hello"], "properties": {"hello": {"type": "string"}}
          }}}}
        }
      }
    },
    "/items": {
      "post": {
        "operationId": "create_item",
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewItem"}}}},
        "responses": {
          "201": {"description": "created", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewItem"}}}},
          "400": {"$ref": "#/components/responses/BadRequest"},
          "409": {"$ref": "#/components/responses/Conflict"},
          "422": {"$ref": "#/components/responses/Invalid"}
        }
      }
    },
    "/items/{id}": {
      "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "integer", "minimum": 0, "maximum": 18446744073709551615}}],
      "get": {
        "operationId": "get_item",
        "parameters": [
          {"name": "deleted", "in": "query", "required": false, "schema": {"type": "boolean"}},
          {"name": "cursor", "in": "query", "required": false, "schema": {"type": "string"}}
        ],
        "responses": {
          "200": {"description": "the item", "content": {"application/json": {"schema": {
            "type": "object", "required": ["id", "deleted", "cursor"],
            "properties": {"id": {"type": "integer"}, "deleted": {"type": "boolean"}, "cursor": {"type": ["string", "null"]}}
          }}}},
          "422": {"$ref": "#/components/responses/Invalid"}
        }
      },
      "delete": {
        "operationId": "delete_item",
        "responses": {
          "204": {"description": "deleted"},
          "422": {"$ref": "#/components/responses/Invalid"}
        }
      }
    },
    "/search": {
      "get": {
        "operationId": "search",
        "parameters": [
          {"name": "q", "in": "query", "required": true, "schema": {"type": "string"}},
          {"name": "limit", "in": "query", "required": true, "schema": {"type": "integer", "minimum": 0, "maximum": 4294967295}}
        ],
        "responses": {
          "200": {"description": "results", "content": {"application/json": {"schema": {
            "type": "object", "required": ["q", "limit"],
            "properties": {"q": {"type": "string"}, "limit": {"type": "integer"}}
          }}}},
          "422": {"$ref": "#/components/responses/Invalid"}
        }
      }
    }
  },
  "components": {
    "schemas": {
      "Tag": {"type": "object", "required": ["label"], "properties": {"label": {"type": "string"}}},
      "NewItem": {
        "type": "object", "required": ["name", "qty"],
        "properties": {
          "name": {"type": "string"},
          "qty": {"type": "integer", "minimum": 0, "maximum": 4294967295},
          "tags": {"type": "array", "items": {"$ref": "#/components/schemas/Tag"}}
        }
      },
      "Error": {
        "type": "object", "required": ["message"],
        "properties": {
          "message": {"type": "string"},
          "errors": {"type": "array", "items": {
            "type": "object", "required": ["path", "message"],
            "properties": {"path": {"type": "string"}, "message": {"type": "string"}}
          }}
        }
      }
    },
    "responses": {
      "BadRequest": {"description": "malformed JSON", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "Conflict": {"description": "conflict happened", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "Invalid": {"description": "a value does not fit its type", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    }
  }
}"##;

async fn start() -> (kontiki_rt::RunningService, String) {
    let svc = Service::builder("http-prop")
        .http(
            HttpRoute::new(Method::GET, "/api/v1/health", |_req: HttpRequest| async move {
                Ok(HttpResponse::json(StatusCode::OK, &json!({"status": "ok"})))
            })
            .version("v1"),
        )
        .http(
            HttpRoute::new(Method::GET, "/hello/{who}", |req: HttpRequest| async move {
                let who: String = req.path_param("who")?;
                Ok(HttpResponse::json(StatusCode::OK, &json!({ "hello": who })))
            })
            .version("v1"),
        )
        .http(
            HttpRoute::new(Method::POST, "/items", |req: HttpRequest| async move {
                let item: NewItem = req.json_body()?;
                if item.name == "conflict" {
                    return Err(HttpError::mapped(StatusCode::CONFLICT, "conflict happened"));
                }
                Ok(HttpResponse::json(StatusCode::CREATED, &item))
            })
            .version("v1"),
        )
        .http(
            HttpRoute::new(Method::GET, "/items/{id}", |req: HttpRequest| async move {
                let id: u64 = req.path_param("id")?;
                let deleted = req.query_opt::<bool>("deleted")?.unwrap_or(false);
                let cursor: Option<String> = req.query_opt("cursor")?;
                Ok(HttpResponse::json(
                    StatusCode::OK,
                    &json!({ "id": id, "deleted": deleted, "cursor": cursor }),
                ))
            })
            .version("v1"),
        )
        .http(
            HttpRoute::new(Method::DELETE, "/items/{id}", |req: HttpRequest| async move {
                let _: u64 = req.path_param("id")?;
                Ok(HttpResponse::empty(StatusCode::NO_CONTENT))
            })
            .version("v1"),
        )
        .http(
            HttpRoute::new(Method::GET, "/search", |req: HttpRequest| async move {
                let q: String = req.query_param("q")?;
                let limit: u32 = req.query_param("limit")?;
                Ok(HttpResponse::json(
                    StatusCode::OK,
                    &json!({ "q": q, "limit": limit }),
                ))
            })
            .version("v1"),
        )
        .openapi("v1", DOC)
        .build()
        .expect("valid definition")
        .start(
            Config::from_yaml_str(
                "prop.yaml",
                "kontiki:\n  amqp:\n    disable: true\n  http:\n    address: 127.0.0.1\n    port: 0\n",
            )
            .expect("config"),
        )
        .await
        .expect("service starts");
    let base = format!("http://{}", svc.http_addr().expect("HTTP runs"));
    (svc, base)
}

#[tokio::test]
async fn the_served_document_is_the_given_one_and_valid() {
    let (svc, base) = start().await;
    let served = reqwest::get(format!("{base}/api/v1/openapi.json"))
        .await
        .expect("request")
        .text()
        .await
        .expect("body");
    assert_eq!(served, DOC);
    let file = tempfile::Builder::new()
        .suffix(".json")
        .tempfile()
        .expect("temp file");
    std::fs::write(file.path(), &served).expect("write document");
    let out = tokio::process::Command::new(support::py::python())
        .args(["-m", "openapi_spec_validator"])
        .arg(file.path())
        .output()
        .await
        .expect("run openapi-spec-validator");
    assert!(
        out.status.success(),
        "openapi-spec-validator refused the document:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    svc.shutdown().await;
}

#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_contradiction() {
    let (svc, base) = start().await;
    let python = support::py::python();
    let st = python.with_file_name("schemathesis");
    assert!(
        st.exists(),
        "{} is missing: scripts/python-env.sh installs schemathesis from tests/py/requirements.txt",
        st.display()
    );
    // Every check, a bounded number of examples, a fixed seed (CI reruns the same cases). It
    // keeps a `.schemathesis/` cache in its working directory: a temporary one.
    let workdir = tempfile::tempdir().expect("temp dir");
    let out = tokio::process::Command::new(&st)
        .current_dir(workdir.path())
        .args(["run", &format!("{base}/api/v1/openapi.json")])
        .args(["--url", &base])
        .args(["--checks", "all"])
        .args(["--max-examples", "40"])
        .args(["--seed", "20261129"])
        .args(["--no-color"])
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run schemathesis");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    svc.shutdown().await;
    println!("{report}");
    assert!(out.status.success(), "schemathesis failed:\n{report}");
    // It tested every operation, so a pass is not an empty run.
    assert!(report.contains("6 selected"), "{report}");
    assert!(!report.contains("Server error"), "{report}");
}
