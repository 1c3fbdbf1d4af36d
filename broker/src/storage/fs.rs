//! `Storage` on real files, with real `fsync` of files and directories. A sync
//! completes at once; its completion is queued for the owner to take, so code sees the
//! same request/complete protocol as in simulation.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::{Storage, StorageError, SyncResult, SyncTicket};

/// Open files kept at once; a limit like every other.
const OPEN_FILES_MAX: usize = 64;

/// Real files under a root directory.
pub struct FsStorage {
    root: PathBuf,
    open: BTreeMap<String, File>,
    next_ticket: u64,
    completed: Vec<(SyncTicket, SyncResult)>,
}

fn error(path: &str, offset: u64, err: std::io::Error) -> StorageError {
    match err.kind() {
        ErrorKind::NotFound => StorageError::NotFound { path: path.to_owned() },
        ErrorKind::AlreadyExists => StorageError::AlreadyExists { path: path.to_owned() },
        ErrorKind::StorageFull => StorageError::NoSpace { path: path.to_owned() },
        _ => StorageError::Io { path: path.to_owned(), offset, detail: err.to_string() },
    }
}

impl FsStorage {
    /// Storage rooted at `root`, which must exist.
    pub fn new(root: &Path) -> FsStorage {
        FsStorage {
            root: root.to_owned(),
            open: BTreeMap::new(),
            next_ticket: 0,
            completed: Vec::new(),
        }
    }

    /// Completed syncs since the last call, in request order.
    pub fn take_completed(&mut self) -> Vec<(SyncTicket, SyncResult)> {
        std::mem::take(&mut self.completed)
    }

    fn full(&self, path: &str) -> PathBuf {
        debug_assert!(
            !path.starts_with('/') && !path.contains(".."),
            "storage paths are relative: {path}"
        );
        self.root.join(path)
    }

    fn file(&mut self, path: &str) -> Result<&mut File, StorageError> {
        if !self.open.contains_key(path) {
            if self.open.len() >= OPEN_FILES_MAX {
                self.open.pop_first();
            }
            let file = OpenOptions::new()
                .read(true)
                .append(true)
                .open(self.full(path))
                .map_err(|err| error(path, 0, err))?;
            self.open.insert(path.to_owned(), file);
        }
        Ok(self.open.get_mut(path).expect("just opened"))
    }
}

impl Storage for FsStorage {
    fn create_dir(&mut self, dir: &str) -> Result<(), StorageError> {
        fs::create_dir_all(self.full(dir)).map_err(|err| error(dir, 0, err))
    }

    fn create(&mut self, path: &str) -> Result<(), StorageError> {
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create_new(true)
            .open(self.full(path))
            .map_err(|err| error(path, 0, err))?;
        if self.open.len() >= OPEN_FILES_MAX {
            self.open.pop_first();
        }
        self.open.insert(path.to_owned(), file);
        Ok(())
    }

    fn append(&mut self, path: &str, bytes: &[u8]) -> Result<u64, StorageError> {
        let file = self.file(path)?;
        let offset = file.seek(SeekFrom::End(0)).map_err(|err| error(path, 0, err))?;
        file.write_all(bytes).map_err(|err| error(path, offset, err))?;
        Ok(offset)
    }

    fn read_at(&mut self, path: &str, offset: u64, buf: &mut [u8]) -> Result<usize, StorageError> {
        let file = self.file(path)?;
        file.seek(SeekFrom::Start(offset)).map_err(|err| error(path, offset, err))?;
        let mut read = 0;
        while read < buf.len() {
            match file.read(&mut buf[read..]) {
                Ok(0) => break,
                Ok(n) => read += n,
                Err(err) if err.kind() == ErrorKind::Interrupted => continue,
                Err(err) => return Err(error(path, offset + read as u64, err)),
            }
        }
        Ok(read)
    }

    fn len(&mut self, path: &str) -> Result<u64, StorageError> {
        let file = self.file(path)?;
        file.metadata().map(|meta| meta.len()).map_err(|err| error(path, 0, err))
    }

    fn truncate(&mut self, path: &str, len: u64) -> Result<(), StorageError> {
        let file = self.file(path)?;
        let current = file.metadata().map_err(|err| error(path, 0, err))?.len();
        if len < current {
            file.set_len(len).map_err(|err| error(path, len, err))?;
        }
        Ok(())
    }

    fn rename(&mut self, from: &str, to: &str) -> Result<(), StorageError> {
        if super::parent(from) != super::parent(to) {
            let detail = format!("rename to {to} leaves the directory");
            return Err(StorageError::Invalid { path: from.to_owned(), detail });
        }
        self.open.remove(from);
        self.open.remove(to);
        fs::rename(self.full(from), self.full(to)).map_err(|err| error(from, 0, err))
    }

    fn remove(&mut self, path: &str) -> Result<(), StorageError> {
        self.open.remove(path);
        fs::remove_file(self.full(path)).map_err(|err| error(path, 0, err))
    }

    fn list(&mut self, dir: &str) -> Result<Vec<String>, StorageError> {
        let mut names = Vec::new();
        for entry in fs::read_dir(self.full(dir)).map_err(|err| error(dir, 0, err))? {
            let entry = entry.map_err(|err| error(dir, 0, err))?;
            if entry.file_type().map_err(|err| error(dir, 0, err))?.is_file() {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    fn exists(&mut self, path: &str) -> bool {
        self.full(path).exists()
    }

    fn sync(&mut self, path: &str) -> SyncTicket {
        let ticket = SyncTicket(self.next_ticket);
        self.next_ticket += 1;
        let full = self.full(path);
        let result = if full.is_dir() {
            File::open(&full).and_then(|dir| dir.sync_all()).map_err(|err| error(path, 0, err))
        } else {
            self.file(path).and_then(|file| file.sync_data().map_err(|err| error(path, 0, err)))
        };
        self.completed.push((ticket, result));
        ticket
    }
}
