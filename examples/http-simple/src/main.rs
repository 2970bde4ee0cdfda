//! `http-simple --config FILE [--config FILE]...`: runs the http-simple example service.

use std::process::ExitCode;

fn main() -> ExitCode {
    match http_simple::service() {
        Ok(service) => kontiki_rt::cli::run(
            service,
            http_simple::DESCRIPTION,
            http_simple::http_simple::http_simple::VERSION,
        ),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
