//! [`Files`]: generated output in memory, written only where it changed, or compared.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Error, Result};

/// Generated files by relative path (`/`-separated), in a stable order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Files {
    files: BTreeMap<String, Vec<u8>>,
}

impl Files {
    /// Adds (or replaces) a file.
    pub fn insert(&mut self, name: impl Into<String>, contents: impl Into<Vec<u8>>) {
        self.files.insert(name.into(), contents.into());
    }

    /// A file's contents.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.files.get(name).map(Vec::as_slice)
    }

    /// A file's contents as text.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|b| std::str::from_utf8(b).ok())
    }

    /// Every file, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.files.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    /// The names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }

    /// Writes every file under `dir`, leaving files whose contents are unchanged untouched (so
    /// their modification time does not trigger rebuilds). Returns how many were written.
    pub fn write(&self, dir: &Path) -> Result<usize> {
        let mut written = 0;
        for (name, contents) in &self.files {
            let path = dir.join(name);
            if std::fs::read(&path).is_ok_and(|old| old == *contents) {
                continue;
            }
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|source| Error::Io {
                    action: "cannot create",
                    path: parent.to_path_buf(),
                    source,
                })?;
            }
            std::fs::write(&path, contents).map_err(|source| Error::Io {
                action: "cannot write",
                path: path.clone(),
                source,
            })?;
            written += 1;
        }
        Ok(written)
    }

    /// The files under `dir` that are missing or differ from these, and the extra files in the
    /// directories this output writes to that kontiki-codegen wrote earlier (`.rs` files with
    /// its header, `.json` files); hand-written files such as `build.rs` are left alone.
    pub fn stale(&self, dir: &Path) -> Vec<String> {
        let mut stale = Vec::new();
        for (name, contents) in &self.files {
            match std::fs::read(dir.join(name)) {
                Ok(old) if old == *contents => {}
                Ok(_) => stale.push(format!("{name} (differs)")),
                Err(_) => stale.push(format!("{name} (missing)")),
            }
        }
        let mut dirs: Vec<&str> = self
            .files
            .keys()
            .map(|n| n.rsplit_once('/').map_or("", |(d, _)| d))
            .collect();
        dirs.sort_unstable();
        dirs.dedup();
        for sub in dirs {
            let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
                continue;
            };
            let mut extra: Vec<String> = entries
                .filter_map(|e| e.ok())
                .filter(|e| e.path().is_file() && was_generated(&e.path()))
                .filter_map(|e| e.file_name().into_string().ok())
                .map(|n| {
                    if sub.is_empty() {
                        n
                    } else {
                        format!("{sub}/{n}")
                    }
                })
                .filter(|n| !self.files.contains_key(n))
                .collect();
            extra.sort();
            stale.extend(extra.into_iter().map(|n| format!("{n} (not generated)")));
        }
        stale
    }

    /// Fails with [`Error::Stale`] when [`stale`](Self::stale) finds anything.
    pub fn check(&self, dir: &Path) -> Result<()> {
        let stale = self.stale(dir);
        if stale.is_empty() {
            Ok(())
        } else {
            Err(Error::Stale {
                dir: dir.to_path_buf(),
                stale,
            })
        }
    }
}

/// Whether a file looks like earlier output: Rust or Python with the `@generated` header, or
/// JSON.
fn was_generated(path: &Path) -> bool {
    match path.extension().and_then(|e| e.to_str()) {
        Some("json") => true,
        Some("py") => crate::python::was_generated(path),
        Some("rs") => {
            std::fs::read_to_string(path).is_ok_and(|t| t.starts_with(crate::rust::HEADER_START))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_only_changes_and_finds_stale_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = Files::default();
        files.insert("a.rs", "one");
        files.insert("openapi/x.json", "{}");
        assert_eq!(files.write(dir.path()).unwrap(), 2);
        assert_eq!(files.write(dir.path()).unwrap(), 0);
        assert!(files.stale(dir.path()).is_empty());
        std::fs::write(dir.path().join("a.rs"), "two").unwrap();
        std::fs::write(
            dir.path().join("old.rs"),
            "// @generated by kontiki-codegen from x",
        )
        .unwrap();
        std::fs::write(dir.path().join("build.rs"), "fn main() {}").unwrap();
        assert_eq!(
            files.stale(dir.path()),
            vec!["a.rs (differs)", "old.rs (not generated)"]
        );
        assert!(matches!(files.check(dir.path()), Err(Error::Stale { .. })));
    }
}
