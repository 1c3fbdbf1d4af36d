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
//! against the full fold from scratch (the command loop asserts it). A domain with a
//! read model ([`EsReadModel`], given by [`EsDomain::projection`]) runs projections
//! (`workload.consumers`, one per partition) that checkpoint it on their own disks and
//! crash with the rest; projection-equivalence compares each checkpoint with the same
//! read model folded from scratch over the committed log. Without one,
//! projection-equivalence says "not checked".
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
use logjam_eventstore::envelope::EnvelopeRef;
use logjam_eventstore::projection::{ProjectionConfig, ProjectionError, ReadModel};
use logjam_eventstore::schema::decode_event;
use logjam_eventstore::schema::{FoldError, decode_event_ref};
use logjam_eventstore::snapshot::Snapshotted;
use logjam_model::es::{UserFold, UserReadModel, UserState};
use rand::SeedableRng;
use serde::{Deserialize as _, Serialize};
use serde_json::Value;

use crate::es_client::{ErasedLoop, Stage};
use crate::es_projection::{
    OpenProjection, ProjectionModel, Typed, open_bank_balances, open_table_rows,
};
use crate::run::{RunResult, RunVerdict, Schedule};
use crate::scenario::{Scenario, ScenarioError};
use crate::{LogDisk, SimDisk};

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

    /// The read model your projections keep, if your domain has one
    /// (`Some(ReadModelOf::new::<YourModel>())`). A scenario with `workload.consumers`
    /// above 0 runs that many projections, one per partition, and needs one.
    fn projection(&self) -> Option<ReadModelOf<Self::Aggregate>> {
        None
    }

    /// True only for the built-in domains, which the model judges with reference folds
    /// of its own. A domain of yours is judged with its own fold (see the module doc).
    fn model_reference(&self) -> bool {
        false
    }
}

/// A read model of your domain: what a projection folds your events into, in offset
/// order, one partition each, checkpointed together with its next offset on the
/// projection's own disk (so it survives crashes, and no event is in it twice).
///
/// projection-equivalence compares every checkpoint the projections take with this
/// same fold run from scratch over the committed log: it finds what the projection's
/// machinery does wrong (an event counted twice or skipped at a restart, state a
/// checkpoint does not hold, uncommitted reads), not a rule your `apply` gets wrong
/// everywhere. The JSON of the read model (its `Serialize`, map keys as strings) is
/// what the history records and compares.
pub trait EsReadModel: Default + Clone + Serialize + serde::de::DeserializeOwned + 'static {
    /// The aggregate whose events it folds.
    type Aggregate: Snapshotted;

    /// Folds in one event of `stream` at `offset`. `Err`: the read model cannot take
    /// it; the projection stops there (projection-progress then reports it behind).
    fn apply(
        &mut self,
        stream: &str,
        offset: u64,
        event: &<Self::Aggregate as Aggregate>::Event,
    ) -> Result<(), String>;
}

/// A domain's projection: how it opens on the projection's disk, and the fold the
/// model judges its checkpoints with. Made by [`ReadModelOf::new`].
pub struct ReadModelOf<A> {
    open: OpenProjection,
    /// `None` for the built-in domains: the model's reference fold judges them.
    fold: Option<fn() -> Box<dyn UserReadModel>>,
    of: std::marker::PhantomData<fn() -> A>,
}

impl<A: Snapshotted> ReadModelOf<A> {
    /// The projection of the read model `R`.
    pub fn new<R: EsReadModel<Aggregate = A>>() -> ReadModelOf<A> {
        ReadModelOf { open: open_user::<R>, fold: Some(fresh_user::<R>), of: Default::default() }
    }

    /// A built-in domain's projection, judged by the model's reference fold.
    fn builtin(open: OpenProjection) -> ReadModelOf<A> {
        ReadModelOf { open, fold: None, of: Default::default() }
    }
}

/// `R` as the event store's projections fold it (every stream's events, decoded).
#[derive(Clone, Default, Serialize, serde::Deserialize)]
#[serde(transparent)]
struct UserModel<R>(R);

impl<R: EsReadModel> ReadModel for UserModel<R> {
    fn wants(_stream: &str) -> bool {
        true
    }

    fn apply(
        &mut self,
        stream: &str,
        offset: u64,
        envelope: EnvelopeRef<'_>,
    ) -> Result<(), FoldError> {
        let event = decode_event_ref::<R::Aggregate>(stream, offset, envelope)?;
        self.0.apply(stream, offset, &event).map_err(|detail| FoldError::Invariant {
            stream: stream.to_owned(),
            offset,
            stream_version: envelope.stream_version,
            detail,
        })
    }
}

/// A read model as JSON, for checkpoints and the model alike.
fn model_json<R: Serialize>(model: &R) -> Value {
    serde_json::to_value(model).unwrap_or_else(|error| {
        panic!(
            "the read model {} does not serialize as JSON ({error}): give it string map keys",
            std::any::type_name::<R>()
        )
    })
}

fn open_user<R: EsReadModel>(
    disk: &mut LogDisk<&mut SimDisk>,
    config: &ProjectionConfig,
) -> Result<Box<dyn ProjectionModel>, ProjectionError> {
    Typed::<UserModel<R>>::open(disk, config, |model| model_json(&model.0))
}

fn fresh_user<R: EsReadModel>() -> Box<dyn UserReadModel> {
    Box::new(FoldedModel(R::default()))
}

/// `R` as the model folds it: events as the history's JSON.
struct FoldedModel<R>(R);

impl<R: EsReadModel> UserReadModel for FoldedModel<R> {
    fn apply(&mut self, stream: &str, offset: u64, event: &Value) -> Result<(), String> {
        let event = parse::<R::Aggregate>(event)?;
        self.0.apply(stream, offset, &event)
    }

    fn json(&self) -> Value {
        model_json(&self.0)
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
    /// How its projections open, if it has any.
    fn projection(&self) -> Option<OpenProjection>;
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
        let read_model = EsDomain::projection(self).and_then(|projection| projection.fold);
        Some(Box::new(Fold::<D::Aggregate> { invariants, read_model }))
    }

    fn projection(&self) -> Option<OpenProjection> {
        EsDomain::projection(self).map(|projection| projection.open)
    }
}

/// The user's fold as the model asks for it.
struct Fold<A> {
    invariants: Rc<Vec<Invariant<A>>>,
    read_model: Option<fn() -> Box<dyn UserReadModel>>,
}

impl<A: Aggregate + PartialEq + fmt::Debug + 'static> UserFold for Fold<A> {
    fn initial(&self) -> Box<dyn UserState> {
        Box::new(Folded { state: A::default(), invariants: self.invariants.clone() })
    }

    fn read_model(&self) -> Option<Box<dyn UserReadModel>> {
        self.read_model.map(|fresh| fresh())
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
    fn projection(&self) -> Option<ReadModelOf<Account>> {
        Some(ReadModelOf::builtin(open_bank_balances))
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
    fn projection(&self) -> Option<ReadModelOf<Table>> {
        Some(ReadModelOf::builtin(open_table_rows))
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
///
/// Sweeps (`assert_holds`, `assert_caught`, `report`) run seeds in parallel, one run
/// per thread (never threads inside a run), and what they say does not depend on the
/// thread count: the smallest failing seed is the one reported. Two environment
/// variables replay one failure in the same test, as the failure message says:
/// `LOGJAM_SEED=N` runs seed N alone, `LOGJAM_SCHEDULE=FILE` the schedule file the
/// failure wrote. `LOGJAM_THREADS=K` sets the threads (default: one per core).
pub struct EsSuite {
    scenario: Scenario,
    domain: Box<dyn DomainSpec + Send + Sync>,
    /// Where `assert_holds` writes the shrunk schedule of a failure.
    regressions_dir: std::path::PathBuf,
}

/// Candidate runs the shrinker of `EsSuite::assert_holds` may make.
pub const SHRINK_RUNS_MAX: u64 = 300;
/// Threads a sweep runs on, at most (`LOGJAM_THREADS` above it is refused).
pub const SWEEP_THREADS_MAX: usize = 256;

/// What a sweep of `EsSuite` runs: the seeds given, or what the environment asks to
/// replay instead.
enum Replay {
    Seeds(std::ops::Range<u64>),
    Seed(u64),
    Schedule(std::path::PathBuf),
}

impl EsSuite {
    /// `domain` under the scenario `text` (its path in messages: `<name>.toml`).
    pub fn new<D: DomainSpec + Send + Sync + 'static>(
        domain: D,
        text: &str,
    ) -> Result<EsSuite, ScenarioError> {
        let path = format!("{}.toml", domain.name());
        let scenario = Scenario::parse_for_domain(text, &path, domain.name())?;
        EsSuite::of(scenario, domain)
    }

    /// `domain` under the scenario file at `path`.
    pub fn load<D: DomainSpec + Send + Sync + 'static>(
        domain: D,
        path: &Path,
    ) -> Result<EsSuite, ScenarioError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| ScenarioError {
            path: shown.clone(),
            place: None,
            message: format!("cannot read: {error}"),
        })?;
        let scenario = Scenario::parse_for_domain(&text, &shown, domain.name())?;
        EsSuite::of(scenario, domain)
    }

    fn of<D: DomainSpec + Send + Sync + 'static>(
        scenario: Scenario,
        domain: D,
    ) -> Result<EsSuite, ScenarioError> {
        let projections = match &scenario.system {
            crate::scenario::System::LogCluster(spec) if spec.es.is_some() => spec.consumers,
            _ => 0,
        };
        if projections > 0 && domain.projection().is_none() {
            return Err(ScenarioError {
                path: scenario.path.clone(),
                place: None,
                message: format!(
                    "workload.consumers: {projections} projections, but the domain `{}` has no read model (give it one with EsDomain::projection, or set consumers = 0)",
                    domain.name()
                ),
            });
        }
        let regressions_dir = Path::new("target").join("logjam-regressions");
        Ok(EsSuite { scenario, domain: Box::new(domain), regressions_dir })
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

    /// Runs the schedule file at `path` (one `assert_holds` wrote, say); panics with
    /// the file's error if it does not parse.
    pub fn run_schedule_file(&self, path: &Path) -> RunResult {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|error| panic!("{shown}: cannot read: {error}"));
        let file = crate::schedule_file::ScheduleFile::parse(&text, &shown)
            .unwrap_or_else(|error| panic!("{error}"));
        self.run_schedule(&file.schedule)
    }

    /// A run judged against what the scenario expects (`[expect]`).
    pub fn verdict(&self, run: &RunResult) -> RunVerdict {
        run.verdict(&self.scenario.expect)
    }

    /// Runs every seed of `seeds` and panics at the smallest that does not run as the
    /// scenario expects, with the seed, the invariant, its witness, how to replay it,
    /// and its schedule shrunk (at most `SHRINK_RUNS_MAX` runs), written as a schedule
    /// file you can commit as a regression. `LOGJAM_SEED` or `LOGJAM_SCHEDULE` in the
    /// environment replay one run instead (see the type's doc).
    pub fn assert_holds(&self, seeds: std::ops::Range<u64>) {
        let unexpected = |run: &RunResult| match self.verdict(run) {
            RunVerdict::Unexpected(why) => Some(why),
            _ => None,
        };
        match replay_asked(seeds, |name| std::env::var(name).ok()) {
            Replay::Seeds(seeds) => {
                let found =
                    first_seed(seeds, sweep_threads(), |seed| unexpected(&self.run_seed(seed)));
                if let Some((seed, why)) = found {
                    panic!("{}", self.failure(seed, &self.run_seed(seed), &why));
                }
            }
            Replay::Seed(seed) => {
                let run = self.run_seed(seed);
                if let Some(why) = unexpected(&run) {
                    panic!("{}", self.failure(seed, &run, &why));
                }
            }
            Replay::Schedule(path) => {
                let run = self.run_schedule_file(&path);
                if let Some(why) = unexpected(&run) {
                    panic!(
                        "{} (domain {}), schedule {}: {why}\n{}",
                        self.scenario.name,
                        self.domain.name(),
                        path.display(),
                        self.violations_shown(&run)
                    );
                }
            }
        }
    }

    /// Runs seeds of `seeds` until one breaks `invariant` (a violation, or the anomaly
    /// the scenario expects) and returns the smallest that does; panics if none does.
    pub fn assert_caught(&self, invariant: &str, seeds: std::ops::Range<u64>) -> u64 {
        let breaks = |seed: u64| {
            let run = self.run_seed(seed);
            crate::schedule_file::anomalies(&run).iter().any(|kind| kind == invariant).then_some(())
        };
        if let Some((seed, ())) = first_seed(seeds.clone(), sweep_threads(), breaks) {
            return seed;
        }
        panic!(
            "{}: `{invariant}` was not caught in seeds {}..{} (domain {})",
            self.scenario.name,
            seeds.start,
            seeds.end,
            self.domain.name()
        )
    }

    /// Replays every schedule file (`*.json`, in name order) under `dir`, the
    /// regressions you committed from `assert_holds` failures, and panics listing each
    /// that does not replay as it says: a fixed bug (`"expect": "holds"`) must stay
    /// fixed, an allowed anomaly (`"anomaly"`) must still be found. A missing or empty
    /// `dir` passes; a file that does not parse fails with its error.
    pub fn assert_regressions(&self, dir: &Path) {
        let mut files: Vec<std::path::PathBuf> = match std::fs::read_dir(dir) {
            Ok(entries) => entries
                .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
                .collect(),
            Err(_) => Vec::new(),
        };
        files.sort();
        let mut failures = Vec::new();
        for path in &files {
            let shown = path.display().to_string();
            let parsed = std::fs::read_to_string(path)
                .map_err(|error| format!("{shown}: cannot read: {error}"))
                .and_then(|text| {
                    crate::schedule_file::ScheduleFile::parse(&text, &shown)
                        .map_err(|error| error.to_string())
                });
            let file = match parsed {
                Ok(file) => file,
                Err(error) => {
                    failures.push(error);
                    continue;
                }
            };
            let judged = file.check(&self.scenario).and_then(|()| {
                let run = self.run_schedule(&file.schedule);
                crate::schedule_file::judge(&file, &self.scenario, &run)
                    .map_err(|problem| format!("{problem}\n{}", self.violations_shown(&run)))
            });
            if let Err(problem) = judged {
                failures.push(format!(
                    "{shown}: {problem}\n  replay: LOGJAM_SCHEDULE={shown} cargo test {}",
                    test_name()
                ));
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {} regressions failed:\n{}",
            failures.len(),
            files.len(),
            failures.join("\n")
        );
    }

    /// A sweep's summary, made to be a snapshot (`insta::assert_snapshot!`): the
    /// scenario, the seeds, how many runs went as expected, and per invariant how many
    /// runs it held, saw an anomaly the configuration allows, broke, or could not
    /// check, with the first seed of each. Only what the runs decide is in it (no
    /// times, no thread count), so it changes only when a verdict does.
    pub fn report(&self, seeds: std::ops::Range<u64>) -> String {
        let runs = map_seeds(seeds.clone(), sweep_threads(), |seed| self.run_seed(seed));
        let mut out = format!(
            "scenario {} (domain {}), seeds {}..{}\n",
            self.scenario.name,
            self.domain.name(),
            seeds.start,
            seeds.end
        );
        let unexpected: Vec<u64> = runs
            .iter()
            .filter(|run| matches!(self.verdict(run), RunVerdict::Unexpected(_)))
            .map(|run| run.seed)
            .collect();
        out += &format!(
            "runs as expected: {} of {}{}\n",
            runs.len() - unexpected.len(),
            runs.len(),
            match unexpected.first() {
                Some(seed) => format!(" (first unexpected: seed {seed})"),
                None => String::new(),
            }
        );
        // Invariant -> runs (and the first seed) where it held, saw an allowed anomaly,
        // broke, could not be checked, or had nothing to examine.
        const COLUMNS: [&str; 5] = ["held", "allowed", "broken", "not checked", "nothing to check"];
        let mut rows: std::collections::BTreeMap<&str, [(u64, Option<u64>); 5]> =
            std::collections::BTreeMap::new();
        for run in &runs {
            for check in &run.checks {
                let column = if check.checked.starts_with("not checked") {
                    3
                } else if !check.holds {
                    2
                } else if check.expected_anomaly {
                    1
                } else if check.checked.starts_with("0 ") {
                    4
                } else {
                    0
                };
                let row = rows.entry(check.invariant).or_default();
                row[column].0 += 1;
                row[column].1.get_or_insert(run.seed);
            }
        }
        let width = rows.keys().map(|name| name.len()).max().unwrap_or(0).max("invariant".len());
        out += &format!("{:width$}", "invariant");
        for column in COLUMNS {
            out += &format!("  {column:>16}");
        }
        out += "\n";
        for (name, row) in &rows {
            out += &format!("{name:width$}");
            for (column, &(count, first)) in row.iter().enumerate() {
                let cell = match first {
                    // Where it held, the first seed says nothing.
                    Some(seed) if column > 0 => format!("{count} (seed {seed})"),
                    _ => count.to_string(),
                };
                out += &format!("  {cell:>16}");
            }
            out += "\n";
        }
        out
    }

    /// A run's violations, each with its witness lines.
    fn violations_shown(&self, run: &RunResult) -> String {
        let shown: Vec<String> = run
            .violations()
            .map(|check| {
                format!(
                    "invariant: {}\nwitness:   {}\n    {}",
                    check.invariant,
                    check.witness.as_deref().unwrap_or(""),
                    check.witness_lines.join("\n    ")
                )
            })
            .collect();
        shown.join("\n")
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
            scenario: shown_path(&self.scenario.path),
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
             replay:    LOGJAM_SEED={seed} cargo test {test}, or LOGJAM_SCHEDULE={path} cargo test {test} (in code: suite.run_seed({seed}), suite.run_schedule_file(path))\n\
             shrunk:    {faults} and {ops} (from {of} and {of_ops}) in {runs} runs{early}, {saved}\n{json}",
            scenario = self.scenario.name,
            domain = self.domain.name(),
            test = test_name(),
            path = path.display(),
            faults = counted(shrunk.schedule.faults.len().saturating_sub(1), "fault"),
            ops = counted(shrunk.schedule.ops.len(), "operation"),
            of = origin.faults,
            of_ops = origin.ops,
            runs = shrunk.runs,
            early = if shrunk.stopped_early { " (budget spent: smaller may exist)" } else { "" },
            json = file.to_json(),
        )
    }
}

/// What the environment asks a sweep to run instead of `seeds`.
fn replay_asked(seeds: std::ops::Range<u64>, var: impl Fn(&str) -> Option<String>) -> Replay {
    if let Some(path) = var("LOGJAM_SCHEDULE") {
        return Replay::Schedule(path.into());
    }
    match var("LOGJAM_SEED") {
        Some(text) => match text.trim().parse() {
            Ok(seed) => Replay::Seed(seed),
            Err(_) => panic!("LOGJAM_SEED={text}: not a seed (an integer 0..2^64)"),
        },
        None => Replay::Seeds(seeds),
    }
}

/// Threads for a sweep: `LOGJAM_THREADS`, or one per core.
fn sweep_threads() -> usize {
    match std::env::var("LOGJAM_THREADS") {
        Ok(text) => match text.trim().parse::<usize>() {
            Ok(threads) if (1..=SWEEP_THREADS_MAX).contains(&threads) => threads,
            _ => panic!("LOGJAM_THREADS={text}: not a thread count 1..={SWEEP_THREADS_MAX}"),
        },
        Err(_) => std::thread::available_parallelism().map_or(1, |n| n.get()),
    }
}

/// The running test's name as `cargo test` filters it (its thread's name), with
/// `-- --exact` so that only it runs; a placeholder outside a test.
fn test_name() -> String {
    match std::thread::current().name() {
        Some(name) if name != "main" => format!("{name} -- --exact"),
        _ => "<your test>".to_owned(),
    }
}

/// Runs `each` once on each seed of `seeds`, taken in order by `threads`
/// threads (whole seeds, never parts of one run), until the seeds run out or
/// `wanted(seed)` says no seed from there on is needed.
fn on_threads(
    seeds: std::ops::Range<u64>,
    threads: usize,
    wanted: impl Fn(u64) -> bool + Sync,
    each: impl Fn(u64) + Sync,
) {
    use std::sync::atomic::{AtomicU64, Ordering};
    let next = AtomicU64::new(seeds.start);
    // Threads run whole seeds, never parts of one run.
    #[allow(clippy::disallowed_methods)]
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= seeds.end || !wanted(seed) {
                        return;
                    }
                    each(seed);
                }
            });
        }
    });
}

/// The smallest seed of `seeds` for which `probe` says something, with what it
/// said: seeds run in parallel, and a thread stops taking seeds past the smallest
/// found, so the answer is the same whatever the thread count.
fn first_seed<T: Send>(
    seeds: std::ops::Range<u64>,
    threads: usize,
    probe: impl Fn(u64) -> Option<T> + Sync,
) -> Option<(u64, T)> {
    let found: std::sync::Mutex<Option<(u64, T)>> = std::sync::Mutex::new(None);
    let smallest = |seed: u64| {
        found.lock().expect("no thread panics holding it").as_ref().is_none_or(|(s, _)| seed < *s)
    };
    on_threads(seeds, threads, smallest, |seed| {
        let Some(said) = probe(seed) else { return };
        let mut found = found.lock().expect("no thread panics holding it");
        if found.as_ref().is_none_or(|(first, _)| seed < *first) {
            *found = Some((seed, said));
        }
    });
    found.into_inner().expect("no thread panics holding it")
}

/// `run` of every seed, in seed order, in parallel.
fn map_seeds<T: Send>(
    seeds: std::ops::Range<u64>,
    threads: usize,
    run: impl Fn(u64) -> T + Sync,
) -> Vec<T> {
    let done: std::sync::Mutex<std::collections::BTreeMap<u64, T>> = Default::default();
    on_threads(
        seeds,
        threads,
        |_| true,
        |seed| {
            let result = run(seed);
            done.lock().expect("no thread panics holding it").insert(seed, result);
        },
    );
    done.into_inner().expect("no thread panics holding it").into_values().collect()
}

/// `count` things, in words (`1 fault`, `3 faults`).
fn counted(count: usize, thing: &str) -> String {
    if count == 1 { format!("1 {thing}") } else { format!("{count} {thing}s") }
}

/// A path as a file written for a repository should hold it: relative to the working
/// directory (the test's crate) when under it.
fn shown_path(path: &str) -> String {
    let relative = std::env::current_dir()
        .ok()
        .and_then(|dir| Path::new(path).strip_prefix(dir).ok().map(Path::to_path_buf));
    relative.map_or_else(|| path.to_owned(), |relative| relative.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sweep_reports_the_smallest_failing_seed_whatever_the_thread_count() {
        // Seeds fail unevenly slowly: a later seed finishes before an earlier one.
        let probe = |seed: u64| {
            let work: u64 = (0..(40 - seed % 40) * 2_000).fold(seed, |a, b| a.wrapping_mul(31) ^ b);
            (seed % 9 == 4 && seed > 20).then_some(work)
        };
        let reference = first_seed(0..200, 1, probe).map(|(seed, _)| seed);
        assert_eq!(reference, Some(22));
        for threads in [2, 3, 8] {
            assert_eq!(first_seed(0..200, threads, probe).map(|(seed, _)| seed), reference);
        }
        assert_eq!(first_seed(0..20, 4, probe).map(|(seed, _)| seed), None);
        let squares = map_seeds(3..40, 5, |seed| seed * seed);
        assert_eq!(squares, (3..40u64).map(|seed| seed * seed).collect::<Vec<_>>());
    }

    #[test]
    fn the_environment_replays_one_seed_or_one_schedule() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs.iter().find(|(key, _)| *key == name).map(|(_, value)| value.to_string())
            }
        };
        assert!(matches!(replay_asked(0..5, env(&[])), Replay::Seeds(r) if r == (0..5)));
        assert!(matches!(replay_asked(0..5, env(&[("LOGJAM_SEED", " 77 ")])), Replay::Seed(77)));
        let both = env(&[("LOGJAM_SEED", "1"), ("LOGJAM_SCHEDULE", "x.json")]);
        assert!(
            matches!(replay_asked(0..5, both), Replay::Schedule(p) if p == Path::new("x.json"))
        );
        let bad = std::panic::catch_unwind(|| replay_asked(0..5, env(&[("LOGJAM_SEED", "x")])));
        let message = *bad.err().expect("refused").downcast::<String>().expect("a message");
        assert!(message.contains("LOGJAM_SEED=x: not a seed"), "{message}");
    }
}
