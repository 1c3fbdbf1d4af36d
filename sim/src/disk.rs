//! A node's disk in the simulated world: named files that outlive the process.
//!
//! What a process writes here survives a crash; everything else it holds is volatile and
//! lost. In this version every write is durable at once; the storage-engine issue brings
//! the asynchronous `sync` and the fault model (lost, torn and misdirected writes, bit
//! rot, fsyncgate) behind the broker's `Storage` trait.

use std::collections::BTreeMap;

/// Files by name, in name order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimDisk {
    files: BTreeMap<String, Vec<u8>>,
}

impl SimDisk {
    pub fn read(&self, name: &str) -> Option<&[u8]> {
        self.files.get(name).map(Vec::as_slice)
    }

    /// Replaces the whole file.
    pub fn write(&mut self, name: &str, bytes: &[u8]) {
        let file = self.files.entry(name.to_owned()).or_default();
        file.clear();
        file.extend_from_slice(bytes);
    }

    pub fn remove(&mut self, name: &str) -> bool {
        self.files.remove(name).is_some()
    }

    /// File names in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }
}
