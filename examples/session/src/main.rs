//! `session --config FILE [--config FILE]...`: runs a replica of the session-service example.

use std::process::ExitCode;

fn main() -> ExitCode {
    match session::service() {
        Ok(service) => kontiki_rt::cli::run(
            service,
            session::DESCRIPTION,
            session::session::session_service::VERSION,
        ),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
