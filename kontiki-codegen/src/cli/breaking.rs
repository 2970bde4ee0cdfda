//! `kontiki-codegen breaking`: the changes between an older version of the contracts (a git
//! ref, a directory or a file) and the files given, that break callers or Rust users.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use kontiki_idl::breaking::{self, Level, Side};
use kontiki_idl::{Model, Severity, SourceMap};

use super::{Format, handler, plural, print_json};

/// Which changes fail the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub(crate) enum FailLevel {
    /// Wire and source changes fail (source-only changes are errors too).
    #[default]
    Source,
    /// Only wire changes fail; source-only changes are printed as warnings.
    Wire,
}

/// Where the old version comes from.
enum Against {
    Dir(PathBuf),
    File(PathBuf),
    Git(String),
}

/// Compares `files` with their old versions; exit 1 on breaking changes, 2 when a version
/// cannot be read or does not check.
pub(crate) fn run(
    files: &[PathBuf],
    against: &str,
    include: &[PathBuf],
    fail: FailLevel,
    format: Format,
) -> ExitCode {
    let fail = match fail {
        FailLevel::Source => Level::Source,
        FailLevel::Wire => Level::Wire,
    };
    let path = Path::new(against);
    let against = if path.is_dir() {
        Against::Dir(path.to_path_buf())
    } else if path.is_file() {
        if files.len() != 1 {
            eprintln!(
                "error: `--against {}` is a file, so give exactly one file to compare with it (or a directory or git ref)",
                path.display()
            );
            return ExitCode::from(2);
        }
        Against::File(path.to_path_buf())
    } else {
        Against::Git(against.to_owned())
    };
    let mut json = Vec::new();
    let mut seen = HashSet::new();
    let (mut wire, mut source, mut broken_files) = (0usize, 0usize, 0usize);
    let mut failed = false;
    let mut errors_at_fail = 0usize;
    for file in files {
        // The two versions load at once (each is a parse and a check).
        let (old, new) = std::thread::scope(|s| {
            let old = s.spawn(|| old_version(file, &against, include));
            let new = kontiki_idl::load_with_sources(file, include);
            let old = old.join().unwrap_or_else(|_| {
                Err(Failure::Message(
                    "the old version could not be loaded".to_owned(),
                ))
            });
            (old, new)
        });
        let old = match old {
            Ok(Some(old)) => old,
            Ok(None) => {
                if format == Format::Human {
                    eprintln!(
                        "note: {} has no old version to compare with (a new file)",
                        file.display()
                    );
                }
                continue;
            }
            Err(Failure::Message(message)) => {
                failed = true;
                eprintln!("error: {message}");
                continue;
            }
            Err(Failure::Invalid(what, e)) => {
                failed = true;
                invalid(&what, &e, format, &mut json);
                continue;
            }
        };
        let (new_model, new_sources) = match new {
            Ok(m) => m,
            Err(e) => {
                failed = true;
                invalid(&file.display().to_string(), &e, format, &mut json);
                continue;
            }
        };
        let changes = breaking::compare(
            Side {
                model: &old.model,
                sources: &old.sources,
            },
            Side {
                model: &new_model,
                sources: &new_sources,
            },
        );
        let report = breaking::report(&changes, &old.sources, &new_sources, fail);
        // A change in an imported file shows up once, whichever file imported it.
        let kept: Vec<_> = report
            .diagnostics()
            .iter()
            .zip(report.to_json())
            .filter(|(_, j)| seen.insert((j.file.clone(), j.line, j.col, j.message.clone())))
            .map(|(d, _)| d.clone())
            .collect();
        if kept.is_empty() {
            continue;
        }
        broken_files += 1;
        for d in &kept {
            match d.code {
                kontiki_idl::Code::BreakingWire => wire += 1,
                _ => source += 1,
            }
            if d.severity == Severity::Error {
                errors_at_fail += 1;
            }
        }
        let report = kontiki_idl::Error::new(kept, report.sources().clone());
        match format {
            Format::Json => json.extend(report.to_json()),
            Format::Human => eprint!("{}", report.render_with(&handler())),
        }
    }
    if format == Format::Json {
        print_json(&json);
    } else if wire + source > 0 {
        eprintln!(
            "{}: {} breaking change{} ({wire} wire, {source} source only) in {broken_files} of {} file{}",
            if errors_at_fail > 0 {
                "error"
            } else {
                "warning"
            },
            wire + source,
            plural(wire + source),
            files.len(),
            plural(files.len()),
        );
    } else if !failed {
        println!(
            "ok: no breaking change in {} file{}",
            files.len(),
            plural(files.len())
        );
    }
    if failed {
        ExitCode::from(2)
    } else if errors_at_fail > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Reports a version that does not check: its diagnostics, in the JSON array or rendered.
fn invalid(
    what: &str,
    e: &kontiki_idl::Error,
    format: Format,
    json: &mut Vec<kontiki_idl::JsonDiagnostic>,
) {
    match format {
        Format::Json => json.extend(e.to_json()),
        Format::Human => {
            eprintln!("error: {what} does not check:");
            eprint!("{}", e.render_with(&handler()));
        }
    }
}

struct Old {
    model: Model,
    sources: SourceMap,
}

/// The checked old version of `file`, `None` if it did not exist.
fn old_version(
    file: &Path,
    against: &Against,
    include: &[PathBuf],
) -> Result<Option<Old>, Failure> {
    match against {
        Against::File(old) => load(old, include, None).map(Some),
        Against::Dir(dir) => {
            let by_path = dir.join(file);
            let old = if file.is_relative() && by_path.is_file() {
                by_path
            } else {
                match file.file_name() {
                    Some(name) => dir.join(name),
                    None => return Err(format!("`{}` is not a file", file.display()).into()),
                }
            };
            if !old.is_file() {
                return Ok(None);
            }
            load(&old, include, None).map(Some)
        }
        Against::Git(rev) => from_git(file, rev, include),
    }
}

/// Why a version cannot be compared.
enum Failure {
    /// It cannot be read (printed as one line).
    Message(String),
    /// It does not check: its diagnostics.
    Invalid(String, kontiki_idl::Error),
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure::Message(message)
    }
}

fn load(path: &Path, include: &[PathBuf], rename: Option<(&Path, &str)>) -> Result<Old, Failure> {
    let rename_map = |sources: &SourceMap| match rename {
        Some((from, to)) => renamed(sources, from, to),
        None => sources.clone(),
    };
    match kontiki_idl::load_with_sources(path, include) {
        Ok((model, sources)) => Ok(Old {
            model,
            sources: rename_map(&sources),
        }),
        Err(e) => {
            let sources = rename_map(e.sources());
            let name = sources
                .get(kontiki_idl::FileId(0))
                .map_or_else(|| path.display().to_string(), |f| f.name.clone());
            Err(Failure::Invalid(
                format!("the old version {name}"),
                kontiki_idl::Error::new(e.diagnostics().to_vec(), sources),
            ))
        }
    }
}

/// The same files, named `to` + the rest of their name instead of `from` + the rest.
fn renamed(sources: &SourceMap, from: &Path, to: &str) -> SourceMap {
    let mut out = SourceMap::new();
    let from = from.display().to_string();
    for (_, f) in sources.files() {
        let name = match f.name.strip_prefix(&from) {
            Some(rest) => format!("{to}{}", rest.trim_start_matches('/')),
            None => f.name.clone(),
        };
        out.add(name, &f.path, f.text.clone());
    }
    out
}

fn git(dir: &Path, args: &[&str]) -> Result<Option<Vec<u8>>, String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    Ok(out.status.success().then_some(out.stdout))
}

/// Writes `file` and the files it imports as they are at `rev` into a temporary directory
/// (same layout, relative to the repository), then loads them from there.
fn from_git(file: &Path, rev: &str, include: &[PathBuf]) -> Result<Option<Old>, Failure> {
    let abs = std::fs::canonicalize(file)
        .map_err(|e| format!("cannot read `{}`: {e}", file.display()))?;
    let dir = abs.parent().unwrap_or(Path::new("/"));
    let top = git(dir, &["rev-parse", "--show-toplevel"])?
        .ok_or_else(|| {
            format!(
                "`--against {rev}` is neither a directory, a file nor (`{}` not being in a git repository) a git ref",
                file.display()
            )
        })?;
    let top = PathBuf::from(String::from_utf8_lossy(&top).trim().to_owned());
    let top = std::fs::canonicalize(&top).unwrap_or(top);
    let commit = format!("{rev}^{{commit}}");
    if git(&top, &["rev-parse", "--verify", "--quiet", &commit])?.is_none() {
        return Err(format!(
            "`--against {rev}` is neither a directory, a file nor a git ref of {}",
            top.display()
        )
        .into());
    }
    let rel = |p: &Path| -> Option<PathBuf> {
        let p = std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        p.strip_prefix(&top).ok().map(Path::to_path_buf)
    };
    // The path as given (symbolic links kept), relative to the repository.
    let given = normalize(
        &std::env::current_dir()
            .map(|d| d.join(file))
            .unwrap_or_else(|_| file.to_path_buf()),
    );
    let root_rel = given
        .strip_prefix(&top)
        .ok()
        .map(Path::to_path_buf)
        .or_else(|| rel(&abs));
    let Some(root_rel) = root_rel else {
        return Err(format!("`{}` is outside the repository", file.display()).into());
    };
    let tmp = std::env::temp_dir().join(format!(
        "kontiki-breaking-{}-{}",
        std::process::id(),
        unique()
    ));
    let include_rel: Vec<PathBuf> = include.iter().filter_map(|d| rel(d)).collect();
    let result = (|| {
        // The text of `path` at `rev`, following symbolic links (idl/ links into examples/).
        let show = |path: &Path| -> Result<Option<String>, String> {
            let mut path = path.to_path_buf();
            for _ in 0..16 {
                let listed = git(&top, &["ls-tree", rev, "--", &path.display().to_string()])?;
                let Some(listed) = listed.filter(|l| !l.is_empty()) else {
                    return Ok(None);
                };
                let spec = format!("{rev}:{}", path.display());
                let Some(bytes) = git(&top, &["show", &spec])? else {
                    return Ok(None);
                };
                let text = String::from_utf8_lossy(&bytes).into_owned();
                if !listed.starts_with(b"120000 ") {
                    return Ok(Some(text));
                }
                let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
                path = normalize(&base.join(text.trim_end_matches('\n')));
            }
            Err(format!(
                "`{}` at {rev}: too many symbolic links",
                path.display()
            ))
        };
        let Some(text) = show(&root_rel)? else {
            return Ok(None);
        };
        let mut todo = vec![(root_rel.clone(), text)];
        let mut done = HashSet::new();
        while let Some((path, text)) = todo.pop() {
            if !done.insert(path.clone()) {
                continue;
            }
            let target = tmp.join(&path);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("cannot create `{}`: {e}", parent.display()))?;
            }
            std::fs::write(&target, &text)
                .map_err(|e| format!("cannot write `{}`: {e}", target.display()))?;
            let Ok(ast) = kontiki_idl::parse_str(&path.display().to_string(), &text) else {
                continue; // the load below reports it
            };
            let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
            for imp in &ast.imports {
                let candidates = std::iter::once(&base)
                    .chain(&include_rel)
                    .map(|d| normalize(&d.join(&imp.path.value)));
                for c in candidates {
                    if let Some(t) = show(&c)? {
                        todo.push((c, t));
                        break;
                    }
                }
            }
        }
        let includes: Vec<PathBuf> = include_rel.iter().map(|d| tmp.join(d)).collect();
        let prefix = format!("{rev}:");
        load(&tmp.join(&root_rel), &includes, Some((&tmp, &prefix))).map(Some)
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}
