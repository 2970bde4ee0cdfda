//! Generates a 5,000-line IDL file and prints the median parse + check time.
//!
//! Run with: `cargo bench -p kontiki-idl --bench parse`

use std::fmt::Write as _;
use std::time::{Duration, Instant};

fn generate(lines: usize) -> String {
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

fn main() {
    let text = generate(5_000);
    let lines = text.lines().count();
    let runs = 7;
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            let model =
                kontiki_idl::load_str("bench.kontiki", &text).expect("the generated file is valid");
            let elapsed = start.elapsed();
            std::hint::black_box(model);
            elapsed
        })
        .collect();
    times.sort();
    let median = times[runs / 2];
    println!(
        "parse+check of {lines} lines ({} KiB): median {:.1} ms over {runs} runs (min {:.1} ms, max {:.1} ms)",
        text.len() / 1024,
        median.as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3,
        times[runs - 1].as_secs_f64() * 1e3,
    );
}
