//! OpenAPI 3.1 documents, one per service and HTTP API version, built with utoipa's model types.

use std::collections::{BTreeMap, BTreeSet};

use kontiki_idl::model::{
    self as idl, HttpMethod as Method, HttpPath, HttpRoute, Model, NamedType, Package, TypeRef,
};
use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{
    AdditionalProperties, AllOfBuilder, ArrayBuilder, KnownFormat, ObjectBuilder, OneOfBuilder,
    Ref, Schema, SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApiBuilder, PathsBuilder, RefOr, Required,
    ResponseBuilder, ResponsesBuilder,
};

use crate::error::{Error, Result};
use crate::model::{OpenApiConst, const_ident, to_json};

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

struct Cx<'a> {
    model: &'a Model,
    pkg: &'a Package,
}

impl Cx<'_> {
    /// Components are named by type name, qualified by package for imported types.
    fn component_name(&self, package: &str, name: &str) -> String {
        if package == self.pkg.name {
            name.to_owned()
        } else {
            format!("{package}.{name}")
        }
    }

    /// Adds every declared type `ty` reaches.
    fn collect(&self, ty: &TypeRef, used: &mut BTreeSet<(String, String)>) {
        match ty {
            TypeRef::Optional(t) | TypeRef::List(t) | TypeRef::Map(t) => self.collect(t, used),
            TypeRef::Named(n) => {
                if !used.insert((n.package.clone(), n.name.clone())) {
                    return;
                }
                match self.model.type_def(n) {
                    Some(idl::TypeDef::Struct(s)) => {
                        for f in &s.fields {
                            self.collect(&f.ty, used);
                        }
                    }
                    Some(idl::TypeDef::Alias(a)) => self.collect(&a.ty, used),
                    Some(idl::TypeDef::Enum(_)) | None => {}
                }
            }
            _ => {}
        }
    }

    fn schema(&self, ty: &TypeRef) -> RefOr<Schema> {
        let typed = |t: Type| ObjectBuilder::new().schema_type(t);
        let formatted = |t: Type, f: KnownFormat| {
            ObjectBuilder::new()
                .schema_type(t)
                .format(Some(SchemaFormat::KnownFormat(f)))
        };
        match ty {
            TypeRef::Bool => typed(Type::Boolean).into(),
            TypeRef::I32 => formatted(Type::Integer, KnownFormat::Int32).into(),
            TypeRef::I64 => formatted(Type::Integer, KnownFormat::Int64).into(),
            TypeRef::U32 => typed(Type::Integer)
                .format(Some(SchemaFormat::Custom("uint32".into())))
                .minimum(Some(0))
                .maximum(Some(u32::MAX))
                .into(),
            TypeRef::U64 => typed(Type::Integer)
                .format(Some(SchemaFormat::Custom("uint64".into())))
                .minimum(Some(0))
                .into(),
            TypeRef::F64 => formatted(Type::Number, KnownFormat::Double).into(),
            TypeRef::String => typed(Type::String).into(),
            TypeRef::Bytes => typed(Type::Object)
                .description(Some(
                    "Binary data in Kontiki's form: `{\"__bytes__\": true, \"data\": \"<base64>\"}`.",
                ))
                .property("__bytes__", typed(Type::Boolean).enum_values(Some([true])))
                .property(
                    "data",
                    typed(Type::String).content_encoding("base64"),
                )
                .required("__bytes__")
                .required("data")
                .into(),
            TypeRef::Datetime => formatted(Type::String, KnownFormat::DateTime).into(),
            TypeRef::Date => formatted(Type::String, KnownFormat::Date).into(),
            TypeRef::Uuid => typed(Type::String)
                .format(Some(SchemaFormat::Custom("uuid".into())))
                .into(),
            TypeRef::Json => ObjectBuilder::new().schema_type(SchemaType::AnyValue).into(),
            TypeRef::Optional(t) => OneOfBuilder::new()
                .item(self.schema(t))
                .item(typed(Type::Null))
                .into(),
            TypeRef::List(t) => ArrayBuilder::new().items(self.schema(t)).into(),
            TypeRef::Map(t) => typed(Type::Object)
                .additional_properties(Some(AdditionalProperties::RefOr(self.schema(t))))
                .into(),
            TypeRef::Named(n) => {
                RefOr::Ref(Ref::from_schema_name(self.component_name(&n.package, &n.name)))
            }
        }
    }

    /// `schema(ty)` with a description and a default value.
    fn annotated(
        &self,
        ty: &TypeRef,
        docs: &kontiki_idl::ast::Docs,
        default: Option<serde_json::Value>,
    ) -> RefOr<Schema> {
        let description = (!docs.is_empty()).then(|| docs.lines().join("\n"));
        let mut schema = self.schema(ty);
        match &mut schema {
            RefOr::T(Schema::Object(o)) => {
                if description.is_some() {
                    o.description = description;
                }
                o.default = default;
            }
            RefOr::T(Schema::Array(a)) => {
                a.description = description;
                a.default = default;
            }
            RefOr::T(Schema::OneOf(o)) => {
                o.description = description;
                o.default = default;
            }
            RefOr::Ref(r) if default.is_none() => {
                if let Some(d) = description {
                    r.description = d;
                }
            }
            _ => {
                schema = AllOfBuilder::new()
                    .item(schema)
                    .description(description)
                    .default(default)
                    .into();
            }
        }
        schema
    }

    fn required(&self, f: &idl::Field) -> bool {
        f.default.is_none() && !self.optional(&f.ty)
    }

    /// `T?` or `json`, directly or through aliases.
    fn optional(&self, ty: &TypeRef) -> bool {
        let mut ty = ty;
        for _ in 0..64 {
            match ty {
                TypeRef::Optional(_) | TypeRef::Json => return true,
                TypeRef::Named(n) => match self.model.type_def(n) {
                    Some(idl::TypeDef::Alias(a)) => ty = &a.ty,
                    _ => return false,
                },
                _ => return false,
            }
        }
        false
    }

    fn type_def_schema(&self, def: &idl::TypeDef) -> RefOr<Schema> {
        let description = (!def.docs().is_empty()).then(|| def.docs().lines().join("\n"));
        match def {
            idl::TypeDef::Struct(s) => {
                let mut o = ObjectBuilder::new()
                    .schema_type(Type::Object)
                    .title(Some(s.name.clone()))
                    .description(description);
                for f in &s.fields {
                    o = o.property(
                        f.name.clone(),
                        self.annotated(&f.ty, &f.docs, f.default.as_ref().map(to_json)),
                    );
                    if self.required(f) {
                        o = o.required(f.name.clone());
                    }
                }
                o.into()
            }
            idl::TypeDef::Enum(e) => ObjectBuilder::new()
                .schema_type(Type::String)
                .title(Some(e.name.clone()))
                .description(description)
                .enum_values(Some(e.variants.iter().map(|v| v.wire.clone())))
                .into(),
            idl::TypeDef::Alias(a) => self.annotated(&a.ty, &a.docs, None),
        }
    }

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
