//! `kontiki-codegen check`.

use std::path::PathBuf;
use std::process::ExitCode;

use super::{Format, handler, plural, print_json};

pub(crate) fn run(files: &[PathBuf], include: &[PathBuf], format: Format) -> ExitCode {
    let mut json = Vec::new();
    let mut errors = 0usize;
    let mut bad_files = 0usize;
    let mut counts = Counts::default();
    for file in files {
        match kontiki_idl::load_with_includes(file, include) {
            Ok(model) => {
                if let Some(root) = model.root_package() {
                    counts.add(root);
                }
            }
            Err(e) => {
                errors += e.diagnostics().len();
                bad_files += 1;
                match format {
                    Format::Json => json.extend(e.to_json()),
                    Format::Human => eprint!("{}", e.render_with(&handler())),
                }
            }
        }
    }
    if format == Format::Json {
        print_json(&json);
        return if errors > 0 {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        };
    }
    if errors > 0 {
        eprintln!(
            "error: {errors} problem{} in {bad_files} of {} file{} checked",
            plural(errors),
            files.len(),
            plural(files.len())
        );
        return ExitCode::FAILURE;
    }
    println!(
        "ok: {} file{} checked: {} service{}, {} rpc{}, {} event handler{}, {} http route{}, {} task{}",
        files.len(),
        plural(files.len()),
        counts.services,
        plural(counts.services),
        counts.rpcs,
        plural(counts.rpcs),
        counts.handlers,
        plural(counts.handlers),
        counts.routes,
        plural(counts.routes),
        counts.tasks,
        plural(counts.tasks),
    );
    ExitCode::SUCCESS
}

#[derive(Default)]
struct Counts {
    services: usize,
    rpcs: usize,
    handlers: usize,
    routes: usize,
    tasks: usize,
}

impl Counts {
    fn add(&mut self, pkg: &kontiki_idl::model::Package) {
        for s in &pkg.services {
            self.services += 1;
            self.rpcs += s.rpcs.len();
            self.handlers += s.handlers.len();
            self.routes += s.routes.len();
            self.tasks += s.tasks.len();
        }
    }
}
