//! A backed-up pipeline drains. The writer waits for each group's commit,
//! and the shard, whose engines are the state machine, keeps producing
//! while the entry commits. A first version asked the shard to apply each
//! committed entry of its own: with the pipeline backed up, the shard
//! waited on the writer, the writer on a commit, and the commit on the
//! shard. This test backs the pipeline up on purpose (the store holds its
//! syncs until the shard is stuck behind the writer) and then lets it go;
//! that version hangs here, and the deadline fails it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use ingressoja_engine::{Command, CustomerId};
use ingressoja_runtime::{ManualClock, Runtime, RuntimeOptions};
use ingressoja_wal::MemStore;

mod support;

const FANS: u64 = 5_000;

#[test]
fn a_backed_up_pipeline_drains_when_the_disk_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemStore::default();
    let mut options = RuntimeOptions::new(dir.path());
    // One request per shard batch and a short writer queue: proposals pile
    // up one by one, as in a spike of small requests.
    options.max_batch = 1;
    options.writer_queue = 2;
    let clock = Arc::new(ManualClock::at(support::NOW));
    let runtime = Arc::new(Runtime::start_on(store.clone(), options, clock).unwrap());
    let event = runtime
        .create_event(support::runtime_event("Pipelined"))
        .and_then(|pending| pending.wait())
        .unwrap();

    store.hold_syncs();
    let load = Arc::clone(&runtime);
    let (done, finished) = std::sync::mpsc::channel();
    let submitter = std::thread::spawn(move || {
        let replies: Vec<_> = (0..FANS)
            .map(|fan| {
                let join = Command::Join {
                    customer: CustomerId(fan),
                };
                load.submit(event, join, None).unwrap()
            })
            .collect();
        let mut answered = 0;
        for reply in replies {
            reply.wait().unwrap();
            answered += 1;
        }
        let _ = done.send(answered);
    });
    // Backed up: the shard stopped taking requests (it waits on the
    // writer, which waits on commits the held syncs keep back).
    let deadline = Instant::now() + Duration::from_secs(60);
    while runtime.queue_depth() < 1_000 {
        assert!(Instant::now() < deadline, "the pipeline never backed up");
        std::thread::yield_now();
    }
    store.release_syncs();
    let answered = finished
        .recv_timeout(Duration::from_secs(120))
        .expect("every request answered once the disk caught up");
    submitter.join().unwrap();
    assert_eq!(answered as u64, FANS);
    assert!(runtime.durable_seq() >= FANS, "the log holds every join");
}
