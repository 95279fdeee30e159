//! The bytes of the log: records, batches, checksums and the hash chain.
//!
//! A batch is one value in the store, keyed by its first record's sequence
//! number (big-endian, so keys sort like numbers and "the batch holding seq
//! N" is one reverse seek). Its bytes are a postcard-encoded [`BatchBody`]
//! followed by the SHA-256 of those bytes. The body carries the previous
//! batch's hash, so each batch seals everything before it: changing one byte
//! anywhere breaks that batch's hash, and replacing a whole batch breaks the
//! next batch's link. Each record also carries a CRC-32 of its own fields, so
//! an inspection can name the damaged record inside a damaged batch.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The format of records and batches written by this version.
pub const FORMAT_VERSION: u8 = 1;

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// The hash that the first batch links to.
pub const GENESIS: Hash = [0; 32];

/// One entry of the log: opaque bytes, their sequence number and the time
/// the writer stamped on them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Position in the log, from 1, with no gaps.
    pub seq: u64,
    /// Milliseconds since the epoch, as stamped by the producer.
    pub timestamp_ms: u64,
    /// What the producer logged; the log never looks inside.
    pub payload: Vec<u8>,
}

/// A record as stored: the record plus its format version and checksum.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordFrame {
    /// [`FORMAT_VERSION`] when written.
    pub version: u8,
    /// The record.
    pub record: Record,
    /// CRC-32 of version, seq, timestamp and payload.
    pub crc32: u32,
}

impl RecordFrame {
    /// Frames a record with the current version and its checksum.
    pub fn new(record: Record) -> RecordFrame {
        let crc32 = record_crc(FORMAT_VERSION, &record);
        RecordFrame {
            version: FORMAT_VERSION,
            record,
            crc32,
        }
    }

    /// Whether the checksum matches.
    pub fn is_intact(&self) -> bool {
        self.crc32 == record_crc(self.version, &self.record)
    }
}

fn record_crc(version: u8, record: &Record) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&[version]);
    hasher.update(&record.seq.to_le_bytes());
    hasher.update(&record.timestamp_ms.to_le_bytes());
    hasher.update(&record.payload);
    hasher.finalize()
}

/// The hashed part of a batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchBody {
    /// [`FORMAT_VERSION`] when written.
    pub version: u8,
    /// The hash of the batch before (or [`GENESIS`]).
    pub prev_hash: Hash,
    /// When the batch was committed (ms since the epoch).
    pub committed_at_ms: u64,
    /// The records, with consecutive sequence numbers.
    pub records: Vec<RecordFrame>,
}

impl BatchBody {
    /// The first record's sequence number (0 for an empty batch).
    pub fn first_seq(&self) -> u64 {
        self.records.first().map_or(0, |r| r.record.seq)
    }

    /// The last record's sequence number (0 for an empty batch).
    pub fn last_seq(&self) -> u64 {
        self.records.last().map_or(0, |r| r.record.seq)
    }
}

/// The store key of the batch whose first record is `first_seq`.
pub fn key(first_seq: u64) -> [u8; 8] {
    first_seq.to_be_bytes()
}

/// The first sequence number a store key stands for.
pub fn seq_of_key(key: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = key.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

/// Encodes a batch: the body, then its SHA-256. Returns the bytes and the hash.
pub fn encode_batch(body: &BatchBody) -> Result<(Vec<u8>, Hash), postcard::Error> {
    let mut bytes = postcard::to_stdvec(body)?;
    let hash: Hash = Sha256::digest(&bytes).into();
    bytes.extend_from_slice(&hash);
    Ok((bytes, hash))
}

/// Why stored bytes are not a valid batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Damage {
    /// Shorter than a hash: cut off while written.
    Truncated,
    /// The bytes do not match their hash.
    HashMismatch,
    /// The body does not decode.
    Undecodable,
    /// Written by a format this version does not know.
    UnknownVersion(u8),
    /// A batch with no records.
    Empty,
    /// A record's checksum fails (its sequence number).
    RecordChecksum(u64),
    /// Records out of sequence inside the batch (the first wrong one).
    RecordSequence(u64),
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Damage::Truncated => write!(f, "truncated"),
            Damage::HashMismatch => write!(f, "hash mismatch"),
            Damage::Undecodable => write!(f, "undecodable"),
            Damage::UnknownVersion(v) => write!(f, "unknown format version {v}"),
            Damage::Empty => write!(f, "no records"),
            Damage::RecordChecksum(seq) => write!(f, "record {seq} fails its checksum"),
            Damage::RecordSequence(seq) => write!(f, "record {seq} out of sequence"),
        }
    }
}

/// Decodes and checks one batch on its own (hash, version, records); the
/// link to the previous batch is the caller's to check.
pub fn decode_batch(bytes: &[u8]) -> Result<(BatchBody, Hash), Damage> {
    let split = bytes.len().checked_sub(32).ok_or(Damage::Truncated)?;
    let (body_bytes, stored) = bytes.split_at(split);
    let hash: Hash = Sha256::digest(body_bytes).into();
    if hash.as_slice() != stored {
        return Err(Damage::HashMismatch);
    }
    let body: BatchBody = postcard::from_bytes(body_bytes).map_err(|_| Damage::Undecodable)?;
    if body.version != FORMAT_VERSION {
        return Err(Damage::UnknownVersion(body.version));
    }
    let first = body.records.first().ok_or(Damage::Empty)?.record.seq;
    for (expected, frame) in (first..).zip(&body.records) {
        if frame.version != FORMAT_VERSION {
            return Err(Damage::UnknownVersion(frame.version));
        }
        if !frame.is_intact() {
            return Err(Damage::RecordChecksum(frame.record.seq));
        }
        if frame.record.seq != expected {
            return Err(Damage::RecordSequence(frame.record.seq));
        }
    }
    Ok((body, hash))
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)]
mod tests {
    use super::*;

    fn body(first: u64, n: u64) -> BatchBody {
        let records = (first..first + n)
            .map(|seq| {
                RecordFrame::new(Record {
                    seq,
                    timestamp_ms: 7,
                    payload: vec![seq as u8; 3],
                })
            })
            .collect();
        BatchBody {
            version: FORMAT_VERSION,
            prev_hash: GENESIS,
            committed_at_ms: 9,
            records,
        }
    }

    #[test]
    fn a_batch_round_trips_and_any_flipped_byte_is_caught() {
        let (bytes, hash) = encode_batch(&body(5, 3)).unwrap();
        let (decoded, decoded_hash) = decode_batch(&bytes).unwrap();
        assert_eq!((decoded, decoded_hash), (body(5, 3), hash));
        for i in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[i] ^= 0x01;
            assert!(
                decode_batch(&damaged).is_err(),
                "flip at byte {i} went unnoticed"
            );
        }
        assert_eq!(
            decode_batch(&bytes[..bytes.len() / 2]),
            Err(Damage::HashMismatch)
        );
        assert_eq!(decode_batch(&bytes[..10]), Err(Damage::Truncated));
    }

    #[test]
    fn records_out_of_sequence_are_refused() {
        let mut body = body(1, 3);
        body.records[2] = RecordFrame::new(Record {
            seq: 9,
            timestamp_ms: 0,
            payload: vec![],
        });
        let (bytes, _) = encode_batch(&body).unwrap();
        assert_eq!(decode_batch(&bytes), Err(Damage::RecordSequence(9)));
    }

    #[test]
    fn keys_sort_like_sequence_numbers() {
        assert!(key(255) < key(256));
        assert_eq!(seq_of_key(&key(123_456)), Some(123_456));
    }
}
