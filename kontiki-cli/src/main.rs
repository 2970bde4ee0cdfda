#![doc = include_str!("../README.md")]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod args;
mod cli;
mod conn;
mod describe;
mod docs;
mod exit;
mod listen;
mod out;
mod registry;
mod rpc;

use clap::Parser as _;
use cli::{Cli, Command};
use exit::Failure;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ERROR: could not start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(run(cli));
    // Not dropped: dropping the runtime cancels the tasks lapin's I/O thread still waits on,
    // and that thread then panics onto stderr while the process ends. Everything the command
    // had to say is written and flushed by now; the process exit ends the threads.
    std::mem::forget(runtime);
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("{}", failure.line);
            failure.exit.into()
        }
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    // These two need no broker.
    match &cli.command {
        Command::Completions(a) => return docs::completions(a),
        Command::Man(a) => return docs::man(a),
        _ => {}
    }
    let broker = conn::Broker::resolve(cli.amqp_url, &cli.config, &cli.tls)?;
    match cli.command {
        Command::Call(a) => rpc::call(&broker, a).await,
        Command::Publish(a) => rpc::publish(&broker, a).await,
        Command::Listen(a) => listen::listen(&broker, a).await,
        Command::Services(a) => registry::services(&broker, a).await,
        Command::Failed(c) => registry::failed(&broker, c).await,
        Command::Describe(a) => describe::describe(&broker, a).await,
        Command::Completions(a) => docs::completions(&a),
        Command::Man(a) => docs::man(&a),
    }
}

/// Warnings and errors of the runtime to stderr (lapin, which logs the expected channel
/// closes of the route checks as errors, only with `RUST_LOG`); `RUST_LOG` shows more. Colour
/// only on a terminal and never when `NO_COLOR` is set (<https://no-color.org>).
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,lapin=off"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour_allowed(std::io::IsTerminal::is_terminal(
            &std::io::stderr(),
        )))
        .with_writer(std::io::stderr)
        .try_init();
}

/// Colour is allowed on a terminal unless `NO_COLOR` is set to anything but the empty string.
fn colour_allowed(terminal: bool) -> bool {
    terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
