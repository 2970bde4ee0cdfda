//! `kontiki-codegen openapi`.

use std::path::PathBuf;

use kontiki_codegen::Error;

pub(crate) fn run(
    file: &PathBuf,
    service: &str,
    version: Option<&str>,
    include: &[PathBuf],
) -> Result<(), Error> {
    let docs = kontiki_codegen::openapi_with_includes(file, service, include)?;
    let versions: Vec<&str> = docs.keys().map(String::as_str).collect();
    let chosen = match version {
        Some(v) => docs.get(v),
        None if docs.len() == 1 => docs.values().next(),
        None => None,
    };
    match chosen {
        Some(json) => {
            print!("{json}");
            Ok(())
        }
        None => Err(Error::UnknownVersion {
            service: service.to_owned(),
            asked: version.map(str::to_owned),
            versions: versions.iter().map(|v| (*v).to_owned()).collect(),
        }),
    }
}
