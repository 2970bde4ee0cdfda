//! `heartbeat --config FILE [--config FILE]...`: runs the heartbeat-service example.

use std::process::ExitCode;

fn main() -> ExitCode {
    match heartbeat::service() {
        Ok(service) => kontiki_rt::cli::run(
            service,
            heartbeat::DESCRIPTION,
            heartbeat::heartbeat::heartbeat_service::VERSION,
        ),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
