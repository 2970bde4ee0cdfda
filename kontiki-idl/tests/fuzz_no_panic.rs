//! The parser and checker never panic: random text, and the idl/ files with bytes deleted,
//! inserted and swapped.

use proptest::prelude::*;

const IDL: &[&str] = &[
    "api_gateway",
    "billing",
    "broadcast",
    "compute",
    "features",
    "heartbeat",
    "http_simple",
    "registry",
    "rpc_service",
    "session",
    "task_service",
    "user_events",
];

/// Bytes that matter to the grammar, so mutations reach deep into it.
const INTERESTING: &[u8] = b"{}()<>[];:,.=?\"/\\*#-_ \n09azAZ@!";

#[derive(Debug, Clone)]
enum Mutation {
    Delete(usize),
    Insert(usize, u8),
    Swap(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Delete),
        (any::<usize>(), prop::sample::select(INTERESTING))
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<usize>(), any::<usize>()).prop_map(|(i, j)| Mutation::Swap(i, j)),
    ]
}

fn apply(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = bytes.len();
        match *m {
            Mutation::Delete(i) if len > 0 => {
                bytes.remove(i % len);
            }
            Mutation::Insert(i, b) => bytes.insert(i % (len + 1), b),
            Mutation::Swap(i, j) if len > 0 => bytes.swap(i % len, j % len),
            _ => {}
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_idl_files_never_panic(file in prop::sample::select(IDL), mutations in prop::collection::vec(mutation(), 1..8)) {
        let name = format!("../idl/{file}.kontiki");
        let original = std::fs::read(&name).unwrap();
        let text = String::from_utf8_lossy(&apply(original, &mutations)).into_owned();
        if let Err(e) = kontiki_idl::load_str(&name, &text) {
            // Rendering must not panic either, and every diagnostic has a code.
            let rendered = e.to_string();
            prop_assert!(rendered.contains("kontiki::idl::"));
        }
    }

    #[test]
    fn random_text_never_panics(text in "[a-z_{}()<>;:,.=?\"/ \n0-9*#\\[\\]-]{0,200}") {
        let text = format!("package p;\n{text}");
        let _ = kontiki_idl::load_str("random.kontiki", &text).map_err(|e| e.to_string());
        let _ = kontiki_idl::parse_str("random.kontiki", &text);
    }
}

/// The inputs of the `idl_check` fuzz target (`fuzz/`, `make fuzz`): its seeds and the
/// regressions found by fuzzing load without panicking; the seeds are valid contracts.
#[test]
fn fuzz_inputs_replay_idl_check() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut seen = 0;
    for dir in ["seeds", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join("idl_check")) else {
            continue;
        };
        for path in entries.flatten().map(|e| e.path()).filter(|p| p.is_file()) {
            let data = std::fs::read(&path).unwrap();
            let Ok(text) = std::str::from_utf8(&data) else {
                continue;
            };
            let loaded = kontiki_idl::load_str("fuzz.kontiki", text).map_err(|e| e.to_string());
            if dir == "seeds" {
                assert!(
                    loaded.is_ok(),
                    "seed {} does not load: {loaded:?}",
                    path.display()
                );
            }
            seen += 1;
        }
    }
    assert!(seen > 0, "no inputs for idl_check under {}", root.display());
}
