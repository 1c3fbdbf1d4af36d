//! What the disk answers when an operation fails, and the tickets that name syncs.

use std::fmt;

use thiserror::Error;

/// Names one requested sync; its completion (`Process::on_synced`) carries the same
/// ticket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SyncTicket(pub u64);

impl fmt::Display for SyncTicket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sync#{}", self.0)
    }
}

/// What a completed sync says. An error means the data it covered may never reach the
/// disk, and a later sync saying `Ok` proves nothing about it (the fsyncgate lesson).
pub type SyncResult = Result<(), DiskError>;

/// Why a disk operation failed (the errors a file system gives).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum DiskError {
    /// The path, or the directory it names a file in, does not exist.
    #[error("{path}: no such file or directory")]
    NotFound {
        /// The path asked for.
        path: String,
    },
    /// A file or directory of that name exists.
    #[error("{path}: already exists")]
    AlreadyExists {
        /// The path asked for.
        path: String,
    },
    /// The disk is full (an injected `OutOfSpace`).
    #[error("{path}: no space left on device")]
    NoSpace {
        /// The file written to.
        path: String,
    },
    /// A read met a bad sector, or a sync failed.
    #[error("{path}: i/o error at byte {offset}: {detail}")]
    Io {
        /// The file read or synced.
        path: String,
        /// Where in the file.
        offset: u64,
        /// What went wrong.
        detail: String,
    },
    /// An operation the disk does not do (a rename across directories).
    #[error("{path}: {detail}")]
    Invalid {
        /// The path asked for.
        path: String,
        /// Why it was refused.
        detail: String,
    },
}

/// The directory part of a path (`""` at the top).
pub(crate) fn parent(path: &str) -> &str {
    path.rfind('/').map_or("", |slash| &path[..slash])
}
