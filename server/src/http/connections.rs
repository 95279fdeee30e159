//! Accepting connections: a permit from the global bound first (so a full
//! server stops accepting, and the kernel's backlog holds the rest), then a
//! slot in the per-address bound, so that one address cannot take every
//! connection (slow bodies and idle sockets from one host would otherwise
//! starve everyone, `/healthz` included). Trusted proxies carry many
//! clients' connections and are exempt; a refused connection gets a 429
//! with a JSON body and is closed.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::metrics::Metrics;

/// Waits for a permit, then for a connection. Cancel-safe (the loop that
/// calls it may drop it for shutdown at either step); `None` when the
/// accept failed (the loop goes on) or the permits are closed.
pub async fn accept(
    listener: &TcpListener,
    permits: &Arc<Semaphore>,
) -> Option<(TcpStream, SocketAddr, OwnedSemaphorePermit)> {
    let permit = permits.clone().acquire_owned().await.ok()?;
    let (stream, remote) = listener.accept().await.ok()?;
    Some((stream, remote, permit))
}

/// Open connections per address.
#[derive(Debug)]
pub struct PerAddress {
    limit: usize,
    exempt: Vec<IpAddr>,
    /// Only addresses with an open connection: bounded by the global
    /// connection bound.
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection's place in its address's count; given back on drop.
#[derive(Debug)]
pub struct Slot {
    owner: Arc<PerAddress>,
    address: Option<IpAddr>,
}

impl PerAddress {
    /// At most `limit` connections per address, `exempt` ones excepted.
    pub fn new(limit: usize, exempt: Vec<IpAddr>) -> PerAddress {
        PerAddress {
            limit,
            exempt,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// A slot for a connection from `address`, or `None` if it holds its
    /// limit already.
    pub fn take(self: &Arc<Self>, address: IpAddr) -> Option<Slot> {
        let address = address.to_canonical();
        if self.exempt.contains(&address) {
            return Some(Slot {
                owner: self.clone(),
                address: None,
            });
        }
        let mut open = self.open.lock();
        let count = open.entry(address).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(Slot {
            owner: self.clone(),
            address: Some(address),
        })
    }

    /// Connections open from `address` now.
    pub fn open_from(&self, address: IpAddr) -> usize {
        self.open
            .lock()
            .get(&address.to_canonical())
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Some(address) = self.address else { return };
        let mut open = self.owner.open.lock();
        if let Some(count) = open.get_mut(&address) {
            *count -= 1;
            if *count == 0 {
                open.remove(&address);
            }
        }
    }
}

/// Answers a connection over its address's limit with a 429 and closes it
/// (best effort, within a second: the client may not be reading).
pub fn refuse(mut stream: TcpStream, metrics: &Metrics) -> impl Future<Output = ()> + use<> {
    metrics.connections_refused.inc();
    async move {
        let body = r#"{"error":{"code":"too_many_connections","message":"too many open connections from your address; close some and retry"}}"#;
        let response = format!(
            "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nretry-after: 1\r\n\
             cache-control: no-store\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        let write = async {
            stream.write_all(response.as_bytes()).await?;
            stream.shutdown().await
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_limit_and_a_closed_connection_gives_its_place_back() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap_or(IpAddr::from([0; 4]));
        let fan = IpAddr::from([203, 0, 113, 7]);
        let bound = Arc::new(PerAddress::new(2, vec![proxy]));
        let first = bound.take(fan);
        let second = bound.take(fan);
        assert!(first.is_some() && second.is_some());
        assert!(bound.take(fan).is_none(), "a third is over the limit");
        assert!(bound.take(IpAddr::from([203, 0, 113, 8])).is_some());
        let proxied: Vec<_> = (0..5).map(|_| bound.take(proxy)).collect();
        assert!(proxied.iter().all(Option::is_some), "proxies are exempt");
        drop(first);
        assert_eq!(bound.open_from(fan), 1);
        assert!(bound.take(fan).is_some());
        drop(second);
        assert_eq!(bound.open_from(IpAddr::from([0, 0, 0, 0])), 0);
    }
}
