//! `SimDisk`: a node's disk, a small file system that fails the way real disks and file
//! systems do.
//!
//! - A volatile layer: reads see every write at once (the page cache), but a write is
//!   durable only once a sync of its file, asked for after the write, completes; a
//!   created, renamed or removed name only once a sync of its directory completes.
//!   Directories themselves are durable when created (a simplification).
//! - A crash loses, keeps or tears (at a 512-byte sector boundary) each unsynced write,
//!   independently, drawn from the disk's own random stream; the unsynced name changes
//!   of each directory survive as an ordered prefix (metadata is journaled in order).
//! - Faults a nemesis injects: bit rot (a flipped bit in durable data at rest), latent
//!   sector errors (reads of a sector fail until it is rewritten), misdirected writes
//!   (the next write lands at a wrong, sector-aligned offset), out of space above a
//!   quota, and a failed sync that drops the dirty pages it could not write: the data
//!   stays readable until a crash, and a later sync reports success (fsyncgate).
//! - Background writeback bounds memory: once a file holds more than
//!   `writeback_bytes_max` of unsynced writes, the oldest become durable on their own,
//!   as a kernel's flusher would make them.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

mod error;
mod layout;

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::rng::SimRng;
use error::parent;
pub use error::{DiskError, SyncResult, SyncTicket};
pub use layout::{CheckpointFile, DiskLayout, HeaderField};

/// The unit a torn write is cut at and a latent error strikes.
pub const SECTOR_BYTES: u64 = 512;

/// Names (and sync paths) a disk remembers the lookups of.
const LOOKUPS_KEPT: usize = 4;

/// How a node's disk behaves when nothing is injected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskConfig {
    /// A sync completes after a delay uniform in this range.
    pub sync_latency_ns: [u64; 2],
    /// Unsynced bytes one file may hold before the oldest are written back.
    pub writeback_bytes_max: u64,
    /// Which files are logs, for the aimed faults (`DiskLayout::NONE` by default: the
    /// harness that runs a log on the disk says how its files look).
    pub layout: DiskLayout,
}

impl Default for DiskConfig {
    fn default() -> Self {
        DiskConfig {
            sync_latency_ns: [50_000, 2_000_000],
            writeback_bytes_max: 64 << 20,
            layout: DiskLayout::NONE,
        }
    }
}

/// A disk fault to inject (unknown keys: see `fault::Partition`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum DiskFault {
    /// Flip one bit of durable data at rest.
    BitRot,
    /// One sector of a file becomes unreadable.
    LatentSectorError,
    /// The next write lands at the wrong offset.
    MisdirectWrite,
    /// Writes fail once the disk holds `free_bytes` more than it does now.
    OutOfSpace {
        /// The room left, in bytes, above what the disk holds now.
        free_bytes: u64,
    },
    /// The next file sync fails and drops the dirty pages it covered.
    FailSync,
    /// Space returns and armed faults are disarmed (bad sectors and rot stay).
    Heal,
    /// Armed: at the node's next crash the last batch appended to a log segment is
    /// torn, cut at a random byte inside it, synced or not (a disk whose cache lied),
    /// and nothing after it survives. Aimed where recovery must cut.
    TornTail,
    /// One bit of one header field flips, at rest, in a random batch of a random log
    /// segment: the field a CRC that leaves some fields out would miss.
    BatchHeader {
        /// The header field whose bit flips.
        field: HeaderField,
    },
    /// One bit of a log directory's checkpoint file flips, at rest.
    Checkpoint {
        /// Which checkpoint file.
        file: CheckpointFile,
    },
}

impl DiskFault {
    pub(crate) fn tag(self) -> u64 {
        match self {
            DiskFault::BitRot => 1,
            DiskFault::LatentSectorError => 2,
            DiskFault::MisdirectWrite => 3,
            DiskFault::OutOfSpace { .. } => 4,
            DiskFault::FailSync => 5,
            DiskFault::Heal => 6,
            DiskFault::TornTail => 7,
            DiskFault::BatchHeader { .. } => 8,
            DiskFault::Checkpoint { .. } => 9,
        }
    }
}

/// What a crash did to the unsynced state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CrashDamage {
    /// Unsynced file changes (writes, truncations) lost whole.
    pub writes_lost: u64,
    /// Writes that landed in part: unsynced writes longer than a sector, cut at a sector
    /// boundary (the sectors before the cut landed), and the batch an armed `TornTail`
    /// tore.
    pub writes_torn: u64,
    /// Unsynced file changes (writes, truncations) that landed whole.
    pub writes_kept: u64,
    /// Unsynced creates, renames and removes undone (each directory keeps an ordered
    /// prefix of its own).
    pub name_changes_lost: u64,
    /// An armed `TornTail` tore a log segment's last batch (counted in `writes_torn`).
    pub tail_torn: bool,
}

#[derive(Clone, Debug)]
enum Change {
    /// Bytes `[offset, offset + len)` of the file as reads see it, appended and not
    /// overwritten since: no copy is kept (appends are the hot path). A change that
    /// would overwrite them first turns them into a `Write` with their own bytes.
    Append {
        offset: u64,
        len: u64,
    },
    Write {
        offset: u64,
        bytes: Vec<u8>,
    },
    Truncate {
        len: u64,
    },
}

#[derive(Clone, Debug)]
struct Pending {
    seq: u64,
    change: Change,
}

/// What survives a crash for sure.
#[derive(Clone, Debug)]
enum Durable {
    /// The first this many bytes of `current`: a file that is only appended to and
    /// synced (a log segment) keeps one copy of its bytes, not two. `current` never
    /// changes below this length while it holds: a write or cut there first gives the
    /// durable content its own copy.
    Prefix(u64),
    Own(Vec<u8>),
}

impl Default for Durable {
    fn default() -> Self {
        Durable::Prefix(0)
    }
}

#[derive(Clone, Debug, Default)]
struct SimFile {
    /// What reads see.
    current: Vec<u8>,
    durable: Durable,
    /// Changes since `durable`, oldest first.
    pending: Vec<Pending>,
    pending_bytes: u64,
}

/// Writes `bytes` at `offset` of `content`, growing it (with zeros) as needed.
fn write_at(content: &mut Vec<u8>, offset: u64, bytes: &[u8]) {
    let (start, end) = (offset as usize, offset as usize + bytes.len());
    if start == content.len() {
        content.extend_from_slice(bytes);
        return;
    }
    if content.len() < end {
        content.resize(end, 0);
    }
    content[start..end].copy_from_slice(bytes);
}

/// Applies a change to `content`; `current` is where an `Append`'s bytes are.
fn apply(content: &mut Vec<u8>, change: &Change, current: &[u8]) {
    match change {
        Change::Append { offset, len } => {
            write_at(content, *offset, &current[*offset as usize..(*offset + *len) as usize]);
        }
        Change::Write { offset, bytes } => write_at(content, *offset, bytes),
        Change::Truncate { len } => content.truncate(*len as usize),
    }
}

impl SimFile {
    fn durable_len(&self) -> u64 {
        match &self.durable {
            Durable::Prefix(len) => *len,
            Durable::Own(bytes) => bytes.len() as u64,
        }
    }

    /// The durable content as its own bytes, copied out of `current` if it was a prefix.
    fn durable_own(&mut self) -> &mut Vec<u8> {
        if let Durable::Prefix(len) = self.durable {
            self.durable = Durable::Own(self.current[..len as usize].to_vec());
        }
        match &mut self.durable {
            Durable::Own(bytes) => bytes,
            Durable::Prefix(_) => unreachable!("just copied"),
        }
    }

    /// Takes the durable content out (the file's durable state is then empty).
    fn take_durable(&mut self) -> Vec<u8> {
        self.durable_own();
        match std::mem::take(&mut self.durable) {
            Durable::Own(bytes) => bytes,
            Durable::Prefix(_) => unreachable!("just copied"),
        }
    }

    /// Applies a pending change to the durable content.
    fn apply_durable(&mut self, change: &Change) {
        match (&mut self.durable, change) {
            // The appended bytes are still in `current` right after the prefix (a change
            // that overwrites them first turns the append into a `Write`).
            (Durable::Prefix(len), Change::Append { offset, len: added }) if *offset == *len => {
                *len += added;
            }
            (Durable::Prefix(len), Change::Truncate { len: cut }) => *len = (*len).min(*cut),
            _ => {
                self.durable_own();
                let Durable::Own(bytes) = &mut self.durable else { unreachable!("just copied") };
                apply(bytes, change, &self.current);
            }
        }
    }

    /// Gives every pending append that reaches `from` and beyond its own copy, before
    /// a change overwrites or cuts those bytes in `current`.
    fn materialize_from(&mut self, from: u64) {
        for pending in &mut self.pending {
            if let Change::Append { offset, len } = pending.change {
                if offset + len > from {
                    let bytes = self.current[offset as usize..(offset + len) as usize].to_vec();
                    pending.change = Change::Write { offset, bytes };
                }
            }
        }
    }

    /// Makes the oldest `count` pending changes durable.
    fn make_durable(&mut self, count: usize) {
        let mut pending = std::mem::take(&mut self.pending);
        for made in pending.drain(..count) {
            self.pending_bytes -= change_bytes(&made);
            self.apply_durable(&made.change);
        }
        self.pending = pending;
    }
}

#[derive(Clone, Debug)]
enum NameChange {
    Create { name: String, inode: u64 },
    Rename { from: String, to: String, inode: u64 },
    Remove { name: String },
}

fn apply_name(names: &mut BTreeMap<String, u64>, change: &NameChange) {
    match change {
        NameChange::Create { name, inode } => {
            names.insert(name.clone(), *inode);
        }
        NameChange::Rename { from, to, inode } => {
            names.remove(from);
            names.insert(to.clone(), *inode);
        }
        NameChange::Remove { name } => {
            names.remove(name);
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum SyncTarget {
    File(u64),
    Dir,
    Missing,
}

#[derive(Clone, Debug)]
struct SyncRequest {
    ticket: SyncTicket,
    target: SyncTarget,
    /// Shared with the requests before it for the same path (a log syncs its active
    /// segment again and again): no copy of the name per sync.
    path: Rc<str>,
    /// Changes with a sequence number below this are covered.
    seq_end: u64,
}

/// A simulated disk. See the module documentation for its fault model.
#[derive(Clone, Debug)]
pub struct SimDisk {
    config: DiskConfig,
    files: BTreeMap<u64, SimFile>,
    names: BTreeMap<String, u64>,
    durable_names: BTreeMap<String, u64>,
    /// Unsynced name changes per directory, oldest first.
    name_changes: BTreeMap<String, Vec<(u64, NameChange)>>,
    dirs: BTreeSet<String>,
    next_inode: u64,
    next_seq: u64,
    next_ticket: u64,
    /// Asked for, not yet handed to the world to schedule.
    requested: Vec<SyncTicket>,
    /// Scheduled, not yet completed.
    in_flight: Vec<SyncRequest>,
    bad_sectors: BTreeSet<(u64, u64)>,
    quota_bytes: Option<u64>,
    /// Armed by the fault: where (a random draw) the next write lands.
    misdirect_next_write: Option<u64>,
    fail_next_sync: bool,
    /// Armed by `TornTail`: the next crash tears `last_segment_append`.
    tear_tail_at_crash: bool,
    /// The last append to a log segment: (file, offset, length).
    last_segment_append: Option<(u64, u64, u64)>,
    /// A name was removed or renamed away since unreachable files were last dropped.
    files_unnamed: bool,
    /// The last few names looked up and their files (a broker appends to one active
    /// segment per partition, in turn); forgotten at every change of names.
    lookups: Vec<(String, u64)>,
    /// Which of `lookups` a miss replaces next.
    lookup_victim: usize,
    /// The paths of the last few syncs asked for, shared by the requests that name them.
    sync_paths: Vec<Rc<str>>,
    sync_path_victim: usize,
}

impl Default for SimDisk {
    fn default() -> Self {
        SimDisk::new(DiskConfig::default())
    }
}

impl SimDisk {
    /// An empty disk (only the top directory, `""`) that behaves as `config` says.
    pub fn new(config: DiskConfig) -> SimDisk {
        SimDisk {
            config,
            files: BTreeMap::new(),
            names: BTreeMap::new(),
            durable_names: BTreeMap::new(),
            name_changes: BTreeMap::new(),
            dirs: BTreeSet::from([String::new()]),
            next_inode: 0,
            next_seq: 0,
            next_ticket: 0,
            requested: Vec::new(),
            in_flight: Vec::new(),
            bad_sectors: BTreeSet::new(),
            quota_bytes: None,
            misdirect_next_write: None,
            fail_next_sync: false,
            tear_tail_at_crash: false,
            last_segment_append: None,
            files_unnamed: false,
            lookups: Vec::new(),
            lookup_victim: 0,
            sync_paths: Vec::new(),
            sync_path_victim: 0,
        }
    }

    /// How this disk behaves when nothing is injected.
    pub fn config(&self) -> &DiskConfig {
        &self.config
    }

    /// A whole file as reads see it (for tests and checkers).
    pub fn contents(&self, path: &str) -> Option<&[u8]> {
        self.names.get(path).map(|inode| self.files[inode].current.as_slice())
    }

    /// Writes a whole file durably at once, bypassing the volatile layer: an `O_SYNC`
    /// write to a file whose name is already durable. For small processes that need
    /// no more than that; the broker uses `Storage` and real syncs.
    pub fn put_durable(&mut self, path: &str, bytes: &[u8]) {
        let inode = match self.names.get(path) {
            Some(&inode) => inode,
            None => {
                let inode = self.next_inode;
                self.next_inode += 1;
                self.names.insert(path.to_owned(), inode);
                self.durable_names.insert(path.to_owned(), inode);
                inode
            }
        };
        let file = self.files.entry(inode).or_default();
        file.current = bytes.to_vec();
        file.durable = Durable::Prefix(bytes.len() as u64);
        file.pending.clear();
        file.pending_bytes = 0;
    }

    /// Bytes held by all files, as reads see them.
    pub fn used_bytes(&self) -> u64 {
        self.names.values().map(|inode| self.files[inode].current.len() as u64).sum()
    }

    /// Syncs asked for since the last call (the world schedules their completion).
    pub(crate) fn take_requested(&mut self) -> std::vec::Drain<'_, SyncTicket> {
        self.requested.drain(..)
    }

    pub(crate) fn has_requested(&self) -> bool {
        !self.requested.is_empty()
    }

    /// Completes a sync: makes what it covers durable, or fails and drops it. `None` if
    /// the ticket is unknown (asked for before a crash).
    pub fn complete_sync(&mut self, ticket: SyncTicket) -> Option<SyncResult> {
        let at = self.in_flight.iter().position(|request| request.ticket == ticket)?;
        let request = self.in_flight.remove(at);
        Some(match request.target {
            SyncTarget::File(inode) => {
                let fail = std::mem::take(&mut self.fail_next_sync);
                let Some(file) = self.files.get_mut(&inode) else { return Some(Ok(())) };
                let covered = file.pending.partition_point(|p| p.seq < request.seq_end);
                if fail {
                    // fsyncgate: the pages are marked clean and forgotten. Reads still see
                    // them (the page cache), a crash loses them, a later sync succeeds.
                    for pending in file.pending.drain(..covered) {
                        file.pending_bytes -= change_bytes(&pending);
                    }
                    let detail = "sync failed; dirty pages dropped".to_owned();
                    Err(DiskError::Io { path: request.path.to_string(), offset: 0, detail })
                } else {
                    file.make_durable(covered);
                    Ok(())
                }
            }
            SyncTarget::Dir => {
                let changes = self.name_changes.entry(request.path.to_string()).or_default();
                let covered = changes.partition_point(|(seq, _)| *seq < request.seq_end);
                for (_, change) in changes.drain(..covered) {
                    apply_name(&mut self.durable_names, &change);
                }
                self.forget_unreachable_files();
                Ok(())
            }
            SyncTarget::Missing => Err(DiskError::NotFound { path: request.path.to_string() }),
        })
    }

    /// Completes every sync asked for, in order (for driving a disk outside a world).
    pub fn complete_all_syncs(&mut self) -> Vec<(SyncTicket, SyncResult)> {
        self.schedule_requested();
        let tickets: Vec<SyncTicket> = self.in_flight.iter().map(|r| r.ticket).collect();
        tickets
            .into_iter()
            .filter_map(|t| self.complete_sync(t).map(|result| (t, result)))
            .collect()
    }

    /// Moves asked-for syncs to in flight (the world does this as it schedules them).
    pub(crate) fn schedule_requested(&mut self) {
        self.requested.clear();
    }

    /// The process died: unsynced state is lost, kept or torn; pending syncs never
    /// complete.
    pub fn crash(&mut self, rng: &mut SimRng) -> CrashDamage {
        let mut damage = CrashDamage::default();
        self.requested.clear();
        self.in_flight.clear();
        // An armed torn tail: the bytes of the last segment append that survive, drawn
        // before anything else so that the draws of the unarmed stay as they were.
        let torn_tail = match self.last_segment_append.take() {
            Some((inode, offset, len)) if std::mem::take(&mut self.tear_tail_at_crash) => self
                .files
                .get(&inode)
                .filter(|file| len >= 2 && file.current.len() as u64 >= offset + len)
                .map(|file| {
                    let cut = offset + rng.random_range(1..len);
                    (inode, offset, file.current[offset as usize..cut as usize].to_vec())
                }),
            _ => None,
        };
        for file in self.files.values_mut() {
            let mut content = file.take_durable();
            for pending in std::mem::take(&mut file.pending) {
                let written: Option<(u64, &[u8])> = match &pending.change {
                    Change::Append { offset, len } => {
                        Some((*offset, &file.current[*offset as usize..(*offset + *len) as usize]))
                    }
                    Change::Write { offset, bytes } => Some((*offset, bytes)),
                    Change::Truncate { .. } => None,
                };
                match (written, rng.random_range(0..3u8)) {
                    (_, 0) => damage.writes_lost += 1,
                    (Some((offset, bytes)), 1) if bytes.len() as u64 > SECTOR_BYTES => {
                        // Torn: the sectors up to a random boundary inside the write land.
                        let end = offset + bytes.len() as u64;
                        let first_boundary = (offset / SECTOR_BYTES + 1) * SECTOR_BYTES;
                        let boundaries = (end - 1 - first_boundary) / SECTOR_BYTES + 1;
                        let cut = first_boundary + rng.random_range(0..boundaries) * SECTOR_BYTES;
                        write_at(&mut content, offset, &bytes[..(cut - offset) as usize]);
                        damage.writes_torn += 1;
                    }
                    _ => {
                        apply(&mut content, &pending.change, &file.current);
                        damage.writes_kept += 1;
                    }
                }
            }
            file.durable = Durable::Prefix(content.len() as u64);
            file.current = content;
            file.pending_bytes = 0;
        }
        if let Some((inode, offset, kept)) = torn_tail {
            let file = self.files.get_mut(&inode).expect("the file was there before the crash");
            // Unless the crash lost what came before the batch, the batch ends torn.
            if file.current.len() as u64 >= offset {
                file.current.truncate(offset as usize);
                file.current.extend_from_slice(&kept);
                file.durable = Durable::Prefix(file.current.len() as u64);
                damage.writes_torn += 1;
                damage.tail_torn = true;
            }
        }
        for changes in std::mem::take(&mut self.name_changes).into_values() {
            let kept = rng.random_range(0..=changes.len());
            damage.name_changes_lost += (changes.len() - kept) as u64;
            for (_, change) in &changes[..kept] {
                apply_name(&mut self.durable_names, change);
            }
        }
        self.names = self.durable_names.clone();
        self.lookups.clear();
        self.files_unnamed = true; // a crash can undo creates as well
        self.forget_unreachable_files();
        damage
    }

    /// Drops files no name reaches, now or after a crash.
    fn forget_unreachable_files(&mut self) {
        if !std::mem::take(&mut self.files_unnamed) {
            return; // no name went away since the last look: nothing to forget
        }
        let live: BTreeSet<u64> =
            self.names.values().chain(self.durable_names.values()).copied().collect();
        self.files.retain(|inode, _| live.contains(inode));
    }

    /// A file drawn at random among those whose name `wanted` accepts and that
    /// `eligible` accepts, in name order.
    fn random_file(
        &self,
        rng: &mut SimRng,
        wanted: impl Fn(&str) -> bool,
        eligible: impl Fn(&SimFile) -> bool,
    ) -> Option<u64> {
        let candidates: Vec<u64> = self
            .names
            .iter()
            .filter(|(name, inode)| wanted(name) && eligible(&self.files[inode]))
            .map(|(_, &inode)| inode)
            .collect();
        (!candidates.is_empty()).then(|| candidates[rng.random_range(0..candidates.len())])
    }

    /// Injects a fault; returns a number describing where it struck (for the trace).
    pub fn inject(&mut self, fault: DiskFault, rng: &mut SimRng) -> u64 {
        match fault {
            DiskFault::BitRot => {
                let Some(inode) = self.random_file(rng, |_| true, |file| file.durable_len() > 0)
                else {
                    return u64::MAX;
                };
                let byte = rng.random_range(0..self.files[&inode].durable_len() as usize);
                let bit = 1u8 << rng.random_range(0..8u32);
                self.flip_bit(inode, byte, bit);
                (inode << 40) | byte as u64
            }
            DiskFault::LatentSectorError => {
                let Some(inode) = self.random_file(rng, |_| true, |file| !file.current.is_empty())
                else {
                    return u64::MAX;
                };
                let sectors = (self.files[&inode].current.len() as u64).div_ceil(SECTOR_BYTES);
                let sector = rng.random_range(0..sectors);
                self.bad_sectors.insert((inode, sector));
                (inode << 40) | sector
            }
            DiskFault::MisdirectWrite => {
                let draw = rng.random::<u64>();
                self.misdirect_next_write = Some(draw);
                draw
            }
            DiskFault::OutOfSpace { free_bytes } => {
                self.quota_bytes = Some(self.used_bytes() + free_bytes);
                free_bytes
            }
            DiskFault::FailSync => {
                self.fail_next_sync = true;
                0
            }
            DiskFault::Heal => {
                self.quota_bytes = None;
                self.misdirect_next_write = None;
                self.fail_next_sync = false;
                self.tear_tail_at_crash = false;
                0
            }
            DiskFault::TornTail => {
                self.tear_tail_at_crash = true;
                0
            }
            DiskFault::BatchHeader { field } => {
                let layout = self.config.layout;
                let segment = |name: &str| layout.is_log(name);
                let Some(inode) = self.random_file(rng, segment, |file| file.durable_len() > 0)
                else {
                    return u64::MAX;
                };
                let file = &self.files[&inode];
                let durable = match &file.durable {
                    Durable::Prefix(len) => &file.current[..*len as usize],
                    Durable::Own(bytes) => &bytes[..],
                };
                let starts = layout.record_starts(durable);
                if starts.is_empty() {
                    return u64::MAX;
                }
                let start = starts[rng.random_range(0..starts.len())];
                let bytes = (layout.header_field)(field);
                if bytes.is_empty() {
                    return u64::MAX;
                }
                let bit = rng.random_range(0..bytes.len() * 8);
                let byte = start + bytes.start + bit / 8;
                self.flip_bit(inode, byte, 1 << (bit % 8));
                (inode << 40) | byte as u64
            }
            DiskFault::Checkpoint { file } => {
                let Some(name) = (self.config.layout.checkpoint_file)(file) else {
                    return u64::MAX;
                };
                let named = |path: &str| path.rsplit('/').next() == Some(name);
                let Some(inode) = self.random_file(rng, named, |file| file.durable_len() > 0)
                else {
                    return u64::MAX;
                };
                let byte = rng.random_range(0..self.files[&inode].durable_len() as usize);
                let bit = 1u8 << rng.random_range(0..8u32);
                self.flip_bit(inode, byte, bit);
                (inode << 40) | byte as u64
            }
        }
    }

    /// Flips bits of a durable byte of a file, at rest: reads see it too.
    fn flip_bit(&mut self, inode: u64, byte: usize, bits: u8) {
        let file = self.files.get_mut(&inode).expect("named file exists");
        // A durable prefix is `current`'s own bytes: one flip strikes both.
        if let Durable::Own(durable) = &mut file.durable {
            durable[byte] ^= bits;
        }
        if byte < file.current.len() {
            file.current[byte] ^= bits;
        }
    }

    /// The file a name has, if the remembered lookups know it.
    fn remembered(&self, path: &str) -> Option<u64> {
        self.lookups.iter().find(|(name, _)| name == path).map(|&(_, inode)| inode)
    }

    fn inode(&mut self, path: &str) -> Result<u64, DiskError> {
        // The same few files are asked for again and again (each log's active
        // segment): remembered lookups spare most searches of the name map.
        if let Some(inode) = self.remembered(path) {
            return Ok(inode);
        }
        let inode = self
            .names
            .get(path)
            .copied()
            .ok_or_else(|| DiskError::NotFound { path: path.to_owned() })?;
        if self.lookups.len() < LOOKUPS_KEPT {
            self.lookups.push((path.to_owned(), inode));
        } else {
            // Reuses the replaced name's buffer: no allocation per miss.
            let (name, known) = &mut self.lookups[self.lookup_victim];
            name.clear();
            name.push_str(path);
            *known = inode;
            self.lookup_victim = (self.lookup_victim + 1) % LOOKUPS_KEPT;
        }
        Ok(inode)
    }

    fn change_name(&mut self, dir: &str, change: NameChange) {
        self.lookups.clear();
        if !matches!(change, NameChange::Create { .. }) {
            self.files_unnamed = true;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        apply_name(&mut self.names, &change);
        self.name_changes.entry(dir.to_owned()).or_default().push((seq, change));
    }

    fn record(&mut self, inode: u64, change: Change) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let writeback_max = self.config.writeback_bytes_max;
        let file = self.files.get_mut(&inode).expect("named file exists");
        match &change {
            Change::Append { offset, len } => {
                debug_assert_eq!(offset + len, file.current.len() as u64)
            }
            Change::Write { offset, .. } => file.materialize_from(*offset),
            Change::Truncate { len } => file.materialize_from(*len),
        }
        // `current` changes from here on: a durable prefix reaching past it needs its
        // own copy first.
        let changed_from = match &change {
            Change::Append { offset, .. } | Change::Write { offset, .. } => *offset,
            Change::Truncate { len } => *len,
        };
        if matches!(file.durable, Durable::Prefix(len) if len > changed_from) {
            file.durable_own();
        }
        if let Change::Write { offset, bytes } = &change {
            write_at(&mut file.current, *offset, bytes);
        } else if let Change::Truncate { len } = &change {
            file.current.truncate(*len as usize);
        }
        let pending = Pending { seq, change };
        file.pending_bytes += change_bytes(&pending);
        file.pending.push(pending);
        // Background writeback: the oldest changes reach the disk on their own.
        let mut oldest = 0;
        let mut over = file.pending_bytes.saturating_sub(writeback_max);
        while over > 0 && oldest < file.pending.len() {
            over = over.saturating_sub(change_bytes(&file.pending[oldest]));
            oldest += 1;
        }
        file.make_durable(oldest);
    }

    fn append_bytes(&mut self, inode: u64, bytes: &[u8]) {
        let file = self.files.get_mut(&inode).expect("named file exists");
        let offset = file.current.len() as u64;
        file.current.extend_from_slice(bytes);
        self.record(inode, Change::Append { offset, len: bytes.len() as u64 });
    }
}

fn change_bytes(pending: &Pending) -> u64 {
    match &pending.change {
        Change::Append { len, .. } => *len,
        Change::Write { bytes, .. } => bytes.len() as u64,
        Change::Truncate { .. } => 0,
    }
}

/// The file system: paths are relative, `/`-separated, and name files inside
/// directories made with `create_dir` (`p0/00000000000000000000.log`). Everything is
/// synchronous except `sync`, whose completion reaches the process as
/// `Process::on_synced`.
impl SimDisk {
    /// Creates a directory (and its parents); succeeds if it exists.
    pub fn create_dir(&mut self, dir: &str) -> Result<(), DiskError> {
        let mut path = String::new();
        for part in dir.split('/').filter(|part| !part.is_empty()) {
            if !path.is_empty() {
                path.push('/');
            }
            path.push_str(part);
            if self.names.contains_key(&path) {
                return Err(DiskError::AlreadyExists { path });
            }
            self.dirs.insert(path.clone());
        }
        Ok(())
    }

    /// Creates an empty file; fails if the name exists.
    pub fn create(&mut self, path: &str) -> Result<(), DiskError> {
        let dir = parent(path);
        if !self.dirs.contains(dir) {
            return Err(DiskError::NotFound { path: dir.to_owned() });
        }
        if self.names.contains_key(path) || self.dirs.contains(path) {
            return Err(DiskError::AlreadyExists { path: path.to_owned() });
        }
        let inode = self.next_inode;
        self.next_inode += 1;
        self.files.insert(inode, SimFile::default());
        self.change_name(dir, NameChange::Create { name: path.to_owned(), inode });
        Ok(())
    }

    /// Appends to the end of a file and returns the offset the bytes start at.
    pub fn append(&mut self, path: &str, bytes: &[u8]) -> Result<u64, DiskError> {
        let inode = self.inode(path)?;
        let len = self.files[&inode].current.len() as u64;
        if self.quota_bytes.is_some_and(|quota| self.used_bytes() + bytes.len() as u64 > quota) {
            return Err(DiskError::NoSpace { path: path.to_owned() });
        }
        let first_sector = len / SECTOR_BYTES;
        let last_sector = (len + bytes.len() as u64).div_ceil(SECTOR_BYTES);
        if !self.bad_sectors.is_empty() {
            for sector in first_sector..last_sector {
                self.bad_sectors.remove(&(inode, sector)); // a rewritten sector is remapped
            }
        }
        if let Some(draw) = self.misdirect_next_write.take() {
            // The file grows, but the bytes land elsewhere: zeros where they belong, and
            // some other sector-aligned place of the file overwritten.
            self.append_bytes(inode, &vec![0; bytes.len()]);
            // Somewhere in the file other than the sector it belongs at; in a file of one
            // sector there is no such place and the write is lost to another file.
            let sectors = (len + bytes.len() as u64).div_ceil(SECTOR_BYTES);
            let intended = len / SECTOR_BYTES;
            if sectors > 1 {
                let mut sector = draw % (sectors - 1);
                if sector >= intended {
                    sector += 1;
                }
                let target = sector * SECTOR_BYTES;
                let end = (target + bytes.len() as u64).min(len + bytes.len() as u64);
                let landed = bytes[..(end - target) as usize].to_vec();
                self.record(inode, Change::Write { offset: target, bytes: landed });
            }
        } else {
            self.append_bytes(inode, bytes);
        }
        if self.config.layout.is_log(path) {
            self.last_segment_append = Some((inode, len, bytes.len() as u64));
        }
        Ok(len)
    }

    /// Reads up to `buf.len()` bytes at `offset`; fewer only at the end of the file.
    pub fn read_at(&mut self, path: &str, offset: u64, buf: &mut [u8]) -> Result<usize, DiskError> {
        let inode = self.inode(path)?;
        let content = &self.files[&inode].current;
        let start = (offset as usize).min(content.len());
        let end = (start + buf.len()).min(content.len());
        if end > start && !self.bad_sectors.is_empty() {
            let (first, last) = (start as u64 / SECTOR_BYTES, (end as u64 - 1) / SECTOR_BYTES);
            if let Some(&(_, sector)) =
                self.bad_sectors.range((inode, first)..=(inode, last)).next()
            {
                let detail = "latent sector error".to_owned();
                return Err(DiskError::Io {
                    path: path.to_owned(),
                    offset: sector * SECTOR_BYTES,
                    detail,
                });
            }
        }
        buf[..end - start].copy_from_slice(&content[start..end]);
        Ok(end - start)
    }

    /// The file's length in bytes, as reads see it.
    pub fn len(&mut self, path: &str) -> Result<u64, DiskError> {
        let inode = self.inode(path)?;
        Ok(self.files[&inode].current.len() as u64)
    }

    /// Cuts the file to `len` bytes (never grows it).
    pub fn truncate(&mut self, path: &str, len: u64) -> Result<(), DiskError> {
        let inode = self.inode(path)?;
        if len < self.files[&inode].current.len() as u64 {
            self.record(inode, Change::Truncate { len });
        }
        Ok(())
    }

    /// Renames a file within its directory, replacing any file of that name.
    pub fn rename(&mut self, from: &str, to: &str) -> Result<(), DiskError> {
        let inode = self.inode(from)?;
        let dir = parent(from);
        if dir != parent(to) {
            let detail = format!("rename to {to} leaves the directory");
            return Err(DiskError::Invalid { path: from.to_owned(), detail });
        }
        self.change_name(
            dir,
            NameChange::Rename { from: from.to_owned(), to: to.to_owned(), inode },
        );
        Ok(())
    }

    /// Removes a file's name (durable once its directory is synced).
    pub fn remove(&mut self, path: &str) -> Result<(), DiskError> {
        self.inode(path)?;
        self.change_name(parent(path), NameChange::Remove { name: path.to_owned() });
        Ok(())
    }

    /// The names (not paths) of the files in a directory, sorted.
    pub fn list(&mut self, dir: &str) -> Result<Vec<String>, DiskError> {
        if !self.dirs.contains(dir) {
            return Err(DiskError::NotFound { path: dir.to_owned() });
        }
        // Names are kept sorted by path, so names in one directory come out sorted.
        let prefix = if dir.is_empty() { String::new() } else { format!("{dir}/") };
        Ok(self
            .names
            .range(prefix.clone()..)
            .take_while(|(path, _)| path.starts_with(&prefix))
            .filter(|(path, _)| !path[prefix.len()..].contains('/'))
            .map(|(path, _)| path[prefix.len()..].to_owned())
            .collect())
    }

    /// Does a file or directory of this path exist (as reads see it)?
    pub fn exists(&mut self, path: &str) -> bool {
        self.names.contains_key(path) || self.dirs.contains(path)
    }

    /// Asks for the file's (or the directory's) content (or names) to be made durable.
    /// The completion arrives later, as `Process::on_synced` with the returned ticket.
    pub fn sync(&mut self, path: &str) -> SyncTicket {
        let ticket = SyncTicket(self.next_ticket);
        self.next_ticket += 1;
        // The remembered lookups answer as the name map would (they are forgotten at
        // every change of names).
        let known = self.remembered(path).or_else(|| self.names.get(path).copied());
        let target = match known {
            Some(inode) => SyncTarget::File(inode),
            None if self.dirs.contains(path) => SyncTarget::Dir,
            None => SyncTarget::Missing,
        };
        let path = match self.sync_paths.iter().find(|known| ***known == *path) {
            Some(known) => known.clone(),
            None => {
                let shared: Rc<str> = Rc::from(path);
                if self.sync_paths.len() < LOOKUPS_KEPT {
                    self.sync_paths.push(shared.clone());
                } else {
                    self.sync_paths[self.sync_path_victim] = shared.clone();
                    self.sync_path_victim = (self.sync_path_victim + 1) % LOOKUPS_KEPT;
                }
                shared
            }
        };
        self.in_flight.push(SyncRequest { ticket, target, path, seq_end: self.next_seq });
        self.requested.push(ticket);
        ticket
    }
}
