//! Where a request comes from: the peer address, or, behind trusted proxies, the first address in
//! `X-Forwarded-For` that is not one of them.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    networks: Vec<IpNet>,
}

impl TrustedProxies {
    pub fn new(networks: Vec<IpNet>) -> TrustedProxies {
        TrustedProxies { networks }
    }

    fn trusts(&self, address: IpAddr) -> bool {
        contains(&self.networks, address)
    }

    /// The client's address. `X-Forwarded-For` is read right to left (each proxy appends the address
    /// it saw) only while the hop that wrote it is trusted, so a client cannot choose its address by
    /// sending the header itself.
    pub fn client_address(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = canonical(peer);
        if !self.trusts(client) {
            return client;
        }
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .collect();
        for hop in hops.into_iter().rev() {
            let Some(address) = parse_hop(hop) else {
                // Unreadable: the last trusted hop is the best we know.
                return client;
            };
            client = address;
            if !self.trusts(client) {
                return client;
            }
        }
        client
    }
}

/// Whether `address` is in one of `networks`.
pub(super) fn contains(networks: &[IpNet], address: IpAddr) -> bool {
    let address = canonical(address);
    networks.iter().any(|network| network.contains(&address))
}

/// IPv4-mapped IPv6 addresses (`::ffff:203.0.113.7`, from dual-stack listeners) as IPv4.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(address),
        IpAddr::V4(_) => address,
    }
}

/// An `X-Forwarded-For` entry: an address, possibly with a port or in brackets.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(address) = hop.parse::<IpAddr>() {
        return Some(canonical(address));
    }
    hop.parse::<SocketAddr>().ok().map(|socket| canonical(socket.ip()))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn networks(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|text| text.parse().expect("network")).collect()
    }

    fn forwarded(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_str(value).expect("header"));
        headers
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxies = TrustedProxies::new(networks(&["10.0.0.0/8"]));
        let from_proxy: IpAddr = "10.1.2.3".parse().expect("ip");
        let direct: IpAddr = "198.51.100.9".parse().expect("ip");
        let spoofed = forwarded("203.0.113.7, 192.0.2.1");
        assert_eq!(proxies.client_address(direct, &spoofed), direct, "an untrusted peer's header is ignored");
        assert_eq!(
            proxies.client_address(from_proxy, &spoofed),
            "192.0.2.1".parse::<IpAddr>().expect("ip"),
            "the rightmost untrusted hop, not what the client wrote first"
        );
        assert_eq!(
            proxies.client_address(from_proxy, &forwarded("192.0.2.1, 10.9.9.9")),
            "192.0.2.1".parse::<IpAddr>().expect("ip"),
            "proxy chains are walked"
        );
        assert_eq!(proxies.client_address(from_proxy, &HeaderMap::new()), from_proxy);
        assert_eq!(proxies.client_address(from_proxy, &forwarded("garbage")), from_proxy);
        assert_eq!(
            proxies.client_address(from_proxy, &forwarded("[2001:db8::1]:443")),
            "2001:db8::1".parse::<IpAddr>().expect("ip")
        );
    }

    #[test]
    fn mapped_addresses_match_ipv4_networks() {
        let allowed = networks(&["203.0.113.0/24"]);
        assert!(contains(&allowed, "::ffff:203.0.113.7".parse().expect("ip")));
        assert!(!contains(&allowed, "203.0.114.1".parse().expect("ip")));
    }
}
