#![doc = include_str!("../README.md")]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod asyncapi;
mod error;
mod files;
mod model;
mod openapi;
mod opts;
mod python;
mod render;
mod rust;
mod schema;

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use kontiki_idl::model::{Model, Package};

pub use error::{Error, Result};
pub use files::Files;
pub use opts::Opts;

/// Generates Rust (and OpenAPI documents) for `files` and their imports into `OUT_DIR`, and
/// tells cargo to rerun the build script when any of them changes.
///
/// ```no_run
/// // build.rs
/// fn main() -> Result<(), kontiki_codegen::Error> {
///     kontiki_codegen::compile(&["idl/compute.kontiki"])
/// }
/// ```
pub fn compile(files: &[impl AsRef<Path>]) -> Result<()> {
    configure().compile(files)
}

/// A [`Builder`] with default options: every service, server and client, into `OUT_DIR`.
pub fn configure() -> Builder {
    Builder {
        opts: Opts::default(),
        rerun_if_changed: true,
    }
}

/// Options for [`compile`], set with chained calls.
///
/// ```no_run
/// kontiki_codegen::configure()
///     .client_only()
///     .service("ComputeApi")
///     .compile(&["idl/compute.kontiki"])
///     .unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    opts: Opts,
    rerun_if_changed: bool,
}

impl Builder {
    /// Also looks for imports in `dir` (after the importing file's own directory, then in the
    /// order added), so several repositories can share contracts.
    pub fn include(mut self, dir: impl Into<PathBuf>) -> Self {
        self.opts.include_dirs.push(dir.into());
        self
    }

    /// Sets every import search directory at once (see [`Builder::include`]).
    pub fn include_dirs(mut self, dirs: impl IntoIterator<Item = impl Into<PathBuf>>) -> Self {
        self.opts.include_dirs = dirs.into_iter().map(Into::into).collect();
        self
    }

    /// Writes into `dir` instead of `OUT_DIR`.
    pub fn out_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.opts.out = Some(dir.into());
        self
    }

    /// Generates this service (identifier or wire name); call again for more. All by default.
    pub fn service(mut self, name: impl Into<String>) -> Self {
        self.opts.services.push(name.into());
        self
    }

    /// Generates the calling side only (types, clients, session handles, constants).
    pub fn client_only(mut self) -> Self {
        self.opts.client_only = true;
        self.opts.server_only = false;
        self
    }

    /// Generates the serving side only (types, traits, server adapters, publishers, constants).
    pub fn server_only(mut self) -> Self {
        self.opts.server_only = true;
        self.opts.client_only = false;
        self
    }

    /// Also writes `lib.rs` with one module per package.
    pub fn lib(mut self, yes: bool) -> Self {
        self.opts.lib = yes;
        self
    }

    /// Whether to print `cargo:rerun-if-changed` lines (default: yes).
    pub fn emit_rerun_if_changed(mut self, yes: bool) -> Self {
        self.rerun_if_changed = yes;
        self
    }

    /// The options as set so far.
    pub fn opts(&self) -> &Opts {
        &self.opts
    }

    /// Generates and writes the files.
    pub fn compile(self, files: &[impl AsRef<Path>]) -> Result<()> {
        let out = match &self.opts.out {
            Some(dir) => dir.clone(),
            None => std::env::var_os("OUT_DIR")
                .map(PathBuf::from)
                .ok_or(Error::NoOutDir)?,
        };
        let generated = generate(files, &self.opts);
        if self.rerun_if_changed {
            for f in files {
                println!("cargo:rerun-if-changed={}", f.as_ref().display());
            }
        }
        let generated = generated?;
        if self.rerun_if_changed {
            for input in &generated.inputs {
                println!("cargo:rerun-if-changed={}", input.display());
            }
        }
        generated.files.write(&out)?;
        Ok(())
    }
}

/// What [`generate`] produced.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Output {
    /// The files, by path relative to the output directory: `<package>.rs`,
    /// `openapi/<service wire name>.<version>.json`, and `lib.rs` when asked for ([`generate`]);
    /// `asyncapi/<service wire name>.<version>.json` ([`generate_asyncapi`]).
    pub files: Files,
    /// Every `.kontiki` file read (the inputs and their imports).
    pub inputs: Vec<PathBuf>,
}

/// Generates the files for `files` and everything they import, in memory.
pub fn generate(files: &[impl AsRef<Path>], opts: &Opts) -> Result<Output> {
    let (models, sources) = load(files, opts)?;
    let (packages, inputs) = packages(&models)?;

    let env = render::environment()?;
    let mut out = Files::default();
    let mut lib_packages = Vec::new();
    for (name, (model, pkg)) in &packages {
        let source = display_path(&pkg.file);
        let mut docs_by_service = Vec::new();
        for service in pkg.services.iter().filter(|s| opts.wants_service(s)) {
            for doc in openapi::documents(model, pkg, service)? {
                out.insert(doc.file.clone(), doc.json.clone());
                docs_by_service.push((service.name.clone(), doc));
            }
        }
        let consts = |s: &kontiki_idl::model::Service| -> Vec<model::OpenApiConst> {
            docs_by_service
                .iter()
                .filter(|(n, _)| *n == s.name)
                .map(|(_, d)| d.as_const())
                .collect()
        };
        let view = model::file_view(model, pkg, source.clone(), opts, &consts);
        let file = format!("{name}.rs");
        let text = rust::package(&env, &view)?;
        out.insert(file, text);
        let docs = if pkg.docs.is_empty() {
            vec![format!("Generated from `{source}`.")]
        } else {
            model::docs(&pkg.docs)
        };
        lib_packages.push(minijinja::context! { name => name, docs => docs });
    }
    if opts.lib {
        out.insert(
            "lib.rs",
            rust::lib(&env, minijinja::Value::from(lib_packages), &sources)?,
        );
    }
    Ok(Output { files: out, inputs })
}

/// Generates the typed Python package for `files` and everything they import, in memory: one
/// module per package (`<package>.py`), `__init__.py`, `_kontiki.py` (the runtime helpers the
/// modules share) and `py.typed`, for Python Kontiki 2.3.2 and pydantic v2.
///
/// `opts.services` selects services as for Rust; `client_only`, `server_only` and `lib` do not
/// apply (a Python module always has both sides).
pub fn generate_python(files: &[impl AsRef<Path>], opts: &Opts) -> Result<Output> {
    let (models, sources) = load(files, opts)?;
    let (packages, inputs) = packages(&models)?;
    let env = render::environment()?;
    let files = python::generate(&env, &packages, opts, &sources)?;
    Ok(Output { files, inputs })
}

/// Packages by name, with the model they were loaded in.
type PackageMap<'m> = BTreeMap<String, (&'m Model, &'m Package)>;

/// Loads `files` with their imports, and the sorted display paths of `files` (for headers).
fn load(files: &[impl AsRef<Path>], opts: &Opts) -> Result<(Vec<Model>, Vec<String>)> {
    let mut models = Vec::new();
    for f in files {
        models.push(kontiki_idl::load_with_includes(
            f.as_ref(),
            &opts.include_dirs,
        )?);
    }
    let mut sources: Vec<String> = files
        .iter()
        .map(|f| display_path(&f.as_ref().display().to_string()))
        .collect();
    sources.sort();
    sources.dedup();
    Ok((models, sources))
}

/// The packages of `models` by name (a package imported by several files once), and every
/// file read; two different files declaring one package are an error.
fn packages(models: &[Model]) -> Result<(PackageMap<'_>, Vec<PathBuf>)> {
    let mut packages: PackageMap<'_> = BTreeMap::new();
    let mut inputs = Vec::new();
    for model in models {
        for pkg in &model.packages {
            let path = PathBuf::from(&pkg.file);
            if !inputs.contains(&path) {
                inputs.push(path);
            }
            match packages.get(&pkg.name) {
                Some((_, seen)) if seen.file != pkg.file => {
                    return Err(Error::PackageConflict(pkg.name.clone()));
                }
                Some(_) => {}
                None => {
                    packages.insert(pkg.name.clone(), (model, pkg));
                }
            }
        }
    }
    Ok((packages, inputs))
}

/// Generates the AsyncAPI 3.0 documents of the services of `files` and everything they import
/// (`asyncapi/<service wire name>.<version>.json`, the version `1.0.0` when the service declares
/// none), in memory. Of `opts`, only the service selection and the import directories apply.
pub fn generate_asyncapi(files: &[impl AsRef<Path>], opts: &Opts) -> Result<Output> {
    let (models, _) = load(files, opts)?;
    let (packages, inputs) = packages(&models)?;
    let mut out = Files::default();
    for (model, pkg) in packages.values() {
        for service in pkg.services.iter().filter(|s| opts.wants_service(s)) {
            let doc = asyncapi::document(model, pkg, service)?;
            out.insert(doc.file, doc.json);
        }
    }
    Ok(Output { files: out, inputs })
}

/// The OpenAPI documents of one service of `file` (identifier or wire name), by HTTP API
/// version; empty when the service has no versioned, documented route.
pub fn openapi(file: impl AsRef<Path>, service: &str) -> Result<BTreeMap<String, String>> {
    openapi_with_includes(file, service, &[])
}

/// Like [`openapi`], with import search directories (see [`Builder::include`]).
pub fn openapi_with_includes(
    file: impl AsRef<Path>,
    service: &str,
    include_dirs: &[PathBuf],
) -> Result<BTreeMap<String, String>> {
    let model = kontiki_idl::load_with_includes(file.as_ref(), include_dirs)?;
    let root = model.root_package().ok_or_else(|| Error::UnknownService {
        name: service.to_owned(),
        known: Vec::new(),
    })?;
    let Some(svc) = root
        .services
        .iter()
        .find(|s| s.name == service || s.wire_name == service)
    else {
        return Err(Error::UnknownService {
            name: service.to_owned(),
            known: root.services.iter().map(|s| s.name.clone()).collect(),
        });
    };
    Ok(openapi::documents(&model, root, svc)?
        .into_iter()
        .map(|d| (d.version, d.json))
        .collect())
}

/// A source path for headers: relative paths without leading `./` and `../`, absolute paths as
/// their file name, so output does not depend on where the repository lives.
fn display_path(file: &str) -> String {
    let path = Path::new(file);
    if path.is_absolute() {
        return path
            .file_name()
            .map_or_else(|| file.to_owned(), |n| n.to_string_lossy().into_owned());
    }
    path.components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_paths_do_not_depend_on_the_checkout() {
        assert_eq!(display_path("../idl/a.kontiki"), "idl/a.kontiki");
        assert_eq!(display_path("./idl/a.kontiki"), "idl/a.kontiki");
        assert_eq!(display_path("/x/y/a.kontiki"), "a.kontiki");
    }

    #[test]
    fn builder_include_finds_shared_contracts() {
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("shared");
        let app = dir.path().join("app");
        std::fs::create_dir_all(&shared).unwrap();
        std::fs::create_dir_all(&app).unwrap();
        std::fs::write(
            shared.join("common.kontiki"),
            "package common;\n/// An id.\ntype Id = uuid;\n",
        )
        .unwrap();
        let orders = app.join("orders.kontiki");
        std::fs::write(
            &orders,
            "package orders;\nimport \"common.kontiki\";\nservice Orders {\n    rpc get(id: common.Id) -> string;\n}\n",
        )
        .unwrap();
        let out = dir.path().join("out");
        let without = configure()
            .out_dir(&out)
            .emit_rerun_if_changed(false)
            .compile(&[&orders]);
        assert!(
            matches!(&without, Err(Error::Idl(e)) if e.diagnostics()[0].code == kontiki_idl::Code::MissingImport),
            "{without:?}"
        );
        let builder = configure()
            .out_dir(&out)
            .emit_rerun_if_changed(false)
            .include(&shared);
        assert_eq!(builder.opts().include_dirs, vec![shared.clone()]);
        builder.compile(&[&orders]).unwrap();
        assert!(out.join("common.rs").is_file() && out.join("orders.rs").is_file());
    }
}
