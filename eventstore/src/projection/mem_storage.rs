//! A `Storage` in memory that forgets what was never synced when it crashes: file
//! contents are durable only from a completed sync of the file, names only from a
//! completed sync of their directory. Syncs complete one at a time, when the test says.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use logjam_broker::storage::{Storage, StorageError, SyncResult, SyncTicket, parent};

enum Pending {
    File { inode: u64, bytes: Vec<u8> },
    Dir { dir: String, entries: Vec<(String, u64)> },
    Missing { path: String },
}

#[derive(Default)]
pub struct MemStorage {
    next_inode: u64,
    next_ticket: u64,
    dirs: BTreeSet<String>,
    names: BTreeMap<String, u64>,
    durable_names: BTreeMap<String, u64>,
    data: BTreeMap<u64, Vec<u8>>,
    durable_data: BTreeMap<u64, Vec<u8>>,
    pending: VecDeque<(SyncTicket, Pending)>,
}

impl MemStorage {
    /// Completes the oldest sync asked for, if any.
    pub fn complete_one(&mut self) -> Option<(SyncTicket, SyncResult)> {
        let (ticket, pending) = self.pending.pop_front()?;
        let result = match pending {
            Pending::File { inode, bytes } => {
                self.durable_data.insert(inode, bytes);
                Ok(())
            }
            Pending::Dir { dir, entries } => {
                self.durable_names.retain(|path, _| parent(path) != dir);
                self.durable_names.extend(entries);
                Ok(())
            }
            Pending::Missing { path } => Err(StorageError::NotFound { path }),
        };
        Some((ticket, result))
    }

    /// Loses everything not durable, and every sync not completed.
    pub fn crash(&mut self) {
        self.pending.clear();
        self.names = self.durable_names.clone();
        let live: BTreeSet<u64> = self.names.values().copied().collect();
        self.data = live
            .iter()
            .map(|inode| (*inode, self.durable_data.get(inode).cloned().unwrap_or_default()))
            .collect();
        self.durable_data.retain(|inode, _| live.contains(inode));
    }

    fn inode(&self, path: &str) -> Result<u64, StorageError> {
        self.names
            .get(path)
            .copied()
            .ok_or_else(|| StorageError::NotFound { path: path.to_owned() })
    }
}

impl Storage for MemStorage {
    fn create_dir(&mut self, dir: &str) -> Result<(), StorageError> {
        // Directories are durable at once: the tests crash files, not directories.
        self.dirs.insert(dir.to_owned());
        Ok(())
    }

    fn create(&mut self, path: &str) -> Result<(), StorageError> {
        if self.names.contains_key(path) {
            return Err(StorageError::AlreadyExists { path: path.to_owned() });
        }
        self.next_inode += 1;
        self.names.insert(path.to_owned(), self.next_inode);
        self.data.insert(self.next_inode, Vec::new());
        Ok(())
    }

    fn append(&mut self, path: &str, bytes: &[u8]) -> Result<u64, StorageError> {
        let data = self.data.get_mut(&self.inode(path)?).expect("a named inode has data");
        let offset = data.len() as u64;
        data.extend_from_slice(bytes);
        Ok(offset)
    }

    fn read_at(&mut self, path: &str, offset: u64, buf: &mut [u8]) -> Result<usize, StorageError> {
        let data = &self.data[&self.inode(path)?];
        let start = (offset as usize).min(data.len());
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        Ok(n)
    }

    fn len(&mut self, path: &str) -> Result<u64, StorageError> {
        Ok(self.data[&self.inode(path)?].len() as u64)
    }

    fn truncate(&mut self, path: &str, len: u64) -> Result<(), StorageError> {
        let inode = self.inode(path)?;
        self.data.get_mut(&inode).expect("data").truncate(len as usize);
        Ok(())
    }

    fn rename(&mut self, from: &str, to: &str) -> Result<(), StorageError> {
        let inode = self.inode(from)?;
        self.names.remove(from);
        self.names.insert(to.to_owned(), inode);
        Ok(())
    }

    fn remove(&mut self, path: &str) -> Result<(), StorageError> {
        self.inode(path)?;
        self.names.remove(path);
        Ok(())
    }

    fn list(&mut self, dir: &str) -> Result<Vec<String>, StorageError> {
        let names = self.names.keys().filter(|path| parent(path) == dir);
        Ok(names
            .map(|path| path[path.rfind('/').map_or(0, |slash| slash + 1)..].to_owned())
            .collect())
    }

    fn exists(&mut self, path: &str) -> bool {
        self.names.contains_key(path) || self.dirs.contains(path)
    }

    fn sync(&mut self, path: &str) -> SyncTicket {
        self.next_ticket += 1;
        let ticket = SyncTicket(self.next_ticket);
        let pending = if let Some(&inode) = self.names.get(path) {
            Pending::File { inode, bytes: self.data[&inode].clone() }
        } else if path.is_empty() || self.dirs.contains(path) {
            let entries = self.names.iter().filter(|(p, _)| parent(p) == path);
            Pending::Dir {
                dir: path.to_owned(),
                entries: entries.map(|(p, i)| (p.clone(), *i)).collect(),
            }
        } else {
            Pending::Missing { path: path.to_owned() }
        };
        self.pending.push_back((ticket, pending));
        ticket
    }
}

#[test]
fn only_synced_contents_under_synced_names_survive_a_crash() {
    let mut storage = MemStorage::default();
    storage.create_dir("p").unwrap();
    storage.create("p/a").unwrap();
    storage.append("p/a", b"one").unwrap();
    storage.sync("p/a");
    storage.sync("p");
    storage.append("p/a", b"two").unwrap();
    storage.create("p/b").unwrap();
    while storage.complete_one().is_some() {}
    storage.crash();
    let mut buf = [0; 8];
    assert_eq!(storage.read_at("p/a", 0, &mut buf).unwrap(), 3, "the unsynced append is gone");
    assert!(!storage.exists("p/b"), "the unsynced name is gone");
    storage.create("p/c").unwrap();
    storage.sync("p/c");
    storage.crash();
    assert!(!storage.exists("p/c"), "a synced file under an unsynced name is gone");
}
