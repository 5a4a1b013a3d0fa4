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
//! | Content-Security-Policy with per-request nonces, HTML nonce substitution, a Face SDK Web Components preset and a report receiver | `csp` | `csp` (default) |
//! | HTTPS redirect or reject, HSTS ([RFC 6797](https://www.rfc-editor.org/rfc/rfc6797)), trusted proxies ([RFC 7239](https://www.rfc-editor.org/rfc/rfc7239)) | `https` | `https` (default) |
//! | Certificate pinning for rustls clients (pins of the validated path, [RFC 7469](https://www.rfc-editor.org/rfc/rfc7469) formats) | `pinning` | `pinning` |
//! | Brute-force throttling of failed logins, in memory or shared through Redis | `throttle` | `basic-auth` (default), `redis` |
//!
//! Other features:
//!
//! - `axum` (default): extractors for the values the layers put in request
//!   extensions (`AuthenticatedUser`, `CspNonce`, `ClientInfo`, `Transport`).
//! - `tracing` (default): one `tracing` event per rejected request, with a
//!   reason code and never a secret.
//! - `redis`: `throttle::RedisStore`, throttle counters shared by several
//!   instances.
//!
//! # With axum
//!
//! ```
//! # #[cfg(all(feature = "basic-auth", feature = "csp", feature = "https", feature = "axum"))]
//! # fn main() -> Result<(), tower_perimeter::ConfigError> {
//! use axum::{routing::get, Router};
//! use std::time::Duration;
//! use tower::ServiceBuilder;
//! use tower_perimeter::basic_auth::{AuthenticatedUser, BasicAuthLayer, Users};
//! use tower_perimeter::csp::{preset, CspLayer, CspNonce};
//! use tower_perimeter::https::HstsLayer;
//! use tower_perimeter::ServiceBuilderExt;
//!
//! let users = Users::builder().user("demo", "correct horse battery staple")?.build();
//! let policy = preset::face_sdk_web_components("https://faces.example.com").build()?;
//! let app: Router = Router::new()
//!     .route("/", get(|nonce: CspNonce, user: AuthenticatedUser| async move {
//!         format!("<script nonce=\"{nonce}\">/* hello {} */</script>", user.name())
//!     }))
//!     .layer(
//!         ServiceBuilder::new()
//!             .hsts(HstsLayer::new(Duration::from_secs(31_536_000)))
//!             .basic_auth(BasicAuthLayer::builder().realm("Face SDK")?.users(users).build()?)
//!             .csp(CspLayer::new(policy)),
//!     );
//! # Ok(()) }
//! # #[cfg(not(all(feature = "basic-auth", feature = "csp", feature = "https", feature = "axum")))]
//! # fn main() {}
//! ```
//!
//! # With hyper
//!
//! ```
//! # #[cfg(feature = "basic-auth")]
//! # fn main() -> Result<(), tower_perimeter::ConfigError> {
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use tower::ServiceBuilder;
//! use tower_perimeter::basic_auth::{AuthenticatedUser, BasicAuthLayer, Users};
//! use tower_perimeter::ServiceBuilderExt;
//!
//! let users = Users::from_htpasswd("demo:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=")?;
//! let service = ServiceBuilder::new()
//!     .basic_auth(BasicAuthLayer::builder().users(users).build()?)
//!     .service_fn(|req: http::Request<hyper::body::Incoming>| async move {
//!         let user = req.extensions().get::<AuthenticatedUser>().map(|u| u.name().to_owned());
//!         Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from(
//!             user.unwrap_or_default(),
//!         ))))
//!     });
//! // Serve it per connection with
//! // `hyper_util::service::TowerToHyperService::new(service.clone())`.
//! # let _ = service;
//! # Ok(()) }
//! # #[cfg(not(feature = "basic-auth"))]
//! # fn main() {}
//! ```
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
#[cfg(feature = "csp")]
pub mod csp;
#[cfg(feature = "https")]
pub mod https;
#[cfg(feature = "pinning")]
pub mod pinning;
#[cfg(feature = "proxy")]
pub mod proxy;
#[cfg(feature = "basic-auth")]
pub mod throttle;

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
