//! Header rewriting: hop-by-hop removal and `Forwarded` / `X-Forwarded-*`.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use std::net::SocketAddr;

/// Headers that are hop-by-hop by definition (RFC 9110 §7.6.1), besides
/// those named in `Connection` and every `Proxy-*` header.
const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Removes every hop-by-hop header: those `Connection` names, the fixed list
/// and every `Proxy-*` header.
pub(crate) fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // Names listed in `Connection` first, while the header is still there.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    let proxy_headers: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("proxy-"))
        .cloned()
        .collect();
    for name in proxy_headers {
        headers.remove(name);
    }
}

/// Replaces any client-sent `Forwarded` / `X-Forwarded-*` with what the proxy
/// saw: the peer address, the scheme the client used and the host it asked
/// for.
pub(crate) fn set_forwarded(
    headers: &mut HeaderMap,
    peer: Option<SocketAddr>,
    proto: &'static str,
    host: Option<&str>,
) {
    headers.remove(header::FORWARDED);
    headers.remove(X_FORWARDED_FOR);
    headers.remove(X_FORWARDED_PROTO);
    headers.remove(X_FORWARDED_HOST);

    let mut forwarded = String::with_capacity(64);
    if let Some(peer) = peer {
        let ip = peer.ip().to_canonical();
        // RFC 7239 §6: an IPv6 node is quoted and bracketed.
        if ip.is_ipv6() {
            forwarded.push_str(&format!("for=\"[{ip}]\";"));
        } else {
            forwarded.push_str(&format!("for={ip};"));
        }
        if let Ok(value) = HeaderValue::from_str(&ip.to_string()) {
            headers.insert(X_FORWARDED_FOR, value);
        }
    }
    forwarded.push_str("proto=");
    forwarded.push_str(proto);
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));

    if let Some(host) = host.filter(|h| is_plain_host(h)) {
        forwarded.push_str(";host=\"");
        forwarded.push_str(host);
        forwarded.push('"');
        if let Ok(value) = HeaderValue::from_str(host) {
            headers.insert(X_FORWARDED_HOST, value);
        }
    }
    if let Ok(value) = HeaderValue::from_str(&forwarded) {
        headers.insert(header::FORWARDED, value);
    }
}

/// A host (with optional port) made only of characters that need no
/// escaping inside a quoted string; anything else is not passed on.
fn is_plain_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_named_headers_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(
            header::PROXY_AUTHORIZATION,
            HeaderValue::from_static("Basic x"),
        );
        h.insert("proxy-connection", HeaderValue::from_static("keep-alive"));
        remove_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn client_forwarded_headers_are_replaced() {
        let mut h = HeaderMap::new();
        h.insert(header::FORWARDED, HeaderValue::from_static("for=6.6.6.6"));
        h.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
        h.insert("x-forwarded-proto", HeaderValue::from_static("http"));
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        set_forwarded(&mut h, Some(peer), "https", Some("localhost:8443"));
        assert_eq!(
            h[header::FORWARDED],
            "for=127.0.0.1;proto=https;host=\"localhost:8443\""
        );
        assert_eq!(h["x-forwarded-for"], "127.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "localhost:8443");
    }

    #[test]
    fn ipv6_peer_is_quoted_and_bracketed() {
        let mut h = HeaderMap::new();
        let peer: SocketAddr = "[::1]:5000".parse().unwrap();
        set_forwarded(&mut h, Some(peer), "http", None);
        assert_eq!(h[header::FORWARDED], "for=\"[::1]\";proto=http");
        assert_eq!(h["x-forwarded-for"], "::1");
    }

    #[test]
    fn host_with_quote_is_not_forwarded() {
        let mut h = HeaderMap::new();
        set_forwarded(&mut h, None, "https", Some("evil\"host"));
        assert_eq!(h[header::FORWARDED], "proto=https");
        assert!(!h.contains_key("x-forwarded-host"));
    }
}
