//! Rebuilding an aggregate from its log: one bank account's stream of 1,000,000
//! encoded envelopes in memory (a seeded mix of deposits, withdrawals and transfer
//! debits, credits and refunds, every one accepted by `handle`), folded by
//! `fold_stream`: envelope decode, payload decode, stream-version and offset checks,
//! `validate`, `apply`. Reported as events per second (target: at least 5 million).
//! Run: `cargo bench -p logjam-eventstore --bench rebuild`.

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use logjam_eventstore::aggregate::Aggregate;
use logjam_eventstore::domains::bank::{Account, BankCommand, account_stream};
use logjam_eventstore::schema::{envelope_for, fold_stream};

const EVENTS: u64 = 1_000_000;
const SEED: u64 = 42;

/// splitmix64: a seeded stream of numbers, no dependency.
struct Numbers(u64);

impl Numbers {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// The log: `EVENTS` envelopes of one account's stream, encoded.
fn log() -> Vec<Vec<u8>> {
    let mut numbers = Numbers(SEED);
    let mut account = Account::default();
    let mut log = Vec::with_capacity(EVENTS as usize);
    let mut transfer = 0;
    let mut open_debits: Vec<(u64, u64)> = Vec::new();
    while (log.len() as u64) < EVENTS {
        let amount = 1 + numbers.next() % 1_000;
        let command = match numbers.next() % 20 {
            0..=8 => BankCommand::Deposit { amount },
            9..=14 => BankCommand::Withdraw { amount },
            15 | 16 => {
                transfer += 1;
                open_debits.push((transfer, amount));
                BankCommand::Debit { transfer, to: account_stream(numbers.next() % 100), amount }
            }
            17 | 18 => {
                transfer += 1;
                BankCommand::Credit { transfer, from: account_stream(numbers.next() % 100), amount }
            }
            _ => match open_debits.pop() {
                Some((transfer, amount)) => BankCommand::Refund { transfer, amount },
                None => BankCommand::Deposit { amount },
            },
        };
        let Ok(events) = account.handle(&command) else { continue };
        for event in events {
            log.push(envelope_for::<Account>(log.len() as u64, log.len() as u64, &event).encode());
            account.apply(&event);
        }
    }
    log
}

fn rebuild(c: &mut Criterion) {
    let log = log();
    let stream = account_stream(1);
    let fold = |log: &[Vec<u8>]| {
        let records =
            log.iter().enumerate().map(|(offset, bytes)| (offset as u64, bytes.as_slice()));
        fold_stream::<Account>(&stream, records).expect("the log folds")
    };
    assert_eq!(fold(&log).1, EVENTS);
    let mut group = c.benchmark_group("rebuild");
    group.sample_size(10).sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(EVENTS));
    group.bench_with_input(BenchmarkId::new("bank", EVENTS), &log, |b, log| b.iter(|| fold(log)));
    group.finish();
}

criterion_group!(benches, rebuild);
criterion_main!(benches);
