//! `broadcast --config FILE [--config FILE]...`: runs a replica of the cache-service example.

use std::process::ExitCode;

fn main() -> ExitCode {
    match broadcast::service() {
        Ok(service) => kontiki_rt::cli::run(
            service,
            broadcast::DESCRIPTION,
            broadcast::broadcast::cache_service::VERSION,
        ),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
