//! `billing --config FILE [--config FILE]...`: runs the billing example service.

use std::process::ExitCode;

fn main() -> ExitCode {
    match billing::service() {
        Ok(service) => kontiki_rt::cli::run(
            service,
            billing::DESCRIPTION,
            billing::billing::billing::VERSION,
        ),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
