//! The README's example of a property over generated schedules, and a check that the
//! README shows it verbatim (so the two cannot drift apart).
//!
//! Deterministic: proptest's generator is ChaCha with a fixed seed, so every run tries
//! the same schedules, and a run is a pure function of its schedule.

// README example start
use std::path::Path;
use std::sync::LazyLock;

use logjam_sim::run::{RunVerdict, run_schedule};
use logjam_sim::scenario::Scenario;
use logjam_sim::strategy::schedules;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, RngAlgorithm, RngSeed};

static SMOKE: LazyLock<Scenario> = LazyLock::new(|| {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/smoke.toml");
    Scenario::load(Path::new(path)).unwrap_or_else(|error| panic!("{error}"))
});

proptest! {
    // A fixed generator and seed: the same 8 schedules on every run (about 50 ms each).
    // A failing one is shrunk for up to 500 more runs, and its case is saved next to
    // this file (readme_property.proptest-regressions) and replayed first from then on.
    #![proptest_config(Config {
        cases: 8,
        rng_algorithm: RngAlgorithm::ChaCha,
        rng_seed: RngSeed::Fixed(0x6c6f_676a_616d),
        max_shrink_iters: 500,
        failure_persistence: Some(Box::new(
            FileFailurePersistence::WithSource("proptest-regressions"),
        )),
        ..Config::default()
    })]

    /// Every schedule of the smoke scenario holds.
    #[test]
    fn every_schedule_of_the_smoke_scenario_holds(schedule in schedules(&SMOKE)) {
        let (result, _) = run_schedule(&SMOKE, &schedule, 0);
        prop_assert_eq!(result.verdict(&SMOKE.expect), RunVerdict::Held);
    }
}
// README example end

/// The lines of this file between the example markers.
fn example() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/readme_property.rs");
    let this = std::fs::read_to_string(path).expect("the test file reads");
    let lines: Vec<&str> = this.lines().collect();
    let marker = |text: &str| {
        let found: Vec<usize> = (0..lines.len()).filter(|&i| lines[i] == text).collect();
        assert_eq!(found.len(), 1, "exactly one line `{text}` in {path}");
        found[0]
    };
    let (start, end) = (marker("// README example start"), marker("// README example end"));
    assert!(start < end, "the example's markers are out of order");
    lines[start + 1..end].iter().map(|line| format!("{line}\n")).collect()
}

#[test]
fn the_readme_shows_the_example_verbatim() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
    let readme = std::fs::read_to_string(path).expect("README.md reads");
    let example = example();
    assert!(example.contains("proptest!"), "the markers hold no example");
    let block = format!("```rust\n{example}```\n");
    assert!(
        readme.contains(&block),
        "README.md does not show sim/tests/readme_property.rs's example verbatim; \
         its ```rust block should be:\n{block}"
    );
}
