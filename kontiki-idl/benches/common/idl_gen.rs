//! The 5,000-line IDL file the IDL benchmarks share (`parse`, `toolchain`).

use std::fmt::Write as _;

/// A valid file of at least `lines` lines: structs, events, services with every entrypoint.
pub(crate) fn generate(lines: usize) -> String {
    let mut out = String::from("//! Generated for the benchmark.\npackage bench;\n\n");
    out.push_str("/// An error.\nerror NOT_FOUND = \"not found\" [status = 404];\n\n");
    let mut i = 0;
    while out.lines().count() < lines {
        let _ = write!(
            out,
            "/// Struct {i}.\nstruct S{i} {{\n    /// Id.\n    id: uuid,\n    /// Name.\n    name: string = \"x\",\n    \
             /// Tags.\n    tags: list<string>,\n    /// Labels.\n    labels: map<string, i64>?,\n}}\n\n\
             /// Event {i}.\nevent bench.e{i}: S{i};\n\n\
             /// Service {i}.\nservice Svc{i} {{\n    name = \"svc-{i}\";\n    /// Gets one.\n    \
             rpc get(id: uuid, limit: u32 = 10) -> S{i}? raises NOT_FOUND;\n    emits bench.e{i};\n    \
             /// Handles.\n    on_event on_e(bench.e{i}) [max_attempts = 5];\n    /// Route.\n    \
             http fetch GET \"/s/{{id}}\" (id: uuid) query (q: string?) -> S{i} raises NOT_FOUND [version = \"v1\"];\n    \
             /// Tick.\n    task tick cron \"*/5 * * * MON-FRI\";\n}}\n\n"
        );
        i += 1;
    }
    out
}
