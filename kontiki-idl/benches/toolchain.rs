//! Median times of `fmt`, `lint` and `breaking` on the 5,000-line IDL file of the `parse`
//! benchmark: one line for `fmt` and `lint`, one for `breaking` (`make bench` reports both).
//!
//! Run with: `cargo bench -p kontiki-idl --bench toolchain`

use std::time::{Duration, Instant};

#[path = "common/idl_gen.rs"]
mod idl_gen;

fn median(runs: usize, mut f: impl FnMut()) -> (Duration, Duration, Duration) {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    (times[runs / 2], times[0], times[runs - 1])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let text = idl_gen::generate(5_000);
    let lines = text.lines().count();
    let dir = std::env::temp_dir().join(format!("kontiki-toolchain-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("bench.kontiki");
    std::fs::write(&path, &text).expect("write the bench file");
    let runs = 7;
    let (fmt, fmt_min, fmt_max) = median(runs, || {
        let out = kontiki_idl::fmt::format_source("bench.kontiki", &text).expect("formats");
        std::hint::black_box(out);
    });
    let config = kontiki_idl::lint::LintConfig::default();
    let (lint, lint_min, lint_max) = median(runs, || {
        let found = kontiki_idl::lint::lint_file(&path, &[], &config).expect("checks");
        std::hint::black_box(found);
    });
    // `breaking` as the CLI runs it against a directory: load and check both versions, compare,
    // build the report. The new version changes one parameter in the last service.
    let old_path = dir.join("old.kontiki");
    std::fs::write(&old_path, &text).expect("write the old version");
    let at = text.rfind("limit: u32 = 10").expect("the generator's rpc");
    let new_text = format!("{}limit: u64 = 10{}", &text[..at], &text[at + 15..]);
    std::fs::write(&path, &new_text).expect("write the new version");
    let mut found = 0;
    let (breaking, breaking_min, breaking_max) = median(runs, || {
        // Both versions load at once, as the CLI does.
        let ((old, old_src), (new, new_src)) = std::thread::scope(|s| {
            let old = s.spawn(|| kontiki_idl::load_with_sources(&old_path, &[]).expect("checks"));
            let new = kontiki_idl::load_with_sources(&path, &[]).expect("checks");
            (old.join().expect("no panic"), new)
        });
        let changes = kontiki_idl::breaking::compare(
            kontiki_idl::breaking::Side {
                model: &old,
                sources: &old_src,
            },
            kontiki_idl::breaking::Side {
                model: &new,
                sources: &new_src,
            },
        );
        found = changes.len();
        let report = kontiki_idl::breaking::report(
            &changes,
            &old_src,
            &new_src,
            kontiki_idl::breaking::Level::Source,
        );
        std::hint::black_box(report);
    });
    assert_eq!(found, 1, "one source-level change expected");
    let (old, old_src) = kontiki_idl::load_with_sources(&old_path, &[]).expect("checks");
    let (new, new_src) = kontiki_idl::load_with_sources(&path, &[]).expect("checks");
    let (compare, _, _) = median(runs, || {
        let changes = kontiki_idl::breaking::compare(
            kontiki_idl::breaking::Side {
                model: &old,
                sources: &old_src,
            },
            kontiki_idl::breaking::Side {
                model: &new,
                sources: &new_src,
            },
        );
        std::hint::black_box(changes);
    });

    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "fmt of {lines} lines: median {:.1} ms (min {:.1}, max {:.1}); lint (parse+check+rules): median {:.1} ms (min {:.1}, max {:.1}); {runs} runs each",
        ms(fmt),
        ms(fmt_min),
        ms(fmt_max),
        ms(lint),
        ms(lint_min),
        ms(lint_max),
    );
    println!(
        "breaking of {lines} lines against its old version (load and check both at once, compare, report {found} change): median {:.1} ms (min {:.1}, max {:.1}), of which compare alone {:.1} ms; {runs} runs",
        ms(breaking),
        ms(breaking_min),
        ms(breaking_max),
        ms(compare),
    );
}
