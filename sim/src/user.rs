//! Your own aggregate on the simulated log.
//!
//! The event-store clients of the simulator run any [`EsDomain`]: an aggregate of the
//! event store (`Aggregate` + `Schema` + `Snapshotted`), a way to draw the work an
//! operation stands for (from the operation's own hash, so that dropping one operation
//! while shrinking leaves the others as they were), the streams it goes to, and
//! optionally invariants over a state. The four built-in domains (bank, cart,
//! inventory, table) are users of this same trait; the scenario's
//! `eventstore.domain` picks one of them, or names yours.
//!
//! A run is judged by the domain-independent event-store checks (stream contiguity, at
//! most once per command id, lost updates) and by the checks that need a fold. For the
//! built-in domains those use the model's reference folds, written independently of
//! the event store's code. For your domain there is no such reference: replay
//! equivalence, folds agreeing across replicas and the business rules (your
//! aggregate's `validate` accepting every stored event, your invariants holding on
//! every prefix of every stream) are judged with your own `Aggregate::apply` fold.
//! That is replay equivalence against your own fold, not an independent reference: a
//! bug your handler and your fold share is not seen. Every snapshot load is checked
//! against the full fold from scratch (the command loop asserts it). Projections of
//! a user's domain are not run yet (projection-equivalence says "not checked").
//!
//! A broken invariant is a `business-rules` violation whose witness names the stream,
//! the version and offset of the event after which it broke, the command, the
//! invariant's name and the state's `Debug`.
//!
//! ```
//! use logjam_eventstore::Aggregate;
//! use logjam_eventstore::schema::{NoUpcaster, Schema};
//! use logjam_eventstore::snapshot::Snapshotted;
//! use logjam_sim::user::{Draw, EsDomain, EsSuite, Invariant, Work};
//! use serde::{Deserialize, Serialize};
//!
//! /// A counter that never goes past 10.
//! #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
//! struct Counter(u32);
//!
//! impl Aggregate for Counter {
//!     type Command = u32;
//!     type Event = u32;
//!     type Error = String;
//!     fn handle(&self, add: &u32) -> Result<Vec<u32>, String> {
//!         if self.0 + add > 10 { Err("full".into()) } else { Ok(vec![*add]) }
//!     }
//!     fn apply(&mut self, add: &u32) {
//!         self.0 += add;
//!     }
//! }
//! impl Schema for Counter {
//!     const SCHEMA_VERSION: u16 = 1;
//!     type Upcaster = NoUpcaster<u32>;
//! }
//! impl Snapshotted for Counter {
//!     const STATE_SCHEMA_VERSION: u16 = 1;
//! }
//!
//! struct Counters;
//! impl EsDomain for Counters {
//!     type Aggregate = Counter;
//!     fn name(&self) -> &str {
//!         "counters"
//!     }
//!     fn work(&self, draw: &Draw) -> Work<Counter> {
//!         let stream = format!("counter-{}", draw.aggregate);
//!         Work::Command { stream, command: 1 + (draw.hash % 3) as u32 }
//!     }
//!     fn invariants(&self) -> Vec<Invariant<Counter>> {
//!         vec![Invariant::new("at-most-10", |c: &Counter| {
//!             if c.0 <= 10 { Ok(()) } else { Err(format!("{} > 10", c.0)) }
//!         })]
//!     }
//! }
//!
//! let scenario = r#"
//!     name = "counters"
//!     system = "event-store"
//!     [cluster]
//!     brokers = 3
//!     partitions = 2
//!     replication_factor = 3
//!     min_insync_replicas = 2
//!     [workload]
//!     producers = 2
//!     consumers = 0
//!     ops_per_s = 20
//!     [eventstore]
//!     aggregates = 3
//!     [faults]
//!     crash = { every = ["1s", "2s"], down_for = ["100ms", "500ms"] }
//!     [phases]
//!     chaos = "2s"
//!     quiet = "3s"
//!     [expect]
//!     all_hold = true
//! "#;
//! let suite = EsSuite::new(Counters, scenario).unwrap();
//! let run = suite.run_seed(1);
//! assert_eq!(suite.verdict(&run), logjam_sim::run::RunVerdict::Held, "{:?}", run.checks);
//! ```

use std::any::Any;
use std::fmt;
use std::path::Path;
use std::rc::Rc;

use logjam_eventstore::Aggregate;
use logjam_eventstore::command::multi::{MultiCommandLoop, Part};
use logjam_eventstore::command::{COMMAND_ATTEMPTS_DEFAULT, CommandLoop};
use logjam_eventstore::domains::bank::{Account, BankCommand, account_stream};
use logjam_eventstore::domains::cart::{Cart, CartCommand, cart_stream};
use logjam_eventstore::domains::inventory::{Inventory, InventoryCommand, sku_stream};
use logjam_eventstore::domains::table::{RowCommand, Table, table_stream};
use logjam_eventstore::envelope::Envelope;
use logjam_eventstore::schema::decode_event;
use logjam_eventstore::snapshot::Snapshotted;
use logjam_model::es::{UserFold, UserState};
use rand::SeedableRng;
use serde::{Deserialize as _, Serialize};
use serde_json::Value;

use crate::es_client::{ErasedLoop, Stage};
use crate::run::{RunResult, RunVerdict, Schedule};
use crate::scenario::{Scenario, ScenarioError};

/// What an operation of the schedule gives a domain to draw its work from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Draw {
    /// The aggregate the operation names, `0..aggregates` (the scenario's
    /// `eventstore.aggregates`).
    pub aggregate: u32,
    /// How many aggregates the scenario has (at least 2).
    pub aggregates: u32,
    /// The scenario's `eventstore.deposits_only`: a domain may draw only commands that
    /// never refuse or span streams (the bank: deposits).
    pub deposits_only: bool,
    /// The operation's own hash (of its time, node, aggregate and the run's seed).
    pub hash: u64,
}

impl Draw {
    /// A random generator of this operation alone, seeded from its hash: draw as much
    /// as you like from it without moving any other part of the run.
    pub fn rng(&self) -> crate::SimRng {
        crate::SimRng::seed_from_u64(self.hash)
    }
}

/// A unit of work: one command on one stream, or a transfer across two streams.
pub enum Work<A: Aggregate> {
    /// One command on one stream (retried under its command id until it is known to
    /// have landed or not).
    Command {
        /// The stream (`seat-3`): a name without `#`, at most 255 bytes.
        stream: String,
        /// The command.
        command: A::Command,
    },
    /// A transfer from `source` to `target` (the bank's transfers).
    Transfer(Transfer<A>),
}

/// A transfer across two streams. Without transactions it is a saga: a debit on
/// `source`, then a credit on `target`, or, when the credit cannot be made, a refund
/// on `source`; each step retried under its command id. When the event store has
/// transactions, the debit and the credit are one command across both streams,
/// appended whole or not at all.
pub struct Transfer<A: Aggregate> {
    /// Where it is debited (and refunded).
    pub source: String,
    /// Where it is credited.
    pub target: String,
    /// The command of each step, given the transfer's id (unique in the run).
    pub step: Rc<dyn Fn(TransferStep, u64) -> A::Command>,
}

/// A step of a transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransferStep {
    /// Take it from the source.
    Debit,
    /// Give it to the target.
    Credit,
    /// Give it back to the source (the credit could not be made).
    Refund,
}

/// A named invariant over a stream's state, judged after every event of every stream
/// on every replica.
pub struct Invariant<A> {
    /// Its name, as a witness names it (`seats-never-oversold`).
    pub name: String,
    /// `Ok` when the state keeps it, else why not.
    pub check: fn(&A) -> Result<(), String>,
}

impl<A> Invariant<A> {
    /// An invariant named `name`.
    pub fn new(name: &str, check: fn(&A) -> Result<(), String>) -> Invariant<A> {
        Invariant { name: name.to_owned(), check }
    }
}

/// A domain the event-store clients run: your aggregate, its work and its invariants.
pub trait EsDomain {
    /// The aggregate. Its commands and events are serde types (the history records
    /// them as JSON).
    type Aggregate: Snapshotted + PartialEq + fmt::Debug + 'static;

    /// The name scenarios give it (`eventstore.domain`).
    fn name(&self) -> &str;

    /// The work an operation stands for. A pure function of `draw`.
    fn work(&self, draw: &Draw) -> Work<Self::Aggregate>;

    /// Invariants every state of every stream keeps (none by default).
    fn invariants(&self) -> Vec<Invariant<Self::Aggregate>> {
        Vec::new()
    }

    /// True only for the built-in domains, which the model judges with reference folds
    /// of its own. A domain of yours is judged with its own fold (see the module doc).
    fn model_reference(&self) -> bool {
        false
    }
}

/// The event-store clients' view of a domain, whatever its aggregate: implemented for
/// every [`EsDomain`]. The harness's entry points take it as `&dyn DomainSpec`.
pub trait DomainSpec {
    /// The name scenarios give it.
    fn name(&self) -> &str;
    /// The work an operation stands for.
    fn work(&self, draw: &Draw) -> AnyWork;
    /// A stored event of `stream` at `offset` as JSON, or why it does not decode.
    fn decode(&self, stream: &str, offset: u64, envelope: &Envelope) -> Result<Value, String>;
    /// The fold the model judges it with; `None`: the model's own reference fold.
    fn fold(&self) -> Option<Box<dyn UserFold>>;
}

/// A unit of work of some domain, ready for an event-store client.
#[derive(Clone)]
pub struct AnyWork(pub(crate) Rc<dyn ErasedWork>);

impl fmt::Debug for AnyWork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_transfer() { "AnyWork(transfer)" } else { "AnyWork(command)" })
    }
}

/// A unit of work with its aggregate erased: what the client asks of it.
pub(crate) trait ErasedWork {
    fn is_transfer(&self) -> bool;
    /// One command of the work: its stream, its JSON and its loop.
    fn step(
        &self,
        stage: Stage,
        transfer: u64,
        command_id: u64,
        snapshots: bool,
    ) -> (String, Value, Box<dyn ErasedLoop>);
    /// A transfer as one command across its streams: (source, debit JSON), (target,
    /// credit JSON), and the loop.
    fn whole(
        &self,
        transfer: u64,
        ids: (u64, u64),
    ) -> ((String, Value), (String, Value), Box<dyn ErasedLoop>);
}

fn json<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("commands serialize")
}

impl<A> ErasedWork for Work<A>
where
    A: Snapshotted + PartialEq + fmt::Debug + 'static,
    A::Command: Serialize + Clone,
{
    fn is_transfer(&self) -> bool {
        matches!(self, Work::Transfer(_))
    }

    fn step(
        &self,
        stage: Stage,
        transfer: u64,
        command_id: u64,
        snapshots: bool,
    ) -> (String, Value, Box<dyn ErasedLoop>) {
        let (stream, command) = match (self, stage) {
            (Work::Command { stream, command }, _) => (stream.clone(), command.clone()),
            (Work::Transfer(t), Stage::Debit) => {
                (t.source.clone(), (t.step)(TransferStep::Debit, transfer))
            }
            (Work::Transfer(t), Stage::Credit) => {
                (t.target.clone(), (t.step)(TransferStep::Credit, transfer))
            }
            (Work::Transfer(t), Stage::Refund) => {
                (t.source.clone(), (t.step)(TransferStep::Refund, transfer))
            }
            (Work::Transfer(_), Stage::Single | Stage::Whole) => {
                unreachable!("a transfer is a saga here")
            }
        };
        let shown = json(&command);
        let command_loop = CommandLoop::<A>::new(&stream, command_id, command);
        let command_loop = if snapshots { command_loop.with_snapshots() } else { command_loop };
        (stream, shown, Box::new(command_loop))
    }

    fn whole(
        &self,
        transfer: u64,
        (debit_id, credit_id): (u64, u64),
    ) -> ((String, Value), (String, Value), Box<dyn ErasedLoop>) {
        let Work::Transfer(t) = self else { unreachable!("a transfer") };
        let debit = (t.step)(TransferStep::Debit, transfer);
        let credit = (t.step)(TransferStep::Credit, transfer);
        let (debit_json, credit_json) = (json(&debit), json(&credit));
        let parts = vec![
            Part { stream: t.source.clone(), command_id: debit_id, command: debit },
            Part { stream: t.target.clone(), command_id: credit_id, command: credit },
        ];
        let command_loop = MultiCommandLoop::<A>::new(parts, COMMAND_ATTEMPTS_DEFAULT);
        ((t.source.clone(), debit_json), (t.target.clone(), credit_json), Box::new(command_loop))
    }
}

impl<D: EsDomain> DomainSpec for D
where
    <D::Aggregate as Aggregate>::Command: Serialize + Clone,
{
    fn name(&self) -> &str {
        EsDomain::name(self)
    }

    fn work(&self, draw: &Draw) -> AnyWork {
        AnyWork(Rc::new(EsDomain::work(self, draw)))
    }

    fn decode(&self, stream: &str, offset: u64, envelope: &Envelope) -> Result<Value, String> {
        let event = decode_event::<D::Aggregate>(stream, offset, envelope)
            .map_err(|error| error.to_string())?;
        Ok(serde_json::to_value(&event).expect("events serialize"))
    }

    fn fold(&self) -> Option<Box<dyn UserFold>> {
        if self.model_reference() {
            return None;
        }
        let invariants = Rc::new(self.invariants());
        Some(Box::new(Fold::<D::Aggregate> { invariants }))
    }
}

/// The user's fold as the model asks for it.
struct Fold<A> {
    invariants: Rc<Vec<Invariant<A>>>,
}

impl<A: Aggregate + PartialEq + fmt::Debug + 'static> UserFold for Fold<A> {
    fn initial(&self) -> Box<dyn UserState> {
        Box::new(Folded { state: A::default(), invariants: self.invariants.clone() })
    }
}

struct Folded<A> {
    state: A,
    invariants: Rc<Vec<Invariant<A>>>,
}

fn parse<A: Aggregate>(event: &Value) -> Result<A::Event, String> {
    A::Event::deserialize(event)
        .map_err(|error| format!("{event} is not an event of the domain: {error}"))
}

impl<A: Aggregate + PartialEq + fmt::Debug + 'static> UserState for Folded<A> {
    fn validate(&self, event: &Value) -> Result<(), String> {
        let event = parse::<A>(event)?;
        self.state.validate(&event).map_err(|error| error.to_string())
    }

    fn apply(&mut self, event: &Value) {
        let event = parse::<A>(event).expect("validate accepted it");
        self.state.apply(&event);
    }

    fn broken_invariant(&self) -> Option<(String, String)> {
        self.invariants.iter().find_map(|invariant| {
            (invariant.check)(&self.state).err().map(|why| (invariant.name.clone(), why))
        })
    }

    fn describe(&self) -> String {
        format!("{:?}", self.state)
    }

    fn same(&self, other: &dyn UserState) -> bool {
        other.as_any().downcast_ref::<Folded<A>>().is_some_and(|other| other.state == self.state)
    }

    fn clone_box(&self) -> Box<dyn UserState> {
        Box::new(Folded { state: self.state.clone(), invariants: self.invariants.clone() })
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The bank: deposits, withdrawals and transfers between accounts (`acct-N`).
pub struct BankDomain;
/// Shopping carts (`cart-N`).
pub struct CartDomain;
/// Inventory reservations per sku (`sku-N`).
pub struct InventoryDomain;
/// Table rows whose changes are published for change data capture (`table-N`).
pub struct TableDomain;

impl EsDomain for BankDomain {
    type Aggregate = Account;
    fn name(&self) -> &str {
        "bank"
    }
    fn work(&self, draw: &Draw) -> Work<Account> {
        let (account, hash) = (draw.aggregate, draw.hash);
        let amount = 1 + (hash >> 8) % 100;
        let stream = account_stream(u64::from(account));
        let command = |command| Work::Command { stream: stream.clone(), command };
        if draw.deposits_only {
            return command(BankCommand::Deposit { amount });
        }
        match hash % 10 {
            0..=3 => command(BankCommand::Deposit { amount }),
            4..=6 => command(BankCommand::Withdraw { amount }),
            _ => {
                let accounts = draw.aggregates;
                let to = (account + 1 + ((hash >> 20) as u32) % (accounts - 1)) % accounts;
                let amount = amount.div_ceil(2);
                let (source, target) = (stream.clone(), account_stream(u64::from(to)));
                let (from_stream, to_stream) = (source.clone(), target.clone());
                let step = move |step: TransferStep, transfer: u64| match step {
                    TransferStep::Debit => {
                        BankCommand::Debit { transfer, to: to_stream.clone(), amount }
                    }
                    TransferStep::Credit => {
                        BankCommand::Credit { transfer, from: from_stream.clone(), amount }
                    }
                    TransferStep::Refund => BankCommand::Refund { transfer, amount },
                };
                Work::Transfer(Transfer { source, target, step: Rc::new(step) })
            }
        }
    }
    fn model_reference(&self) -> bool {
        true
    }
}

impl EsDomain for CartDomain {
    type Aggregate = Cart;
    fn name(&self) -> &str {
        "cart"
    }
    fn work(&self, draw: &Draw) -> Work<Cart> {
        let hash = draw.hash;
        let (sku, qty) = (((hash >> 8) % 5) as u32, 1 + ((hash >> 16) % 3) as u32);
        let command = match hash % 20 {
            0..=11 => CartCommand::AddItem { sku, qty },
            12..=17 => CartCommand::RemoveItem { sku, qty },
            _ => CartCommand::CheckOut,
        };
        Work::Command { stream: cart_stream(u64::from(draw.aggregate)), command }
    }
    fn model_reference(&self) -> bool {
        true
    }
}

impl EsDomain for InventoryDomain {
    type Aggregate = Inventory;
    fn name(&self) -> &str {
        "inventory"
    }
    fn work(&self, draw: &Draw) -> Work<Inventory> {
        let hash = draw.hash;
        // Orders are named by the operation, so a release names a reservation that may
        // exist (made by an earlier operation with the same order).
        let order = (hash >> 24) % 8;
        let qty = 1 + ((hash >> 16) % 4) as u32;
        let command = match hash % 10 {
            0..=2 => InventoryCommand::Stock { qty: qty * 3 },
            3..=7 => InventoryCommand::Reserve { order, qty },
            _ => InventoryCommand::Release { order },
        };
        Work::Command { stream: sku_stream(u64::from(draw.aggregate)), command }
    }
    fn model_reference(&self) -> bool {
        true
    }
}

impl EsDomain for TableDomain {
    type Aggregate = Table;
    fn name(&self) -> &str {
        "table"
    }
    fn work(&self, draw: &Draw) -> Work<Table> {
        let hash = draw.hash;
        // Few keys, so inserts, updates and deletes meet present and absent rows.
        let key = (hash >> 8) % 6;
        let value = 1 + ((hash >> 16) % 1000) as i64;
        let command = match hash % 10 {
            0..=3 => RowCommand::Insert { key, value },
            4..=7 => RowCommand::Update { key, value },
            _ => RowCommand::Delete { key },
        };
        Work::Command { stream: table_stream(u64::from(draw.aggregate)), command }
    }
    fn model_reference(&self) -> bool {
        true
    }
}

/// The built-in domains, by name.
const BUILTIN: [&dyn DomainSpec; 4] = [&BankDomain, &CartDomain, &InventoryDomain, &TableDomain];

/// The built-in domain named `name` (bank, cart, inventory, table).
pub fn builtin(name: &str) -> Option<&'static dyn DomainSpec> {
    BUILTIN.iter().copied().find(|domain| domain.name() == name)
}

/// A scenario and your domain: the entry point of a test of your own aggregate.
///
/// The scenario is TOML as in `scenarios/` (cluster, faults, phases, expectation);
/// its `eventstore.domain` names your domain, or is left out. See the module doc.
pub struct EsSuite {
    scenario: Scenario,
    domain: Box<dyn DomainSpec>,
    /// Where `assert_holds` writes the shrunk schedule of a failure.
    regressions_dir: std::path::PathBuf,
}

/// Candidate runs the shrinker of `EsSuite::assert_holds` may make.
pub const SHRINK_RUNS_MAX: u64 = 300;

impl EsSuite {
    /// `domain` under the scenario `text` (its path in messages: `<name>.toml`).
    pub fn new<D: DomainSpec + 'static>(domain: D, text: &str) -> Result<EsSuite, ScenarioError> {
        let path = format!("{}.toml", domain.name());
        let scenario = Scenario::parse_for_domain(text, &path, domain.name())?;
        Ok(EsSuite::of(scenario, domain))
    }

    /// `domain` under the scenario file at `path`.
    pub fn load<D: DomainSpec + 'static>(domain: D, path: &Path) -> Result<EsSuite, ScenarioError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| ScenarioError {
            path: shown.clone(),
            place: None,
            message: format!("cannot read: {error}"),
        })?;
        let scenario = Scenario::parse_for_domain(&text, &shown, domain.name())?;
        Ok(EsSuite::of(scenario, domain))
    }

    fn of<D: DomainSpec + 'static>(scenario: Scenario, domain: D) -> EsSuite {
        let regressions_dir = Path::new("target").join("logjam-regressions");
        EsSuite { scenario, domain: Box::new(domain), regressions_dir }
    }

    /// Where `assert_holds` writes a failure's shrunk schedule (by default
    /// `target/logjam-regressions/`, under the test's working directory).
    pub fn with_regressions_dir(mut self, dir: &Path) -> EsSuite {
        self.regressions_dir = dir.to_path_buf();
        self
    }

    /// The checked scenario.
    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    /// The domain.
    pub fn domain(&self) -> &dyn DomainSpec {
        self.domain.as_ref()
    }

    /// Runs one seed.
    pub fn run_seed(&self, seed: u64) -> RunResult {
        self.run_schedule(&crate::run::schedule_for(&self.scenario, seed))
    }

    /// Runs an explicit schedule (a shrunk one, a regression's).
    pub fn run_schedule(&self, schedule: &Schedule) -> RunResult {
        crate::run::run_full_with(&self.scenario, schedule, 0, self.domain.as_ref()).result
    }

    /// A run judged against what the scenario expects (`[expect]`).
    pub fn verdict(&self, run: &RunResult) -> RunVerdict {
        run.verdict(&self.scenario.expect)
    }

    /// Runs every seed of `seeds` (one after another) and panics at the first that
    /// does not run as the scenario expects, with the seed, the invariant, its witness,
    /// how to replay it, and its schedule shrunk (at most `SHRINK_RUNS_MAX` runs),
    /// written as a schedule file you can commit as a regression.
    pub fn assert_holds(&self, seeds: std::ops::Range<u64>) {
        for seed in seeds {
            let run = self.run_seed(seed);
            if let RunVerdict::Unexpected(why) = self.verdict(&run) {
                panic!("{}", self.failure(seed, &run, &why));
            }
        }
    }

    /// Runs seeds of `seeds` until one breaks `invariant` (a violation, or the anomaly
    /// the scenario expects) and returns it; panics if none does.
    pub fn assert_caught(&self, invariant: &str, seeds: std::ops::Range<u64>) -> u64 {
        for seed in seeds.clone() {
            let run = self.run_seed(seed);
            if crate::schedule_file::anomalies(&run).iter().any(|kind| kind == invariant) {
                return seed;
            }
        }
        panic!(
            "{}: `{invariant}` was not caught in seeds {}..{} (domain {})",
            self.scenario.name,
            seeds.start,
            seeds.end,
            self.domain.name()
        )
    }

    /// The panic message of a failing seed, after shrinking it and writing the file.
    fn failure(&self, seed: u64, run: &RunResult, why: &str) -> String {
        use crate::schedule_file::{Expectation, FORMAT, Origin, ScheduleFile, anomalies};
        let anomaly = crate::schedule_file::primary_anomaly(&self.scenario, run)
            .unwrap_or_else(|| "limit".to_owned());
        let original = crate::run::schedule_for(&self.scenario, seed);
        let origin = Origin {
            seed,
            faults: original.faults.len().saturating_sub(1),
            ops: original.ops.len(),
        };
        let mut fails =
            |candidate: &Schedule| anomalies(&self.run_schedule(candidate)).contains(&anomaly);
        let mut budget = |progress: crate::shrink::Progress| progress.runs < SHRINK_RUNS_MAX;
        let shrunk = crate::shrink::shrink_with(original, &mut fails, &mut budget);
        let file = ScheduleFile {
            format: FORMAT.to_owned(),
            scenario: self.scenario.path.clone(),
            anomaly: anomaly.clone(),
            expect: Expectation::Holds,
            note: format!("{} seed {seed}: {why}", self.scenario.name),
            origin: Some(origin.clone()),
            schedule: shrunk.schedule.clone(),
        };
        let name = format!("{}-seed-{seed}.json", self.scenario.name);
        let path = self.regressions_dir.join(name);
        let written = std::fs::create_dir_all(&self.regressions_dir)
            .and_then(|()| std::fs::write(&path, file.to_json()));
        let saved = match written {
            Ok(()) => format!("written to {}", path.display()),
            Err(error) => format!("not written ({}: {error})", path.display()),
        };
        let check = run.checks.iter().find(|check| check.invariant == anomaly);
        let witness = check.and_then(|check| check.witness.clone()).unwrap_or_default();
        let lines = check.map(|check| check.witness_lines.join("\n    ")).unwrap_or_default();
        format!(
            "{scenario} (domain {domain}) seed {seed}: {why}\n\
             invariant: {anomaly}\n\
             witness:   {witness}\n    {lines}\n\
             replay:    suite.run_seed({seed}), or suite.run_schedule(&ScheduleFile::parse(&text, \"{path}\")?.schedule) with the file's text\n\
             shrunk:    {faults} faults and {ops} operations (from {of} and {of_ops}) in {runs} runs{early}, {saved}\n{json}",
            scenario = self.scenario.name,
            domain = self.domain.name(),
            path = path.display(),
            faults = shrunk.schedule.faults.len().saturating_sub(1),
            ops = shrunk.schedule.ops.len(),
            of = origin.faults,
            of_ops = origin.ops,
            runs = shrunk.runs,
            early = if shrunk.stopped_early { " (budget spent: smaller may exist)" } else { "" },
            json = file.to_json(),
        )
    }
}
