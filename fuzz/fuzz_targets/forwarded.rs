//! `Forwarded` / `X-Forwarded-*` from a trusted and an untrusted peer:
//! resolution never panics, and an untrusted peer is always reported as
//! itself, whatever the headers say.
#![no_main]

use http::{HeaderMap, HeaderValue, Request};
use libfuzzer_sys::fuzz_target;
use tower_perimeter::https::{ForwardedHeaders, TrustedProxies};
use tower_perimeter::PeerAddr;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(4, |b| *b == 0);
    let mut headers = HeaderMap::new();
    for name in ["forwarded", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"] {
        let Some(value) = parts.next() else { break };
        if let Ok(v) = HeaderValue::from_bytes(value) {
            headers.append(name, v);
        }
    }
    let proxies = TrustedProxies::new()
        .trust("10.0.0.0/8")
        .expect("valid cidr")
        .headers(ForwardedHeaders::Both);
    for peer in ["10.1.2.3:4000", "203.0.113.7:4000"] {
        let mut req = Request::new(());
        *req.headers_mut() = headers.clone();
        let peer: std::net::SocketAddr = peer.parse().expect("valid peer");
        req.extensions_mut().insert(PeerAddr(peer));
        let info = proxies.resolve_request(&req);
        if !proxies.is_trusted(peer.ip()) {
            assert_eq!(info.addr(), Some(peer.ip()));
            assert!(!info.is_secure());
        }
    }
});
