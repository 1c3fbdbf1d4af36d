//! Record batches: the unit of append, replication and storage.
//!
//! On disk and on the wire a batch is laid out as below (all integers little-endian).
//!
//! | byte | size | field                | notes                                             |
//! |-----:|-----:|----------------------|---------------------------------------------------|
//! |    0 |    8 | base_offset          | offset of the first record                        |
//! |    8 |    4 | length               | bytes after this field; batch size = 12 + length  |
//! |   12 |    4 | crc                  | CRC-32C of bytes 0..12 and 16..end                |
//! |   16 |    1 | magic                | format version, 1                                 |
//! |   17 |    1 | attributes           | bit 0 transactional, bit 1 control                |
//! |   18 |    4 | leader_epoch         | epoch of the leader that appended it              |
//! |   22 |    8 | producer_id          | -1: none                                          |
//! |   30 |    2 | producer_epoch       | -1: none                                          |
//! |   32 |    4 | base_sequence        | -1: none                                          |
//! |   36 |    4 | record_count         | at least 1                                        |
//! |   40 |    8 | first_timestamp_ns   |                                                   |
//! |   48 |    8 | max_timestamp_ns     |                                                   |
//! |   56 |    … | records              | `record_count` records, back to back              |
//!
//! A record: `timestamp_ns` (8) · `key_len` (4) · key · `value_len` (4) · value.
//!
//! The CRC covers every byte but its own, *including* the base offset and the leader
//! epoch. Kafka leaves both out so a leader can stamp them without recomputing the CRC;
//! a corrupted epoch or offset then goes unnoticed and a replica can serve a record at
//! the wrong place. Here the leader computes the CRC after stamping them, so any flipped
//! bit anywhere in a batch is caught.

use thiserror::Error;

pub const HEADER_BYTES: usize = 56;
const RECORD_OVERHEAD_BYTES: usize = 16;
pub const MAGIC: u8 = 1;
/// The largest batch accepted, encoded. Bounds memory per read and per append.
pub const BATCH_BYTES_MAX: usize = 1 << 20;

pub const ATTRIBUTE_TRANSACTIONAL: u8 = 1;
pub const ATTRIBUTE_CONTROL: u8 = 2;

/// One record.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Record {
    pub timestamp_ns: u64,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

/// Who produced a batch, for idempotence and transactions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProducerStamp {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
}

impl ProducerStamp {
    pub const NONE: ProducerStamp =
        ProducerStamp { producer_id: -1, producer_epoch: -1, base_sequence: -1 };
}

/// A decoded batch.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RecordBatch {
    pub base_offset: u64,
    pub leader_epoch: u32,
    pub attributes: u8,
    pub producer: ProducerStamp,
    pub records: Vec<Record>,
}

impl RecordBatch {
    /// The offset after the last record.
    pub fn end_offset(&self) -> u64 {
        self.base_offset + self.records.len() as u64
    }

    /// The header `validate` reads back from this batch's encoding of `size_bytes`
    /// bytes: for a writer that holds the batch it just encoded, without computing the
    /// CRC again.
    pub fn encoded_header(&self, size_bytes: usize) -> BatchHeader {
        BatchHeader {
            base_offset: self.base_offset,
            size_bytes,
            leader_epoch: self.leader_epoch,
            record_count: self.records.len() as u32,
            producer: self.producer,
            attributes: self.attributes,
        }
    }

    /// Encodes the batch. Fails if it is empty or larger than `BATCH_BYTES_MAX`.
    pub fn encode(&self) -> Result<Vec<u8>, BatchError> {
        if self.records.is_empty() {
            return Err(BatchError::Empty);
        }
        let size = HEADER_BYTES
            + self
                .records
                .iter()
                .map(|r| RECORD_OVERHEAD_BYTES + r.key.len() + r.value.len())
                .sum::<usize>();
        if size > BATCH_BYTES_MAX {
            return Err(BatchError::TooLarge { size_bytes: size });
        }
        let mut out = Vec::with_capacity(size);
        out.extend_from_slice(&self.base_offset.to_le_bytes());
        out.extend_from_slice(&((size - 12) as u32).to_le_bytes());
        out.extend_from_slice(&[0; 4]); // the CRC, filled in last
        out.push(MAGIC);
        out.push(self.attributes);
        out.extend_from_slice(&self.leader_epoch.to_le_bytes());
        out.extend_from_slice(&self.producer.producer_id.to_le_bytes());
        out.extend_from_slice(&self.producer.producer_epoch.to_le_bytes());
        out.extend_from_slice(&self.producer.base_sequence.to_le_bytes());
        out.extend_from_slice(&(self.records.len() as u32).to_le_bytes());
        let first_ns = self.records[0].timestamp_ns;
        let max_ns = self.records.iter().map(|r| r.timestamp_ns).max().unwrap_or(first_ns);
        out.extend_from_slice(&first_ns.to_le_bytes());
        out.extend_from_slice(&max_ns.to_le_bytes());
        for record in &self.records {
            out.extend_from_slice(&record.timestamp_ns.to_le_bytes());
            out.extend_from_slice(&(record.key.len() as u32).to_le_bytes());
            out.extend_from_slice(&record.key);
            out.extend_from_slice(&(record.value.len() as u32).to_le_bytes());
            out.extend_from_slice(&record.value);
        }
        debug_assert_eq!(out.len(), size);
        let crc = checksum(&out);
        out[12..16].copy_from_slice(&crc.to_le_bytes());
        Ok(out)
    }
}

fn checksum(batch: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&batch[..12]), &batch[16..])
}

/// What is wrong with a batch's bytes.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum BatchError {
    #[error("batch has no records")]
    Empty,
    #[error("batch of {size_bytes} bytes exceeds the {BATCH_BYTES_MAX}-byte limit")]
    TooLarge { size_bytes: usize },
    #[error("truncated: {needed} bytes needed, {available} present")]
    Truncated { needed: usize, available: usize },
    #[error("length field {length} is impossible")]
    BadLength { length: u32 },
    #[error("unknown magic byte {magic}")]
    BadMagic { magic: u8 },
    #[error("crc mismatch: stored {stored:08x}, computed {computed:08x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("record {index} is malformed: {problem}")]
    BadRecord { index: u32, problem: &'static str },
}

/// The fixed header of a batch, read without decoding its records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: u64,
    /// Encoded size in bytes, header included.
    pub size_bytes: usize,
    pub leader_epoch: u32,
    pub record_count: u32,
    pub producer: ProducerStamp,
    pub attributes: u8,
}

impl BatchHeader {
    pub fn end_offset(&self) -> u64 {
        self.base_offset + u64::from(self.record_count)
    }

    /// Part of a transaction (data or its marker).
    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTRIBUTE_TRANSACTIONAL != 0
    }

    /// A transaction marker, not data.
    pub fn is_control(&self) -> bool {
        self.attributes & ATTRIBUTE_CONTROL != 0
    }
}

/// The CRC a batch's bytes carry (not checked: see `validate`).
pub fn stored_crc(bytes: &[u8]) -> u32 {
    u32_at(bytes, CRC_FIELD.start)
}

/// The header's fields and their bytes, as the layout table above gives them: for
/// tools that aim damage at one field (a harness's disk faults), never for parsing.
pub const HEADER_FIELDS: &[(&str, std::ops::Range<usize>)] = &[
    ("base-offset", 0..8),
    ("length", 8..12),
    ("crc", CRC_FIELD),
    ("magic", 16..17),
    ("attributes", 17..18),
    ("leader-epoch", 18..22),
    ("producer-id", 22..30),
    ("producer-epoch", 30..32),
    ("base-sequence", 32..36),
    ("record-count", 36..40),
    ("first-timestamp", 40..48),
    ("max-timestamp", 48..56),
];

const CRC_FIELD: std::ops::Range<usize> = 12..16;

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

fn producer_at(batch: &[u8]) -> ProducerStamp {
    ProducerStamp {
        producer_id: u64_at(batch, 22) as i64,
        producer_epoch: i16::from_le_bytes([batch[30], batch[31]]),
        base_sequence: u32_at(batch, 32) as i32,
    }
}

/// The size of the batch starting at `bytes`, from its first 12 bytes alone. Lets a
/// reader fetch exactly one batch before validating it.
pub fn peek_size(bytes: &[u8]) -> Result<usize, BatchError> {
    if bytes.len() < 12 {
        return Err(BatchError::Truncated { needed: 12, available: bytes.len() });
    }
    let length = u32_at(bytes, 8);
    let size = 12 + length as usize;
    if !(HEADER_BYTES + RECORD_OVERHEAD_BYTES..=BATCH_BYTES_MAX).contains(&size) {
        return Err(BatchError::BadLength { length });
    }
    Ok(size)
}

/// The offsets a batch claims (base and end), from its header alone, unchecked: lets a
/// reader skip a batch it does not want without paying for its CRC.
pub fn peek_offsets(bytes: &[u8]) -> Result<(u64, u64), BatchError> {
    if bytes.len() < HEADER_BYTES {
        return Err(BatchError::Truncated { needed: HEADER_BYTES, available: bytes.len() });
    }
    let base_offset = u64_at(bytes, 0);
    let end_offset = base_offset.checked_add(u64::from(u32_at(bytes, 36)));
    end_offset
        .map(|end_offset| (base_offset, end_offset))
        .ok_or(BatchError::BadLength { length: u32_at(bytes, 8) })
}

/// Validates the batch at the start of `bytes` (length, magic, CRC, record framing)
/// and returns its header. Never panics, whatever the bytes.
pub fn validate(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
    let size = peek_size(bytes)?;
    if bytes.len() < size {
        return Err(BatchError::Truncated { needed: size, available: bytes.len() });
    }
    let batch = &bytes[..size];
    if batch[16] != MAGIC {
        return Err(BatchError::BadMagic { magic: batch[16] });
    }
    let stored = u32_at(batch, 12);
    let computed = checksum(batch);
    if stored != computed {
        return Err(BatchError::CrcMismatch { stored, computed });
    }
    let record_count = u32_at(batch, 36);
    // The CRC matched, so the framing below was written by our encoder; check it anyway,
    // because a CRC can collide and a reader must never index past the batch.
    let mut at = HEADER_BYTES;
    for index in 0..record_count {
        let bad = |problem| BatchError::BadRecord { index, problem };
        if at + 12 > size {
            return Err(bad("header runs past the batch"));
        }
        let key_len = u32_at(batch, at + 8) as usize;
        at += 12;
        if key_len > size - at || size - at - key_len < 4 {
            return Err(bad("key runs past the batch"));
        }
        at += key_len;
        let value_len = u32_at(batch, at) as usize;
        at += 4;
        if value_len > size - at {
            return Err(bad("value runs past the batch"));
        }
        at += value_len;
    }
    if record_count == 0 || at != size {
        return Err(BatchError::BadRecord {
            index: record_count,
            problem: "record count does not fill the batch",
        });
    }
    Ok(BatchHeader {
        base_offset: u64_at(batch, 0),
        size_bytes: size,
        leader_epoch: u32_at(batch, 18),
        record_count,
        producer: producer_at(batch),
        attributes: batch[17],
    })
}

/// Validates and decodes the batch at the start of `bytes`.
pub fn decode(bytes: &[u8]) -> Result<RecordBatch, BatchError> {
    let header = validate(bytes)?;
    Ok(decode_validated(bytes, &header))
}

/// Decodes a batch `validate` already accepted, with the header it returned: the same
/// batch as `decode`, without computing the CRC a second time.
pub fn decode_validated(bytes: &[u8], header: &BatchHeader) -> RecordBatch {
    let records = record_views(bytes, header)
        .map(|view| Record {
            timestamp_ns: view.timestamp_ns,
            key: view.key.to_vec(),
            value: view.value.to_vec(),
        })
        .collect();
    RecordBatch {
        base_offset: header.base_offset,
        leader_epoch: header.leader_epoch,
        attributes: header.attributes,
        producer: header.producer,
        records,
    }
}

/// One record of an encoded batch, borrowed from its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordView<'a> {
    pub timestamp_ns: u64,
    pub key: &'a [u8],
    pub value: &'a [u8],
}

/// The records of a batch `validate` accepted (with the header it returned), in order,
/// without copying them out.
pub fn record_views<'a>(
    bytes: &'a [u8],
    header: &BatchHeader,
) -> impl ExactSizeIterator<Item = RecordView<'a>> + 'a {
    let batch = &bytes[..header.size_bytes];
    let mut at = HEADER_BYTES;
    (0..header.record_count as usize).map(move |_| {
        let timestamp_ns = u64_at(batch, at);
        let key_len = u32_at(batch, at + 8) as usize;
        let key = &batch[at + 12..at + 12 + key_len];
        at += 12 + key_len;
        let value_len = u32_at(batch, at) as usize;
        let value = &batch[at + 4..at + 4 + value_len];
        at += 4 + value_len;
        RecordView { timestamp_ns, key, value }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample(base_offset: u64, count: usize) -> RecordBatch {
        RecordBatch {
            base_offset,
            leader_epoch: 7,
            attributes: 0,
            producer: ProducerStamp { producer_id: 42, producer_epoch: 3, base_sequence: 9 },
            records: (0..count)
                .map(|i| Record {
                    timestamp_ns: 1_000 + i as u64,
                    key: vec![b'k'; i],
                    value: vec![i as u8; 3 * i + 1],
                })
                .collect(),
        }
    }

    #[test]
    fn round_trips() {
        for count in [1, 2, 17] {
            let batch = sample(123, count);
            let bytes = batch.encode().unwrap();
            assert_eq!(decode(&bytes).unwrap(), batch);
            assert_eq!(validate(&bytes).unwrap().end_offset(), 123 + count as u64);
            assert_eq!(validate(&bytes), Ok(batch.encoded_header(bytes.len())));
            let marker = RecordBatch { attributes: ATTRIBUTE_CONTROL, ..batch.clone() };
            let bytes = marker.encode().unwrap();
            assert_eq!(validate(&bytes), Ok(marker.encoded_header(bytes.len())));
        }
    }

    #[test]
    fn header_fields_tile_the_header_and_name_what_the_encoder_wrote() {
        let mut at = 0;
        for (name, bytes) in HEADER_FIELDS {
            assert_eq!(bytes.start, at, "{name} does not follow the field before it");
            at = bytes.end;
        }
        assert_eq!(at, HEADER_BYTES);
        let batch = sample(123, 2);
        let bytes = batch.encode().unwrap();
        let field = |wanted: &str| {
            let (_, range) = HEADER_FIELDS.iter().find(|(name, _)| *name == wanted).unwrap();
            let mut value = [0u8; 8];
            value[..range.len()].copy_from_slice(&bytes[range.clone()]);
            u64::from_le_bytes(value)
        };
        assert_eq!(field("base-offset"), 123);
        assert_eq!(field("length"), bytes.len() as u64 - 12);
        assert_eq!(field("crc"), u64::from(stored_crc(&bytes)));
        assert_eq!(field("magic"), u64::from(MAGIC));
        assert_eq!(field("leader-epoch"), 7);
        assert_eq!(field("producer-id"), 42);
        assert_eq!(field("producer-epoch"), 3);
        assert_eq!(field("base-sequence"), 9);
        assert_eq!(field("record-count"), 2);
        assert_eq!(field("first-timestamp"), 1_000);
        assert_eq!(field("max-timestamp"), 1_001);
    }

    #[test]
    fn every_flipped_bit_is_caught() {
        let bytes = sample(5, 3).encode().unwrap();
        for byte in 0..bytes.len() {
            for bit in 0..8 {
                let mut corrupt = bytes.clone();
                corrupt[byte] ^= 1 << bit;
                assert!(
                    validate(&corrupt).is_err(),
                    "flip of bit {bit} in byte {byte} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn limits_are_enforced() {
        assert_eq!(
            RecordBatch { records: vec![], ..sample(0, 1) }.encode(),
            Err(BatchError::Empty)
        );
        let huge = RecordBatch {
            records: vec![Record { timestamp_ns: 0, key: vec![], value: vec![0; BATCH_BYTES_MAX] }],
            ..sample(0, 1)
        };
        assert!(matches!(huge.encode(), Err(BatchError::TooLarge { .. })));
        let bytes = sample(0, 2).encode().unwrap();
        assert!(matches!(validate(&bytes[..bytes.len() - 1]), Err(BatchError::Truncated { .. })));
    }
}
