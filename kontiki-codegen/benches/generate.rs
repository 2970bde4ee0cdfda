//! Generates a 5,000-line IDL file, then times code generation for it (load and check, Rust
//! rendered and pretty-printed, OpenAPI built) and prints the median.
//!
//! Run with: `cargo bench -p kontiki-codegen --bench generate`
//!
//! `… --bench generate -- --write-idl FILE [LINES]` only writes the IDL (5,000 lines unless
//! LINES says otherwise) and exits: `make bench`'s compile-time section builds the crate
//! generated from it, so both measure the same contract.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// The same shape as kontiki-idl's parse benchmark: a struct, an event and a service with an
/// RPC, an emitted event, a handler, a versioned route and a task, repeated.
fn idl(lines: usize) -> String {
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
    // `cargo bench` passes `--bench` to a harness-less benchmark.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if let [flag, path, rest @ ..] = args.as_slice()
        && flag == "--write-idl"
    {
        let lines = match rest {
            [] => 5_000,
            [n] => n.parse().expect("LINES is a number"),
            _ => panic!("usage: generate --write-idl FILE [LINES]"),
        };
        std::fs::write(path, idl(lines)).expect("write the IDL");
        return;
    }
    let text = idl(5_000);
    let lines = text.lines().count();
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("bench.kontiki");
    std::fs::write(&file, &text).expect("write the IDL");
    let opts = kontiki_codegen::Opts::default();
    let runs = 5;
    let mut bytes = 0;
    let mut files = 0;
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            let out = kontiki_codegen::generate(&[&file], &opts).expect("the IDL is valid");
            let elapsed = start.elapsed();
            files = out.files.names().count();
            bytes = out.files.iter().map(|(_, b)| b.len()).sum::<usize>();
            std::hint::black_box(out);
            elapsed
        })
        .collect();
    times.sort();
    let median = times[runs / 2];
    println!(
        "generate for {lines} IDL lines ({} KiB) -> {files} files ({} KiB): median {:.0} ms over {runs} runs (min {:.0} ms, max {:.0} ms)",
        text.len() / 1024,
        bytes / 1024,
        median.as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3,
        times[runs - 1].as_secs_f64() * 1e3,
    );
}
