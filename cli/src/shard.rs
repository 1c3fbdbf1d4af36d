//! `--shard K/N` and `--shard auto`: which slice of a sweep this process runs. `auto`
//! reads K and N from the environment of the engine that started it, so a sweep runs
//! on the engines a team already has rather than a launcher of logjam's own:
//!
//! | engine | K | N |
//! |---|---|---|
//! | explicit (any engine; a GitHub Actions matrix sets them from `strategy.job-index` and `strategy.job-total`) | `LOGJAM_SHARD_INDEX` | `LOGJAM_SHARD_COUNT` |
//! | Kubernetes Indexed Job | `JOB_COMPLETION_INDEX` | `LOGJAM_SHARD_COUNT` (the Job's `completions`, which Kubernetes does not expose: the manifest passes it) |
//! | GitLab CI `parallel: N` | `CI_NODE_INDEX` - 1 (it counts from 1) | `CI_NODE_TOTAL` |
//! | Slurm job array | `SLURM_ARRAY_TASK_ID` - `SLURM_ARRAY_TASK_MIN` (0 if unset) | `SLURM_ARRAY_TASK_COUNT` |
//!
//! The first engine whose index variable is set decides; a variable that is set but
//! wrong (not a number, an index past the count, a count of 0) is refused, naming it.

/// Shards a sweep may be cut into, at most (more would leave most of them empty).
pub const SHARDS_MAX: u64 = 1_000_000;

/// A slice of a sweep: this process runs shard `index` of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// K: which shard, `0..count`.
    pub index: u64,
    /// N: how many.
    pub count: u64,
    /// Where K and N came from (`--shard`, or the engine's environment).
    pub source: &'static str,
}

/// Parses `--shard`'s value: `K/N`, or `auto` (the environment, read through `var`).
pub fn parse(text: &str, var: impl Fn(&str) -> Option<String>) -> Result<Shard, String> {
    if text == "auto" {
        return from_environment(var);
    }
    let parsed = text.split_once('/').and_then(|(k, n)| Some((k.parse().ok()?, n.parse().ok()?)));
    match parsed {
        Some((index, count)) if index < count && count <= SHARDS_MAX => {
            Ok(Shard { index, count, source: "--shard" })
        }
        _ => Err(format!(
            "`{text}`: write K/N with 0 <= K < N <= {SHARDS_MAX} (e.g. 0/4), or `auto` to take them from a Kubernetes Indexed Job, a CI matrix or a Slurm array"
        )),
    }
}

/// An engine: its name, its index and count variables, and what to subtract from the
/// index (a variable, or a fixed base).
struct Engine {
    name: &'static str,
    index: &'static str,
    count: &'static str,
    base: Base,
}

enum Base {
    Fixed(u64),
    Variable(&'static str),
}

const ENGINES: &[Engine] = &[
    Engine {
        name: "LOGJAM_SHARD_INDEX/LOGJAM_SHARD_COUNT",
        index: "LOGJAM_SHARD_INDEX",
        count: "LOGJAM_SHARD_COUNT",
        base: Base::Fixed(0),
    },
    Engine {
        name: "a Kubernetes Indexed Job",
        index: "JOB_COMPLETION_INDEX",
        count: "LOGJAM_SHARD_COUNT",
        base: Base::Fixed(0),
    },
    Engine {
        name: "GitLab CI parallel",
        index: "CI_NODE_INDEX",
        count: "CI_NODE_TOTAL",
        base: Base::Fixed(1),
    },
    Engine {
        name: "a Slurm job array",
        index: "SLURM_ARRAY_TASK_ID",
        count: "SLURM_ARRAY_TASK_COUNT",
        base: Base::Variable("SLURM_ARRAY_TASK_MIN"),
    },
];

fn from_environment(var: impl Fn(&str) -> Option<String>) -> Result<Shard, String> {
    let number = |name: &str| -> Result<Option<u64>, String> {
        match var(name) {
            None => Ok(None),
            Some(text) => text
                .trim()
                .parse::<u64>()
                .map(Some)
                .map_err(|_| format!("auto: {name}={text} is not a whole number")),
        }
    };
    for engine in ENGINES {
        let Some(raw_index) = number(engine.index)? else { continue };
        let count = number(engine.count)?.ok_or_else(|| {
            format!("auto: {} is set ({}), but {} is not", engine.index, raw_index, engine.count)
        })?;
        let base = match engine.base {
            Base::Fixed(base) => base,
            Base::Variable(name) => number(name)?.unwrap_or(0),
        };
        let index = raw_index.checked_sub(base).ok_or_else(|| {
            format!("auto: {}={raw_index} is below its first index {base}", engine.index)
        })?;
        if count == 0 || count > SHARDS_MAX || index >= count {
            return Err(format!(
                "auto: {} gives shard {index} of {count}, not one of 0..{count} (at most {SHARDS_MAX} shards)",
                engine.name
            ));
        }
        return Ok(Shard { index, count, source: engine.name });
    }
    let names: Vec<&str> = ENGINES.iter().map(|engine| engine.index).collect();
    Err(format!(
        "auto: no shard in the environment (none of {} is set); run under a Kubernetes Indexed Job, a CI matrix or a Slurm array, or give --shard K/N",
        names.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| pairs.iter().find(|(key, _)| *key == name).map(|(_, value)| value.to_string())
    }

    #[test]
    fn each_engine_gives_its_shard_and_a_wrong_one_is_refused_by_name() {
        type Case = (&'static [(&'static str, &'static str)], Result<(u64, u64), &'static str>);
        let cases: &[Case] = &[
            (&[("LOGJAM_SHARD_INDEX", "2"), ("LOGJAM_SHARD_COUNT", "4")], Ok((2, 4))),
            (&[("JOB_COMPLETION_INDEX", "0"), ("LOGJAM_SHARD_COUNT", "3")], Ok((0, 3))),
            (&[("CI_NODE_INDEX", "3"), ("CI_NODE_TOTAL", "3")], Ok((2, 3))),
            (&[("SLURM_ARRAY_TASK_ID", "5"), ("SLURM_ARRAY_TASK_COUNT", "8")], Ok((5, 8))),
            (
                &[
                    ("SLURM_ARRAY_TASK_ID", "11"),
                    ("SLURM_ARRAY_TASK_MIN", "10"),
                    ("SLURM_ARRAY_TASK_COUNT", "4"),
                ],
                Ok((1, 4)),
            ),
            (&[], Err("none of LOGJAM_SHARD_INDEX, JOB_COMPLETION_INDEX")),
            (&[("JOB_COMPLETION_INDEX", "1")], Err("but LOGJAM_SHARD_COUNT is not")),
            (&[("CI_NODE_INDEX", "0"), ("CI_NODE_TOTAL", "2")], Err("CI_NODE_INDEX=0 is below")),
            (&[("LOGJAM_SHARD_INDEX", "4"), ("LOGJAM_SHARD_COUNT", "4")], Err("shard 4 of 4")),
            (
                &[("LOGJAM_SHARD_INDEX", "x"), ("LOGJAM_SHARD_COUNT", "4")],
                Err("LOGJAM_SHARD_INDEX=x"),
            ),
            (&[("SLURM_ARRAY_TASK_ID", "0"), ("SLURM_ARRAY_TASK_COUNT", "0")], Err("of 0")),
        ];
        for (pairs, expected) in cases {
            let got = parse("auto", env(pairs)).map(|shard| (shard.index, shard.count));
            match (got, expected) {
                (Ok(got), Ok(expected)) => assert_eq!(got, *expected, "{pairs:?}"),
                (Err(error), Err(words)) => assert!(error.contains(words), "{pairs:?}: {error}"),
                (got, expected) => panic!("{pairs:?}: {got:?}, expected {expected:?}"),
            }
        }
        assert_eq!(parse("1/3", env(&[])).map(|s| (s.index, s.count)), Ok((1, 3)));
        assert!(parse("3/3", env(&[])).is_err() && parse("a/b", env(&[])).is_err());
    }
}
