//! An nginx configuration for a cluster, written from its cluster file
//! (`ingressoja cluster nginx-config`), for operators who run nginx rather
//! than HAProxy (`haproxy.rs`, the one `make cluster` and the tests use).
//!
//! What nginx open source lacks: **active health checks** (`health_check`
//! is NGINX Plus only). It learns that a node is down only from failed
//! requests (`max_fails=2 fail_timeout=2s`: two failures take a node out
//! for two seconds, then one request tries it again), so a dead node costs
//! some fans a failed connection before it is avoided, and a node that is
//! up but not ready (recovering, or a follower cut off from its group)
//! still gets requests (it answers 503 with Retry-After, which the pages
//! retry). Nor can it close the streams of a node it marks down
//! (HAProxy's `on-marked-down shutdown-sessions`): a stream to a node that
//! hangs rather than dies is noticed by the page's own keep-alive timeout.
//!
//! The rest mirrors the HAProxy configuration: `least_conn` for
//! minutes-long event streams, buffering off so an event reaches the fan
//! when written, read timeouts above the streams' keep-alive, the fan's
//! address in `X-Forwarded-For` (believed by the nodes from the balancer's
//! address: `trusted_proxies`), and a request retried on another node only
//! when it could not be sent (`proxy_next_upstream error timeout`, without
//! `non_idempotent`: nginx never re-sends a POST it already sent).

use std::fmt::Write;
use std::net::SocketAddr;

use super::file::ClusterFile;

/// The configuration text (a whole `nginx.conf`) for `file`'s nodes, nginx
/// listening on `listen`.
pub fn nginx_config(file: &ClusterFile, listen: SocketAddr) -> String {
    let mut servers = String::new();
    for node in &file.nodes {
        let _ = writeln!(
            servers,
            "        server {} max_fails=2 fail_timeout=2s;",
            node.http
        );
    }
    format!(
        "# Written by `ingressoja cluster nginx-config` from the cluster file;\n\
         # the reasons for each setting, and what nginx open source cannot do\n\
         # (active health checks), are in server/src/cluster/nginx.rs.\n\
         worker_processes auto;\n\
         events {{\n    worker_connections 65536;\n}}\n\
         http {{\n\
         \x20   upstream ingressoja {{\n\
         \x20       least_conn;\n\
         {servers}\
         \x20       keepalive 64;\n\
         \x20   }}\n\
         \x20   server {{\n\
         \x20       listen {listen};\n\
         \x20       client_max_body_size 64k;\n\
         \x20       location / {{\n\
         \x20           proxy_pass http://ingressoja;\n\
         \x20           proxy_http_version 1.1;\n\
         \x20           proxy_set_header Connection \"\";\n\
         \x20           proxy_set_header Host $host;\n\
         \x20           proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
         \x20           proxy_buffering off;\n\
         \x20           proxy_connect_timeout 2s;\n\
         \x20           proxy_read_timeout 60s;\n\
         \x20           proxy_send_timeout 60s;\n\
         \x20           proxy_next_upstream error timeout;\n\
         \x20           proxy_next_upstream_tries 2;\n\
         \x20       }}\n\
         \x20   }}\n\
         }}\n"
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::cluster::file::NodeEntry;

    #[test]
    fn every_node_is_an_upstream_and_streams_outlive_their_keep_alive() {
        let file = ClusterFile {
            secret: "s".repeat(32),
            nodes: (1..=3)
                .map(|id| NodeEntry {
                    id,
                    peers: format!("127.0.0.1:{}", 7100 + id).parse().unwrap(),
                    http: format!("[::1]:{}", 8080 + id).parse().unwrap(),
                })
                .collect(),
        };
        let text = nginx_config(&file, "0.0.0.0:80".parse().unwrap());
        for id in 1..=3 {
            assert!(
                text.contains(&format!("server [::1]:{} max_fails=2", 8080 + id)),
                "{text}"
            );
        }
        assert!(text.contains("listen 0.0.0.0:80;"));
        assert!(
            text.contains("proxy_buffering off;"),
            "streams are not held back"
        );
        assert!(
            !text.contains("non_idempotent"),
            "a sent POST is never re-sent"
        );
        let read_timeout: u64 = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("proxy_read_timeout "))
            .and_then(|t| t.strip_suffix("s;"))
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            std::time::Duration::from_secs(read_timeout) > crate::http::sse::KEEP_ALIVE,
            "an idle stream would be cut between keep-alives"
        );
    }
}
