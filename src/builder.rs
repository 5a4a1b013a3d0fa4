//! [`ServiceBuilder`] methods for this crate's layers.
//!
//! Each capability adds one method, named after its layer.

#[allow(unused_imports)]
use tower::layer::util::Stack;
use tower::ServiceBuilder;

mod sealed {
    pub trait Sealed<L> {}
    impl<L> Sealed<L> for tower::ServiceBuilder<L> {}
}

/// Extension trait that adds this crate's layers to [`ServiceBuilder`], in
/// the manner of tower-http's `ServiceBuilderExt`.
///
/// This trait is sealed: it is implemented for [`ServiceBuilder`] only.
pub trait ServiceBuilderExt<L>: sealed::Sealed<L> + Sized {
    /// Requires HTTP Basic credentials; see [`crate::basic_auth`].
    #[cfg(feature = "basic-auth")]
    fn basic_auth(
        self,
        layer: crate::basic_auth::BasicAuthLayer,
    ) -> ServiceBuilder<Stack<crate::basic_auth::BasicAuthLayer, L>>;
    /// Gives every request a fresh CSP nonce and sets the response's
    /// policy headers; see [`crate::csp`].
    #[cfg(feature = "csp")]
    fn csp(self, layer: crate::csp::CspLayer) -> ServiceBuilder<Stack<crate::csp::CspLayer, L>>;
    /// Redirects or rejects plain-HTTP requests; see
    /// [`HttpsRedirectLayer`](crate::https::HttpsRedirectLayer).
    #[cfg(feature = "https")]
    fn https_redirect(
        self,
        layer: crate::https::HttpsRedirectLayer,
    ) -> ServiceBuilder<Stack<crate::https::HttpsRedirectLayer, L>>;
    /// Adds `Strict-Transport-Security` to responses to secure requests; see
    /// [`HstsLayer`](crate::https::HstsLayer).
    #[cfg(feature = "https")]
    fn hsts(
        self,
        layer: crate::https::HstsLayer,
    ) -> ServiceBuilder<Stack<crate::https::HstsLayer, L>>;
}

impl<L> ServiceBuilderExt<L> for ServiceBuilder<L> {
    #[cfg(feature = "basic-auth")]
    fn basic_auth(
        self,
        layer: crate::basic_auth::BasicAuthLayer,
    ) -> ServiceBuilder<Stack<crate::basic_auth::BasicAuthLayer, L>> {
        self.layer(layer)
    }
    #[cfg(feature = "csp")]
    fn csp(self, layer: crate::csp::CspLayer) -> ServiceBuilder<Stack<crate::csp::CspLayer, L>> {
        self.layer(layer)
    }
    #[cfg(feature = "https")]
    fn https_redirect(
        self,
        layer: crate::https::HttpsRedirectLayer,
    ) -> ServiceBuilder<Stack<crate::https::HttpsRedirectLayer, L>> {
        self.layer(layer)
    }
    #[cfg(feature = "https")]
    fn hsts(
        self,
        layer: crate::https::HstsLayer,
    ) -> ServiceBuilder<Stack<crate::https::HstsLayer, L>> {
        self.layer(layer)
    }
}
