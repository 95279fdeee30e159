//! Power loss, not just SIGKILL: the nodes' data directories sit on a disk
//! that forgets every write not yet fsynced when its power is cut
//! (`ingressoja-powerloss`, a FUSE layer; SIGKILL leaves the page cache
//! intact, so only this catches a missing fsync). Each cut kills the
//! processes first, as a power cut does, then drops what was not synced;
//! the nodes restart on what is left and must still hold everything they
//! acknowledged: the log, the snapshots (file, rename, directory) and the
//! server's own column families (the accounts whose sessions the fans
//! use). The disk forgets names too (a file created, renamed or removed)
//! until their directory is fsynced.
//! - a single node under the crash load, cut again and again;
//! - three nodes under joins sent to all of them: one node cut (the
//!   leader), then all three at once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ingressoja_engine::shuffle::mix64;
use support::cluster::{Cluster, Conn, DEADLINE, create_event, fans};
use support::crash::{acked, recover_and_check, spawn_child, wait_for_acks};

mod support;

const CUTS: u64 = 5;

#[test]
fn power_cuts_under_load_lose_nothing_a_single_node_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let disk = ingressoja_powerloss::mount_in(dir.path()).unwrap();
    let data = disk.path.join("data");
    // The acknowledgements are the test's own record: off the cut disk.
    let acks = dir.path().join("acks.txt");
    let (mut rng, mut forgotten, mut names) = (0x9_0FF_u64, 0, 0);
    for round in 0..CUTS {
        let mut child = spawn_child(&data, &acks, round + 1);
        rng = mix64(rng);
        let before = acked(&acks).len();
        wait_for_acks(&mut child.0, &acks, before + 20 + (rng % 300) as usize);
        drop(child); // the power cut kills the process first...
        let cut = disk.power.cut(Path::new("")).unwrap(); // ...then the disk forgets
        forgotten += cut.files;
        names += cut.names;
        recover_and_check(&data, &acked(&acks), round);
    }
    // The cuts did bite: files lost writes that were never synced.
    assert!(
        forgotten > 0,
        "no cut forgot anything: the test proves nothing"
    );
    eprintln!(
        "{CUTS} power cuts, {forgotten} files lost unsynced writes, {names} unsynced name changes \
         undone, {} acknowledged holds and \
         purchases all recovered ({} fsyncs)",
        acked(&acks).len(),
        disk.power.syncs()
    );
}

/// Fans joining through every node (each fan's own), the joins that were
/// acknowledged remembered.
struct Joins {
    addrs: Vec<String>,
    tokens: Vec<Vec<String>>,
    acked: Mutex<BTreeSet<usize>>,
    stop: AtomicBool,
}

impl Joins {
    fn run(&self, fans: std::ops::Range<usize>) {
        let mut next = fans.clone().cycle();
        while !self.stop.load(Ordering::Relaxed) {
            let fan = next.next().unwrap();
            if self.acked.lock().unwrap().contains(&fan) {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            let node = fan % self.addrs.len();
            let answer = Conn::open(&self.addrs[node]).and_then(|mut c| {
                c.call(
                    "POST",
                    "/api/events/0/queue",
                    None,
                    Some(&self.tokens[fan][node]),
                )
            });
            if let Ok((200 | 201, _, _)) = answer {
                self.acked.lock().unwrap().insert(fan);
            }
        }
    }

    fn count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    fn until(&self, count: usize) {
        let deadline = Instant::now() + DEADLINE;
        while self.count() < count {
            assert!(Instant::now() < deadline, "the joins made no progress");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

#[test]
fn power_cuts_on_the_leader_and_on_all_three_nodes_lose_no_acknowledged_join() {
    let dir = tempfile::tempdir().unwrap();
    let disk = ingressoja_powerloss::mount_in(dir.path()).unwrap();
    let mut cluster = Cluster::start_on(3, Some(&disk.path));
    create_event(&cluster);
    let fan_count = 240;
    let tokens = fans(&cluster, fan_count + 1);
    let probe = tokens[fan_count].clone();
    let joins = Arc::new(Joins {
        addrs: cluster.addrs(),
        tokens: tokens[..fan_count].to_vec(),
        acked: Mutex::new(BTreeSet::new()),
        stop: AtomicBool::new(false),
    });
    let load: Vec<_> = (0..3)
        .map(|t| {
            let joins = joins.clone();
            std::thread::spawn(move || joins.run(t * 80..(t + 1) * 80))
        })
        .collect();

    // The leader loses power, comes back on what its disk kept.
    joins.until(40);
    let leader = cluster.leader(&probe);
    drop(cluster.nodes[leader].process.take());
    let node_dir = format!("node{}", cluster.nodes[leader].id);
    let forgotten_one = disk.power.cut(Path::new(&node_dir)).unwrap().files;
    cluster.spawn(leader);

    // Then the whole cluster does, at once.
    joins.until(joins.count() + 40);
    for node in &mut cluster.nodes {
        drop(node.process.take());
    }
    let forgotten_all = disk.power.cut(Path::new("")).unwrap().files;
    for index in 0..3 {
        cluster.spawn(index);
    }
    joins.until(joins.count() + 40);
    joins.stop.store(true, Ordering::Relaxed);
    for thread in load {
        thread.join().unwrap();
    }
    assert!(
        forgotten_one > 0 && forgotten_all > 0,
        "a cut forgot nothing ({forgotten_one}, {forgotten_all}): it proves nothing"
    );

    // Every acknowledged join is in the queue, as every node sees it.
    let acked = joins.acked.lock().unwrap().clone();
    let deadline = Instant::now() + DEADLINE;
    for (index, node) in cluster.nodes.iter().enumerate() {
        for &fan in &acked {
            loop {
                let answer = Conn::open(&node.http).and_then(|mut c| {
                    c.call(
                        "GET",
                        "/api/events/0/queue",
                        None,
                        Some(&tokens[fan][index]),
                    )
                });
                match answer {
                    Ok((200, body, _)) if body["status"] != "not_joined" => break,
                    // A node still catching up (or refusing reads while
                    // it rolls back) is asked again.
                    _ => {
                        assert!(
                            Instant::now() < deadline,
                            "node {}: acknowledged fan {fan} lost ({answer:?})",
                            node.id
                        );
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            }
        }
    }
    eprintln!(
        "{} acknowledged joins kept through a cut of the leader ({forgotten_one} files lost \
         writes) and of all three ({forgotten_all}); {} fsyncs",
        acked.len(),
        disk.power.syncs()
    );
}
