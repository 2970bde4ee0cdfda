//! The `kontiki-codegen` command line.
//!
//! ```text
//! kontiki-codegen check idl/*.kontiki
//! kontiki-codegen generate idl/*.kontiki --out generated/src --lib
//! kontiki-codegen generate idl/*.kontiki --out generated/src --lib --check
//! kontiki-codegen openapi idl/http_simple.kontiki --service HttpSimple
//! ```

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use kontiki_codegen::{Error, Opts};
use miette::{GraphicalReportHandler, GraphicalTheme};

/// Generates typed Rust servers, clients and OpenAPI documents from `.kontiki` contracts.
#[derive(Debug, Parser)]
#[command(name = "kontiki-codegen", version, about)]
enum Cli {
    /// Checks contracts: exit 0 with a summary when every file is valid, exit 1 with every
    /// diagnostic otherwise.
    Check {
        /// `.kontiki` files to check, with their imports.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Generates Rust (one file per package, imports included) and OpenAPI documents
    /// (`openapi/<service>.<version>.json`) into `--out`.
    Generate {
        /// `.kontiki` files to generate, with their imports.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        opts: Opts,
        /// Writes nothing; exits 1 when the files in `--out` differ from what would be
        /// generated (missing, changed or extra `.rs`/`.json` files).
        #[arg(long)]
        check: bool,
    },
    /// Prints the OpenAPI document of one service.
    Openapi {
        /// The `.kontiki` file.
        file: PathBuf,
        /// The service (identifier or wire name).
        #[arg(long)]
        service: String,
        /// The HTTP API version; may be left out when the service has only one.
        #[arg(long)]
        version: Option<String>,
    },
}

fn main() -> ExitCode {
    match Cli::parse() {
        Cli::Check { files } => check(&files),
        Cli::Generate { files, opts, check } => report(generate(&files, &opts, check)),
        Cli::Openapi {
            file,
            service,
            version,
        } => report(openapi(&file, &service, version.as_deref())),
    }
}

fn handler() -> GraphicalReportHandler {
    if std::io::stderr().is_terminal() {
        GraphicalReportHandler::new_themed(GraphicalTheme::unicode())
    } else {
        kontiki_idl::diagnostic::plain_handler()
    }
}

fn report(result: Result<(), Error>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Error::Idl(e)) => {
            eprint!("{}", e.render_with(&handler()));
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn generate(files: &[PathBuf], opts: &Opts, check: bool) -> Result<(), Error> {
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

fn openapi(file: &PathBuf, service: &str, version: Option<&str>) -> Result<(), Error> {
    let docs = kontiki_codegen::openapi(file, service)?;
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

fn check(files: &[PathBuf]) -> ExitCode {
    let handler = handler();
    let mut errors = 0usize;
    let mut bad_files = 0usize;
    let mut counts = Counts::default();
    for file in files {
        match kontiki_idl::load(file) {
            Ok(model) => {
                if let Some(root) = model.root_package() {
                    counts.add(root);
                }
            }
            Err(e) => {
                errors += e.diagnostics().len();
                bad_files += 1;
                eprint!("{}", e.render_with(&handler));
            }
        }
    }
    if errors > 0 {
        eprintln!(
            "error: {errors} problem{} in {bad_files} of {} file{} checked",
            plural(errors),
            files.len(),
            plural(files.len())
        );
        return ExitCode::FAILURE;
    }
    println!(
        "ok: {} file{} checked: {} service{}, {} rpc{}, {} event handler{}, {} http route{}, {} task{}",
        files.len(),
        plural(files.len()),
        counts.services,
        plural(counts.services),
        counts.rpcs,
        plural(counts.rpcs),
        counts.handlers,
        plural(counts.handlers),
        counts.routes,
        plural(counts.routes),
        counts.tasks,
        plural(counts.tasks),
    );
    ExitCode::SUCCESS
}

#[derive(Default)]
struct Counts {
    services: usize,
    rpcs: usize,
    handlers: usize,
    routes: usize,
    tasks: usize,
}

impl Counts {
    fn add(&mut self, pkg: &kontiki_idl::model::Package) {
        for s in &pkg.services {
            self.services += 1;
            self.rpcs += s.rpcs.len();
            self.handlers += s.handlers.len();
            self.routes += s.routes.len();
            self.tasks += s.tasks.len();
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn check_takes_files() {
        let cli =
            Cli::try_parse_from(["kontiki-codegen", "check", "a.kontiki", "b.kontiki"]).unwrap();
        let Cli::Check { files } = cli else {
            panic!("expected check, got {cli:?}")
        };
        assert_eq!(files.len(), 2);
        assert!(Cli::try_parse_from(["kontiki-codegen", "check"]).is_err());
    }

    #[test]
    fn generate_takes_options() {
        let cli = Cli::try_parse_from([
            "kontiki-codegen",
            "generate",
            "a.kontiki",
            "--out",
            "gen",
            "--service",
            "A",
            "--client-only",
            "--check",
        ])
        .unwrap();
        let Cli::Generate { files, opts, check } = cli else {
            panic!("expected generate, got {cli:?}")
        };
        assert_eq!(files, vec![PathBuf::from("a.kontiki")]);
        assert_eq!(opts.out, Some(PathBuf::from("gen")));
        assert_eq!(opts.services, vec!["A".to_owned()]);
        assert!(opts.client_only && !opts.server_only && check);
        assert!(
            Cli::try_parse_from([
                "kontiki-codegen",
                "generate",
                "a.kontiki",
                "--client-only",
                "--server-only"
            ])
            .is_err()
        );
    }
}
