//! Ten thousand fans watching one sale: the `ingressoja serve` binary (its
//! own process, so each side has its own descriptors) holds 10 000 open
//! event streams at once, counts them in /metrics, and delivers one change
//! (a fan joining, with the demo event's proof of work) to every one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const STREAMS: usize = 10_000;
const DEMO_DIFFICULTY: u8 = ingressoja::http::settings::DEFAULT_POW_DIFFICULTY;

mod support;

/// The server process (killed when the test ends however it ends) and its
/// address.
fn start(dir: &std::path::Path) -> (support::Process, String) {
    let config = dir.join("server.toml");
    std::fs::write(
        &config,
        "development = true\ndemo = true\nmax_connections_per_ip = 20000\n[limits]\nreads_per_ip = 0\njoins_per_ip = 0\n\
         joins_per_account = 0\ncarts_per_ip = 0\ncarts_per_account = 0\n",
    )
    .unwrap();
    support::serve_binary("127.0.0.1:0", &dir.join("data"), &config, &[])
}

async fn request(addr: &str, head: &str, body: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let text = format!(
        "{head}\r\nHost: test\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(text.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
}

/// Opens the event's stream and reads it: `opened` counts streams that got
/// their first state, `updated` those that then saw `needle`.
async fn watch(addr: String, opened: Arc<AtomicUsize>, updated: Arc<AtomicUsize>, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    // A connection refused in the spike is retried, as a browser would.
    let mut stream = loop {
        match TcpStream::connect(&addr).await {
            Ok(stream) => break stream,
            Err(error) if Instant::now() < deadline => {
                let _ = error;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => panic!("cannot connect: {error}"),
        }
    };
    stream
        .write_all(
            b"GET /api/events/0/stream HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\n\r\n",
        )
        .await
        .unwrap();
    let mut seen = String::new();
    let mut buffer = [0u8; 4096];
    let mut first = true;
    loop {
        let n = stream.read(&mut buffer).await.unwrap();
        assert!(n > 0, "the server closed a stream: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buffer[..n]));
        if first && seen.contains("event: state") {
            first = false;
            opened.fetch_add(1, Ordering::Relaxed);
        }
        if !first && seen.contains(needle) {
            updated.fetch_add(1, Ordering::Relaxed);
            // Stays open until the test ends, like a fan's tab.
            std::future::pending::<()>().await;
        }
        // Only the tail matters for the needle.
        if seen.len() > 16_384 {
            seen.drain(..seen.len() - 4_096);
        }
    }
}

fn poll_until(what: &str, deadline: Duration, mut done: impl FnMut() -> bool) {
    let until = Instant::now() + deadline;
    while !done() {
        assert!(Instant::now() < until, "{what} did not happen in time");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn ten_thousand_open_streams_each_see_a_fan_join() {
    let files = rlimit::increase_nofile_limit(u64::MAX).unwrap();
    assert!(
        files >= STREAMS as u64 + 1_000,
        "this test needs {STREAMS} client sockets; the open-files limit is {files}"
    );
    let dir = tempfile::tempdir().unwrap();
    let (_server, addr) = start(dir.path());
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let opened = Arc::new(AtomicUsize::new(0));
    let updated = Arc::new(AtomicUsize::new(0));
    // One fan joining shows in the event's state.
    let needle = r#""joined":1,"#;
    for _ in 0..STREAMS {
        tokio.spawn(watch(addr.clone(), opened.clone(), updated.clone(), needle));
    }
    poll_until("10 000 streams opening", Duration::from_secs(120), || {
        opened.load(Ordering::Relaxed) == STREAMS
    });
    let metrics = tokio.block_on(request(&addr, "GET /metrics HTTP/1.1", ""));
    let open: usize = metrics
        .lines()
        .find_map(|line| line.strip_prefix("ingressoja_sse_streams_open "))
        .expect("the open-streams gauge")
        .trim()
        .parse()
        .unwrap();
    assert!(open >= STREAMS, "{open} streams counted open");

    let session = tokio.block_on(request(
        &addr,
        "POST /api/dev/session HTTP/1.1",
        r#"{"email":"watcher@test.invalid"}"#,
    ));
    let token = session
        .split(r#""token":""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a token")
        .to_string();
    // The demo event asks for proof of work at join, as a real sale does.
    let me = format!("Authorization: Bearer {token}");
    let challenge = tokio.block_on(request(
        &addr,
        &format!("GET /api/events/0/challenge HTTP/1.1\r\n{me}"),
        "",
    ));
    let challenge = challenge
        .split(r#""challenge":""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a challenge")
        .to_string();
    let solution = ingressoja::http::pow::solve(&challenge, DEMO_DIFFICULTY);
    let joined = tokio.block_on(request(
        &addr,
        &format!("POST /api/events/0/queue HTTP/1.1\r\n{me}"),
        &format!(r#"{{"challenge":"{challenge}","solution":"{solution}"}}"#),
    ));
    assert!(joined.starts_with("HTTP/1.1 201"), "{joined}");
    poll_until(
        "the change reaching every stream",
        Duration::from_secs(60),
        || updated.load(Ordering::Relaxed) == STREAMS,
    );
    tokio.shutdown_background();
}
