//! The `kontiki-codegen` command line: a thin clap layer over one module per subcommand
//! (`cli/`).
//!
//! ```text
//! kontiki-codegen check idl/*.kontiki
//! kontiki-codegen generate idl/*.kontiki --out generated/src --lib
//! kontiki-codegen generate idl/*.kontiki --out generated/src --lib --check
//! kontiki-codegen openapi idl/http_simple.kontiki --service HttpSimple
//! kontiki-codegen asyncapi idl/*.kontiki --out generated
//! kontiki-codegen python idl/*.kontiki --out generated/python/kontiki_generated
//! kontiki-codegen fmt --check idl/*.kontiki
//! kontiki-codegen lint idl/*.kontiki --format json
//! kontiki-codegen breaking --against main idl/*.kontiki
//! kontiki-codegen -I ../shared-contracts lsp
//! kontiki-codegen -I ../shared-contracts check orders.kontiki
//! ```

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use cli::Format;
use kontiki_codegen::{Error, Opts};

/// Generates typed Rust servers, clients, OpenAPI and AsyncAPI documents from `.kontiki`
/// contracts, and formats and lints them.
#[derive(Debug, Parser)]
#[command(name = "kontiki-codegen", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Also look for imports in DIR (after the importing file's directory; repeat the flag,
    /// searched in order; give every `-I` on the same side of the subcommand).
    #[arg(short = 'I', long = "include", value_name = "DIR", global = true)]
    include: Vec<PathBuf>,
    /// How diagnostics are printed: `human` (stderr) or `json` (an array on stdout).
    #[arg(long, value_enum, default_value_t = Format::Human, global = true)]
    format: Format,
}

#[derive(Debug, Subcommand)]
enum Command {
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
    /// Generates a typed Python package for Python Kontiki 2.3.2 into `--out` (the package
    /// directory): one module per package (pydantic models, error classes, clients,
    /// publishers, service base classes), `_kontiki.py`, `__init__.py` and `py.typed`.
    Python {
        /// `.kontiki` files to generate, with their imports.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The package directory to write (`generated/python/kontiki_generated`).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Generate only these services (identifier or wire name; repeat the flag); all by
        /// default.
        #[arg(long = "service", value_name = "NAME")]
        services: Vec<String>,
        /// Writes nothing; exits 1 when the files in `--out` differ from what would be
        /// generated (missing, changed or extra generated `.py` files).
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
    /// Writes the AsyncAPI 3.0 document of each service (`asyncapi/<service>.<version>.json`)
    /// into `--out`: its RPCs, events, queues and AMQP bindings.
    Asyncapi {
        /// `.kontiki` files, with their imports.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Directory to write to (the documents go to its `asyncapi/`).
        #[arg(long, value_name = "DIR", required = true)]
        out: PathBuf,
        /// Only these services (identifier or wire name; repeat the flag); all by default.
        #[arg(long = "service", value_name = "NAME")]
        services: Vec<String>,
        /// Writes nothing; exits 1 when the documents in `--out` differ from what would be
        /// generated (missing, changed or extra `.json` files in `asyncapi/`).
        #[arg(long)]
        check: bool,
    },
    /// Rewrites files in the canonical layout (comments kept); exit 1 on a syntax error.
    Fmt {
        /// `.kontiki` files to format (imports are not followed).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Writes nothing; names the files that would change and exits 1 if there are any.
        #[arg(long)]
        check: bool,
    },
    /// Reports style and hygiene problems (rules in `kontiki_idl::lint`), configured by the
    /// `[lint]` table of the nearest `kontiki.toml`; exit 1 on an error-severity finding.
    Lint {
        /// `.kontiki` files to lint (each must check).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The configuration file, instead of the nearest `kontiki.toml` above the first file.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Exit 1 on warnings too.
        #[arg(long)]
        deny_warnings: bool,
    },
    /// Reports the changes from an older version of the contracts that break running callers
    /// and consumers (`wire`) or Rust code using the generated code (`source`); exit 1 if
    /// there are any, 2 if a version cannot be read or does not check.
    Breaking {
        /// The old version: a git ref (each file as it is at that ref, `git show REF:path`),
        /// a directory (holding files of the same names) or a file (with one FILE).
        #[arg(long, value_name = "REF|DIR|FILE")]
        against: String,
        /// Which changes fail the command: `source` (all) or `wire` (source-only changes
        /// become warnings).
        #[arg(long, value_enum, default_value_t = cli::breaking::FailLevel::Source)]
        level: cli::breaking::FailLevel,
        /// The new versions: `.kontiki` files (each must check), compared with their imports.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Runs a language server on stdin/stdout for editors: diagnostics as you type,
    /// go-to-definition, hover, document symbols, formatting.
    Lsp,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let include = cli.include;
    let format = cli.format;
    match cli.command {
        Command::Check { files } => cli::check::run(&files, &include, format),
        Command::Generate {
            files,
            mut opts,
            check,
        } => {
            opts.include_dirs = include;
            report(cli::generate::run(&files, &opts, check), format)
        }
        Command::Python {
            files,
            out,
            services,
            check,
        } => report(
            cli::python::run(&files, &out, services, &include, check),
            format,
        ),
        Command::Openapi {
            file,
            service,
            version,
        } => report(
            cli::openapi::run(&file, &service, version.as_deref(), &include),
            format,
        ),
        Command::Asyncapi {
            files,
            out,
            services,
            check,
        } => {
            let mut opts = Opts::default();
            opts.out = Some(out);
            opts.services = services;
            opts.include_dirs = include;
            report(cli::asyncapi::run(&files, &opts, check), format)
        }
        Command::Fmt { files, check } => cli::fmt::run(&files, check, format),
        Command::Lint {
            files,
            config,
            deny_warnings,
        } => cli::lint::run(&files, &include, config.as_deref(), deny_warnings, format),
        Command::Breaking {
            against,
            level,
            files,
        } => cli::breaking::run(&files, &against, &include, level, format),
        Command::Lsp => cli::lsp::run(&include),
    }
}

fn report(result: Result<(), Error>, format: Format) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Error::Idl(e)) => {
            match format {
                Format::Json => cli::print_json(&e.to_json()),
                Format::Human => eprint!("{}", e.render_with(&cli::handler())),
            }
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
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
        let Command::Check { files } = cli.command else {
            panic!("expected check")
        };
        assert_eq!(files.len(), 2);
        assert!(Cli::try_parse_from(["kontiki-codegen", "check"]).is_err());
    }

    #[test]
    fn global_flags_go_anywhere() {
        let cli = Cli::try_parse_from([
            "kontiki-codegen",
            "lint",
            "a.kontiki",
            "-I",
            "shared",
            "--format",
            "json",
            "--include",
            "more",
        ])
        .unwrap();
        assert_eq!(
            cli.include,
            vec![PathBuf::from("shared"), PathBuf::from("more")]
        );
        assert_eq!(cli.format, Format::Json);
        assert!(matches!(cli.command, Command::Lint { .. }));
        let cli =
            Cli::try_parse_from(["kontiki-codegen", "-I", "shared", "check", "a.kontiki"]).unwrap();
        assert_eq!(cli.include, vec![PathBuf::from("shared")]);
        assert_eq!(cli.format, Format::Human);
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
        let Command::Generate { files, opts, check } = cli.command else {
            panic!("expected generate")
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
