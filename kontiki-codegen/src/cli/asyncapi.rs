//! `kontiki-codegen asyncapi`.

use std::path::PathBuf;

use kontiki_codegen::{Error, Opts};

pub(crate) fn run(files: &[PathBuf], opts: &Opts, check: bool) -> Result<(), Error> {
    let Some(out) = &opts.out else {
        return Err(Error::NoOutDir);
    };
    let output = kontiki_codegen::generate_asyncapi(files, opts)?;
    let n = output.files.names().count();
    if check {
        output.files.check(out)?;
        println!(
            "ok: {n} AsyncAPI document{} in {} up to date",
            super::plural(n),
            out.display()
        );
    } else {
        let written = output.files.write(out)?;
        println!(
            "ok: {n} AsyncAPI document{} generated in {}, {written} changed",
            super::plural(n),
            out.display()
        );
    }
    Ok(())
}
