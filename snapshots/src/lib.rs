//! Snapshots: a serialized state, the last log sequence number it covers, a
//! format version and a checksum, written atomically and kept a few at a
//! time. Generic over the state's type (serde), so this crate, like the log,
//! knows nothing about tickets.
//!
//! A file is the magic bytes, a postcard [`Envelope`], and the SHA-256 of
//! everything before it. Writing goes to a temporary file in the same
//! directory, fsyncs it, renames it into place and fsyncs the directory, so
//! a crash leaves either the old set of snapshots or the new one, never a
//! half-written file under a snapshot's name. Loading takes the newest file
//! that checks out and reports the ones it skipped, so a corrupt snapshot
//! falls back to the previous one, and no valid snapshot means a full replay.

pub mod durable;

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The format written by this version: of the envelope and of the state in
/// it, which this crate cannot see, so it moves whenever the state written
/// changes shape. A snapshot of another version is skipped with that
/// reason, and recovery replays the log instead (which always reads).
/// 2: the engine's queue remembers who left the line. 3: the shard keeps
/// its payments in flight. 4: the policy's over-admission and arrival
/// window, and the queue's arrival windows.
pub const FORMAT_VERSION: u16 = 4;
const MAGIC: &[u8; 8] = b"IJSNAP\0\x01";
const PREFIX: &str = "snapshot-";
const SUFFIX: &str = ".snap";

/// What a snapshot file holds besides the magic and the checksum.
#[derive(Serialize, Deserialize)]
pub struct Envelope {
    /// [`FORMAT_VERSION`] when written.
    pub format_version: u16,
    /// The last log sequence number the state includes.
    pub last_seq: u64,
    /// When it was taken (ms since the epoch).
    pub created_at_ms: u64,
    /// The postcard-encoded state.
    pub payload: Vec<u8>,
}

/// Why a snapshot could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The file system failed.
    #[error("snapshot file system error: {0}")]
    Io(#[from] io::Error),
    /// The state could not be encoded or decoded.
    #[error("snapshot encoding: {0}")]
    Encoding(#[from] postcard::Error),
    /// The file is not a snapshot, or was cut short.
    #[error("not a snapshot file (bad magic or too short)")]
    NotASnapshot,
    /// The bytes do not match their checksum.
    #[error("checksum mismatch: the snapshot is corrupt")]
    Corrupt,
    /// Written by a format this version does not know.
    #[error("unknown snapshot format version {0}")]
    UnknownVersion(u16),
}

/// A snapshot that was loaded.
pub struct Loaded<T> {
    /// The last log sequence number the state includes.
    pub last_seq: u64,
    /// When it was taken.
    pub created_at_ms: u64,
    /// The state.
    pub state: T,
    /// Its file.
    pub path: PathBuf,
}

/// What a search for the newest valid snapshot found.
pub struct Search<T> {
    /// The newest snapshot that checks out, if any.
    pub found: Option<Loaded<T>>,
    /// Newer files that were skipped, and why.
    pub skipped: Vec<(PathBuf, SnapshotError)>,
}

/// The snapshots in one directory.
#[derive(Clone, Debug)]
pub struct SnapshotDir {
    dir: PathBuf,
    keep: usize,
}

impl SnapshotDir {
    /// The directory (created if missing), keeping the newest `keep` files.
    pub fn open(dir: impl Into<PathBuf>, keep: usize) -> io::Result<SnapshotDir> {
        let dir = dir.into();
        durable::create_dir_durably(&dir)?;
        Ok(SnapshotDir {
            dir,
            keep: keep.max(1),
        })
    }

    /// Where the snapshots live.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Writes a snapshot of `state` covering the log up to `last_seq`, then
    /// removes all but the newest `keep`. Returns the file written.
    pub fn write<T: Serialize>(
        &self,
        last_seq: u64,
        created_at_ms: u64,
        state: &T,
    ) -> Result<PathBuf, SnapshotError> {
        let bytes = encode(last_seq, created_at_ms, state)?;
        let name = format!("{PREFIX}{last_seq:020}{SUFFIX}");
        let final_path = self.dir.join(&name);
        let temporary = self.dir.join(format!(".{name}.tmp"));
        {
            let mut file = File::create(&temporary)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
        }
        fs::rename(&temporary, &final_path)?;
        durable::sync_dir(&self.dir)?;
        self.prune()?;
        Ok(final_path)
    }

    /// Snapshot files, newest (highest sequence number) first.
    pub fn list(&self) -> io::Result<Vec<(u64, PathBuf)>> {
        let mut found = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let path = entry?.path();
            let seq = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix(PREFIX))
                .and_then(|n| n.strip_suffix(SUFFIX))
                .and_then(|n| n.parse::<u64>().ok());
            if let Some(seq) = seq {
                found.push((seq, path));
            }
        }
        found.sort_by_key(|&(seq, _)| std::cmp::Reverse(seq));
        Ok(found)
    }

    /// The newest snapshot that checks out, skipping (and reporting) newer
    /// ones that do not; none found means replaying the whole log.
    pub fn load_newest<T: DeserializeOwned>(&self) -> io::Result<Search<T>> {
        self.load_newest_at_most(u64::MAX)
    }

    /// Like [`SnapshotDir::load_newest`], among snapshots covering at most
    /// `max_seq` (for point-in-time restore).
    pub fn load_newest_at_most<T: DeserializeOwned>(&self, max_seq: u64) -> io::Result<Search<T>> {
        let mut skipped = Vec::new();
        for (seq, path) in self.list()? {
            if seq > max_seq {
                continue;
            }
            match read_file::<T>(&path) {
                Ok((envelope, state)) => {
                    let last_seq = envelope.last_seq;
                    let created_at_ms = envelope.created_at_ms;
                    let found = Some(Loaded {
                        last_seq,
                        created_at_ms,
                        state,
                        path,
                    });
                    return Ok(Search { found, skipped });
                }
                Err(error) => skipped.push((path, error)),
            }
        }
        Ok(Search {
            found: None,
            skipped,
        })
    }

    /// Removes snapshots covering more than `max_seq` (point-in-time restore).
    pub fn remove_after(&self, max_seq: u64) -> io::Result<()> {
        for (seq, path) in self.list()? {
            if seq > max_seq {
                fs::remove_file(path)?;
            }
        }
        Ok(())
    }

    fn prune(&self) -> io::Result<()> {
        for (_, path) in self.list()?.into_iter().skip(self.keep) {
            fs::remove_file(path)?;
        }
        Ok(())
    }
}

/// A snapshot of `state` through `last_seq` as the bytes of a snapshot
/// file (what a replica sends another that needs it).
pub fn encode<T: Serialize>(
    last_seq: u64,
    created_at_ms: u64,
    state: &T,
) -> Result<Vec<u8>, SnapshotError> {
    let envelope = Envelope {
        format_version: FORMAT_VERSION,
        last_seq,
        created_at_ms,
        payload: postcard::to_stdvec(state)?,
    };
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(&postcard::to_stdvec(&envelope)?);
    let checksum = Sha256::digest(&bytes);
    bytes.extend_from_slice(&checksum);
    Ok(bytes)
}

/// Reads and checks one snapshot file.
pub fn read_file<T: DeserializeOwned>(path: &Path) -> Result<(Envelope, T), SnapshotError> {
    decode(&fs::read(path)?)
}

/// Checks and reads the bytes of a snapshot file (see [`encode`]).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<(Envelope, T), SnapshotError> {
    let body_len = bytes
        .len()
        .checked_sub(32)
        .ok_or(SnapshotError::NotASnapshot)?;
    let (body, checksum) = bytes.split_at(body_len);
    if !body.starts_with(MAGIC) {
        return Err(SnapshotError::NotASnapshot);
    }
    if Sha256::digest(body).as_slice() != checksum {
        return Err(SnapshotError::Corrupt);
    }
    let envelope: Envelope = postcard::from_bytes(&body[MAGIC.len()..])?;
    if envelope.format_version != FORMAT_VERSION {
        return Err(SnapshotError::UnknownVersion(envelope.format_version));
    }
    let state = postcard::from_bytes(&envelope.payload)?;
    Ok((envelope, state))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct State {
        sold: Vec<u32>,
        name: String,
    }

    fn state(n: u32) -> State {
        State {
            sold: (0..n).collect(),
            name: format!("state {n}"),
        }
    }

    #[test]
    fn encoded_bytes_decode_to_the_state_and_any_flipped_bit_is_caught() {
        let bytes = encode(42, 7, &state(5)).unwrap();
        let (envelope, decoded) = decode::<State>(&bytes).unwrap();
        assert_eq!((envelope.last_seq, envelope.created_at_ms), (42, 7));
        assert_eq!(decoded, state(5));
        for at in [0, MAGIC.len() + 1, bytes.len() / 2, bytes.len() - 1] {
            let mut damaged = bytes.clone();
            damaged[at] ^= 1;
            assert!(decode::<State>(&damaged).is_err(), "bit flipped at {at}");
        }
        assert!(matches!(
            decode::<State>(&bytes[..20]),
            Err(SnapshotError::NotASnapshot | SnapshotError::Corrupt)
        ));
    }

    #[test]
    fn the_newest_snapshot_loads_and_only_the_newest_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let snapshots = SnapshotDir::open(dir.path(), 3).unwrap();
        for seq in [10, 20, 30, 40] {
            snapshots
                .write(seq, seq * 1000, &state(u32::try_from(seq).unwrap()))
                .unwrap();
        }
        let seqs: Vec<u64> = snapshots
            .list()
            .unwrap()
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        assert_eq!(seqs, vec![40, 30, 20]);
        let search = snapshots.load_newest::<State>().unwrap();
        assert!(search.skipped.is_empty());
        let loaded = search.found.unwrap();
        assert_eq!(
            (loaded.last_seq, loaded.created_at_ms, loaded.state),
            (40, 40_000, state(40))
        );
        let at_most = snapshots
            .load_newest_at_most::<State>(35)
            .unwrap()
            .found
            .unwrap();
        assert_eq!(at_most.last_seq, 30);
    }

    #[test]
    fn a_snapshot_of_another_format_is_skipped_with_its_version_named() {
        let dir = tempfile::tempdir().unwrap();
        let snapshots = SnapshotDir::open(dir.path(), 5).unwrap();
        let older = snapshots.write(1, 0, &state(1)).unwrap();
        // The same file as a build of the previous format wrote it: a valid
        // file (magic, checksum) whose state this build may not read.
        let bytes = fs::read(&older).unwrap();
        let body = &bytes[MAGIC.len()..bytes.len() - 32];
        let mut envelope: Envelope = postcard::from_bytes(body).unwrap();
        envelope.format_version = FORMAT_VERSION - 1;
        let mut rewritten = MAGIC.to_vec();
        rewritten.extend_from_slice(&postcard::to_stdvec(&envelope).unwrap());
        let checksum = Sha256::digest(&rewritten);
        rewritten.extend_from_slice(&checksum);
        fs::write(&older, rewritten).unwrap();

        let search = snapshots.load_newest::<State>().unwrap();
        assert!(search.found.is_none(), "recovery replays the log instead");
        assert!(
            matches!(
                search.skipped.as_slice(),
                [(path, SnapshotError::UnknownVersion(v))] if *path == older && *v == FORMAT_VERSION - 1
            ),
            "{:?}",
            search.skipped
        );
    }

    #[test]
    fn a_corrupt_snapshot_falls_back_to_the_previous_one_then_to_none() {
        let dir = tempfile::tempdir().unwrap();
        let snapshots = SnapshotDir::open(dir.path(), 5).unwrap();
        let first = snapshots.write(1, 0, &state(1)).unwrap();
        let second = snapshots.write(2, 0, &state(2)).unwrap();
        let mut bytes = fs::read(&second).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        fs::write(&second, bytes).unwrap();
        let search = snapshots.load_newest::<State>().unwrap();
        assert!(
            matches!(search.skipped.as_slice(), [(path, SnapshotError::Corrupt)] if *path == second)
        );
        assert_eq!(search.found.unwrap().last_seq, 1);
        fs::write(&first, b"IJSNAP").unwrap();
        let none = snapshots.load_newest::<State>().unwrap();
        assert!(none.found.is_none());
        assert_eq!(none.skipped.len(), 2, "both unreadable files are reported");
    }

    #[test]
    fn a_leftover_temporary_file_is_not_a_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let snapshots = SnapshotDir::open(dir.path(), 2).unwrap();
        fs::write(
            dir.path().join(".snapshot-00000000000000000009.snap.tmp"),
            b"half",
        )
        .unwrap();
        assert!(snapshots.list().unwrap().is_empty());
        assert!(snapshots.load_newest::<State>().unwrap().found.is_none());
    }
}
