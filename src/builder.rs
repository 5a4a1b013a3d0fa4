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
    // methods:basic-auth
    // methods:gateway
    // methods:csp
    // methods:https
    /// Redirects or rejects plain-HTTP requests; see
    /// [`HttpsRedirectLayer`](crate::https::HttpsRedirectLayer).
    #[cfg(feature = "https")]
    fn https_redirect(
        self,
        layer: crate::https::HttpsRedirectLayer,
    ) -> ServiceBuilder<Stack<crate::https::HttpsRedirectLayer, L>>
    where
        Self: Into<ServiceBuilder<L>>,
    {
        self.into().layer(layer)
    }

    /// Adds `Strict-Transport-Security` to responses to secure requests; see
    /// [`HstsLayer`](crate::https::HstsLayer).
    #[cfg(feature = "https")]
    fn hsts(
        self,
        layer: crate::https::HstsLayer,
    ) -> ServiceBuilder<Stack<crate::https::HstsLayer, L>>
    where
        Self: Into<ServiceBuilder<L>>,
    {
        self.into().layer(layer)
    }
    // methods:pinning
    // methods:hardening
}

impl<L> ServiceBuilderExt<L> for ServiceBuilder<L> {}
