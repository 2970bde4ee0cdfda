//! Reading a root file and its imports: missing files, import cycles, then the checker.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use crate::ast;
use crate::check::{self, Unit};
use crate::diagnostic::{self, Code, Diagnostic, did_you_mean};
use crate::error::Error;
use crate::model::Model;
use crate::parser;
use crate::span::SourceMap;

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    InProgress,
    /// Loaded; `Some(index)` if it and all its imports parsed.
    Done(Option<usize>),
}

struct Loaded {
    name: String,
    ast: ast::File,
    imports: Vec<usize>,
}

#[derive(Default)]
struct Loader {
    sources: SourceMap,
    diags: Vec<Diagnostic>,
    files: Vec<Loaded>,
    state: HashMap<PathBuf, State>,
    stack: Vec<(PathBuf, String)>,
    /// Directories searched for an import that is not found next to the importing file.
    include: Vec<PathBuf>,
}

/// Loads `path` and everything it imports, then checks it all.
pub(crate) fn load_path(path: &Path, include: &[PathBuf]) -> Result<Model, Error> {
    load_path_with_sources(path, include).map(|(m, _)| m)
}

/// Like [`load_path`], with the files read.
pub(crate) fn load_path_with_sources(
    path: &Path,
    include: &[PathBuf],
) -> Result<(Model, SourceMap), Error> {
    let mut loader = Loader {
        include: include.to_vec(),
        ..Loader::default()
    };
    let name = normalize(path).display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let key = canonical(path);
            loader.visit(name, path.to_path_buf(), key, text);
        }
        Err(e) => loader.diags.push(
            Diagnostic::global(Code::Io, format!("cannot read `{name}`: {e}"))
                .with_label(e.to_string()),
        ),
    }
    loader.finish()
}

/// Loads text named `name`; its imports are read relative to `name`'s directory.
pub(crate) fn load_text(name: &str, text: &str, include: &[PathBuf]) -> Result<Model, Error> {
    load_text_with_sources(name, text, include).map(|(m, _)| m)
}

/// Like [`load_text`], with the files read.
pub(crate) fn load_text_with_sources(
    name: &str,
    text: &str,
    include: &[PathBuf],
) -> Result<(Model, SourceMap), Error> {
    let mut loader = Loader {
        include: include.to_vec(),
        ..Loader::default()
    };
    let path = PathBuf::from(name);
    let key = canonical(&path);
    loader.visit(name.to_string(), path, key, text.to_string());
    loader.finish()
}

/// Parses text without checking it.
pub(crate) fn parse_text(name: &str, text: &str) -> Result<ast::File, Error> {
    let mut sources = SourceMap::new();
    let id = sources.add(name, name, text.to_string());
    parser::parse(id, text).map_err(|d| Error::new(vec![d], sources))
}

fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| normalize(path))
}

/// Removes `.` and `a/..` without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out: Vec<Component<'_>> = Vec::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.last(), Some(Component::Normal(_))) => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out.iter().collect()
}

impl Loader {
    fn visit(&mut self, name: String, path: PathBuf, key: PathBuf, text: String) -> Option<usize> {
        let id = self.sources.add(name.clone(), &path, text);
        let text = self
            .sources
            .get(id)
            .map(|f| f.text.clone())
            .unwrap_or_default();
        let file = match parser::parse(id, &text) {
            Ok(f) => f,
            Err(d) => {
                self.diags.push(d);
                self.state.insert(key, State::Done(None));
                return None;
            }
        };
        self.state.insert(key.clone(), State::InProgress);
        self.stack.push((key.clone(), name.clone()));
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let name_dir = Path::new(&name)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let mut imports = Vec::new();
        let mut ok = true;
        for imp in &file.imports {
            let rel = Path::new(&imp.path.value);
            let mut target = dir.join(rel);
            let mut target_name = normalize(&name_dir.join(rel)).display().to_string();
            if !target.exists()
                && let Some(inc) = self.include.iter().find(|inc| inc.join(rel).is_file())
            {
                target = inc.join(rel);
                target_name = normalize(&target).display().to_string();
            }
            let Ok(target_key) = std::fs::canonicalize(&target) else {
                self.missing_import(imp, &target, &target_name);
                ok = false;
                continue;
            };
            match self.state.get(&target_key).copied() {
                Some(State::InProgress) => {
                    let start = self
                        .stack
                        .iter()
                        .position(|(k, _)| *k == target_key)
                        .unwrap_or(0);
                    let mut chain: Vec<String> = self.stack[start..]
                        .iter()
                        .map(|(_, n)| format!("`{n}`"))
                        .collect();
                    chain.push(format!("`{target_name}`"));
                    self.diags.push(
                        Diagnostic::new(
                            Code::ImportCycle,
                            imp.span,
                            format!("import cycle: {}", chain.join(" → ")),
                        )
                        .with_label("this import closes the cycle")
                        .with_help("move the shared declarations into a file that both import"),
                    );
                    ok = false;
                }
                Some(State::Done(Some(i))) => imports.push(i),
                Some(State::Done(None)) => ok = false,
                None => match std::fs::read_to_string(&target) {
                    Ok(t) => match self.visit(target_name, target.clone(), target_key, t) {
                        Some(i) => imports.push(i),
                        None => ok = false,
                    },
                    Err(e) => {
                        self.diags.push(
                            Diagnostic::new(
                                Code::Io,
                                imp.path.span,
                                format!("cannot read `{target_name}`: {e}"),
                            )
                            .with_label("imported here"),
                        );
                        ok = false;
                    }
                },
            }
        }
        self.stack.pop();
        let result = ok.then(|| {
            self.files.push(Loaded {
                name,
                ast: file,
                imports,
            });
            self.files.len() - 1
        });
        self.state.insert(key, State::Done(result));
        result
    }

    fn missing_import(&mut self, imp: &ast::Import, target: &Path, target_name: &str) {
        let mut candidates = Vec::new();
        if let Some(dir) = target.parent()
            && let Ok(entries) = std::fs::read_dir(dir)
        {
            for e in entries.flatten() {
                let n = e.file_name().to_string_lossy().to_string();
                if n.ends_with(".kontiki") {
                    candidates.push(n);
                }
            }
        }
        candidates.sort();
        let file_name = target
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let help = did_you_mean(&file_name, candidates.iter().map(String::as_str))
            .unwrap_or_else(|| {
                "import paths are relative to the importing file, then to each include directory (`-I DIR`)"
                    .to_string()
            });
        self.diags.push(
            Diagnostic::new(
                Code::MissingImport,
                imp.path.span,
                format!("cannot find imported file `{target_name}`"),
            )
            .with_label("no such file")
            .with_help(help),
        );
    }

    fn finish(mut self) -> Result<(Model, SourceMap), Error> {
        let units: Vec<Unit<'_>> = self
            .files
            .iter()
            .map(|f| Unit {
                name: f.name.clone(),
                ast: &f.ast,
                imports: f.imports.clone(),
                sources: &self.sources,
            })
            .collect();
        let model = check::check(&units, &mut self.diags);
        diagnostic::sort(&mut self.diags);
        if self.diags.is_empty() {
            Ok((model, self.sources))
        } else {
            Err(Error::new(self.diags, self.sources))
        }
    }
}
