//! Middleware that gives every response a fresh Content-Security-Policy
//! nonce.
//!
//! A [nonce-based policy](https://developer.mozilla.org/en-US/docs/Web/HTTP/Headers/Content-Security-Policy/script-src#unsafe_inline_script)
//! lets a page run the inline scripts and styles its server wrote, and
//! nothing an attacker injects: the server draws a random nonce for every
//! response, puts it in the `Content-Security-Policy` header and on each of
//! its own `<script nonce="…">` and `<style nonce="…">` elements. The Face SDK
//! Web Components take the same nonce through their `nonce` setting, for
//! the `<style>` elements they inject.
//!
//! [`CspLayer`] does the server's part:
//!
//! 1. draws a [`CspNonce`] (144 bits from an OS-seeded CSPRNG) per request
//!    and puts it in the request's extensions, where a handler reads it
//!    (with the `axum` feature, as an extractor);
//! 2. splices it into the pre-rendered [`Policy`] and sets
//!    `Content-Security-Policy` and/or `Content-Security-Policy-Report-Only`
//!    (and `Reporting-Endpoints` for `report-to`);
//! 3. optionally replaces a placeholder such as `{{csp-nonce}}` in HTML
//!    bodies with the same nonce, so static HTML files work too;
//! 4. keeps nonced responses out of caches.
//!
//! ```
//! # #[cfg(feature = "axum")] {
//! use axum::{response::Html, routing::get, Router};
//! use tower_perimeter::csp::{preset, CspLayer, CspNonce, ReportReceiver};
//!
//! async fn page(nonce: CspNonce) -> Html<String> {
//!     Html(format!(
//!         r#"<face-liveness></face-liveness>
//!         <script {attr} src="/static/face-components.js"></script>
//!         <script {attr}>
//!           document.querySelector('face-liveness').settings = {{ nonce: '{nonce}' }};
//!         </script>"#,
//!         attr = nonce.attribute(),
//!     ))
//! }
//!
//! # fn main() -> Result<(), tower_perimeter::ConfigError> {
//! let policy = preset::face_sdk_web_components("https://faceapi.example.com")
//!     .report_uri("/csp-reports")
//!     .build()?;
//! let app: Router = Router::new()
//!     .route("/", get(page))
//!     .layer(CspLayer::new(policy))
//!     .route_service("/csp-reports", ReportReceiver::new());
//! # Ok(()) }
//! # main().unwrap();
//! # }
//! ```
//!
//! Without axum, the layer wraps any `tower::Service<http::Request<_>>`:
//!
//! ```
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use bytes::Bytes;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_perimeter::csp::{CspLayer, CspNonce, Policy, Source};
//! use tower_perimeter::ServiceBuilderExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let policy = Policy::builder().script_src([Source::Nonce]).build()?;
//! let service = ServiceBuilder::new()
//!     .csp(CspLayer::new(policy))
//!     .service(service_fn(|req: Request<Full<Bytes>>| async move {
//!         let nonce = req.extensions().get::<CspNonce>().copied();
//!         let html = format!("<script nonce=\"{}\"></script>", nonce.map(|n| n.to_string()).unwrap_or_default());
//!         Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(html))))
//!     }));
//! let res = service.oneshot(Request::new(Full::default())).await?;
//! let header = res.headers()["content-security-policy"].to_str()?;
//! assert!(header.starts_with("script-src 'nonce-"));
//! # Ok(()) }
//! ```
//!
//! # Policies
//!
//! [`Policy::builder`] builds a policy from typed [`Directive`]s and
//! [`Source`]s and checks it when built, with messages that say what to
//! write instead: unquoted keywords (`self` for `'self'`), separators or
//! whitespace inside a value, `'none'` mixed with other sources, malformed
//! hashes, unknown directives, a nonce where it has no effect. The policy is
//! rendered once; a response only splices its nonce in.
//! [`preset::face_sdk_web_components`] is a strict starting point for pages
//! that host the Face SDK Web Components.
//!
//! An enforced and a report-only policy can be sent together
//! ([`CspLayerBuilder::enforce`], [`CspLayerBuilder::report_only`]), for
//! example to trial a stricter policy. Reports go to `report-uri` URLs and to
//! `report-to` endpoints declared with
//! [`CspLayerBuilder::reporting_endpoint`]; give both, since browsers that
//! know `report-to` ignore `report-uri`. [`ReportReceiver`] is a small
//! service that receives both formats.
//!
//! # A handler's own policy
//!
//! If a handler sets its own `Content-Security-Policy`, the layer keeps it
//! by default ([`ExistingPolicy::Keep`]); [`ExistingPolicy::Replace`] and
//! [`ExistingPolicy::Append`] (a second policy, both enforced) are the other
//! explicit choices. For a single response, a handler puts a
//! [`CspOverride`] in the response extensions: skip the policy, or use
//! another one.
//!
//! # Placeholder substitution
//!
//! With [`CspLayerBuilder::substitute_placeholder`], every occurrence of the
//! placeholder in a `text/html` body is replaced by the response's nonce,
//! while streaming: chunks go out as they come, a placeholder split across
//! chunks is still found, and at most the placeholder's length is held back.
//! The stale `Content-Length` is removed. `206` range responses and bodies
//! with a `Content-Encoding` are left alone, since their bytes cannot be
//! rewritten in place.
//!
//! # Cache safety
//!
//! A nonce is only a secret if it is used once. Responses that carry one
//! (in a header or a substituted body) get `Cache-Control: private,
//! no-store` unless the handler set a `Cache-Control`:
//!
//! - a browser or proxy that serves a stored page replays its old nonce, so
//!   an attacker who has seen that page knows a nonce that works;
//! - a shared cache hands one response, and its nonce, to every user.
//!
//! `304 Not Modified` responses get no policy headers: they revalidate a
//! stored page whose inline scripts carry the nonce it was first sent with,
//! and a new header would replace the stored one and break them.
//! [`CspLayerBuilder::html_only`] skips non-HTML responses altogether.
//!
//! # Deployment caveat
//!
//! - **Compression.** Substitution only sees uncompressed bodies. Put
//!   `CompressionLayer` *outside* `CspLayer` (added to a `ServiceBuilder`
//!   before it, or as a later `.layer()` call on an axum `Router`), so it
//!   compresses the rewritten body. A handler or file service that serves
//!   pre-compressed files (`ServeDir::precompressed_gzip`) bypasses
//!   substitution for those responses.
//! - **Caches in front.** A CDN that ignores `Cache-Control: no-store` and
//!   caches HTML breaks nonces; exempt these pages from it.
//! - **Other middleware** that sets `Content-Security-Policy` outside this
//!   layer (such as `SetResponseHeaderLayer::overriding`) would replace the
//!   nonced header; use one mechanism.

mod future;
mod html;
mod layer;
mod nonce;
mod policy;
pub mod preset;
mod report;
mod service;

pub use future::ResponseFuture;
pub use html::ResponseBody;
pub use layer::{CspLayer, CspLayerBuilder, CspOverride, ExistingPolicy, DEFAULT_PLACEHOLDER};
#[cfg(feature = "axum")]
pub use nonce::MissingCspNonce;
pub use nonce::{CspNonce, NonceAttribute};
pub use policy::{Directive, HashAlgorithm, Policy, PolicyBuilder, Source};
pub use report::{CspViolation, ReportFormat, ReportReceiver, DEFAULT_MAX_REPORT_BODY};
pub use service::Csp;
