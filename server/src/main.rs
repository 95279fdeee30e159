//! `ingressoja`: one binary, one subcommand per job: the sale server
//! (`serve`, what `make run` starts), the narrated demo drop, backups,
//! point-in-time restore, the log tools, administrators and the audit log.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use ingressoja::cluster::{self, file::ClusterFile};
use ingressoja::http::config::ServerConfig;
use ingressoja::runtime::{self, Clock, RuntimeOptions, SystemClock};
use ingressoja::{demo, http, ops};

// mimalloc: fast and steady under many small allocations per request.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// IngressoJa: ticket sales for high-demand drops.
#[derive(Parser)]
#[command(name = "ingressoja", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serves the sale over HTTP.
    Serve {
        /// Where to listen (default 127.0.0.1:8080).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// The data directory (default ./data).
        #[arg(long)]
        data: Option<PathBuf>,
        /// A TOML configuration file.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Seed a demo event on first start (enables development mode).
        #[arg(long)]
        demo: bool,
        /// Hold the sale as one node of a replicated cluster, named in this
        /// cluster file (see `server/src/cluster/file.rs`).
        #[arg(long, requires = "node")]
        cluster: Option<PathBuf>,
        /// This node's id in the cluster file.
        #[arg(long, requires = "cluster")]
        node: Option<u64>,
    },
    /// Play a small drop through the event allocator and print what happens.
    Demo {
        /// Seeds the pre-queue draw and the fans' choices.
        #[arg(long, default_value_t = 2026)]
        seed: u64,
    },
    /// Backups of the data directory.
    #[command(subcommand)]
    Backup(BackupCommand),
    /// Restores a backup into a new data directory, optionally to a point in time.
    Restore {
        /// The backup directory.
        backup: PathBuf,
        /// The new data directory (must not exist or be empty).
        #[arg(long)]
        data: PathBuf,
        /// Restore up to and including this log sequence number.
        #[arg(long, conflicts_with = "until_time")]
        until_seq: Option<u64>,
        /// Restore up to this instant, in ms since the epoch.
        #[arg(long)]
        until_time: Option<u64>,
    },
    /// Reads the write-ahead log.
    #[command(subcommand)]
    Wal(WalCommand),
    /// A replicated sale's group of nodes.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Administrator accounts.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// The audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Solves a join challenge (what the waiting room's worker does), for
    /// trying the API from a shell.
    Pow {
        /// The challenge from GET /api/events/{id}/challenge.
        challenge: String,
        /// Its difficulty (leading zero bits).
        #[arg(long)]
        difficulty: u8,
    },
    /// Load for the crash tests: runs until killed, logging acknowledgements.
    #[command(hide = true)]
    CrashLoad {
        /// The data directory.
        #[arg(long)]
        data: PathBuf,
        /// Where acknowledged holds and purchases are appended.
        #[arg(long)]
        acks: PathBuf,
        /// Seeds the fans' choices.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

#[derive(Subcommand)]
enum BackupCommand {
    /// Writes a consistent backup of a stopped server's data directory.
    Create {
        /// Where to write it (must not exist or be empty).
        dir: PathBuf,
        /// The data directory.
        #[arg(long, default_value = "./data")]
        data: PathBuf,
    },
    /// Checks a backup: the whole hash chain, then a full recovery.
    Verify {
        /// The backup directory.
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Founds the group with the nodes of the cluster file (run once, with
    /// the nodes started; running it again changes nothing).
    Init {
        /// The cluster file.
        #[arg(long)]
        cluster: PathBuf,
    },
    /// Shows each node's view: its role, term, leader, log and applied
    /// entries, and the voters.
    Status {
        /// The cluster file.
        #[arg(long)]
        cluster: PathBuf,
    },
    /// Adds a node (in the cluster file, started) as a voter, once it has
    /// caught up with the log.
    AddNode {
        /// The cluster file.
        #[arg(long)]
        cluster: PathBuf,
        /// The node's id.
        #[arg(long)]
        node: u64,
    },
    /// Removes a voter.
    RemoveNode {
        /// The cluster file.
        #[arg(long)]
        cluster: PathBuf,
        /// The node's id.
        #[arg(long)]
        node: u64,
    },
    /// Prints an HAProxy configuration that spreads fans over the cluster
    /// file's nodes, each checked on /readyz (see `cluster/haproxy.rs`).
    HaproxyConfig {
        /// The cluster file.
        #[arg(long)]
        cluster: PathBuf,
        /// Where the balancer listens for fans.
        #[arg(long, default_value = "0.0.0.0:80")]
        listen: std::net::SocketAddr,
        /// HAProxy's runtime API on this Unix socket (owner only), to
        /// drain a node before maintenance.
        #[arg(long)]
        admin_socket: Option<PathBuf>,
    },
    /// Prints an nginx configuration (a whole nginx.conf) for the same;
    /// nginx open source has no active health checks (see
    /// `cluster/nginx.rs`).
    NginxConfig {
        /// The cluster file.
        #[arg(long)]
        cluster: PathBuf,
        /// Where nginx listens for fans.
        #[arg(long, default_value = "0.0.0.0:80")]
        listen: std::net::SocketAddr,
    },
}

#[derive(Subcommand)]
enum WalCommand {
    /// Walks the whole hash chain and names the first bad batch.
    Verify {
        /// The data directory.
        #[arg(long, default_value = "./data")]
        data: PathBuf,
    },
    /// Prints records readably.
    Inspect {
        /// The data directory.
        #[arg(long, default_value = "./data")]
        data: PathBuf,
        /// The first sequence number to print.
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// How many records to print.
        #[arg(long, default_value_t = 100)]
        limit: u64,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Makes an administrator account: on a single node's data directory
    /// (that server stopped), or with --cluster on a running cluster
    /// (through its leader, so every node has it). The password is read
    /// from standard input with --password-stdin, or generated and printed
    /// once.
    Create {
        /// The administrator's email.
        email: String,
        /// The data directory (a single node).
        #[arg(long, default_value = "./data")]
        data: PathBuf,
        /// A running cluster's file instead.
        #[arg(long)]
        cluster: Option<PathBuf>,
        /// Read the password (one line) from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Checks the audit log's hash chain and the sale log's; names the
    /// first broken link.
    Verify {
        /// The data directory.
        #[arg(long, default_value = "./data")]
        data: PathBuf,
    },
    /// Writes both logs as JSON lines to standard output, in time order:
    /// the audit log (`"log":"audit"`: accounts, sessions, admin actions)
    /// and the sale log (`"log":"sale"`: every sale transition, with the
    /// fan's address for what their requests did).
    Export {
        /// Entries at or after this instant, in ms since the epoch.
        #[arg(long, default_value_t = 0)]
        since: u64,
        /// The data directory.
        #[arg(long, default_value = "./data")]
        data: PathBuf,
    },
}

type CliResult = Result<(), Box<dyn std::error::Error>>;

fn admin(command: AdminCommand) -> CliResult {
    let AdminCommand::Create {
        email,
        data,
        cluster,
        password_stdin,
    } = command;
    let mut stdin = std::io::stdin().lock();
    let input: Option<&mut dyn std::io::BufRead> = if password_stdin {
        Some(&mut stdin)
    } else {
        None
    };
    let made = match cluster {
        Some(file) => {
            let file = ClusterFile::load(&file)?;
            ops::security_tools::create_admin_in_cluster(&file, &email, input)?
        }
        None => ops::security_tools::create_admin(&data, &email, input)?,
    };
    println!("administrator {} created (account {})", made.email, made.id);
    if let Some(password) = made.generated_password {
        println!("password (shown once): {password}");
    }
    println!("log in, then turn on two-factor: admin endpoints need it");
    Ok(())
}

fn audit(command: AuditCommand) -> CliResult {
    match command {
        AuditCommand::Verify { data } => {
            let s = ops::security_tools::verify(&data)?;
            println!(
                "audit log OK: {} entries; sale log OK: {} batches, {} records",
                s.audit_entries, s.log_batches, s.log_records
            );
        }
        AuditCommand::Export { since, data } => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let written = ops::security_tools::export(&data, since, &mut out)?;
            std::io::Write::flush(&mut out)?;
            eprintln!(
                "{} audit entries, {} sale records",
                written.audit, written.sale
            );
        }
    }
    Ok(())
}

fn backup(command: BackupCommand) -> CliResult {
    match command {
        BackupCommand::Create { dir, data } => {
            runtime::backup::create_offline_backup(&data, &dir)?;
            let summary = runtime::backup::verify_backup(&dir)?;
            println!(
                "backup written to {} (log up to sequence {})",
                dir.display(),
                summary.last_seq
            );
        }
        BackupCommand::Verify { dir } => {
            let s = runtime::backup::verify_backup(&dir)?;
            println!(
                "backup OK: {} batches up to sequence {}, {} snapshots, {} events, {} tickets sold",
                s.batches, s.last_seq, s.snapshots, s.events, s.tickets_sold
            );
        }
    }
    Ok(())
}

fn restore(
    backup: PathBuf,
    data: PathBuf,
    until_seq: Option<u64>,
    until_time: Option<u64>,
) -> CliResult {
    let until = match (until_seq, until_time) {
        (Some(seq), _) => runtime::restore::Until::Seq(seq),
        (None, Some(at)) => runtime::restore::Until::Time(at),
        (None, None) => runtime::restore::Until::End,
    };
    // Accounts, sessions and the audit log are applied only once
    // committed: a member's restore keeps at least what they held.
    let beside = ingressoja::replicated::state::applied_in(&backup.join("db"))?;
    let s = runtime::restore::restore_with(&backup, &data, until, beside)?;
    if s.restored_seq < beside {
        // Cut before what they held. A member's came from the log alone:
        // emptied, rebuilt from the log at start, the same on every node.
        // A single node's may hold what no log has (an administrator made
        // offline): kept, and applied from the cut on.
        let rewound = runtime::DataDir::create(&data).and_then(|dir| {
            if s.member {
                ingressoja::replicated::state::rewind(&dir)
            } else {
                ingressoja::replicated::state::reposition(&dir, s.restored_seq)
            }
        });
        if let Err(error) = rewound {
            // The directory was new: nothing of the operator's is lost.
            let _ = std::fs::remove_dir_all(&data);
            return Err(error.into());
        }
    }
    println!(
        "restored {} up to sequence {} (the backup goes to {}): {} events, {} tickets sold",
        data.display(),
        s.restored_seq,
        s.backup_last_seq,
        s.events,
        s.tickets_sold
    );
    if s.restored_seq < beside && !s.member {
        println!(
            "accounts, sessions and the audit log are kept as the backup holds them \
             (a point-in-time restore rolls back the sale, not them)"
        );
    }
    if s.member {
        println!(
            "a cluster member's backup: restored to its last known commit at most; \
             {} record(s) after it, never known to be committed, were left out.\n\
             To restore the whole cluster: start this node with the cluster file \
             (the same node ids and peer addresses) and the other nodes with empty \
             data directories; they copy the sale from this one \
             (docs/REPLICATION.md, \"Restoring a whole cluster\").",
            s.uncommitted_left_out
        );
    }
    Ok(())
}

fn wal(command: WalCommand) -> CliResult {
    match command {
        WalCommand::Verify { data } => {
            let db = ingressoja::runtime::DataDir::create(&data)?.db_path();
            let s = runtime::log_tools::verify_log(&db)?;
            println!(
                "log OK: {} batches, {} records, up to sequence {}",
                s.batches, s.records, s.last_seq
            );
        }
        WalCommand::Inspect { data, from, limit } => {
            let db = ingressoja::runtime::DataDir::create(&data)?.db_path();
            runtime::log_tools::inspect(&db, from, limit, &mut std::io::stdout().lock())?;
        }
    }
    Ok(())
}

fn cluster(command: ClusterCommand) -> CliResult {
    use ingressoja::cluster::cli;
    match command {
        ClusterCommand::Init { cluster } => {
            for line in cli::init(&ClusterFile::load(&cluster)?)? {
                println!("{line}");
            }
        }
        ClusterCommand::Status { cluster } => {
            for (id, status) in cli::status(&ClusterFile::load(&cluster)?)? {
                match status {
                    Ok(s) => println!(
                        "node {id}: {}, term {}, leader {}, log {}, applied {}, voters {:?}, learners {:?}",
                        s.state,
                        s.term,
                        s.leader.map_or_else(|| "none".into(), |l| l.to_string()),
                        s.last_log_index
                            .map_or_else(|| "empty".into(), |i| i.to_string()),
                        s.applied_index
                            .map_or_else(|| "none".into(), |i| i.to_string()),
                        s.voters,
                        s.learners
                    ),
                    Err(why) => println!("node {id}: {why}"),
                }
            }
        }
        ClusterCommand::AddNode { cluster, node } => {
            println!("{}", cli::add_node(&ClusterFile::load(&cluster)?, node)?);
        }
        ClusterCommand::RemoveNode { cluster, node } => {
            println!("{}", cli::remove_node(&ClusterFile::load(&cluster)?, node)?);
        }
        ClusterCommand::HaproxyConfig {
            cluster,
            listen,
            admin_socket,
        } => {
            let file = ClusterFile::load(&cluster)?;
            let config = ingressoja::cluster::haproxy::haproxy_config(
                &file,
                listen,
                admin_socket.as_deref(),
            )?;
            print!("{config}");
        }
        ClusterCommand::NginxConfig { cluster, listen } => {
            let file = ClusterFile::load(&cluster)?;
            print!(
                "{}",
                ingressoja::cluster::nginx::nginx_config(&file, listen)
            );
        }
    }
    Ok(())
}

/// Creates the demo event (`--demo`) on a runtime that takes writes.
fn create_demo_event(app: &http::App, clock: &dyn Clock) -> CliResult {
    let mut seed = [0u8; 8];
    getrandom::fill(&mut seed)?;
    let demo = http::demo_event::demo_event(clock.now_ms(), u64::from_le_bytes(seed));
    let event = app.runtime.create_event(demo)?.wait()?;
    app.proposer
        .set_event_terms(event, http::demo_event::demo_terms())?;
    tracing::info!(event = event.0, "created the demo event");
    Ok(())
}

/// A cluster node started with `--demo` (`make cluster`): whichever node
/// leads first creates the demo event, if the sale has none; the others
/// see it arrive through the log and do nothing.
fn create_demo_event_once_led(app: Arc<http::App>, clock: Arc<dyn Clock>) -> CliResult {
    std::thread::Builder::new()
        .name("ingressoja-demo".into())
        .spawn(move || {
            loop {
                let empty = app
                    .runtime
                    .query(|state| state.events.is_empty())
                    .and_then(ingressoja::runtime::Pending::wait);
                match empty {
                    Ok(false) => return,
                    Ok(true) if app.runtime.leads() => match create_demo_event(&app, &*clock) {
                        Ok(()) => return,
                        Err(error) => tracing::warn!(%error, "no demo event yet"),
                    },
                    _ => {}
                }
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        })?;
    Ok(())
}

fn serve(
    listen: Option<std::net::SocketAddr>,
    data: Option<PathBuf>,
    config: Option<PathBuf>,
    demo: bool,
    member: Option<(PathBuf, u64)>,
) -> CliResult {
    let mut config = ServerConfig::load(config.as_deref(), |name| std::env::var(name).ok())?;
    let cluster = match &member {
        Some((file, id)) => {
            let file = ClusterFile::load(file)?;
            let node = file
                .node(*id)
                .ok_or_else(|| format!("node {id} is not in the cluster file"))?
                .clone();
            config.listen = node.http;
            Some((file, node))
        }
        None => None,
    };
    config.listen = listen.unwrap_or(config.listen);
    config.data = data.unwrap_or(config.data);
    config.demo |= demo;
    config.max_connections = affordable_connections(config.max_connections);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let mut options = RuntimeOptions::new(&config.data);
    // Fault injection for the crash tests (a slow disk); see RuntimeOptions.
    if let Some(ms) = std::env::var("INGRESSOJA_SIMULATED_WRITE_DELAY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        tracing::warn!(ms, "simulating a slow log disk (testing only)");
        options.simulated_write_delay_ms = ms;
    }
    let app = match &cluster {
        Some((file, node)) => {
            let mut member = file.member(node.id)?;
            // Fault injection for the partition test; see `Partition`.
            if let Some(switch) = std::env::var_os("INGRESSOJA_TEST_PARTITION_FILE") {
                tracing::warn!("peer messages obey a partition switch (testing only)");
                let partition = cluster::transport::Partition::new(switch.into());
                member.network = member.network.with_partition(Some(partition));
            }
            let peers = file
                .nodes
                .iter()
                .map(|n| (n.id, n.peers.to_string()))
                .collect();
            let mut app = http::App::start_member(
                options,
                config.clone(),
                clock.clone(),
                member,
                peers,
                &file.secret,
            )?;
            let http_of = file.nodes.iter().map(|n| (n.id, n.http)).collect();
            app.forwarder = Some(cluster::forward::Forwarder::new(
                node.id,
                http_of,
                &file.secret,
            )?);
            Arc::new(app)
        }
        None => Arc::new(http::App::start(options, config.clone(), clock.clone())?),
    };
    if config.demo {
        if cluster.is_some() {
            create_demo_event_once_led(app.clone(), clock.clone())?;
        } else if app.runtime.query(|state| state.events.is_empty())?.wait()? {
            create_demo_event(&app, &*clock)?;
        }
    }
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    tokio.block_on(async {
        let peers = match (&cluster, app.runtime.raft()) {
            (Some((file, node)), Some(raft)) => {
                let listener = http::bind(node.peers)?;
                println!(
                    "node {} takes its peers' messages on {}",
                    node.id, node.peers
                );
                let secret = file.secret.clone();
                let attacher = app.runtime.attacher();
                let shared = app.proposer.state().clone();
                let never = std::future::pending::<()>();
                Some(tokio::spawn(async move {
                    cluster::peer_api::serve(listener, raft, attacher, shared, &secret, never)
                        .await;
                }))
            }
            _ => None,
        };
        let listener = http::bind(config.listen)?;
        println!("IngressoJa is serving on http://{}", listener.local_addr()?);
        http::serve(listener, app.clone(), shutdown_signal()).await;
        if let Some(peers) = peers {
            peers.abort();
        }
        Ok::<(), std::io::Error>(())
    })?;
    drop(tokio);
    // The HTTP side is drained: flush the log and stop the threads.
    if let Ok(app) = Arc::try_unwrap(app) {
        app.runtime.shutdown();
    }
    Ok(())
}

/// Descriptors kept for RocksDB's files, logs and the process itself.
const RESERVED_DESCRIPTORS: u64 = 256;

/// Raises the open-files limit to what the system allows (every connection,
/// and every open server-sent event stream, is a descriptor) and lowers
/// `wanted` connections to what that limit can hold, saying so: a server that
/// accepts more than it can open fails in worse ways (accept errors, RocksDB
/// unable to open a file).
fn affordable_connections(wanted: usize) -> usize {
    let files = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(files) => files,
        Err(error) => {
            tracing::warn!(%error, "cannot read the open-files limit");
            return wanted;
        }
    };
    let affordable =
        usize::try_from(files.saturating_sub(RESERVED_DESCRIPTORS).max(1)).unwrap_or(usize::MAX);
    if wanted > affordable {
        tracing::warn!(
            max_connections = wanted,
            open_files_limit = files,
            using = affordable,
            "the open-files limit cannot hold max_connections; raise it (ulimit -n) to accept more"
        );
        return affordable;
    }
    wanted
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => return interrupt.await.unwrap_or(()),
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // Logs go to stderr, as text or, with INGRESSOJA_LOG_FORMAT=json, as
    // JSON lines for a log collector.
    // openraft narrates every start and election at INFO (whole state
    // dumps); an operator needs its warnings.
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let quieter = tracing_subscriber::filter::Targets::new()
        .with_default(tracing::Level::INFO)
        .with_target("openraft", tracing::Level::WARN);
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false);
    if std::env::var("INGRESSOJA_LOG_FORMAT").is_ok_and(|f| f == "json") {
        logs.json().finish().with(quieter).init();
    } else {
        logs.finish().with(quieter).init();
    }
    let result = match cli.command {
        Command::Serve {
            listen,
            data,
            config,
            demo,
            cluster,
            node,
        } => {
            let member = cluster.zip(node);
            serve(listen, data, config, demo, member)
        }
        Command::Demo { seed } => demo::run(seed, &mut std::io::stdout().lock()),
        Command::CrashLoad { data, acks, seed } => ingressoja::crash_load::run(&data, &acks, seed),
        Command::Backup(command) => backup(command),
        Command::Cluster(command) => cluster(command),
        Command::Restore {
            backup,
            data,
            until_seq,
            until_time,
        } => restore(backup, data, until_seq, until_time),
        Command::Wal(command) => wal(command),
        Command::Admin(command) => admin(command),
        Command::Audit(command) => audit(command),
        Command::Pow {
            challenge,
            difficulty,
        } => {
            println!("{}", http::pow::solve(&challenge, difficulty));
            Ok(())
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ingressoja: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
