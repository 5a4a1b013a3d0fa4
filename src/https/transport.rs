//! Facts about the connection a request arrived on: [`Transport`] (TLS or
//! plain) and [`PeerAddr`] (the address of the connection's peer), put into
//! request extensions by [`MarkTransportLayer`] in the accept loop.

use std::net::SocketAddr;
use std::task::{Context, Poll};

use http::Request;
use tower_layer::Layer;
use tower_service::Service;

/// The transport a request arrived on, as the listener that accepted the
/// connection knows it.
///
/// Origin-form requests (`GET /path HTTP/1.1`) carry no scheme, so a server
/// cannot tell plain HTTP from HTTPS by looking at the request. The listener
/// can: insert a `Transport` into every request's extensions with
/// [`MarkTransportLayer`], once per listener. This crate's layers read it
/// before anything the client wrote (see [`TrustedProxies`] for the order).
///
/// [`TrustedProxies`]: super::TrustedProxies
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// The connection is TLS (HTTPS), terminated by this process.
    Tls,
    /// The connection is plain TCP (HTTP).
    Plain,
}

impl Transport {
    /// `true` for [`Transport::Tls`].
    pub fn is_secure(self) -> bool {
        matches!(self, Transport::Tls)
    }
}

pub use crate::peer::PeerAddr;

/// Layer that inserts a [`Transport`] and, if given, a [`PeerAddr`] into the
/// extensions of every request, for use in an accept loop.
///
/// With hyper, wrap the service once per accepted connection:
///
/// ```
/// use std::net::SocketAddr;
/// use tower::{Layer, ServiceExt};
/// use tower_perimeter::https::{MarkTransportLayer, PeerAddr, Transport};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let peer: SocketAddr = "192.0.2.7:50000".parse().unwrap();
/// let handler = tower::service_fn(|req: http::Request<()>| async move {
///     let t = *req.extensions().get::<Transport>().unwrap();
///     let p = *req.extensions().get::<PeerAddr>().unwrap();
///     Ok::<_, std::convert::Infallible>((t, p))
/// });
/// // in the accept loop of the TLS listener:
/// let svc = MarkTransportLayer::tls().peer(peer).layer(handler);
/// // then: hyper::server::conn::http1::Builder::new()
/// //     .serve_connection(io, hyper_util::service::TowerToHyperService::new(svc))
/// let (t, p) = svc.oneshot(http::Request::new(())).await.unwrap();
/// assert_eq!(t, Transport::Tls);
/// assert_eq!(p, PeerAddr(peer));
/// # }
/// ```
///
/// With `axum::serve`, which accepts plain TCP only, add
/// `MarkTransportLayer::plain()` to the router and serve it with
/// `into_make_service_with_connect_info::<SocketAddr>()`; then tell
/// [`TrustedProxies::peer_from`](super::TrustedProxies::peer_from) to read the
/// peer from `ConnectInfo`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub struct MarkTransportLayer {
    transport: Transport,
    peer: Option<SocketAddr>,
}

impl MarkTransportLayer {
    /// Marks requests as having arrived over TLS.
    pub fn tls() -> Self {
        Self::new(Transport::Tls)
    }

    /// Marks requests as having arrived over plain HTTP.
    pub fn plain() -> Self {
        Self::new(Transport::Plain)
    }

    /// Marks requests as having arrived over `transport`.
    pub fn new(transport: Transport) -> Self {
        Self {
            transport,
            peer: None,
        }
    }

    /// Also inserts [`PeerAddr`]`(peer)`: the remote address of the accepted
    /// connection.
    pub fn peer(mut self, peer: SocketAddr) -> Self {
        self.peer = Some(peer);
        self
    }
}

impl<S> Layer<S> for MarkTransportLayer {
    type Service = MarkTransport<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MarkTransport {
            inner,
            transport: self.transport,
            peer: self.peer,
        }
    }
}

/// Service that inserts a [`Transport`] (and a [`PeerAddr`]) into request
/// extensions; made by [`MarkTransportLayer`].
#[derive(Clone, Debug)]
pub struct MarkTransport<S> {
    inner: S,
    transport: Transport,
    peer: Option<SocketAddr>,
}

impl<S> MarkTransport<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, B> Service<Request<B>> for MarkTransport<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // The listener's word replaces anything an earlier layer put there.
        req.extensions_mut().insert(self.transport);
        if let Some(peer) = self.peer {
            req.extensions_mut().insert(PeerAddr(peer));
        }
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use tower::ServiceExt;

    #[tokio::test]
    async fn plain_marker_without_peer_inserts_transport_only() {
        let svc =
            MarkTransportLayer::plain().layer(tower::service_fn(|req: Request<()>| async move {
                Ok::<_, Infallible>((
                    req.extensions().get::<Transport>().copied(),
                    req.extensions().get::<PeerAddr>().copied(),
                ))
            }));
        let (t, p) = svc.oneshot(Request::new(())).await.unwrap();
        assert_eq!(t, Some(Transport::Plain));
        assert_eq!(p, None);
    }

    #[tokio::test]
    async fn marker_overrides_an_earlier_transport() {
        let svc =
            MarkTransportLayer::tls().layer(tower::service_fn(|req: Request<()>| async move {
                Ok::<_, Infallible>(req.extensions().get::<Transport>().copied())
            }));
        let mut req = Request::new(());
        req.extensions_mut().insert(Transport::Plain);
        assert_eq!(svc.oneshot(req).await.unwrap(), Some(Transport::Tls));
    }

    #[test]
    fn only_tls_is_secure() {
        assert!(Transport::Tls.is_secure());
        assert!(!Transport::Plain.is_secure());
    }
}
