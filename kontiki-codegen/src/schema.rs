//! JSON Schemas of IDL types, shared by the OpenAPI and AsyncAPI documents: one component per
//! declared type (named `Type`, or `pkg.Type` for an imported one) and inline schemas for the
//! built-in types, built with utoipa's model types.

use std::collections::BTreeSet;

use kontiki_idl::model::{self as idl, Model, Package, TypeRef};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{
    AdditionalProperties, AllOfBuilder, ArrayBuilder, KnownFormat, ObjectBuilder, OneOfBuilder,
    Ref, Schema, SchemaFormat, SchemaType, Type,
};

use crate::model::to_json;

/// Builds schemas for the types of one package (`pkg`) of a loaded model.
pub(crate) struct Cx<'a> {
    /// Every package of the load, to resolve named types.
    pub(crate) model: &'a Model,
    /// The package whose types are named without a package prefix.
    pub(crate) pkg: &'a Package,
}

impl Cx<'_> {
    /// Components are named by type name, qualified by package for imported types.
    pub(crate) fn component_name(&self, package: &str, name: &str) -> String {
        if package == self.pkg.name {
            name.to_owned()
        } else {
            format!("{package}.{name}")
        }
    }

    /// Adds every declared type `ty` reaches.
    pub(crate) fn collect(&self, ty: &TypeRef, used: &mut BTreeSet<(String, String)>) {
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

    pub(crate) fn schema(&self, ty: &TypeRef) -> RefOr<Schema> {
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
    pub(crate) fn annotated(
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

    pub(crate) fn required(&self, f: &idl::Field) -> bool {
        f.default.is_none() && !self.optional(&f.ty)
    }

    /// `T?` or `json`, directly or through aliases.
    pub(crate) fn optional(&self, ty: &TypeRef) -> bool {
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

    pub(crate) fn type_def_schema(&self, def: &idl::TypeDef) -> RefOr<Schema> {
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
}
