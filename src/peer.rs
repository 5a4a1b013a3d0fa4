//! The address of a connection's peer, shared by every capability.

use std::net::SocketAddr;

/// The address of the connection's peer: the client, or the proxy in front of
/// this server. Insert it into request extensions in the accept loop (or with
/// `https::MarkTransportLayer::peer`).
///
/// The HTTPS layers check it against their trusted proxies before they
/// believe any `Forwarded` or `X-Forwarded-*` header; the brute-force throttle
/// counts failures per client address found from it; a reverse proxy reports
/// it upstream in `Forwarded: for=`. axum's `ConnectInfo<SocketAddr>` can be
/// read instead, see `https::TrustedProxies::peer_from`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PeerAddr(pub SocketAddr);
