//! `tenant-api --config FILE [--config FILE]...`: runs the tenant-api example service.

use std::process::ExitCode;

fn main() -> ExitCode {
    match tenant_api::service() {
        Ok(service) => kontiki_rt::cli::run(
            service,
            tenant_api::DESCRIPTION,
            tenant_api::tenants::tenant_api::VERSION,
        ),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
