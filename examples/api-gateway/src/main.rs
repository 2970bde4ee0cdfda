//! `api-gateway --config FILE [--config FILE]...`: runs the api-gateway example service.

use std::process::ExitCode;

fn main() -> ExitCode {
    match api_gateway::service() {
        Ok(service) => kontiki_rt::cli::run(
            service,
            api_gateway::DESCRIPTION,
            api_gateway::api_gateway::api_gateway::VERSION,
        ),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
