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

use crate::config::Config;
use crate::service::{Service, shutdown_signal};
use clap::{Arg, ArgAction, Command};
use std::path::PathBuf;
use std::process::ExitCode;

/// The parsed command line of a service binary.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Args {
    /// `--config FILE`, in order; at least one.
    pub config: Vec<PathBuf>,
    /// `--disable-service-registration`.
    pub disable_service_registration: bool,
}

/// The clap command of a service binary named `name`.
pub fn command(name: &str, description: &str, version: &str) -> Command {
    Command::new(name.to_owned())
        .about(description.to_owned())
        .version(version.to_owned())
        .arg(
            Arg::new("config")
                .long("config")
                .value_name("FILE")
                .help("A YAML configuration file; repeat to merge several (later files may only add keys)")
                .required(true)
                .action(ArgAction::Append)
                .value_parser(clap::value_parser!(PathBuf)),
        )
        .arg(
            Arg::new("disable-service-registration")
                .long("disable-service-registration")
                .help("Do not register with the Kontiki registry (no heartbeats)")
                .action(ArgAction::SetTrue),
        )
}

/// Parses `argv` (the first item is the program name); `Err` carries clap's help, version or
/// usage error, to print with [`clap::Error::exit`].
pub fn parse_args<I, T>(
    name: &str,
    description: &str,
    version: &str,
    argv: I,
) -> Result<Args, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let matches = command(name, description, version).try_get_matches_from(argv)?;
    Ok(Args {
        config: matches
            .get_many::<PathBuf>("config")
            .map(|v| v.cloned().collect())
            .unwrap_or_default(),
        disable_service_registration: matches.get_flag("disable-service-registration"),
    })
}

/// Runs `service` as a program: parses the command line, loads and merges the config files,
/// starts the service and serves until SIGTERM or SIGINT, then shuts down gracefully.
///
/// Exit codes: 0 after a graceful stop (and for `--help` / `--version`), 1 when the config is
/// invalid or the service cannot start (nothing is started then), 2 for a usage error.
/// `version` is printed by `--version` and is the service version reported to the registry.
pub fn run(service: Service, description: &str, version: &str) -> ExitCode {
    init_tracing();
    let name = std::env::args()
        .next()
        .and_then(|a| {
            PathBuf::from(a)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| service.name().to_owned());
    let args = match parse_args(&name, description, version, std::env::args_os()) {
        Ok(a) => a,
        Err(e) => e.exit(),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run_with(service, version, args))
}

/// [`run`] for an already parsed command line, inside a running tokio runtime.
pub async fn run_with(service: Service, version: &str, args: Args) -> ExitCode {
    let config = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
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

/// Logs to stderr through `tracing`; `RUST_LOG` filters (default `info`).
///
/// `KONTIKI_LOG_FORMAT=json` writes one JSON object a line instead (for log shippers): the
/// level, target, message and fields, and the fields of the current handler span (`service`,
/// `instance_id`, `method` or `handler`, `flow_id`, …) under `span`. Colour only on a terminal
/// and never with `NO_COLOR`.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match LogFormat::from_env() {
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Text => builder
            .with_ansi(
                std::io::IsTerminal::is_terminal(&std::io::stderr())
                    && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
            )
            .try_init(),
    };
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
