//! Checks history files and prints each verdict, without building the CLI:
//! `cargo run -p logjam-model --example check_file -- FILE...`. Exit 1 if any does
//! not hold, 2 on bad input.

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut code = ExitCode::SUCCESS;
    for path in std::env::args().skip(1) {
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) => {
                eprintln!("{path}: {error}");
                return ExitCode::from(2);
            }
        };
        match logjam_model::parse_history_str(&text) {
            Ok(history) => {
                let verdict = logjam_model::check(&history);
                println!("== {path}\n{verdict}");
                if !verdict.holds() {
                    code = ExitCode::from(1);
                }
            }
            Err(error) => {
                eprintln!("{}", error.in_file(&path));
                return ExitCode::from(2);
            }
        }
    }
    code
}
