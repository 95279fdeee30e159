//! The log on RocksDB: batches survive closing and reopening the database,
//! the chain verifies, reads and point-in-time truncation work, and damage
//! written into the database is found and named.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

mod support;

use ingressoja_wal::{OpenError, RocksStore, Wal, open_db};
use support::{payload, records};

#[test]
fn batches_survive_reopening_the_database() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = open_db(dir.path(), &["wal"]).unwrap();
        let (mut wal, _) = Wal::open(RocksStore::new(db, "wal").unwrap(), 0, |_| Ok(())).unwrap();
        for batch in 0..50 {
            wal.append(batch, records(batch * 4 + 1, 4)).unwrap();
        }
    }
    let db = open_db(dir.path(), &["wal"]).unwrap();
    let store = RocksStore::new(db, "wal").unwrap();
    let summary = ingressoja_wal::verify(&store, |_| {}).unwrap();
    assert_eq!(
        (summary.batches, summary.records, summary.last_seq),
        (50, 200, 200)
    );
    let mut seen = 0;
    let (mut wal, report) = Wal::open(store, 150, |r| {
        assert_eq!(r.payload, payload(r.seq));
        seen += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!((seen, report.last_seq, report.cut), (50, 200, None));
    let from_99: Vec<u64> = wal.read_from(99).take(3).map(|r| r.unwrap().seq).collect();
    assert_eq!(from_99, vec![99, 100, 101]);
    wal.truncate_after(102).unwrap();
    wal.append(999, records(103, 1)).unwrap();
    assert_eq!(
        ingressoja_wal::verify(wal.store(), |_| {})
            .unwrap()
            .last_seq,
        103
    );
}

#[test]
fn damage_in_the_database_is_named_by_sequence_number() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(dir.path(), &["wal"]).unwrap();
    {
        let (mut wal, _) =
            Wal::open(RocksStore::new(db.clone(), "wal").unwrap(), 0, |_| Ok(())).unwrap();
        for batch in 0..5 {
            wal.append(batch, records(batch * 2 + 1, 2)).unwrap();
        }
    }
    // Flip a byte of the batch holding seqs 5-6, behind the log's back.
    let cf = db.cf_handle("wal").unwrap();
    let mut value = db.get_cf(cf, 5u64.to_be_bytes()).unwrap().unwrap();
    value[3] ^= 0xFF;
    db.put_cf(cf, 5u64.to_be_bytes(), value).unwrap();
    let error = Wal::open(RocksStore::new(db.clone(), "wal").unwrap(), 0, |_| Ok(()))
        .err()
        .unwrap();
    assert!(
        matches!(error, OpenError::CorruptMiddle { seq: 5, .. }),
        "{error}"
    );
    let verify = ingressoja_wal::verify(&RocksStore::new(db, "wal").unwrap(), |_| {}).unwrap_err();
    assert!(verify.to_string().contains("sequence 5"), "{verify}");
}

/// The side keyspace on RocksDB answers ranges as the in-memory store does
/// (from included, to excluded) and survives reopening with the batch it
/// was written with.
#[test]
fn side_writes_go_with_their_batch_and_ranges_exclude_their_end() {
    use ingressoja_wal::{LogStore, SideWrite};
    let dir = tempfile::tempdir().unwrap();
    let put = |k: &[u8], v: &[u8]| SideWrite::Put(k.to_vec(), v.to_vec());
    {
        let db = open_db(dir.path(), &["wal", "side"]).unwrap();
        let store = RocksStore::with_side(db, "wal", "side").unwrap();
        let (mut wal, _) = Wal::open(store, 0, |_| Ok(())).unwrap();
        wal.append_with(1, records(1, 2), &[put(b"a1", b"x"), put(b"a2", b"y")])
            .unwrap();
        wal.append_with(2, Vec::new(), &[put(b"a3", b"z"), put(b"b", b"w")])
            .unwrap();
        wal.append_with(
            3,
            Vec::new(),
            &[SideWrite::DeleteRange(b"a2".to_vec(), b"a3".to_vec())],
        )
        .unwrap();
    }
    let db = open_db(dir.path(), &["wal", "side"]).unwrap();
    let store = RocksStore::with_side(std::sync::Arc::clone(&db), "wal", "side").unwrap();
    let keys = |found: Vec<(Vec<u8>, Vec<u8>)>| -> Vec<Vec<u8>> {
        found.into_iter().map(|(k, _)| k).collect()
    };
    assert_eq!(
        keys(store.side_range(b"a", b"b").unwrap()),
        vec![b"a1".to_vec(), b"a3".to_vec()]
    );
    assert_eq!(
        store.side_last(b"a", b"b").unwrap().map(|(k, _)| k),
        Some(b"a3".to_vec()),
        "the end key b is excluded"
    );
    assert_eq!(store.side_last(b"a", b"a1").unwrap(), None);
    assert_eq!(store.side_get(b"b").unwrap(), Some(b"w".to_vec()));
    assert_eq!(ingressoja_wal::verify(&store, |_| {}).unwrap().last_seq, 2);
    // A log without a side keyspace has nothing said about it, and says
    // so instead of dropping side writes.
    let mut plain = RocksStore::new(db, "wal").unwrap();
    assert_eq!(plain.side_get(b"b").unwrap(), None);
    assert!(plain.write_synced(None, &[put(b"c", b"v")]).is_err());
}
