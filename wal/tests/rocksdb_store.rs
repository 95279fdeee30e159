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
