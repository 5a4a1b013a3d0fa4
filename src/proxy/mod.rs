//! A streaming reverse proxy service, the last piece of a gateway.
//!
//! [`ReverseProxy`] is a [`tower::Service`] that forwards each request to one
//! upstream base URL and relays the answer, streaming bodies in both
//! directions (nothing is buffered whole). It does what users expect from
//! nginx's `proxy_pass` or Traefik:
//!
//! - hop-by-hop headers ([RFC 9110 §7.6.1]: `Connection` and every header it
//!   names, `Keep-Alive`, `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade` and
//!   every `Proxy-*` header) are removed in both directions;
//! - [`Forwarded`] ([RFC 7239]), `X-Forwarded-For`, `X-Forwarded-Proto` and
//!   `X-Forwarded-Host` are set from the [`PeerAddr`] request extension, and
//!   any such headers sent by the client are replaced, never trusted;
//! - upstream faults get a deliberate answer with a short JSON body of one
//!   shape, `{"error":"bad_gateway","status":502}`, and a `tracing` event:
//!   `502` when the upstream cannot be reached or breaks the exchange, `504`
//!   when it does not answer in time, `413` when the request body is over
//!   the limit;
//! - upstream connections are pooled, and a pool whose upstream went away
//!   recovers by itself when it comes back;
//! - `https` upstreams use rustls, with the platform's roots or a
//!   [`rustls::ClientConfig`] of your own (one that pins certificates, say).
//!
//! ```
//! use std::time::Duration;
//! use tower_perimeter::proxy::ReverseProxy;
//!
//! # fn main() -> Result<(), tower_perimeter::ConfigError> {
//! let proxy = ReverseProxy::builder()
//!     .upstream("http://127.0.0.1:41101")?
//!     .forwarded_proto("https")?
//!     .timeout(Duration::from_secs(30))
//!     .max_request_body(64 * 1024 * 1024)
//!     .build()?;
//! # let _ = proxy;
//! # Ok(())
//! # }
//! ```
//!
//! # Deployment caveat
//!
//! The proxy replaces `Forwarded` and `X-Forwarded-*` from the client with
//! what it saw itself: it is meant to be the edge. Put the [`PeerAddr`] of the
//! TCP connection in each request's extensions (the gateway example shows
//! how); without it the `for=` parameter and `X-Forwarded-For` are left out.
//!
//! Layers that answer by themselves in front of the proxy (tower-http's
//! `RequestBodyLimitLayer` with its plain-text `413`, `TimeoutLayer` with an
//! empty one) can be given the same JSON error shape with
//! [`JsonErrorsLayer`] placed outside them.
//!
//! [RFC 9110 §7.6.1]: https://www.rfc-editor.org/rfc/rfc9110#section-7.6.1
//! [RFC 7239]: https://www.rfc-editor.org/rfc/rfc7239
//! [`Forwarded`]: https://developer.mozilla.org/en-US/docs/Web/HTTP/Headers/Forwarded

mod errors;
mod future;
mod headers;
mod service;

pub use errors::{json_error, JsonErrors, JsonErrorsFuture, JsonErrorsLayer};
pub use future::ResponseFuture;
pub use service::{ReverseProxy, ReverseProxyBuilder};

/// The crate-wide peer address, re-exported here: the proxy reads it for
/// `Forwarded: for=` and `X-Forwarded-For`.
pub use crate::PeerAddr;

/// A marker in the extensions of every response that [`ReverseProxy`]
/// relayed from the upstream, as opposed to one it or a layer in front of it
/// made itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FromUpstream;
