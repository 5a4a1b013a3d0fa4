//! Middleware that requires HTTP Basic credentials ([RFC 7617]).
//!
//! [`BasicAuthLayer`] checks the `Authorization` header (or, in proxy mode,
//! `Proxy-Authorization`) against a set of [`Users`] loaded from code or from
//! htpasswd files made by Apache's `htpasswd` tool, or against a custom
//! [`Validator`]. Requests without valid credentials get `401` with
//! `WWW-Authenticate: Basic realm="...", charset="UTF-8"` (or `407` with
//! `Proxy-Authenticate`) and never reach the inner service.
//!
//! ```
//! use axum::{routing::get, Router};
//! use tower_perimeter::basic_auth::{AuthenticatedUser, BasicAuthLayer, Users};
//!
//! # fn main() -> Result<(), tower_perimeter::ConfigError> {
//! let users = Users::builder().user("demo", "correct horse battery staple")?.build();
//! let app: Router = Router::new()
//!     .route("/api/ping", get(|user: AuthenticatedUser| async move {
//!         format!("hello {}", user.name())
//!     }))
//!     .layer(BasicAuthLayer::builder().realm("Face SDK")?.users(users).build()?);
//! # Ok(()) }
//! ```
//!
//! # What it does, in order
//!
//! 1. Removes any client-sent copy of the [user header](BasicAuthBuilder::forward_user_header).
//! 2. Lets [exempt](BasicAuthBuilder::exempt) requests and, if enabled, CORS
//!    preflights through.
//! 3. Rejects a missing header, more than one credential header, a value over
//!    the [length cap](BasicAuthBuilder::max_header_len), another scheme, bad
//!    base64, non-UTF-8 credentials, a missing colon and control characters.
//! 4. Looks the credentials up in the verified-credential cache; a hit costs
//!    one HMAC and a map lookup.
//! 5. Otherwise checks the password. Unknown users are checked against a
//!    dummy hash of the set's most common algorithm and cost, so they cost
//!    the same work as a wrong password. Comparisons are constant-time.
//!    Slow hashes (bcrypt, argon2, SHA-crypt, `$apr1$`) run on tokio's
//!    blocking pool, at most [`max_concurrent_hashes`](BasicAuthBuilder::max_concurrent_hashes)
//!    at once.
//! 6. On success removes the credential header (unless
//!    [kept](BasicAuthBuilder::keep_credentials)), puts [`AuthenticatedUser`]
//!    in the request extensions and, if configured, the user name in the
//!    user header.
//!
//! Every rejection looks the same to the client (the body says nothing about
//! which part failed) and, with the `tracing` feature, emits one event with a
//! [reason code](FailureReason) and the user name where known, never the
//! password or the header.
//!
//! # Hot reload
//!
//! Keep a [`CredentialStore`] and [`replace`](CredentialStore::replace) its
//! users, or use an [`HtpasswdReloader`] (the gateway example calls it on
//! `SIGHUP`). The swap is atomic and flushes the cache.
//!
//! # Deployment caveat
//!
//! - Basic credentials cross the wire in the clear: serve them over HTTPS
//!   only (see the `https` feature for redirecting and rejecting plain HTTP).
//! - Put this layer outside (before) layers that must not see unauthenticated
//!   traffic, and after a request-body limit and a timeout so that a slow or
//!   huge unauthenticated request cannot hold resources. CORS must answer
//!   preflights before this layer, or enable
//!   [`allow_cors_preflight`](BasicAuthBuilder::allow_cors_preflight).
//! - A cache hit is faster than a full check; this reveals only that the same
//!   correct credentials were used recently, which an attacker who can send
//!   them already knows.
//! - Users of other formats than the set's most common one take a different
//!   time to check; keep one format per file for uniform timing.
//!
//! [RFC 7617]: https://www.rfc-editor.org/rfc/rfc7617

mod apr1;
mod cache;
mod future;
mod header;
mod index;
mod layer;
mod service;
mod store;
mod users;
mod validator;

pub use future::ResponseFuture;
pub use header::{parse_basic, Credentials, ParseError, DEFAULT_MAX_HEADER_LEN};
pub use layer::{BasicAuthBuilder, BasicAuthLayer};
pub use service::BasicAuth;
pub use store::{CredentialStore, HtpasswdReloader, DEFAULT_CACHE_CAPACITY, DEFAULT_CACHE_TTL};
pub use users::{htpasswd_bcrypt_line, HashFormat, Users, UsersBuilder};
pub use validator::{ValidateFuture, Validator, Verdict};

use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use http::{Response, StatusCode};
use std::sync::Arc;

/// The user a request was authenticated as, put in the request extensions
/// by [`BasicAuth`].
///
/// With the `axum` feature it is an extractor; a handler that asks for it
/// behind no [`BasicAuthLayer`] answers `500` naming the missing layer.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AuthenticatedUser {
    name: Arc<str>,
}

impl AuthenticatedUser {
    /// A user named `name`.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Self { name: name.into() }
    }

    pub(crate) fn from_arc(name: Arc<str>) -> Self {
        Self { name }
    }

    pub(crate) fn into_arc(self) -> Arc<str> {
        self.name
    }

    /// The user name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

#[cfg(feature = "axum")]
impl<St: Send + Sync> axum_core::extract::FromRequestParts<St> for AuthenticatedUser {
    type Rejection = (StatusCode, &'static str);

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _state: &St,
    ) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Self>().cloned().ok_or((
            StatusCode::INTERNAL_SERVER_ERROR,
            "Missing AuthenticatedUser. Perhaps you forgot to add BasicAuthLayer?",
        ))
    }
}

#[cfg(feature = "axum")]
impl<St: Send + Sync> axum_core::extract::OptionalFromRequestParts<St> for AuthenticatedUser {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _state: &St,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Self>().cloned())
    }
}

/// Why a request was rejected; the code appears in `tracing` events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailureReason {
    /// No credential header.
    Missing,
    /// A header that is not well-formed `Basic` credentials, or more than one.
    Malformed,
    /// The user is not in the set.
    UnknownUser,
    /// The password is wrong.
    WrongPassword,
    /// Too many failures from this client or for this user.
    Throttled,
}

impl FailureReason {
    /// A short, stable code: `missing`, `malformed`, `unknown_user`,
    /// `wrong_password`, `throttled`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed => "malformed",
            Self::UnknownUser => "unknown_user",
            Self::WrongPassword => "wrong_password",
            Self::Throttled => "throttled",
        }
    }
}

/// What a custom [rejection response maker](BasicAuthBuilder::on_reject) is
/// told about a rejected request.
#[derive(Clone, Debug)]
pub struct Rejection {
    pub(crate) reason: FailureReason,
    pub(crate) proxy: bool,
    pub(crate) retry_after: Option<std::time::Duration>,
}

impl Rejection {
    /// Why the request was rejected. Do not reveal it to the client.
    pub fn reason(&self) -> FailureReason {
        self.reason
    }

    /// How long a [throttled](FailureReason::Throttled) client must wait.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        self.retry_after
    }

    /// The status the default response uses: `429` when throttled, else
    /// `401`, or `407` in proxy mode.
    pub fn status(&self) -> StatusCode {
        if self.reason == FailureReason::Throttled {
            StatusCode::TOO_MANY_REQUESTS
        } else if self.proxy {
            StatusCode::PROXY_AUTHENTICATION_REQUIRED
        } else {
            StatusCode::UNAUTHORIZED
        }
    }

    /// The default response: the status, a short plain-text body that says
    /// nothing about which part failed, and `Cache-Control: no-store`; when
    /// throttled, `429` with `Retry-After` in whole seconds.
    pub fn default_response(&self) -> Response<Bytes> {
        let text: &'static str = if self.reason == FailureReason::Throttled {
            "Too Many Requests\n"
        } else if self.proxy {
            "Proxy Authentication Required\n"
        } else {
            "Unauthorized\n"
        };
        let mut res = Response::new(Bytes::from_static(text.as_bytes()));
        *res.status_mut() = self.status();
        let headers = res.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(wait) = self.retry_after {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            headers.insert(http::header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        res
    }
}

#[cfg(test)]
mod tests;
