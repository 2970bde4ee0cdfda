//! `kontiki-registry --config FILE [--config FILE ...]`: runs the Kontiki service registry
//! (`ServiceRegistry`) until SIGTERM or SIGINT.

use std::process::ExitCode;

fn main() -> ExitCode {
    kontiki_registry::run_cli(
        "kontiki-registry",
        "The Kontiki service registry (ServiceRegistry)",
        std::env::args_os(),
    )
}
