//! `compute-api --config FILE [--config FILE]...`: runs the compute-api example service.

use std::process::ExitCode;

fn main() -> ExitCode {
    match compute_api::service() {
        Ok(service) => kontiki_rt::cli::run(
            service,
            compute_api::DESCRIPTION,
            compute_api::compute::compute_api::VERSION,
        ),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
