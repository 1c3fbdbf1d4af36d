//! The envelope: what one log record's value holds for one event. The record's key is
//! the stream name (`acct-3`), so a stream lives in one partition, in order.
//!
//! Layout (all integers little-endian):
//!
//! | byte | size | field          | notes                                                  |
//! |-----:|-----:|----------------|--------------------------------------------------------|
//! |    0 |    1 | format         | envelope format, 1                                     |
//! |    1 |    2 | schema_version | schema of the payload (see `schema`); 0 is never valid |
//! |    3 |    8 | stream_version | the event's position in its stream: 0, 1, 2, ...       |
//! |   11 |    8 | command_id     | the command that produced it (at-most-once retries)    |
//! |   19 |    4 | payload_len    | at most `PAYLOAD_BYTES_MAX`                            |
//! |   23 |    … | payload        | the event, encoded at `schema_version`                 |
//!
//! Size = 23 + payload_len, exactly: trailing bytes are an error. There is no checksum:
//! the record batch that carries the envelope has a CRC-32C over every byte of it.
//!
//! `decode` never panics, whatever the bytes (a property test feeds it random ones).

use thiserror::Error;

pub const FORMAT: u8 = 1;
pub const HEADER_BYTES: usize = 23;
/// The largest event payload accepted, encoded. Bounds memory per event.
pub const PAYLOAD_BYTES_MAX: usize = 64 * 1024;

/// One event as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    pub stream_version: u64,
    pub command_id: u64,
    pub schema_version: u16,
    pub payload: Vec<u8>,
}

/// A decoded envelope that borrows its payload from the record: folds read millions of
/// them and copy nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnvelopeRef<'a> {
    pub stream_version: u64,
    pub command_id: u64,
    pub schema_version: u16,
    pub payload: &'a [u8],
}

/// What is wrong with an envelope's bytes.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("envelope of {available} bytes is shorter than its {HEADER_BYTES}-byte header")]
    Truncated { available: usize },
    #[error("unknown envelope format {format}")]
    BadFormat { format: u8 },
    #[error("schema version 0 is never written")]
    ZeroSchema,
    #[error("payload length {payload_len} exceeds the {PAYLOAD_BYTES_MAX}-byte limit")]
    PayloadTooLarge { payload_len: usize },
    #[error("payload length {payload_len} does not match the {available} bytes after the header")]
    LengthMismatch { payload_len: usize, available: usize },
}

impl Envelope {
    /// The envelope's bytes. Panics on a payload over `PAYLOAD_BYTES_MAX` or schema 0:
    /// both are the writer's bug, never the data's.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_BYTES + self.payload.len());
        self.encode_into(&mut out);
        out
    }

    /// Appends the envelope's bytes to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        assert!(self.payload.len() <= PAYLOAD_BYTES_MAX, "payload over PAYLOAD_BYTES_MAX");
        assert_ne!(self.schema_version, 0, "schema version 0 is never written");
        let start = out.len();
        out.push(FORMAT);
        out.extend_from_slice(&self.schema_version.to_le_bytes());
        out.extend_from_slice(&self.stream_version.to_le_bytes());
        out.extend_from_slice(&self.command_id.to_le_bytes());
        out.extend_from_slice(&(self.payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.payload);
        debug_assert_eq!(out.len() - start, HEADER_BYTES + self.payload.len());
    }

    pub fn as_ref(&self) -> EnvelopeRef<'_> {
        EnvelopeRef {
            stream_version: self.stream_version,
            command_id: self.command_id,
            schema_version: self.schema_version,
            payload: &self.payload,
        }
    }
}

impl EnvelopeRef<'_> {
    pub fn to_owned(&self) -> Envelope {
        Envelope {
            stream_version: self.stream_version,
            command_id: self.command_id,
            schema_version: self.schema_version,
            payload: self.payload.to_vec(),
        }
    }
}

/// Decodes an envelope, copying its payload.
pub fn decode(bytes: &[u8]) -> Result<Envelope, DecodeError> {
    decode_ref(bytes).map(|envelope| envelope.to_owned())
}

/// Decodes an envelope that borrows its payload from `bytes`.
pub fn decode_ref(bytes: &[u8]) -> Result<EnvelopeRef<'_>, DecodeError> {
    let Some((header, payload)) = bytes.split_first_chunk::<HEADER_BYTES>() else {
        return Err(DecodeError::Truncated { available: bytes.len() });
    };
    if header[0] != FORMAT {
        return Err(DecodeError::BadFormat { format: header[0] });
    }
    let schema_version = u16::from_le_bytes([header[1], header[2]]);
    if schema_version == 0 {
        return Err(DecodeError::ZeroSchema);
    }
    let payload_len = u32::from_le_bytes(slice4(header, 19)) as usize;
    if payload_len > PAYLOAD_BYTES_MAX {
        return Err(DecodeError::PayloadTooLarge { payload_len });
    }
    if payload.len() != payload_len {
        return Err(DecodeError::LengthMismatch { payload_len, available: payload.len() });
    }
    Ok(EnvelopeRef {
        stream_version: u64::from_le_bytes(slice8(header, 3)),
        command_id: u64::from_le_bytes(slice8(header, 11)),
        schema_version,
        payload,
    })
}

fn slice4(header: &[u8; HEADER_BYTES], at: usize) -> [u8; 4] {
    [header[at], header[at + 1], header[at + 2], header[at + 3]]
}

fn slice8(header: &[u8; HEADER_BYTES], at: usize) -> [u8; 8] {
    let mut out = [0; 8];
    out.copy_from_slice(&header[at..at + 8]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngAlgorithm, RngSeed};

    fn sample() -> Envelope {
        Envelope {
            stream_version: 7,
            command_id: 0xfeed,
            schema_version: 2,
            payload: vec![1, 2, 3],
        }
    }

    #[test]
    fn layout_matches_the_table() {
        let bytes = sample().encode();
        assert_eq!(bytes.len(), HEADER_BYTES + 3);
        assert_eq!(bytes[0], FORMAT);
        assert_eq!(&bytes[1..3], &2u16.to_le_bytes());
        assert_eq!(&bytes[3..11], &7u64.to_le_bytes());
        assert_eq!(&bytes[11..19], &0xfeedu64.to_le_bytes());
        assert_eq!(&bytes[19..23], &3u32.to_le_bytes());
        assert_eq!(&bytes[23..], &[1, 2, 3]);
        assert_eq!(decode(&bytes), Ok(sample()));
    }

    #[test]
    fn decode_refuses_every_kind_of_damage() {
        let good = sample().encode();
        let mut bad_format = good.clone();
        bad_format[0] = 9;
        let mut zero_schema = good.clone();
        zero_schema[1..3].copy_from_slice(&[0, 0]);
        let mut huge = good.clone();
        huge[19..23].copy_from_slice(&u32::MAX.to_le_bytes());
        let cases = [
            (good[..22].to_vec(), DecodeError::Truncated { available: 22 }),
            (bad_format, DecodeError::BadFormat { format: 9 }),
            (zero_schema, DecodeError::ZeroSchema),
            (huge, DecodeError::PayloadTooLarge { payload_len: u32::MAX as usize }),
            (good[..25].to_vec(), DecodeError::LengthMismatch { payload_len: 3, available: 2 }),
            (
                [&good[..], &[0]].concat(),
                DecodeError::LengthMismatch { payload_len: 3, available: 4 },
            ),
        ];
        for (bytes, expected) in cases {
            assert_eq!(decode(&bytes), Err(expected));
        }
    }

    fn config() -> Config {
        Config {
            cases: 2_000,
            rng_algorithm: RngAlgorithm::ChaCha,
            rng_seed: RngSeed::Fixed(11),
            failure_persistence: None,
            ..Config::default()
        }
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn decode_never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn decode_never_panics_on_damaged_envelopes(
            payload in proptest::collection::vec(any::<u8>(), 0..40),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
            cut in any::<prop::sample::Index>(),
        ) {
            let envelope = Envelope { stream_version: 3, command_id: 4, schema_version: 1, payload };
            let mut bytes = envelope.encode();
            prop_assert_eq!(decode(&bytes), Ok(envelope));
            for (at, value) in flips {
                let at = at.index(bytes.len());
                bytes[at] = value;
            }
            let _ = decode(&bytes);
            let _ = decode(&bytes[..cut.index(bytes.len() + 1)]);
        }

        #[test]
        fn encode_then_decode_is_identity(
            stream_version in any::<u64>(),
            command_id in any::<u64>(),
            schema_version in 1..=u16::MAX,
            payload in proptest::collection::vec(any::<u8>(), 0..100),
        ) {
            let envelope = Envelope { stream_version, command_id, schema_version, payload };
            prop_assert_eq!(decode(&envelope.encode()), Ok(envelope));
        }
    }
}
