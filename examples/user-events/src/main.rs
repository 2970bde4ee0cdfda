//! `user-events --config FILE [--config FILE]...`: runs the user-events example service.

use std::process::ExitCode;

fn main() -> ExitCode {
    match user_events::service() {
        Ok(service) => kontiki_rt::cli::run(
            service,
            user_events::DESCRIPTION,
            user_events::user_events::user_events::VERSION,
        ),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
