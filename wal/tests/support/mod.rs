//! Records for log tests: each names its sequence number in its payload and
//! its timestamp, so a test can tell exactly which records came back.
#![allow(dead_code)]

use ingressoja_wal::Record;

/// Records `first .. first + n`, stamped `1_000 + seq`, payload `transition {seq}`.
pub fn records(first: u64, n: u64) -> Vec<Record> {
    (first..first + n)
        .map(|seq| Record {
            seq,
            timestamp_ms: 1_000 + seq,
            payload: payload(seq),
        })
        .collect()
}

/// The payload of record `seq`.
pub fn payload(seq: u64) -> Vec<u8> {
    format!("transition {seq}").into_bytes()
}
