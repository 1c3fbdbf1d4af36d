//! Configuration menus: every seed draws a configuration of its own from the scenario's
//! menus, keeping the constraints between values, the same draw every time; the draw is
//! part of the schedule; sweeps tally each value.

use std::collections::BTreeSet;
use std::path::Path;

use logjam_sim::run::{SweepResult, run_seed, schedule_for, value_key};
use logjam_sim::scenario::{Scenario, System};
use logjam_sim::schedule_file::check_schedule;

fn config_swarm() -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/config-swarm.toml");
    Scenario::load(&path).unwrap()
}

#[test]
fn every_seed_draws_a_valid_configuration_and_every_value_is_drawn() {
    let scenario = config_swarm();
    let values: BTreeSet<(String, String)> = scenario.menu_values().into_iter().collect();
    assert!(values.len() >= 20, "{values:?}");
    let mut drawn = BTreeSet::new();
    let mut configurations = BTreeSet::new();
    for seed in 0..400 {
        let one = scenario.for_seed(seed);
        assert_eq!(one.drawn, scenario.for_seed(seed).drawn, "seed {seed} draws differently");
        let System::LogCluster(spec) = &one.system else { panic!("a log cluster") };
        assert!(spec.min_insync_replicas <= spec.replication_factor, "seed {seed}");
        assert!(spec.replication_factor <= spec.brokers, "seed {seed}");
        // The drawn values are what the concrete scenario runs.
        let shown = |key: &str| one.drawn.iter().find(|(k, _)| k == key).unwrap().1.clone();
        assert_eq!(shown("cluster.brokers"), spec.brokers.to_string());
        assert_eq!(shown("cluster.min_insync_replicas"), spec.min_insync_replicas.to_string());
        assert_eq!(scenario.pinned(&one.drawn).unwrap(), *one);
        drawn.extend(one.drawn.iter().cloned());
        configurations.insert(one.drawn.clone());
    }
    let never: Vec<_> = values.difference(&drawn).collect();
    assert!(never.is_empty(), "values no seed drew in 400: {never:?}");
    assert!(configurations.len() > 300, "only {} configurations", configurations.len());
}

#[test]
fn menu_draws_never_shift_the_faults_of_a_seed() {
    // The same file with its menus fixed to one value draws the same faults and
    // operations for the seeds that drew that value: the Config stream is its own.
    let scenario = config_swarm();
    for seed in 0..20 {
        let schedule = schedule_for(&scenario, seed);
        let fixed = scenario.pinned(&schedule.config).unwrap();
        let plain = Scenario { space: None, drawn: Vec::new(), ..fixed };
        let without_menus = schedule_for(&plain, seed);
        assert_eq!(schedule.faults, without_menus.faults, "seed {seed}");
        assert_eq!(schedule.ops, without_menus.ops, "seed {seed}");
        assert!(without_menus.config.is_empty());
    }
}

#[test]
fn a_schedule_must_name_a_configuration_the_menus_hold() {
    let scenario = config_swarm();
    let good = schedule_for(&scenario, 5);
    assert!(check_schedule(&scenario, &good).is_ok());
    type Edit<'a> = &'a dyn Fn(&mut Vec<(String, String)>);
    let cases: [(Edit, &str); 4] = [
        (&|config| config.clear(), "schedule.config: no value for the menu `cluster.brokers`"),
        (
            &|config| config[0].1 = "4".to_owned(),
            "schedule.config: `cluster.brokers = 4` is not a value of the scenario's menus",
        ),
        (
            &|config| config.push(config[0].clone()),
            "schedule.config: `cluster.brokers` is given twice",
        ),
        (
            &|config| config.push(("cluster.acks".to_owned(), "0".to_owned())),
            "schedule.config: `cluster.acks = 0` is not a value",
        ),
    ];
    for (edit, wanted) in cases {
        let mut bad = good.clone();
        edit(&mut bad.config);
        let problem = check_schedule(&scenario, &bad).unwrap_err();
        assert!(problem.starts_with(wanted), "got {problem}\nwant {wanted}");
    }
    // A scenario without menus takes no configuration.
    let plain =
        Scenario { space: None, drawn: Vec::new(), ..scenario.pinned(&good.config).unwrap() };
    let problem = check_schedule(&plain, &good).unwrap_err();
    assert!(problem.contains("has no configuration menus"), "{problem}");
}

#[test]
fn a_sweep_tallies_every_value_and_shards_merge_into_the_whole() {
    let scenario = config_swarm();
    let runs: Vec<_> = (0..12).map(|seed| run_seed(&scenario, seed, 0).0).collect();
    let whole = SweepResult::judge(&scenario, 0, &runs);
    for (key, value) in scenario.menu_values() {
        assert!(whole.by_config.contains_key(&value_key(&key, &value)), "{key}={value}");
    }
    // Per menu, the values' runs add up to the sweep's.
    for key in scenario.menu_values().iter().map(|(key, _)| key).collect::<BTreeSet<_>>() {
        let runs: u64 = whole
            .by_config
            .iter()
            .filter(|(value, _)| value.starts_with(&format!("{key}=")))
            .map(|(_, tally)| tally.runs)
            .sum();
        assert_eq!(runs, 12, "{key}");
    }
    let mut merged = SweepResult::judge(&scenario, 0, &runs[..5]);
    merged.merge(SweepResult::judge(&scenario, 0, &runs[5..]));
    merged.finish(&scenario);
    assert_eq!(merged, whole);
}

/// `transactions.plain_producers`: the last producer slot runs a plain producer whose
/// sends land among the transactions, and the run is judged over both.
#[test]
fn plain_producers_write_beside_transactional_ones() {
    use logjam_sim::run::{RunOutput, run_full};
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/txn-smoke.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text.replacen("[transactions]", "[transactions]\nplain_producers = 1", 1);
    let scenario = Scenario::parse(&text, "txn-smoke-plain.toml").unwrap_or_else(|e| panic!("{e}"));
    let System::LogCluster(spec) = &scenario.system else { panic!("a log cluster") };
    assert!(
        spec.node_map().contains("transactional producers n4, plain producers n5"),
        "{}",
        spec.node_map()
    );
    let RunOutput { result, history, .. } = run_full(&scenario, &schedule_for(&scenario, 0), 0);
    let history = history.expect("a history");
    let mut jsonl = Vec::new();
    history.write_jsonl(&mut jsonl).unwrap();
    let jsonl = String::from_utf8(jsonl).unwrap();
    let ok = |f: &str, process: u32| {
        jsonl.lines().any(|line| {
            line.contains(&format!("\"process\":{process},\"type\":\"ok\",\"f\":\"{f}\""))
        })
    };
    assert!(ok("txn", 4) && ok("send", 5), "both kinds of producer wrote");
    assert!(!ok("send", 4) && !ok("txn", 5), "each slot wrote its own kind only");
    let broken: Vec<_> = result.checks.iter().filter(|c| !c.holds).collect();
    assert!(broken.is_empty(), "{broken:?}");
}
