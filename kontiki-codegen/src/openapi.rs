//! OpenAPI 3.1 documents, one per service and HTTP API version, built with utoipa's model types
//! (schemas of IDL types come from [`crate::schema`]).

use std::collections::{BTreeMap, BTreeSet};

use kontiki_idl::model::{
    self as idl, HttpMethod as Method, HttpPath, HttpRoute, Model, NamedType, Package,
};
use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Ref, Type};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApiBuilder, PathsBuilder, Required,
    ResponseBuilder, ResponsesBuilder,
};

use crate::error::{Error, Result};
use crate::model::{OpenApiConst, const_ident, to_json};
use crate::schema::Cx;

/// The schema of the JSON body of a mapped error (Kontiki: `{"message": ...}`).
const ERROR_SCHEMA: &str = "ErrorMessage";

/// One generated document.
#[derive(Debug, Clone)]
pub(crate) struct Document {
    /// The HTTP API version, such as `v1`.
    pub(crate) version: String,
    /// `openapi/<wire name>.<version>.json`.
    pub(crate) file: String,
    /// Pretty JSON with a final newline.
    pub(crate) json: String,
}

impl Document {
    /// The Rust constant holding it.
    pub(crate) fn as_const(&self) -> OpenApiConst {
        let text = self.json.trim_end();
        // A raw string needs more `#` than any run of `#` that follows a `"` in the text.
        let mut hashes = 1;
        while text.contains(&format!("\"{}", "#".repeat(hashes))) {
            hashes += 1;
        }
        let h = "#".repeat(hashes);
        OpenApiConst {
            ident: format!("OPENAPI_{}", const_ident(&self.version)),
            version: self.version.clone(),
            file: self.file.clone(),
            literal: format!("r{h}\"{text}\"{h}"),
        }
    }
}

/// Every document of `service`: one per `version` used by a documented route.
pub(crate) fn documents(
    model: &Model,
    pkg: &Package,
    service: &idl::Service,
) -> Result<Vec<Document>> {
    let mut by_version: BTreeMap<&str, Vec<&HttpRoute>> = BTreeMap::new();
    for r in &service.routes {
        if let (Some(v), HttpPath::Literal(_), false) = (&r.version, &r.path, r.exclude_from_docs) {
            by_version.entry(v.as_str()).or_default().push(r);
        }
    }
    let mut docs = Vec::new();
    for (version, routes) in by_version {
        let file = format!("openapi/{}.{version}.json", service.wire_name);
        let api = document(model, pkg, service, version, &routes);
        let json = api.to_pretty_json().map_err(|source| Error::OpenApi {
            file: file.clone(),
            source,
        })?;
        docs.push(Document {
            version: version.to_owned(),
            file,
            json: format!("{json}\n"),
        });
    }
    Ok(docs)
}

fn document(
    model: &Model,
    pkg: &Package,
    service: &idl::Service,
    version: &str,
    routes: &[&HttpRoute],
) -> utoipa::openapi::OpenApi {
    let cx = Cx { model, pkg };
    let mut paths = PathsBuilder::new();
    let mut used: BTreeSet<(String, String)> = BTreeSet::new();
    let mut tags = BTreeSet::new();
    let mut uses_errors = false;
    for r in routes {
        let HttpPath::Literal(path) = &r.path else {
            continue;
        };
        for f in r.path_params.iter().chain(&r.query) {
            cx.collect(&f.ty, &mut used);
        }
        for t in r.body.iter().chain(&r.response) {
            cx.collect(t, &mut used);
        }
        tags.extend(r.tags.iter().cloned());
        uses_errors |= !r.errors.is_empty();
        paths = paths.path(
            path.clone(),
            PathItem::new(http_method(r.method), cx.operation(r, path)),
        );
    }

    let mut components = ComponentsBuilder::new();
    for (package, name) in &used {
        let named = NamedType {
            package: package.clone(),
            name: name.clone(),
            kind: idl::NamedKind::Struct,
        };
        if let Some(def) = model.type_def(&named) {
            components =
                components.schema(cx.component_name(package, name), cx.type_def_schema(def));
        }
    }
    if uses_errors {
        components = components.schema(
            ERROR_SCHEMA,
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .description(Some("The body of a mapped error response."))
                .property(
                    "message",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .description(Some("What went wrong.")),
                )
                .required("message"),
        );
    }

    let description = if service.docs.is_empty() {
        format!("API documentation for {}", service.wire_name)
    } else {
        service.docs.lines().join("\n")
    };
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title(service.wire_name.clone())
                .version(version.to_owned())
                .description(Some(description)),
        )
        .paths(paths)
        .components(Some(components.build()))
        .tags((!tags.is_empty()).then(|| {
            tags.into_iter()
                .map(|t| TagBuilder::new().name(t).build())
                .collect::<Vec<_>>()
        }))
        .build()
}

fn http_method(m: Method) -> HttpMethod {
    match m {
        Method::Get => HttpMethod::Get,
        Method::Post => HttpMethod::Post,
        Method::Put => HttpMethod::Put,
        Method::Patch => HttpMethod::Patch,
        Method::Delete => HttpMethod::Delete,
        Method::Head => HttpMethod::Head,
        Method::Options => HttpMethod::Options,
    }
}

impl Cx<'_> {
    fn operation(&self, r: &HttpRoute, path: &str) -> utoipa::openapi::path::Operation {
        let description = r
            .description
            .clone()
            .or_else(|| (!r.docs.is_empty()).then(|| r.docs.lines().join("\n")));
        let mut op = OperationBuilder::new()
            .operation_id(Some(r.name.clone()))
            .summary(Some(
                r.summary
                    .clone()
                    .unwrap_or_else(|| format!("{} {path}", r.method.as_str())),
            ))
            .description(description)
            .tags((!r.tags.is_empty()).then(|| r.tags.clone()));
        for (f, place) in r
            .path_params
            .iter()
            .map(|f| (f, ParameterIn::Path))
            .chain(r.query.iter().map(|f| (f, ParameterIn::Query)))
        {
            let required = matches!(place, ParameterIn::Path) || self.required(f);
            op = op.parameter(
                ParameterBuilder::new()
                    .name(f.name.clone())
                    .parameter_in(place)
                    .required(if required {
                        Required::True
                    } else {
                        Required::False
                    })
                    .description((!f.docs.is_empty()).then(|| f.docs.lines().join("\n")))
                    .schema(Some(self.annotated(
                        &f.ty,
                        &kontiki_idl::ast::Docs::default(),
                        f.default.as_ref().map(to_json),
                    ))),
            );
        }
        if let Some(body) = &r.body {
            op = op.request_body(Some(
                RequestBodyBuilder::new()
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(self.schema(body)))
                            .build(),
                    )
                    .required(Some(Required::True))
                    .build(),
            ));
        }

        let mut responses = ResponsesBuilder::new();
        let mut ok = ResponseBuilder::new().description("Successful response");
        if let Some(t) = &r.response {
            ok = ok.content(
                "application/json",
                ContentBuilder::new().schema(Some(self.schema(t))).build(),
            );
        }
        responses = responses.response(r.status.to_string(), ok);
        if r.body.is_some() {
            responses = responses.response(
                "422",
                ResponseBuilder::new().description("Invalid request body"),
            );
        }
        let mut by_status: BTreeMap<u16, Vec<String>> = BTreeMap::new();
        for e in &r.errors {
            by_status
                .entry(e.status)
                .or_default()
                .push(format!("{} (`{}`)", e.error.message, e.error.code));
        }
        for (status, texts) in by_status {
            responses = responses.response(
                status.to_string(),
                ResponseBuilder::new()
                    .description(texts.join("; "))
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name(ERROR_SCHEMA)))
                            .build(),
                    ),
            );
        }
        op.responses(responses).build()
    }
}
