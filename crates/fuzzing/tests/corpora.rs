//! Replays every committed fuzz input through its target on stable Rust: each file
//! of `fuzz/corpus/<target>/` and of `fuzz/regressions/<target>/` (inputs that once
//! crashed, kept whole). A missing or empty corpus fails, so this cannot pass by
//! finding nothing.

use std::{
    fs,
    panic::{AssertUnwindSafe, catch_unwind},
    path::{Path, PathBuf},
};

use offboard_fuzzing::{TARGETS, decoded_shapes};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Runs every file through `target`, naming each one that panics.
fn replay(name: &str, target: fn(&[u8]), files: &[PathBuf]) -> Vec<String> {
    let mut failures = Vec::new();
    for file in files {
        let data = fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        if catch_unwind(AssertUnwindSafe(|| target(&data))).is_err() {
            failures.push(format!("{name}: {}", file.display()));
        }
    }
    failures
}

#[test]
fn every_corpus_replays_without_a_panic() {
    let mut failures = Vec::new();
    for (name, target) in TARGETS {
        let corpus = files(&repo().join("fuzz/corpus").join(name));
        assert!(
            !corpus.is_empty(),
            "fuzz/corpus/{name}/ is missing or empty: run the fuzzer and `cargo fuzz cmin {name}` (fuzz/README.md)"
        );
        failures.extend(replay(name, *target, &corpus));
        let regressions = files(&repo().join("fuzz/regressions").join(name));
        failures.extend(replay(name, *target, &regressions));
    }
    assert!(
        failures.is_empty(),
        "inputs that panic:\n{}",
        failures.join("\n")
    );
}

#[test]
fn every_target_has_its_fuzz_wrapper() {
    for (name, _) in TARGETS {
        let wrapper = repo().join("fuzz/fuzz_targets").join(format!("{name}.rs"));
        let text =
            fs::read_to_string(&wrapper).unwrap_or_else(|e| panic!("{}: {e}", wrapper.display()));
        assert!(
            text.contains(&format!("offboard_fuzzing::{name}")),
            "{} does not call offboard_fuzzing::{name}",
            wrapper.display()
        );
    }
}

/// The CRM corpus must hold answers each client decodes, not only junk that
/// exercises the error paths.
#[test]
fn the_crm_corpus_holds_answers_every_client_decodes() {
    let corpus = files(&repo().join("fuzz/corpus/crm_responses"));
    let mut decoded = [0usize; 4];
    for file in &corpus {
        let data = fs::read(file).unwrap_or_default();
        for (total, n) in decoded.iter_mut().zip(decoded_shapes(&data)) {
            *total += usize::from(n > 0);
        }
    }
    for (vendor, n) in ["Sell", "Pipedrive", "HubSpot", "Salesforce"]
        .iter()
        .zip(decoded)
    {
        assert!(
            n > 0,
            "no file of fuzz/corpus/crm_responses decodes as a {vendor} answer"
        );
    }
}

/// Writes the seeds (`offboard_fuzzing::seeds`) to `fuzz/seeds/<target>/`, the
/// starting point of a new corpus; not part of the normal run.
#[test]
#[ignore = "writes files: run by hand when growing a corpus from scratch"]
fn write_seeds() {
    let root = repo().join("fuzz/seeds");
    for (i, (target, data)) in offboard_fuzzing::seeds::seeds(&repo())
        .into_iter()
        .enumerate()
    {
        let dir = root.join(target);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let file = dir.join(format!("seed-{i:04}"));
        fs::write(&file, data).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    }
}
