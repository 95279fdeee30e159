//! The HAProxy configuration for a cluster, written from its cluster file
//! (`ingressoja cluster haproxy-config`): one frontend for the fans, one
//! backend with every node, each checked on `/readyz`.
//!
//! Why each setting:
//! - any node takes any request (followers forward to the leader), so the
//!   balancer spreads over every ready node; `leastconn`, because event
//!   streams stay open for minutes and round-robin would pile them up;
//! - `inter 1s fall 2 rise 2`: a dead node is out within about two seconds,
//!   and one good answer does not bring a flapping one back;
//! - `on-marked-down shutdown-sessions`: the streams of a node marked down
//!   are closed at once, so browsers reconnect (with `Last-Event-ID`)
//!   through the balancer to a live node instead of waiting on a dead one;
//! - `timeout server` above the streams' 15 s keep-alive comment, so an
//!   idle stream is not cut; `timeout http-request` bounds a slow client's
//!   headers;
//! - `option forwardfor`: the nodes see the fan's address in
//!   `X-Forwarded-For`, which they believe only from the balancer's address
//!   (`trusted_proxies` in the nodes' settings);
//! - `retry-on conn-failure` with `option redispatch`: a request whose
//!   connection to a node failed (nothing sent) goes to another node; a
//!   request already sent is never replayed by the balancer (the fan's
//!   client retries, with its idempotency key).
//! - `--admin-socket PATH` (optional): HAProxy's runtime API on a Unix
//!   socket only its owner may open, for taking a node out gently before
//!   maintenance (`set server nodes/node2 state drain`: no new requests or
//!   streams, those open stay) and back (`state ready`).

use std::fmt::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::file::ClusterFile;

/// A path HAProxy's configuration cannot carry as written (it splits
/// words on blanks and reads `#` as a comment).
#[derive(Debug, thiserror::Error)]
#[error("the admin socket's path {0:?} must be UTF-8 without blanks, quotes or '#'")]
pub struct UnfitPath(pub PathBuf);

/// The configuration text for `file`'s nodes, the balancer listening on
/// `listen`, with the runtime API on `admin_socket` when one is given.
pub fn haproxy_config(
    file: &ClusterFile,
    listen: SocketAddr,
    admin_socket: Option<&Path>,
) -> Result<String, UnfitPath> {
    let socket = match admin_socket {
        None => None,
        Some(path) => Some(
            path.to_str()
                .filter(|p| {
                    !p.is_empty() && !p.chars().any(|c| c.is_whitespace() || "\"'#\\".contains(c))
                })
                .ok_or_else(|| UnfitPath(path.to_path_buf()))?,
        ),
    };
    let mut text = String::new();
    let _ = writeln!(
        text,
        "# Written by `ingressoja cluster haproxy-config` from the cluster file;\n\
         # the reasons for each setting are in server/src/cluster/haproxy.rs.\n\
         global\n\
         \x20   # maxconn: derived by HAProxy from the open-files limit it is\n\
         \x20   # given (a fixed figure above that limit stops it starting)."
    );
    if let Some(path) = socket {
        let _ = writeln!(
            text,
            "    # The runtime API, for its owner only (drain a node before\n\
             \x20   # maintenance: set server nodes/node2 state drain).\n\
             \x20   stats socket {path} mode 600 level admin"
        );
    }
    let _ = writeln!(
        text,
        "\n\
         defaults\n\
         \x20   mode http\n\
         \x20   option forwardfor\n\
         \x20   option redispatch\n\
         \x20   retries 2\n\
         \x20   retry-on conn-failure\n\
         \x20   timeout connect 2s\n\
         \x20   timeout http-request 10s\n\
         \x20   timeout http-keep-alive 10s\n\
         \x20   timeout client 60s\n\
         \x20   timeout server 60s\n\
         \x20   timeout queue 5s\n\
         \n\
         frontend fans\n\
         \x20   bind {listen}\n\
         \x20   default_backend nodes\n\
         \n\
         backend nodes\n\
         \x20   balance leastconn\n\
         \x20   option httpchk GET /readyz\n\
         \x20   http-check expect status 200\n\
         \x20   default-server inter 1s fall 2 rise 2 on-marked-down shutdown-sessions"
    );
    for node in &file.nodes {
        let _ = writeln!(text, "    server node{} {} check", node.id, node.http);
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::cluster::file::NodeEntry;

    fn three() -> ClusterFile {
        ClusterFile {
            secret: "s".repeat(32),
            nodes: (1..=3)
                .map(|id| NodeEntry {
                    id,
                    peers: format!("127.0.0.1:{}", 7100 + id).parse().unwrap(),
                    http: format!("127.0.0.1:{}", 8080 + id).parse().unwrap(),
                })
                .collect(),
        }
    }

    #[test]
    fn every_node_is_a_checked_server_and_streams_outlive_their_keep_alive() {
        let text = haproxy_config(&three(), "0.0.0.0:80".parse().unwrap(), None).unwrap();
        assert!(
            !text.contains("stats socket"),
            "no runtime API unless asked"
        );
        for id in 1..=3 {
            assert!(
                text.contains(&format!("server node{id} 127.0.0.1:{} check", 8080 + id)),
                "{text}"
            );
        }
        assert!(text.contains("bind 0.0.0.0:80"));
        assert!(text.contains("option httpchk GET /readyz"));
        assert!(text.contains("inter 1s fall 2 rise 2 on-marked-down shutdown-sessions"));
        assert!(text.contains("option forwardfor"));
        let server_timeout: u64 = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("timeout server "))
            .and_then(|t| t.strip_suffix('s'))
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            std::time::Duration::from_secs(server_timeout) > crate::http::sse::KEEP_ALIVE,
            "an idle stream would be cut between keep-alives"
        );
    }

    #[test]
    fn an_ipv6_address_is_written_as_haproxy_reads_it() {
        let mut file = three();
        file.nodes[0].http = "[::1]:8081".parse().unwrap();
        let text = haproxy_config(&file, "[::]:8443".parse().unwrap(), None).unwrap();
        assert!(text.contains("server node1 [::1]:8081 check"), "{text}");
        assert!(text.contains("bind [::]:8443"), "{text}");
    }

    #[test]
    fn the_runtime_api_is_on_the_socket_asked_for_and_a_path_it_cannot_carry_is_refused() {
        let listen = "127.0.0.1:80".parse().unwrap();
        let text =
            haproxy_config(&three(), listen, Some(Path::new("/run/ij/haproxy.sock"))).unwrap();
        let global = text.split("defaults").next().unwrap();
        assert!(
            global.contains("stats socket /run/ij/haproxy.sock mode 600 level admin"),
            "{text}"
        );
        for unfit in ["/run/a b.sock", "/run/a#b.sock", "/run/\"a\".sock", ""] {
            assert!(
                haproxy_config(&three(), listen, Some(Path::new(unfit))).is_err(),
                "{unfit:?}"
            );
        }
    }
}
