//! `orders-worker --config FILE [--config FILE]...`: runs the orders-worker example service.

use std::process::ExitCode;

fn main() -> ExitCode {
    match orders_worker::service() {
        Ok(service) => kontiki_rt::cli::run(
            service,
            orders_worker::DESCRIPTION,
            orders_worker::orders::orders_worker::VERSION,
        ),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
