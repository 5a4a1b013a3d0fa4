//! HTTPS enforcement: redirect or reject plain HTTP, HSTS, and trusted-proxy
//! transport detection.
//!
//! - [`MarkTransportLayer`] tells the layers which listener a request came
//!   from ([`Transport::Tls`] or [`Transport::Plain`]) and who the peer is
//!   ([`PeerAddr`]).
//! - [`TrustedProxies`] decides, in one place, whether a request is secure,
//!   which host it asked for and who the client is, believing `Forwarded` /
//!   `X-Forwarded-*` only from listed proxies. Its
//!   [`resolve`](TrustedProxies::resolve) is public so that other components
//!   (a throttle keyed by client address) use the same rules.
//! - [`HttpsRedirectLayer`] redirects browsers to HTTPS on an allow-listed
//!   host ([`PublicHosts`]), or rejects API calls with `403`/`426`, and always
//!   rejects plain requests that carry credentials.
//! - [`HstsLayer`] adds `Strict-Transport-Security` to secure responses.
//!
//! One router served on two listeners:
//!
//! ```
//! use axum::{routing::get, Router};
//! use std::time::Duration;
//! use tower::ServiceBuilder;
//! use tower_perimeter::https::{
//!     HstsLayer, HttpsRedirectLayer, MarkTransportLayer, PublicHosts, TrustedProxies,
//! };
//! use tower_perimeter::ServiceBuilderExt;
//!
//! # fn main() -> Result<(), tower_perimeter::ConfigError> {
//! let proxies = TrustedProxies::new().trust("10.0.0.0/8")?;
//! let hosts = PublicHosts::new().allow("example.com")?.map_port(8080, 8443);
//! let app: Router = Router::new().route("/", get(|| async { "hello" })).layer(
//!     ServiceBuilder::new()
//!         .hsts(HstsLayer::new(Duration::from_secs(86_400)).trusted_proxies(proxies.clone()))
//!         .https_redirect(
//!             HttpsRedirectLayer::permanent(hosts)?
//!                 .trusted_proxies(proxies)
//!                 .exempt_acme_challenge(),
//!         ),
//! );
//! // per accepted connection:
//! let _plain = tower::Layer::layer(&MarkTransportLayer::plain(), app.clone());
//! let _tls = tower::Layer::layer(&MarkTransportLayer::tls(), app);
//! # Ok(()) }
//! ```

mod forwarded;
mod host;
pub mod hsts;
pub mod redirect;
mod transport;

pub use forwarded::{ClientInfo, ForwardedHeaders, PeerSource, TrustedProxies};
pub use host::{PublicHosts, RequestHost};
pub use hsts::{Hsts, HstsBuilder, HstsLayer};
pub use redirect::{HttpsRedirect, HttpsRedirectLayer};
pub use transport::{MarkTransport, MarkTransportLayer, PeerAddr, Transport};

#[cfg(feature = "axum")]
mod extract {
    use super::{ClientInfo, Transport};
    use http::request::Parts;
    use http::StatusCode;

    impl<S: Send + Sync> axum_core::extract::FromRequestParts<S> for ClientInfo {
        type Rejection = (StatusCode, &'static str);

        async fn from_request_parts(
            parts: &mut Parts,
            _state: &S,
        ) -> Result<Self, Self::Rejection> {
            parts.extensions.get::<ClientInfo>().cloned().ok_or((
                StatusCode::INTERNAL_SERVER_ERROR,
                "Missing request extension: ClientInfo. Perhaps you forgot to add HttpsRedirectLayer?",
            ))
        }
    }

    impl<S: Send + Sync> axum_core::extract::FromRequestParts<S> for Transport {
        type Rejection = (StatusCode, &'static str);

        async fn from_request_parts(
            parts: &mut Parts,
            _state: &S,
        ) -> Result<Self, Self::Rejection> {
            parts.extensions.get::<Transport>().copied().ok_or((
                StatusCode::INTERNAL_SERVER_ERROR,
                "Missing request extension: Transport. Perhaps you forgot to add MarkTransportLayer?",
            ))
        }
    }
}
