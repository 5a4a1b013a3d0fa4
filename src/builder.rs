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
    // methods:basic-auth
    // methods:gateway
    // methods:csp
    // methods:https
    // methods:pinning
    // methods:hardening
}

impl<L> ServiceBuilderExt<L> for ServiceBuilder<L> {
    #[cfg(feature = "basic-auth")]
    fn basic_auth(
        self,
        layer: crate::basic_auth::BasicAuthLayer,
    ) -> ServiceBuilder<Stack<crate::basic_auth::BasicAuthLayer, L>> {
        self.layer(layer)
    }
    // impls:basic-auth
    // impls:gateway
    // impls:csp
    // impls:https
    // impls:pinning
    // impls:hardening
}
