//! `kontiki-registry --config FILE [--config FILE ...]`: runs the Kontiki service registry
//! (`ServiceRegistry`) until SIGTERM or SIGINT.

use std::process::ExitCode;

fn main() -> ExitCode {
    kontiki_rt::cli::init_tracing();
    let args = match kontiki_rt::cli::parse_args(
        "kontiki-registry",
        "The Kontiki service registry (ServiceRegistry)",
        env!("CARGO_PKG_VERSION"),
        std::env::args_os(),
    ) {
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
    runtime.block_on(async move {
        let config = match kontiki_rt::Config::load(&args.config) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        let service = match kontiki_registry::build(&config) {
            Ok((_, s)) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        let running = match service.start(config).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        kontiki_rt::shutdown_signal().await;
        tracing::info!("shutdown requested");
        running.shutdown().await;
        ExitCode::SUCCESS
    })
}
