//! The per-response nonce.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore as _;
use std::fmt;

/// Random bytes per nonce: 144 bits, more than the 128 bits the CSP
/// specification asks for, and a multiple of three so the base64 text has no
/// padding.
const NONCE_BYTES: usize = 18;

/// Length of a nonce's text: 24 base64 characters.
pub(crate) const NONCE_LEN: usize = NONCE_BYTES / 3 * 4;

/// A Content-Security-Policy nonce: 144 bits from a CSPRNG seeded by the
/// operating system, written as 24 characters of URL-safe base64 without
/// padding (`A`–`Z`, `a`–`z`, `0`–`9`, `-`, `_`).
///
/// [`CspLayer`](super::CspLayer) draws a new one for every request, puts it in
/// the request's extensions for the handler, and splices the same value into
/// the response's `Content-Security-Policy` header (and, if enabled, into the
/// HTML body). A handler passes it to every inline `<script>` and `<style>` it
/// writes and to the Face SDK Web Components' `nonce` setting.
///
/// The text uses only characters that need no escaping in an HTML attribute,
/// a JavaScript string, a URL or a header, so [`Display`](fmt::Display) and
/// [`as_str`](Self::as_str) are safe to write anywhere in a page. `Debug`
/// prints `<redacted>` so that a nonce never ends up in a log line.
///
/// With the `axum` feature, `CspNonce` is an extractor:
///
/// ```
/// # #[cfg(feature = "axum")] {
/// use axum::{response::Html, routing::get, Router};
/// use tower_perimeter::csp::{CspLayer, CspNonce, Policy, Source};
///
/// async fn page(nonce: CspNonce) -> Html<String> {
///     Html(format!(
///         "<script {}>console.log('hello')</script>",
///         nonce.attribute()
///     ))
/// }
///
/// let policy = Policy::builder()
///     .script_src([Source::Nonce, Source::StrictDynamic])
///     .build()
///     .unwrap();
/// let app: Router = Router::new()
///     .route("/", get(page))
///     .layer(CspLayer::new(policy));
/// # }
/// ```
///
/// If the layer is missing, extraction fails with `500 Internal Server Error`
/// and the body `Missing CspNonce. Perhaps you forgot to add CspLayer?`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CspNonce {
    text: [u8; NONCE_LEN],
}

impl CspNonce {
    /// Draws a new nonce from the thread-local CSPRNG (`rand::rng()`, a
    /// ChaCha generator seeded and periodically reseeded from the operating
    /// system).
    pub fn generate() -> Self {
        let mut raw = [0u8; NONCE_BYTES];
        rand::rng().fill_bytes(&mut raw);
        let mut text = [0u8; NONCE_LEN];
        // The output is exactly NONCE_LEN bytes for NONCE_BYTES of input, so
        // encoding cannot fail; the fallback keeps it panic-free anyway.
        if URL_SAFE_NO_PAD.encode_slice(raw, &mut text).is_err() {
            text = [b'A'; NONCE_LEN];
        }
        Self { text }
    }

    /// The nonce's text, e.g. `q7Pz0Hb1iDz6Xa3-mZ_2cA8w`.
    pub fn as_str(&self) -> &str {
        // Base64 output is ASCII, so this never falls back.
        std::str::from_utf8(&self.text).unwrap_or_default()
    }

    /// The `nonce="…"` attribute, ready to write inside an HTML tag:
    /// `format!("<script {}>", nonce.attribute())`.
    pub fn attribute(&self) -> NonceAttribute<'_> {
        NonceAttribute(self)
    }

    /// The source expression `'nonce-…'` as it appears in a policy.
    pub fn source_expression(&self) -> String {
        format!("'nonce-{}'", self.as_str())
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.text
    }
}

impl fmt::Display for CspNonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for CspNonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CspNonce").field(&"<redacted>").finish()
    }
}

impl AsRef<str> for CspNonce {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

/// Renders `nonce="…"`; returned by [`CspNonce::attribute`].
#[derive(Clone, Copy)]
pub struct NonceAttribute<'a>(&'a CspNonce);

impl fmt::Display for NonceAttribute<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "nonce=\"{}\"", self.0.as_str())
    }
}

impl fmt::Debug for NonceAttribute<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NonceAttribute(\"<redacted>\")")
    }
}

#[cfg(feature = "axum")]
mod extract {
    use super::CspNonce;
    use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
    use axum_core::response::{IntoResponse, Response};
    use http::request::Parts;
    use http::StatusCode;

    /// Rejection of the [`CspNonce`] extractor when the request carries no
    /// nonce, which means [`CspLayer`](crate::csp::CspLayer) does not wrap the
    /// handler. It answers `500 Internal Server Error`: a server
    /// misconfiguration, not a client mistake.
    #[derive(Debug, Clone, Copy, Default)]
    #[non_exhaustive]
    pub struct MissingCspNonce;

    impl MissingCspNonce {
        /// The body text of the `500` response.
        pub const MESSAGE: &'static str = "Missing CspNonce. Perhaps you forgot to add CspLayer?";
    }

    impl std::fmt::Display for MissingCspNonce {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(Self::MESSAGE)
        }
    }

    impl std::error::Error for MissingCspNonce {}

    impl IntoResponse for MissingCspNonce {
        fn into_response(self) -> Response {
            event!(
                error,
                reason = "csp_missing_nonce",
                "a handler asked for CspNonce but CspLayer does not wrap it"
            );
            let mut res = (StatusCode::INTERNAL_SERVER_ERROR, Self::MESSAGE).into_response();
            res.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            res
        }
    }

    /// `Option<CspNonce>`: `None` instead of a `500` when the layer is absent,
    /// for handlers that also serve routes without it.
    impl<S: Send + Sync> OptionalFromRequestParts<S> for CspNonce {
        type Rejection = std::convert::Infallible;

        async fn from_request_parts(
            parts: &mut Parts,
            _state: &S,
        ) -> Result<Option<Self>, Self::Rejection> {
            Ok(parts.extensions.get::<CspNonce>().copied())
        }
    }

    impl<S: Send + Sync> FromRequestParts<S> for CspNonce {
        type Rejection = MissingCspNonce;

        async fn from_request_parts(
            parts: &mut Parts,
            _state: &S,
        ) -> Result<Self, Self::Rejection> {
            parts
                .extensions
                .get::<CspNonce>()
                .copied()
                .ok_or(MissingCspNonce)
        }
    }
}

#[cfg(feature = "axum")]
pub use extract::MissingCspNonce;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn is_nonce_char(b: u8) -> bool {
        b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
    }

    #[test]
    fn nonce_is_24_url_safe_base64_characters() {
        for _ in 0..1000 {
            let nonce = CspNonce::generate();
            assert_eq!(nonce.as_str().len(), NONCE_LEN);
            assert!(
                nonce.as_bytes().iter().all(|&b| is_nonce_char(b)),
                "{nonce}"
            );
            let raw = URL_SAFE_NO_PAD.decode(nonce.as_str()).unwrap();
            assert_eq!(raw.len() * 8, 144);
        }
    }

    #[test]
    fn a_million_nonces_are_all_distinct() {
        let mut seen = HashSet::with_capacity(1_000_000);
        for _ in 0..1_000_000 {
            assert!(seen.insert(CspNonce::generate().text));
        }
    }

    #[test]
    fn nonce_bits_are_balanced() {
        // 10 000 nonces of 144 bits: each bit position should be set about
        // half the time. A broken generator (all zeros, a counter) fails this.
        let mut ones = [0u32; 144];
        let draws = 10_000;
        for _ in 0..draws {
            let raw = URL_SAFE_NO_PAD
                .decode(CspNonce::generate().as_str())
                .unwrap();
            for (i, slot) in ones.iter_mut().enumerate() {
                *slot += u32::from(raw[i / 8] >> (i % 8) & 1);
            }
        }
        for (i, count) in ones.iter().enumerate() {
            assert!((4_500..=5_500).contains(count), "bit {i} set {count} times");
        }
    }

    #[test]
    fn debug_redacts_the_nonce() {
        let nonce = CspNonce::generate();
        let debug = format!("{nonce:?} {:?}", nonce.attribute());
        assert!(!debug.contains(nonce.as_str()));
        assert!(debug.contains("<redacted>"));
    }

    #[test]
    fn attribute_and_source_expression_render_the_nonce() {
        let nonce = CspNonce::generate();
        assert_eq!(nonce.attribute().to_string(), format!("nonce=\"{nonce}\""));
        assert_eq!(nonce.source_expression(), format!("'nonce-{nonce}'"));
    }
}
