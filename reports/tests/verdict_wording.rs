//! One verdict, one wording: the text report, the Markdown and JSON run reports, the
//! `--json` run and the HTML timeline say the same words, and a "held" names the
//! anomalies the configuration allows that the run showed (a run of unclean-election
//! expected to hold once printed seven `seen` anomalies and then "every invariant
//! holds").

use std::path::Path;

use logjam_reports::report::{RunReport, verdict_text};
use logjam_sim::run::{RunVerdict, replay_command, run_full};
use logjam_sim::scenario::Scenario;

fn unclean_election(all_hold: bool) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/unclean-election.toml");
    let text = std::fs::read_to_string(path).expect("the catalogue scenario");
    let cut = text.find("[expect]").expect("an [expect] table");
    let expect = if all_hold {
        "[expect]\nall_hold = true\n"
    } else {
        "[expect]\nviolation = \"lost-write\"\n"
    };
    let text = format!("{}{expect}", &text[..cut]);
    Scenario::parse(&text, "scenarios/unclean-election.toml").expect("it checks")
}

#[test]
fn every_output_says_the_same_verdict_and_names_the_allowed_anomalies_it_saw() {
    let mut shown = 0;
    for all_hold in [true, false] {
        let scenario = unclean_election(all_hold);
        for seed in [0, 1] {
            let output = run_full(&scenario, &logjam_sim::run::schedule_for(&scenario, seed), 0);
            let run = &output.result;
            let replay = replay_command(&scenario, seed);
            let verdict = verdict_text(&scenario, run);
            let allowed: Vec<&str> = run
                .checks
                .iter()
                .filter(|c| c.holds && c.expected_anomaly)
                .map(|c| c.invariant)
                .collect();
            // A held run of this weak setup with anomalies says so, naming them.
            match run.verdict(&scenario.expect) {
                RunVerdict::Held => assert!(verdict.starts_with("held: every promised")),
                RunVerdict::ExpectedViolation => {
                    assert!(verdict.starts_with("expected violation: lost-write"), "{verdict}")
                }
                RunVerdict::Unexpected(_) => panic!("seed {seed}: {verdict}"),
            }
            for kind in allowed.iter().filter(|&&kind| all_hold || kind != "lost-write") {
                assert!(verdict.contains(kind), "seed {seed}: `{kind}` not named in {verdict}");
                shown += 1;
            }
            let text = logjam_reports::run_text(&scenario, run, &replay);
            assert!(text.contains(&format!("verdict    {verdict}\n")), "text:\n{text}");
            let report = RunReport::new(&scenario, run, &replay);
            assert!(report.markdown().contains(&format!("| verdict | {verdict} |")));
            let json: serde_json::Value = serde_json::from_str(&report.json()).expect("JSON");
            assert_eq!(json["verdict"], verdict.as_str());
            let json: serde_json::Value =
                serde_json::from_str(&logjam_reports::run_json(&scenario, run, &replay))
                    .expect("JSON");
            assert_eq!(json["verdict_text"], verdict.as_str());
            let schedule = logjam_sim::run::schedule_for(&scenario, seed);
            let html = logjam_reports::html::timeline(
                &scenario,
                &schedule,
                run,
                &output.trace,
                output.history.as_ref(),
                &replay,
            );
            assert!(html.contains(&logjam_reports::html::esc(&verdict)), "html: {verdict}");
        }
    }
    assert!(shown > 0, "some run showed an allowed anomaly");
}
