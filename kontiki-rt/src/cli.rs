//! The runner: makes a service a command-line program, as Kontiki's `cli.run` does.
//!
//! ```no_run
//! use kontiki_rt::{Service, cli};
//!
//! fn main() -> std::process::ExitCode {
//!     let service = Service::builder("compute-api").build().expect("valid service");
//!     cli::run(service, "Example Kontiki service.", "1.0.0")
//! }
//! ```
//!
//! `compute-api --config base.yaml --config env.yaml` then runs it until SIGTERM or SIGINT.
//! `--print-config` prints the merged configuration with its secrets hidden, and
//! `--check-config` checks it; both exit without connecting.
//!
//! An application with a command line of its own flattens [`ServiceArgs`] into it:
//!
//! ```no_run
//! use clap::Parser;
//! use kontiki_rt::{Service, cli::ServiceArgs};
//!
//! /// The shop: serves orders and, with `--import FILE`, imports a catalogue first.
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     service: ServiceArgs,
//!     #[arg(long)]
//!     import: Option<std::path::PathBuf>,
//! }
//!
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     kontiki_rt::cli::init_tracing();
//!     let cli = Cli::parse();
//!     let service = Service::builder("shop").build().expect("valid service");
//!     kontiki_rt::cli::run_with(service, "1.0.0", cli.service).await
//! }
//! ```
//!
//! This module is the `cli` feature.

use crate::config::Config;
use crate::error::BoxError;
use crate::service::{Service, shutdown_signal};
use clap::FromArgMatches;
use std::path::PathBuf;
use std::process::ExitCode;

/// The options of a service binary. [`run`] parses them; an application with its own clap
/// command line puts them into it with `#[command(flatten)]` and calls [`run_with`].
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
#[non_exhaustive]
pub struct ServiceArgs {
    /// A YAML configuration file; repeat to merge several (later files may only add keys).
    /// KONTIKI_CONFIG holds a comma-separated list instead.
    #[arg(
        long = "config",
        value_name = "FILE",
        env = "KONTIKI_CONFIG",
        value_delimiter = ',',
        required = true,
        action = clap::ArgAction::Append
    )]
    pub config: Vec<PathBuf>,
    /// Do not register with the Kontiki registry (no heartbeats).
    #[arg(long)]
    pub disable_service_registration: bool,
    /// Print the merged configuration as YAML, secrets hidden, and exit.
    #[arg(long, conflicts_with = "check_config")]
    pub print_config: bool,
    /// Check the configuration for this service and exit: 0 when it is valid, 1 with the error.
    #[arg(long)]
    pub check_config: bool,
}

impl ServiceArgs {
    /// Arguments that run a service with the given config files.
    pub fn with_config(config: impl IntoIterator<Item = impl Into<PathBuf>>) -> ServiceArgs {
        ServiceArgs {
            config: config.into_iter().map(Into::into).collect(),
            disable_service_registration: false,
            print_config: false,
            check_config: false,
        }
    }

    /// Loads and merges the config files, in order.
    pub fn load_config(&self) -> Result<Config, crate::ConfigError> {
        Config::load(&self.config)
    }
}

/// The clap command of a service binary named `name`.
pub fn command(name: &str, description: &str, version: &str) -> clap::Command {
    <ServiceArgs as clap::Args>::augment_args(
        clap::Command::new(name.to_owned())
            .about(description.to_owned())
            .version(version.to_owned()),
    )
}

/// Parses `argv` (the first item is the program name); `Err` carries clap's help, version or
/// usage error, to print with [`clap::Error::exit`].
pub fn parse_args<I, T>(
    name: &str,
    description: &str,
    version: &str,
    argv: I,
) -> Result<ServiceArgs, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let mut matches = command(name, description, version).try_get_matches_from(argv)?;
    ServiceArgs::from_arg_matches_mut(&mut matches)
}

/// The program name of this process (its file name), else `fallback`.
fn program_name(fallback: &str) -> String {
    std::env::args()
        .next()
        .and_then(|a| {
            PathBuf::from(a)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| fallback.to_owned())
}

/// Runs `service` as a program: parses the command line, loads and merges the config files,
/// starts the service and serves until SIGTERM or SIGINT, then shuts down gracefully.
///
/// Exit codes: 0 after a graceful stop (and for `--help`, `--version`, `--print-config` and a
/// valid `--check-config`), 1 when the config is invalid or the service cannot start (nothing
/// is started then), 2 for a usage error.
/// `version` is printed by `--version` and is the service version reported to the registry.
pub fn run(service: Service, description: &str, version: &str) -> ExitCode {
    init_tracing();
    let name = program_name(service.name());
    let args = match parse_args(&name, description, version, std::env::args_os()) {
        Ok(a) => a,
        Err(e) => e.exit(),
    };
    block_on(run_with(service, version, args))
}

/// Runs `future` on a new multi-threaded tokio runtime.
fn block_on(future: impl Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(future),
        Err(e) => {
            eprintln!("error: could not start the tokio runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

/// [`run`] for an already parsed command line, inside a running tokio runtime.
pub async fn run_with(service: Service, version: &str, args: ServiceArgs) -> ExitCode {
    run_configured(args, version, move |_| Ok(service)).await
}

/// [`run_with`] for a service built from its configuration (`build` gets the merged config;
/// the registry chooses its settings this way). `--print-config` does not call `build`.
pub async fn run_configured<F>(args: ServiceArgs, version: &str, build: F) -> ExitCode
where
    F: FnOnce(&Config) -> Result<Service, BoxError>,
{
    let config = match args.load_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.print_config {
        return print_config(&config);
    }
    let service = match build(&config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.check_config {
        return match service.check_config(&config) {
            Ok(()) => {
                println!(
                    "configuration OK for service `{}` ({} file{})",
                    service.name(),
                    config.files().len(),
                    if config.files().len() == 1 { "" } else { "s" }
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let service = service
        .with_version(version)
        .with_registration_disabled(args.disable_service_registration);
    let running = match service.start(config).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    shutdown_signal().await;
    tracing::info!("shutdown requested");
    running.shutdown().await;
    ExitCode::SUCCESS
}

/// `--print-config`: the merged document as YAML, secrets hidden.
fn print_config(config: &Config) -> ExitCode {
    match serde_norway::to_string(&config.redacted()) {
        Ok(yaml) => {
            print!("{yaml}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: could not print the configuration: {e}");
            ExitCode::FAILURE
        }
    }
}

/// [`run_configured`] as a whole program: parses `argv`, starts a runtime and runs.
pub fn run_configured_main<I, T, F>(
    name: &str,
    description: &str,
    version: &str,
    argv: I,
    build: F,
) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
    F: FnOnce(&Config) -> Result<Service, BoxError>,
{
    init_tracing();
    let args = match parse_args(name, description, version, argv) {
        Ok(a) => a,
        Err(e) => e.exit(),
    };
    block_on(run_configured(args, version, build))
}

/// Logs to stderr through `tracing`; `RUST_LOG` filters (default `info`).
///
/// With `logging.directory` in a service's config, its lines also go to Kontiki's log file
/// (`<directory>/<service>-<12 hex>.log`, [`log_file_name`](crate::log_file_name)) for kontiki-tui.
///
/// `KONTIKI_LOG_FORMAT=json` writes one JSON object a line instead (for log shippers): the
/// level, target, message and fields, and the fields of the current handler span (`service`,
/// `instance_id`, `method` or `handler`, `flow_id`, …) under `span`. Colour only on a terminal
/// and never with `NO_COLOR`.
pub fn init_tracing() {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let console = match LogFormat::from_env() {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(
                std::io::IsTerminal::is_terminal(&std::io::stderr())
                    && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
            )
            .boxed(),
    };
    // Kontiki's log files (`logging.directory`) take INFO and above whatever RUST_LOG says to
    // the console, as Kontiki's `kontiki` logger does; the runtime's dependencies only from WARN.
    // Until a service opens its file the layer wants nothing (`WhileOpen`), so that a request
    // span the console filters out is not made for it.
    let files =
        crate::observe::logfile::KontikiLogLayer.with_filter(crate::observe::logfile::WhileOpen(
            tracing_subscriber::filter::Targets::new()
                .with_default(tracing::Level::INFO)
                .with_target("lapin", tracing::Level::WARN)
                .with_target("amq_protocol", tracing::Level::WARN)
                .with_target("hyper", tracing::Level::WARN)
                .with_target("h2", tracing::Level::WARN),
        ));
    let _ = tracing_subscriber::registry()
        .with(console.with_filter(filter))
        .with(files)
        .try_init();
}

/// The log line format `KONTIKI_LOG_FORMAT` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    fn from_env() -> LogFormat {
        match std::env::var("KONTIKI_LOG_FORMAT") {
            Ok(v) if v.eq_ignore_ascii_case("json") => LogFormat::Json,
            Ok(v) if !v.is_empty() && !v.eq_ignore_ascii_case("text") => {
                eprintln!("warning: KONTIKI_LOG_FORMAT={v:?} is not `json` or `text`; using text");
                LogFormat::Text
            }
            _ => LogFormat::Text,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_is_well_formed() {
        command("svc", "A service.", "1.2.3").debug_assert();
    }

    #[test]
    fn config_is_repeatable_and_required() {
        let a = parse_args(
            "svc",
            "d",
            "1",
            ["svc", "--config", "a.yaml", "--config", "b.yaml"],
        )
        .unwrap();
        assert_eq!(
            a.config,
            vec![PathBuf::from("a.yaml"), PathBuf::from("b.yaml")]
        );
        assert!(!a.disable_service_registration);
        let e = parse_args("svc", "d", "1", ["svc"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        let e = parse_args("svc", "d", "1.2.3", ["svc", "--version"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::DisplayVersion);
        assert!(
            parse_args(
                "svc",
                "d",
                "1",
                ["svc", "--config", "a", "--disable-service-registration"]
            )
            .unwrap()
            .disable_service_registration
        );
    }
}
