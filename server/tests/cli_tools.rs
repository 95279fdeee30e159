//! The operators' subcommands, run as a person would run them: `wal verify`,
//! `wal inspect`, `backup create`, `backup verify` and `restore` on a data
//! directory the runtime wrote, and `wal verify` naming a damaged batch.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use ingressoja::runtime::{DataDir, ManualClock, Runtime, RuntimeOptions};
use ingressoja_engine::{Command as Cmd, CustomerId, MINUTE_MS};

fn ingressoja(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ingressoja"))
        .args(args)
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A data directory with an event and ten joins, each its own batch.
fn data_dir(root: &Path) -> std::path::PathBuf {
    let data = root.join("data");
    let opens_at = 1_800_000_000_000;
    let runtime = Runtime::start(
        RuntimeOptions::new(&data),
        Arc::new(ManualClock::at(opens_at - 20 * MINUTE_MS)),
    )
    .unwrap();
    let mut config = ingressoja::crash_load::event_config();
    config.schedule =
        ingressoja_engine::Schedule::with_default_prequeue(opens_at, opens_at + 60 * MINUTE_MS);
    let event = runtime
        .create_event(config)
        .and_then(|pending| pending.wait())
        .unwrap();
    for id in 0..10 {
        runtime
            .submit(
                event,
                Cmd::Join {
                    customer: CustomerId(id),
                },
                None,
            )
            .and_then(|pending| pending.wait())
            .unwrap();
    }
    runtime.shutdown();
    data
}

#[test]
fn verify_inspect_backup_and_restore_from_the_command_line() {
    let root = tempfile::tempdir().unwrap();
    let data = data_dir(root.path());
    let data_arg = data.to_str().unwrap();

    let verify = ingressoja(&["wal", "verify", "--data", data_arg]);
    assert!(verify.status.success(), "{}", text(&verify));
    assert!(
        text(&verify).contains("11 records, up to sequence 11"),
        "{}",
        text(&verify)
    );

    let inspect = ingressoja(&[
        "wal", "inspect", "--data", data_arg, "--from", "1", "--limit", "3",
    ]);
    assert!(inspect.status.success(), "{}", text(&inspect));
    let lines: Vec<String> = String::from_utf8_lossy(&inspect.stdout)
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[0].contains("event 0 created"), "{lines:?}");
    assert!(
        lines[1].contains("Joined { customer: CustomerId(0) }"),
        "{lines:?}"
    );

    let backup = root.path().join("backup");
    let backup_arg = backup.to_str().unwrap();
    let created = ingressoja(&["backup", "create", backup_arg, "--data", data_arg]);
    assert!(created.status.success(), "{}", text(&created));
    let checked = ingressoja(&["backup", "verify", backup_arg]);
    assert!(checked.status.success(), "{}", text(&checked));
    assert!(
        text(&checked).contains("up to sequence 11"),
        "{}",
        text(&checked)
    );

    let restored = root.path().join("restored");
    let restore = ingressoja(&[
        "restore",
        backup_arg,
        "--data",
        restored.to_str().unwrap(),
        "--until-seq",
        "5",
    ]);
    assert!(restore.status.success(), "{}", text(&restore));
    assert!(
        text(&restore).contains("up to sequence 5"),
        "{}",
        text(&restore)
    );

    let again = ingressoja(&["restore", backup_arg, "--data", restored.to_str().unwrap()]);
    assert!(
        !again.status.success(),
        "restoring over a used directory must fail"
    );
    assert!(text(&again).contains("not empty"), "{}", text(&again));
}

#[test]
fn wal_verify_names_the_first_bad_batch() {
    let root = tempfile::tempdir().unwrap();
    let data = data_dir(root.path());
    {
        let db = DataDir::create(&data).unwrap().open_db(&[]).unwrap();
        let cf = db.cf_handle("wal").unwrap();
        let mut value = db.get_cf(cf, 4u64.to_be_bytes()).unwrap().unwrap();
        value[5] ^= 0x10;
        db.put_cf(cf, 4u64.to_be_bytes(), value).unwrap();
    }
    let verify = ingressoja(&["wal", "verify", "--data", data.to_str().unwrap()]);
    assert!(!verify.status.success());
    assert!(
        text(&verify).contains("bad batch at sequence 4"),
        "{}",
        text(&verify)
    );
}

/// Runs `ingressoja args…` with `input` on standard input.
fn ingressoja_with_input(args: &[&str], input: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_ingressoja"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn admin_create_is_audited_and_audit_verify_names_a_changed_byte() {
    let root = tempfile::tempdir().unwrap();
    let data = data_dir(root.path());
    let data_arg = data.to_str().unwrap();
    for email in ["ops@example.com", "ops2@example.com"] {
        let made = ingressoja_with_input(
            &[
                "admin",
                "create",
                email,
                "--data",
                data_arg,
                "--password-stdin",
            ],
            "a long admin password\n",
        );
        assert!(made.status.success(), "{}", text(&made));
        assert!(
            text(&made).contains(&format!("administrator {email} created")),
            "{}",
            text(&made)
        );
    }
    let again = ingressoja_with_input(
        &[
            "admin",
            "create",
            "OPS@example.com",
            "--data",
            data_arg,
            "--password-stdin",
        ],
        "a long admin password\n",
    );
    assert!(
        !again.status.success(),
        "the email is taken: {}",
        text(&again)
    );
    let generated = ingressoja(&["admin", "create", "ops3@example.com", "--data", data_arg]);
    assert!(
        text(&generated).contains("password (shown once): "),
        "{}",
        text(&generated)
    );

    let verified = ingressoja(&["audit", "verify", "--data", data_arg]);
    assert!(verified.status.success(), "{}", text(&verified));
    assert!(
        text(&verified).contains("audit log OK: 3 entries; sale log OK"),
        "{}",
        text(&verified)
    );
    let exported = ingressoja(&["audit", "export", "--since", "0", "--data", data_arg]);
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&exported.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let of_log = |log: &str| -> Vec<&serde_json::Value> {
        lines.iter().filter(|l| l["log"] == log).collect()
    };
    let (audit, sale) = (of_log("audit"), of_log("sale"));
    assert_eq!((audit.len(), sale.len()), (3, 11), "{lines:?}");
    assert_eq!(audit[1]["action"], "admin_created");
    assert_eq!(audit[1]["email"], "ops2@example.com");
    assert_eq!(sale[0]["action"], "event_created");
    assert_eq!(
        (sale[1]["action"].as_str(), sale[1]["account"].as_u64()),
        (Some("joined"), Some(0))
    );
    let times: Vec<u64> = lines.iter().map(|l| l["at_ms"].as_u64().unwrap()).collect();
    assert!(
        times.is_sorted(),
        "both logs merged in time order: {times:?}"
    );

    // One byte of the second entry changed behind the server's back.
    {
        let db = DataDir::create(&data)
            .unwrap()
            .open_db(ingressoja::COLUMN_FAMILIES)
            .unwrap();
        let audit = db.cf_handle(ingressoja::audit::AUDIT).unwrap();
        let key = [b"r".as_slice(), &2u64.to_be_bytes()].concat();
        let mut bytes = db.get_cf(audit, &key).unwrap().unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x20;
        db.put_cf(audit, &key, bytes).unwrap();
    }
    let broken = ingressoja(&["audit", "verify", "--data", data_arg]);
    assert!(!broken.status.success());
    assert!(
        text(&broken).contains("audit record 2:"),
        "{}",
        text(&broken)
    );
}

/// `cluster haproxy-config` writes a configuration HAProxy itself accepts
/// (`haproxy -c`, Debian's haproxy, installed by `make test`), naming every
/// node of the cluster file, IPv6 ones included, with its runtime API.
#[test]
fn cluster_haproxy_config_is_accepted_by_haproxy() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster_file(
        dir.path(),
        &[
            ("127.0.0.1:7101", "127.0.0.1:8081"),
            ("127.0.0.1:7102", "127.0.0.1:8082"),
            ("[::1]:7103", "[::1]:8083"),
        ],
    );
    let out = ingressoja(&[
        "cluster",
        "haproxy-config",
        "--cluster",
        cluster.to_str().unwrap(),
        "--listen",
        "127.0.0.1:18080",
        "--admin-socket",
        dir.path().join("haproxy.sock").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let config = String::from_utf8(out.stdout).unwrap();
    assert_eq!(config.matches(" check\n").count(), 3, "{config}");
    assert!(config.contains("stats socket "), "{config}");
    let path = dir.path().join("haproxy.cfg");
    std::fs::write(&path, &config).unwrap();
    let checked = Command::new(debian_tool("haproxy"))
        .args(["-c", "-f", path.to_str().unwrap()])
        .output()
        .expect("haproxy (Debian's haproxy; `make test` installs it)");
    assert!(
        checked.status.success(),
        "haproxy refused the configuration:\n{}\n{config}",
        text(&checked)
    );

    // A cluster file that is not one is refused with its reason.
    std::fs::write(&cluster, "nodes = 3\n").unwrap();
    let refused = ingressoja(&[
        "cluster",
        "haproxy-config",
        "--cluster",
        cluster.to_str().unwrap(),
    ]);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("cluster file"),
        "{}",
        text(&refused)
    );
}

/// `cluster nginx-config` writes a whole nginx.conf that nginx itself
/// accepts (`nginx -t`, Debian's nginx-light, installed by `make test`).
#[test]
fn cluster_nginx_config_is_accepted_by_nginx() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster_file(
        dir.path(),
        &[
            ("127.0.0.1:7101", "127.0.0.1:8081"),
            ("[::1]:7102", "[::1]:8082"),
        ],
    );
    let out = ingressoja(&[
        "cluster",
        "nginx-config",
        "--cluster",
        cluster.to_str().unwrap(),
        "--listen",
        "127.0.0.1:18081",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let config = String::from_utf8(out.stdout).unwrap();
    assert_eq!(config.matches("max_fails=2").count(), 2, "{config}");
    let path = dir.path().join("nginx.conf");
    std::fs::write(&path, &config).unwrap();
    // Its own prefix: the check writes nothing outside the test's directory.
    let checked = Command::new(debian_tool("nginx"))
        .args(["-t", "-q", "-p"])
        .arg(dir.path())
        .args(["-c", path.to_str().unwrap(), "-g"])
        .arg(format!(
            "pid {}; error_log {} notice;",
            dir.path().join("nginx.pid").display(),
            dir.path().join("error.log").display()
        ))
        .output()
        .expect("nginx (Debian's nginx-light; `make test` installs it)");
    assert!(
        checked.status.success(),
        "nginx refused the configuration:\n{}\n{config}",
        text(&checked)
    );
}

/// A cluster file in `dir` with a node per `(peers, http)` address pair.
fn cluster_file(dir: &Path, nodes: &[(&str, &str)]) -> std::path::PathBuf {
    let mut text = format!("secret = \"{}\"\n", "x".repeat(32));
    for (id, (peers, http)) in nodes.iter().enumerate() {
        let id = id + 1;
        text.push_str(&format!(
            "[[nodes]]\nid = {id}\npeers = \"{peers}\"\nhttp = \"{http}\"\n"
        ));
    }
    let path = dir.join("cluster.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A tool from Debian's packages: in /usr/sbin, which a user's PATH may
/// lack.
fn debian_tool(name: &str) -> String {
    ["/usr/sbin", "/usr/bin"]
        .iter()
        .map(|dir| format!("{dir}/{name}"))
        .find(|path| Path::new(path).exists())
        .unwrap_or_else(|| name.to_owned())
}
