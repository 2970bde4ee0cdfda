//! `kontiki-codegen generate`.

use std::path::PathBuf;

use kontiki_codegen::{Error, Opts};

pub(crate) fn run(files: &[PathBuf], opts: &Opts, check: bool) -> Result<(), Error> {
    let Some(out) = &opts.out else {
        return Err(Error::NoOutDir);
    };
    let output = kontiki_codegen::generate(files, opts)?;
    let n = output.files.names().count();
    if check {
        output.files.check(out)?;
        println!(
            "ok: {n} generated files in {} are up to date",
            out.display()
        );
    } else {
        let written = output.files.write(out)?;
        println!(
            "ok: {n} files generated in {}, {written} changed",
            out.display()
        );
    }
    Ok(())
}
