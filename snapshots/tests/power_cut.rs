//! Snapshots on a disk that loses power (`ingressoja-powerloss`: unsynced
//! writes and unsynced names are forgotten at a cut): a snapshot written
//! is there after the cut, in a directory this crate made, and so is the
//! helper's directory tree.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use ingressoja_snapshots::SnapshotDir;
use ingressoja_snapshots::durable::create_dir_durably;

#[test]
fn a_written_snapshot_survives_a_power_cut() {
    let dir = tempfile::tempdir().unwrap();
    let disk = ingressoja_powerloss::mount_in(dir.path()).unwrap();
    let snapshots = SnapshotDir::open(disk.path.join("data/snapshots"), 2).unwrap();
    snapshots.write(10, 1, &"ten".to_string()).unwrap();
    snapshots.write(20, 2, &"twenty".to_string()).unwrap();
    let cut = disk.power.cut(Path::new("")).unwrap();
    let newest = snapshots.load_newest::<String>().unwrap().found.unwrap();
    assert_eq!((newest.last_seq, newest.state.as_str()), (20, "twenty"));
    assert_eq!(cut.names, 0, "every name was synced");
}

#[test]
fn a_durably_made_directory_survives_a_power_cut_and_a_plain_one_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let disk = ingressoja_powerloss::mount_in(dir.path()).unwrap();
    create_dir_durably(&disk.path.join("kept/deep")).unwrap();
    std::fs::create_dir_all(disk.path.join("lost/deep")).unwrap();
    disk.power.cut(Path::new("")).unwrap();
    assert!(disk.path.join("kept/deep").is_dir());
    assert!(
        !disk.path.join("lost").exists(),
        "the disk forgets unsynced names"
    );
}
