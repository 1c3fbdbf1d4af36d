//! Configuration menus: a scenario's configuration value given as a list of values to
//! draw from (`min_insync_replicas = [1, 2, 3]`), so that every seed runs a configuration
//! of its own (FoundationDB's randomized knobs, Jepsen's test matrix) and the search
//! reaches combinations nobody wrote a scenario for.
//!
//! A menu is found in the text (`Menus::find`), a draw is spliced into the text in place
//! of each menu (`Menus::pin`), and the result is checked like any scenario file: the
//! drawn configuration is a scenario of its own, judged by what it promises. Draws come
//! from the seed's `Config` stream, so they never shift a fault or an operation draw;
//! constraints between values (min ISR <= replication factor <= brokers, ...) are kept
//! by drawing again until the scenario checks (uniform over the valid combinations),
//! and the file is refused when a menu value can never be part of a valid one.

use std::ops::Range;

use rand::Rng;

use crate::SimRng;

/// The keys that may hold a menu: configuration values that are never arrays
/// themselves (a range such as `network.latency` is, and is no menu).
pub const MENU_KEYS: &[&str] = &[
    "cluster.brokers",
    "cluster.partitions",
    "cluster.replication_factor",
    "cluster.min_insync_replicas",
    "cluster.acks",
    "cluster.unclean_leader_election",
    "cluster.flush",
    "cluster.truncation",
    "cluster.election",
    "cluster.replica_fetch_wait",
    "cluster.verify_on_open",
    "cluster.segment_kib",
    "cluster.replica_lag_max",
    "cluster.session_timeout",
    "workload.producers",
    "workload.consumers",
    "workload.ops_per_s",
    "workload.idempotent",
    "transactions.protocol",
    "transactions.timeout",
    "transactions.partitions_per_txn",
    "transactions.read_uncommitted",
    "transactions.processors",
    "transactions.plain_producers",
    "transactions.offsets",
    "eventstore.domain",
    "eventstore.aggregates",
    "eventstore.expected_versions",
    "eventstore.deposits_only",
    "faults.swarm",
    "faults.clients",
    "faults.crash.max_down",
    "faults.disk.nodes",
    "network.shape",
    "network.connections",
];

/// Draws tried before a seed's configuration falls back to walking the combinations.
pub const DRAW_ATTEMPTS_MAX: u32 = 256;

/// Combinations walked, at most, when draws keep failing (and when the file is checked).
pub const COMBINATIONS_WALKED_MAX: u64 = 1 << 16;

/// Values in one menu, at most.
pub const MENU_VALUES_MAX: usize = 64;

/// One value of a menu, as the file wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MenuValue {
    /// The value's source text (`2`, `"never"`, `{ every_ms = 50 }`).
    pub source: String,
    /// Where it is in the file.
    pub span: Range<usize>,
}

impl MenuValue {
    /// For people: the value without a string's quotes (`never`, `2`).
    pub fn shown(&self) -> String {
        self.source.trim_matches('"').to_owned()
    }
}

/// One key whose value is a menu.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Menu {
    /// The dotted key (`cluster.min_insync_replicas`).
    pub key: &'static str,
    /// The menu's whole array in the file.
    pub span: Range<usize>,
    /// Its values, in the file's order (none twice).
    pub values: Vec<MenuValue>,
}

/// Every menu of a scenario file, in the order of `MENU_KEYS`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Menus {
    /// The menus, each key at most once.
    pub menus: Vec<Menu>,
}

/// A menu problem found in the text: the place and the message.
pub type MenuProblem = (Range<usize>, String);

impl Menus {
    /// The menus of `text`; `Ok` with none when the text has none or does not parse
    /// (the scenario parser then says what is wrong with it).
    pub fn find(text: &str) -> Result<Menus, MenuProblem> {
        let Ok(document) = toml_edit::ImDocument::parse(text) else {
            return Ok(Menus { menus: Vec::new() });
        };
        let mut menus = Vec::new();
        for &key in MENU_KEYS {
            let Some(value) = lookup(document.as_table(), key) else { continue };
            let toml_edit::Value::Array(array) = value else { continue };
            let span = array.span().unwrap_or(0..0);
            if array.is_empty() {
                return Err((span, format!("{key}: a menu with no values (give one or more)")));
            }
            if array.len() > MENU_VALUES_MAX {
                let message = format!("{key}: a menu of at most {MENU_VALUES_MAX} values");
                return Err((span, message));
            }
            let mut values: Vec<MenuValue> = Vec::new();
            for element in array.iter() {
                let Some(span) = element.span() else { continue };
                let source = text[span.clone()].to_owned();
                if values.iter().any(|value| value.source == source) {
                    return Err((span, format!("{key}: `{source}` is in the menu twice")));
                }
                values.push(MenuValue { source, span });
            }
            menus.push(Menu { key, span, values });
        }
        Ok(Menus { menus })
    }

    /// True when the file has no menus: a scenario of one configuration.
    pub fn is_empty(&self) -> bool {
        self.menus.is_empty()
    }

    /// The text with menu `i`'s array replaced by its value `choice[i]`.
    pub fn pin(&self, text: &str, choice: &[usize]) -> String {
        debug_assert_eq!(choice.len(), self.menus.len());
        let mut splices: Vec<(&Range<usize>, &str)> = self
            .menus
            .iter()
            .zip(choice)
            .map(|(menu, &index)| (&menu.span, menu.values[index].source.as_str()))
            .collect();
        splices.sort_by_key(|(span, _)| span.start);
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for (span, value) in splices {
            out.push_str(&text[at..span.start]);
            out.push_str(value);
            at = span.end;
        }
        out.push_str(&text[at..]);
        out
    }

    /// A draw: one value index per menu, each uniform.
    pub fn draw(&self, rng: &mut SimRng) -> Vec<usize> {
        self.menus.iter().map(|menu| rng.random_range(0..menu.values.len())).collect()
    }

    /// How many combinations there are (saturating).
    pub fn combinations(&self) -> u64 {
        self.menus
            .iter()
            .fold(1u64, |product, menu| product.saturating_mul(menu.values.len() as u64))
    }

    /// Combination number `n` (mixed radix, the first menu fastest).
    pub fn combination(&self, mut n: u64) -> Vec<usize> {
        self.menus
            .iter()
            .map(|menu| {
                let len = menu.values.len() as u64;
                let index = n % len;
                n /= len;
                index as usize
            })
            .collect()
    }

    /// The index of the value `shown` of menu `key`, if the menus have it.
    pub fn index_of(&self, key: &str, shown: &str) -> Option<(usize, usize)> {
        let menu = self.menus.iter().position(|menu| menu.key == key)?;
        let value = self.menus[menu].values.iter().position(|value| value.shown() == shown)?;
        Some((menu, value))
    }

    /// A choice as (key, value) pairs, for people and files.
    pub fn named(&self, choice: &[usize]) -> Vec<(String, String)> {
        self.menus
            .iter()
            .zip(choice)
            .map(|(menu, &index)| (menu.key.to_owned(), menu.values[index].shown()))
            .collect()
    }

    /// Every (key, value) the menus hold, in order.
    pub fn all_values(&self) -> Vec<(String, String)> {
        self.menus
            .iter()
            .flat_map(|menu| menu.values.iter().map(|value| (menu.key.to_owned(), value.shown())))
            .collect()
    }
}

/// The value at a dotted key, through tables and inline tables.
fn lookup<'d>(table: &'d toml_edit::Table, key: &str) -> Option<&'d toml_edit::Value> {
    let mut parts = key.split('.');
    let first = parts.next()?;
    let mut item = table.get(first)?;
    for part in parts {
        item = match item {
            toml_edit::Item::Table(table) => table.get(part)?,
            toml_edit::Item::Value(toml_edit::Value::InlineTable(table)) => {
                return lookup_inline(table, part);
            }
            _ => return None,
        };
    }
    item.as_value()
}

fn lookup_inline<'d>(table: &'d toml_edit::InlineTable, key: &str) -> Option<&'d toml_edit::Value> {
    table.get(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{StreamId, stream};

    const TEXT: &str = "[cluster]\nbrokers = [3, 5]\nacks = [\"1\", \"all\"]\nflush = [\"never\", { every_ms = 50 }]\n[faults]\ncrash = { every = [\"1s\", \"2s\"], max_down = [1, 2] }\n";

    #[test]
    fn menus_are_found_and_pinned_in_place() {
        let menus = Menus::find(TEXT).unwrap();
        let keys: Vec<&str> = menus.menus.iter().map(|menu| menu.key).collect();
        assert_eq!(
            keys,
            ["cluster.brokers", "cluster.acks", "cluster.flush", "faults.crash.max_down"]
        );
        assert_eq!(menus.combinations(), 16);
        let pinned = menus.pin(TEXT, &[1, 0, 1, 0]);
        assert_eq!(
            pinned,
            "[cluster]\nbrokers = 5\nacks = \"1\"\nflush = { every_ms = 50 }\n[faults]\ncrash = { every = [\"1s\", \"2s\"], max_down = 1 }\n"
        );
        assert_eq!(
            menus.named(&[1, 0, 1, 0]),
            [
                ("cluster.brokers".to_owned(), "5".to_owned()),
                ("cluster.acks".to_owned(), "1".to_owned()),
                ("cluster.flush".to_owned(), "{ every_ms = 50 }".to_owned()),
                ("faults.crash.max_down".to_owned(), "1".to_owned()),
            ]
        );
        assert_eq!(menus.index_of("cluster.flush", "{ every_ms = 50 }"), Some((2, 1)));
    }

    #[test]
    fn every_combination_is_numbered_once() {
        let menus = Menus::find(TEXT).unwrap();
        let mut seen: Vec<Vec<usize>> =
            (0..menus.combinations()).map(|n| menus.combination(n)).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len() as u64, menus.combinations());
    }

    #[test]
    fn draws_are_a_function_of_the_seed() {
        let menus = Menus::find(TEXT).unwrap();
        let draw = |seed| menus.draw(&mut stream(seed, StreamId::Config));
        assert_eq!(draw(7), draw(7));
        assert!((0..64).map(draw).collect::<std::collections::BTreeSet<_>>().len() > 8);
    }

    #[test]
    fn bad_menus_are_refused_with_their_place() {
        for (text, wanted) in [
            ("[cluster]\nbrokers = []\n", "cluster.brokers: a menu with no values"),
            ("[cluster]\nacks = [\"1\", \"1\"]\n", "cluster.acks: `\"1\"` is in the menu twice"),
        ] {
            let (span, message) = Menus::find(text).unwrap_err();
            assert!(message.starts_with(wanted), "{message}");
            assert!(span.start > 9, "{span:?}");
        }
    }
}
