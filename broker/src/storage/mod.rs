//! The storage seam: a small, file-like, synchronous interface with an asynchronous
//! `sync`. The same broker code runs on real files (`FsStorage`) and on the simulator's
//! disk, which loses, tears and corrupts what was never synced.
//!
//! Paths are relative, `/`-separated, and name files inside directories
//! (`p0/00000000000000000000.log`). A directory is created with `create_dir`.
//!
//! Durability: a write is durable only once a `sync` of its file, requested after the
//! write, has *completed successfully*; a created, renamed or removed name only once a
//! `sync` of its directory has. Completion reaches the owner of the storage as an input
//! (the simulator's `on_synced`, or `FsStorage::take_completed`), never as a return
//! value, so code that acknowledges before it is durable can be caught by a crash in
//! between.

mod fs;

pub use fs::FsStorage;

use std::fmt;

use thiserror::Error;

/// Names one requested sync; its completion carries the same ticket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SyncTicket(pub u64);

impl fmt::Display for SyncTicket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sync#{}", self.0)
    }
}

/// What a completed sync says. An error means the data it covered may never reach the
/// disk, and a later sync saying `Ok` proves nothing about it (the fsyncgate lesson).
pub type SyncResult = Result<(), StorageError>;

/// Why a storage operation failed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum StorageError {
    #[error("{path}: no such file or directory")]
    NotFound { path: String },
    #[error("{path}: already exists")]
    AlreadyExists { path: String },
    #[error("{path}: no space left on device")]
    NoSpace { path: String },
    #[error("{path}: i/o error at byte {offset}: {detail}")]
    Io { path: String, offset: u64, detail: String },
    #[error("{path}: {detail}")]
    Invalid { path: String, detail: String },
}

/// A file-like store. All operations are synchronous except `sync`.
pub trait Storage {
    /// Creates a directory (and its parents); succeeds if it exists.
    fn create_dir(&mut self, dir: &str) -> Result<(), StorageError>;
    /// Creates an empty file; fails if the name exists.
    fn create(&mut self, path: &str) -> Result<(), StorageError>;
    /// Appends to the end of a file and returns the offset the bytes start at.
    fn append(&mut self, path: &str, bytes: &[u8]) -> Result<u64, StorageError>;
    /// Reads up to `buf.len()` bytes at `offset`; fewer only at the end of the file.
    fn read_at(&mut self, path: &str, offset: u64, buf: &mut [u8]) -> Result<usize, StorageError>;
    /// The file's length in bytes.
    fn len(&mut self, path: &str) -> Result<u64, StorageError>;
    /// Cuts the file to `len` bytes (never grows it).
    fn truncate(&mut self, path: &str, len: u64) -> Result<(), StorageError>;
    /// Renames a file within its directory, replacing any file of that name.
    fn rename(&mut self, from: &str, to: &str) -> Result<(), StorageError>;
    fn remove(&mut self, path: &str) -> Result<(), StorageError>;
    /// The names (not paths) of the files in a directory, sorted.
    fn list(&mut self, dir: &str) -> Result<Vec<String>, StorageError>;
    fn exists(&mut self, path: &str) -> bool;
    /// Asks for the file's (or the directory's) content (or names) to be made durable.
    /// The completion arrives later, with the returned ticket.
    fn sync(&mut self, path: &str) -> SyncTicket;
}

/// `dir/name`, or `name` alone at the top.
pub fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() { name.to_owned() } else { format!("{dir}/{name}") }
}

/// The directory part of a path (`""` at the top).
pub fn parent(path: &str) -> &str {
    path.rfind('/').map_or("", |slash| &path[..slash])
}

/// Reads exactly `buf.len()` bytes at `offset`, or says how many there were.
pub fn read_exact_at<S: Storage + ?Sized>(
    storage: &mut S,
    path: &str,
    offset: u64,
    buf: &mut [u8],
) -> Result<(), StorageError> {
    let read = storage.read_at(path, offset, buf)?;
    if read == buf.len() {
        Ok(())
    } else {
        let detail = format!("wanted {} bytes, the file ends after {read}", buf.len());
        Err(StorageError::Io { path: path.to_owned(), offset, detail })
    }
}
