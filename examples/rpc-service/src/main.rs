//! `rpc-service --config FILE [--config FILE]...`: runs the rpc-service example service.

use std::process::ExitCode;

fn main() -> ExitCode {
    match rpc_service::service() {
        Ok(service) => kontiki_rt::cli::run(
            service,
            rpc_service::DESCRIPTION,
            rpc_service::idl::rpc_service::VERSION,
        ),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
