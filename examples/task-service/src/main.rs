//! `task-service --config FILE [--config FILE]...`: runs the task-service example service.

use std::process::ExitCode;

fn main() -> ExitCode {
    match task_service::service() {
        Ok(service) => kontiki_rt::cli::run(
            service,
            task_service::DESCRIPTION,
            task_service::task_service::task_service::VERSION,
        ),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
