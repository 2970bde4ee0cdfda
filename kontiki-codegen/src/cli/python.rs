//! `kontiki-codegen python`.

use std::path::{Path, PathBuf};

use kontiki_codegen::{Error, Opts};

pub(crate) fn run(
    files: &[PathBuf],
    out: &Path,
    services: Vec<String>,
    include: &[PathBuf],
    check: bool,
) -> Result<(), Error> {
    let mut opts = Opts::default();
    opts.services = services;
    opts.include_dirs = include.to_vec();
    let output = kontiki_codegen::generate_python(files, &opts)?;
    let n = output.files.names().count();
    if check {
        output.files.check(out)?;
        println!(
            "ok: {n} generated Python files in {} are up to date",
            out.display()
        );
    } else {
        let written = output.files.write(out)?;
        println!(
            "ok: {n} Python files generated in {}, {written} changed",
            out.display()
        );
    }
    Ok(())
}
