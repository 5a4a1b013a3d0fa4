//! Tower middleware that puts an HTTP service behind a secure perimeter.
//!
//! `tower-perimeter` turns the usual advice for exposing an unauthenticated
//! service (such as the Face SDK Web Service) into composable [`tower`]
//! layers that wrap any axum or hyper service:
//!
//! | capability | module | feature |
//! |---|---|---|
//! | HTTP Basic authentication ([RFC 7617]) with htpasswd files | `basic_auth` | `basic-auth` (default) |
//! | Streaming reverse proxy for gateways: hop-by-hop headers, `Forwarded`, JSON `502`/`504`/`413` | `proxy` | `proxy` (default) |
//! <!-- table:gateway -->
//! | Content-Security-Policy with per-request nonces, HTML nonce substitution, a Face SDK Web Components preset and a report receiver | `csp` | `csp` (default) |
//! <!-- table:csp -->
//! | HTTPS redirect or reject, HSTS ([RFC 6797](https://www.rfc-editor.org/rfc/rfc6797)), trusted proxies ([RFC 7239](https://www.rfc-editor.org/rfc/rfc7239)) | `https` | `https` (default) |
//! <!-- table:https -->
//! | Certificate pinning for rustls clients (pins of the validated path, [RFC 7469](https://www.rfc-editor.org/rfc/rfc7469) formats) | `pinning` | `pinning` |
//! <!-- table:pinning -->
//! <!-- table:hardening -->
//!
//! Other features:
//!
//! - `axum` (default): extractors for the values the layers put in request
//!   extensions.
//! - `tracing` (default): one `tracing` event per rejected request, with a
//!   reason code and never a secret.
//!
//! [RFC 7617]: https://www.rfc-editor.org/rfc/rfc7617
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

#[macro_use]
mod trace;

pub mod body;
pub mod builder;
mod error;
mod peer;

#[cfg(feature = "basic-auth")]
pub mod basic_auth;
// modules:basic-auth
#[cfg(feature = "proxy")]
pub mod proxy;
// modules:gateway
#[cfg(feature = "csp")]
pub mod csp;
// modules:csp
#[cfg(feature = "https")]
pub mod https;
// modules:https
#[cfg(feature = "pinning")]
pub mod pinning;
// modules:pinning
#[cfg(feature = "basic-auth")]
pub mod throttle;
// modules:hardening

pub use body::PerimeterBody;
pub use builder::ServiceBuilderExt;
pub use error::ConfigError;
pub use peer::PeerAddr;

/// The README's code blocks, compiled as doctests.
#[cfg(all(
    doctest,
    feature = "basic-auth",
    feature = "axum",
    feature = "csp",
    feature = "https",
    feature = "pinning"
))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
