//! Who the client is, network-wise: the peer's address, or behind trusted
//! proxies (the nginx instances in front of a cluster), the address they
//! forwarded in `X-Forwarded-For`. Rate limits per address and the audit
//! trail's "from where" both use it: behind a load balancer the peer is
//! always the balancer, which would put every fan under one address's
//! limit and make the trail useless. Only proxies named in
//! `trusted_proxies` are believed; anyone else's header is ignored, since a
//! client can write whatever it likes there.

use std::net::IpAddr;

use http::HeaderMap;

/// The client's address for a request from `peer` with `headers`.
///
/// `X-Forwarded-For` lists the addresses a request passed through, each
/// proxy appending the one it saw. Walking from the right (the peer, then
/// what the nearest proxy saw, and so on), the client is the first address
/// that is not a trusted proxy: everything left of it could have been
/// written by the client. An entry that is not an address stops the walk at
/// the last one known good.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    let peer = peer.to_canonical();
    if !trusted.contains(&peer) {
        return peer;
    }
    let mut client = peer;
    // From the right: the last header's last entry is what the nearest
    // proxy saw. Walked in place, nothing collected (this runs per request).
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .rev()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.rsplit(','));
    for entry in forwarded {
        let Ok(address) = entry.trim().parse::<IpAddr>() else {
            return client;
        };
        client = address.to_canonical();
        if !trusted.contains(&client) {
            return client;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with(forwarded: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in forwarded {
            headers.append("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn only_a_trusted_proxy_is_believed() {
        let proxy = [ip("10.0.0.2")];
        let cases: &[(&str, &[&str], &[IpAddr], &str)] = &[
            // No proxies configured: the peer, whatever it claims.
            ("203.0.113.9", &["198.51.100.1"], &[], "203.0.113.9"),
            // A client that is not the proxy cannot choose its address.
            ("203.0.113.9", &["198.51.100.1"], &proxy, "203.0.113.9"),
            // Through the proxy: the address it saw.
            ("10.0.0.2", &["198.51.100.1"], &proxy, "198.51.100.1"),
            // A client that wrote its own header before the proxy appended.
            (
                "10.0.0.2",
                &["1.2.3.4, 198.51.100.1"],
                &proxy,
                "198.51.100.1",
            ),
            (
                "10.0.0.2",
                &["1.2.3.4", "198.51.100.1"],
                &proxy,
                "198.51.100.1",
            ),
            // Two proxies in a row, both trusted.
            (
                "10.0.0.2",
                &["198.51.100.1, 10.0.0.3"],
                &[ip("10.0.0.2"), ip("10.0.0.3")],
                "198.51.100.1",
            ),
            // The proxy sent nothing, or garbage: the proxy itself.
            ("10.0.0.2", &[], &proxy, "10.0.0.2"),
            ("10.0.0.2", &["not an address"], &proxy, "10.0.0.2"),
            // IPv4 seen through an IPv6 socket is still IPv4.
            ("::ffff:10.0.0.2", &["2001:db8::7"], &proxy, "2001:db8::7"),
        ];
        for (peer, forwarded, trusted, expected) in cases {
            assert_eq!(
                client_address(ip(peer), &with(forwarded), trusted),
                ip(expected),
                "peer {peer}, forwarded {forwarded:?}, trusted {trusted:?}"
            );
        }
    }
}
