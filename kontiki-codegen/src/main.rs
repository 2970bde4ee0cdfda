//! The `kontiki-codegen` command line.
//!
//! ```text
//! kontiki-codegen check idl/compute.kontiki idl/billing.kontiki
//! ```

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
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
}

fn main() -> ExitCode {
    match Cli::parse() {
        Cli::Check { files } => check(&files),
    }
}

fn check(files: &[PathBuf]) -> ExitCode {
    let handler = if std::io::stderr().is_terminal() {
        GraphicalReportHandler::new_themed(GraphicalTheme::unicode())
    } else {
        kontiki_idl::diagnostic::plain_handler()
    };
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
        let Cli::Check { files } = cli;
        assert_eq!(files.len(), 2);
        assert!(Cli::try_parse_from(["kontiki-codegen", "check"]).is_err());
    }
}
