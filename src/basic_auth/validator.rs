//! A custom credential check, for users kept in another store.

use super::header::Credentials;
use super::AuthenticatedUser;
use std::future::Future;
use std::pin::Pin;

/// What a [`Validator`] decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The credentials are right; the request goes on as this user.
    Accept(AuthenticatedUser),
    /// No such user.
    UnknownUser,
    /// The user exists but the password is wrong.
    WrongPassword,
}

/// The boxed future a [`Validator`] returns.
pub type ValidateFuture = Pin<Box<dyn Future<Output = Verdict> + Send + 'static>>;

/// Checks credentials against a store of the user's own (a database, an
/// identity service), in place of a [`Users`](super::Users) set.
///
/// Implemented for closures `Fn(Credentials) -> impl Future<Output = Verdict>`.
/// The validator is responsible for its own constant-time comparison and for
/// keeping slow hashing off the async executor. Its successes are not cached
/// by the layer.
///
/// ```
/// use tower_perimeter::basic_auth::{AuthenticatedUser, BasicAuthLayer, Credentials, Verdict};
///
/// let layer = BasicAuthLayer::builder()
///     .validator(|creds: Credentials| async move {
///         // Look the user up in your own store here.
///         if creds.user() == "svc" {
///             Verdict::Accept(AuthenticatedUser::new("svc"))
///         } else {
///             Verdict::UnknownUser
///         }
///     })
///     .build()?;
/// # Ok::<(), tower_perimeter::ConfigError>(())
/// ```
pub trait Validator: Send + Sync + 'static {
    /// Checks `credentials`.
    fn validate(&self, credentials: Credentials) -> ValidateFuture;
}

impl<F, Fut> Validator for F
where
    F: Fn(Credentials) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Verdict> + Send + 'static,
{
    fn validate(&self, credentials: Credentials) -> ValidateFuture {
        Box::pin(self(credentials))
    }
}
