//! [`BasicAuthLayer`] and its builder.

use super::header::MAX_HEADER_LEN_LIMIT;
use super::service::BasicAuth;
use super::store::CredentialStore;
use super::users::Users;
use super::validator::Validator;
use super::{FailureReason, Rejection, DEFAULT_MAX_HEADER_LEN};
use crate::ConfigError;
use bytes::Bytes;
use http::header::{AUTHORIZATION, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, WWW_AUTHENTICATE};
use http::request::Parts;
use http::{HeaderName, HeaderValue, Method, Response, StatusCode};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tower_layer::Layer;

const COMPONENT: &str = "basic-auth";
const MAX_REALM_LEN: usize = 256;

type ExemptFn = dyn Fn(&Parts) -> bool + Send + Sync;
type RejectFn = dyn Fn(&Rejection) -> Response<Bytes> + Send + Sync;

#[derive(Clone)]
pub(crate) enum Source {
    Store(CredentialStore),
    Validator(Arc<dyn Validator>),
}

pub(crate) struct Config {
    pub(crate) proxy: bool,
    pub(crate) challenge: HeaderValue,
    pub(crate) keep_credentials: bool,
    pub(crate) user_header: Option<HeaderName>,
    pub(crate) exempt: Option<Arc<ExemptFn>>,
    pub(crate) cors_preflight: bool,
    pub(crate) max_header_len: usize,
    pub(crate) source: Source,
    pub(crate) hashes: Arc<Semaphore>,
    pub(crate) on_reject: Option<Arc<RejectFn>>,
    pub(crate) throttle: Option<crate::throttle::Throttle>,
}

impl Config {
    pub(crate) fn credential_header(&self) -> HeaderName {
        if self.proxy {
            PROXY_AUTHORIZATION
        } else {
            AUTHORIZATION
        }
    }

    pub(crate) fn challenge_header(&self) -> HeaderName {
        if self.proxy {
            PROXY_AUTHENTICATE
        } else {
            WWW_AUTHENTICATE
        }
    }

    pub(crate) fn is_exempt(&self, parts: &Parts) -> bool {
        if self.cors_preflight
            && parts.method == Method::OPTIONS
            && parts.headers.contains_key(http::header::ORIGIN)
            && parts
                .headers
                .contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            return true;
        }
        self.exempt.as_ref().is_some_and(|f| f(parts))
    }

    /// The response for a rejected request: the user's response maker or the
    /// default, always with the challenge header.
    pub(crate) fn reject(
        &self,
        reason: FailureReason,
        retry_after: Option<Duration>,
    ) -> Response<Bytes> {
        let rejection = Rejection {
            reason,
            proxy: self.proxy,
            retry_after,
        };
        let mut res = match &self.on_reject {
            Some(make) => make(&rejection),
            None => rejection.default_response(),
        };
        let status = res.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::PROXY_AUTHENTICATION_REQUIRED
        {
            res.headers_mut()
                .entry(self.challenge_header())
                .or_insert_with(|| self.challenge.clone());
        }
        res
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("proxy", &self.proxy)
            .field("challenge", &self.challenge)
            .field("keep_credentials", &self.keep_credentials)
            .field("user_header", &self.user_header)
            .field("exempt", &self.exempt.is_some())
            .field("cors_preflight", &self.cors_preflight)
            .field("max_header_len", &self.max_header_len)
            .field(
                "source",
                &match &self.source {
                    Source::Store(s) => format!("{s:?}"),
                    Source::Validator(_) => "Validator".to_string(),
                },
            )
            .field("max_concurrent_hashes", &self.hashes.available_permits())
            .field("throttle", &self.throttle)
            .finish_non_exhaustive()
    }
}

/// Layer that requires HTTP Basic credentials; see the [module docs](super).
///
/// Made with [`BasicAuthLayer::builder`]; cloning is cheap.
#[must_use]
#[derive(Clone, Debug)]
pub struct BasicAuthLayer {
    config: Arc<Config>,
}

impl BasicAuthLayer {
    /// A builder; call [`BasicAuthBuilder::build`] to get the layer.
    pub fn builder() -> BasicAuthBuilder {
        BasicAuthBuilder::default()
    }

    /// The credential store this layer checks, if it uses one (not a
    /// [`Validator`]). Replace its users to change who gets in.
    pub fn store(&self) -> Option<&CredentialStore> {
        match &self.config.source {
            Source::Store(s) => Some(s),
            Source::Validator(_) => None,
        }
    }
}

impl<S> Layer<S> for BasicAuthLayer {
    type Service = BasicAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BasicAuth::new(inner, Arc::clone(&self.config))
    }
}

/// Builder for [`BasicAuthLayer`]. Steps that can be wrong return
/// `Result<Self, ConfigError>`; nothing is checked at request time.
#[must_use]
pub struct BasicAuthBuilder {
    realm: String,
    proxy: bool,
    keep_credentials: bool,
    user_header: Option<HeaderName>,
    exempt: Option<Arc<ExemptFn>>,
    cors_preflight: bool,
    max_header_len: usize,
    store: Option<CredentialStore>,
    validator: Option<Arc<dyn Validator>>,
    max_concurrent_hashes: usize,
    on_reject: Option<Arc<RejectFn>>,
    throttle: Option<crate::throttle::Throttle>,
}

impl Default for BasicAuthBuilder {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            realm: "Restricted".into(),
            proxy: false,
            keep_credentials: false,
            user_header: None,
            exempt: None,
            cors_preflight: false,
            max_header_len: DEFAULT_MAX_HEADER_LEN,
            store: None,
            validator: None,
            max_concurrent_hashes: cores * 2,
            on_reject: None,
            throttle: None,
        }
    }
}

impl fmt::Debug for BasicAuthBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicAuthBuilder")
            .field("realm", &self.realm)
            .field("proxy", &self.proxy)
            .field("store", &self.store)
            .field("validator", &self.validator.is_some())
            .finish_non_exhaustive()
    }
}

impl BasicAuthBuilder {
    /// The protection space announced in the challenge
    /// (`WWW-Authenticate: Basic realm="...", charset="UTF-8"`). Default
    /// `"Restricted"`. Quotes and backslashes are escaped.
    ///
    /// # Errors
    ///
    /// The realm is empty, longer than 256 bytes, or contains a control
    /// character or a non-ASCII character (which a header cannot carry
    /// portably).
    pub fn realm(mut self, realm: &str) -> Result<Self, ConfigError> {
        if realm.is_empty() || realm.len() > MAX_REALM_LEN {
            return Err(ConfigError::new(
                COMPONENT,
                format!("realm must be 1 to {MAX_REALM_LEN} characters long"),
            ));
        }
        if let Some(c) = realm.chars().find(|c| !(' '..='~').contains(c)) {
            return Err(ConfigError::new(
                COMPONENT,
                format!(
                    "realm contains {c:?}; use printable ASCII only (quotes and backslashes are escaped for you)"
                ),
            ));
        }
        self.realm = realm.to_owned();
        Ok(self)
    }

    /// Checks credentials against `users`, in a new [`CredentialStore`] with
    /// the default cache.
    pub fn users(mut self, users: Users) -> Self {
        self.store = Some(CredentialStore::new(users));
        self
    }

    /// Checks credentials against `store`; keep a clone of it to replace the
    /// users at run time.
    pub fn store(mut self, store: CredentialStore) -> Self {
        self.store = Some(store);
        self
    }

    /// Checks credentials with a custom [`Validator`] instead of a users set.
    pub fn validator(mut self, validator: impl Validator) -> Self {
        self.validator = Some(Arc::new(validator));
        self
    }

    /// Proxy mode for forward proxies: reads `Proxy-Authorization` and answers
    /// `407` with `Proxy-Authenticate`.
    pub fn proxy_auth(mut self) -> Self {
        self.proxy = true;
        self
    }

    /// Whether the inner service still sees the credential header after a
    /// success. Default `false`: the header is removed so that the password
    /// never travels further into the perimeter.
    pub fn keep_credentials(mut self, keep: bool) -> Self {
        self.keep_credentials = keep;
        self
    }

    /// Passes the authenticated user name to the inner service in `header`
    /// (for example `x-authenticated-user`, for an upstream to log). Any copy
    /// of this header sent by the client is removed from every request, so a
    /// client cannot impersonate a user.
    ///
    /// # Errors
    ///
    /// `header` is not a valid header name, or is a header this layer or HTTP
    /// itself gives meaning to (`Authorization`, `Host`, ...).
    pub fn forward_user_header<H>(mut self, header: H) -> Result<Self, ConfigError>
    where
        H: TryInto<HeaderName>,
    {
        let name = header
            .try_into()
            .map_err(|_| ConfigError::new(COMPONENT, "user header is not a valid header name"))?;
        const RESERVED: [HeaderName; 7] = [
            AUTHORIZATION,
            PROXY_AUTHORIZATION,
            http::header::HOST,
            http::header::COOKIE,
            http::header::CONTENT_LENGTH,
            http::header::TRANSFER_ENCODING,
            http::header::CONNECTION,
        ];
        if RESERVED.contains(&name) {
            return Err(ConfigError::new(
                COMPONENT,
                format!(
                    "{name} cannot carry the user name; use a header such as x-authenticated-user"
                ),
            ));
        }
        self.user_header = Some(name);
        Ok(self)
    }

    /// Lets requests for which `predicate` is true through without
    /// credentials (health checks, for example).
    pub fn exempt<F>(mut self, predicate: F) -> Self
    where
        F: Fn(&Parts) -> bool + Send + Sync + 'static,
    {
        self.exempt = Some(Arc::new(predicate));
        self
    }

    /// Lets CORS preflight requests (`OPTIONS` with `Origin` and
    /// `Access-Control-Request-Method`) through without credentials, since
    /// browsers never send credentials on them. Off by default.
    pub fn allow_cors_preflight(mut self, allow: bool) -> Self {
        self.cors_preflight = allow;
        self
    }

    /// The longest credential header value accepted, checked before any
    /// decoding. Default [`DEFAULT_MAX_HEADER_LEN`].
    ///
    /// # Errors
    ///
    /// `len` is below 16 or above 8192 bytes.
    pub fn max_header_len(mut self, len: usize) -> Result<Self, ConfigError> {
        if !(16..=MAX_HEADER_LEN_LIMIT).contains(&len) {
            return Err(ConfigError::new(
                COMPONENT,
                format!("max_header_len must be 16 to {MAX_HEADER_LEN_LIMIT} bytes"),
            ));
        }
        self.max_header_len = len;
        Ok(self)
    }

    /// How many slow password hashes (bcrypt, argon2, SHA-crypt, `$apr1$`) may
    /// run at once, on tokio's blocking pool. Others wait their turn. Default
    /// twice the number of cores.
    ///
    /// # Errors
    ///
    /// `n` is zero.
    pub fn max_concurrent_hashes(mut self, n: usize) -> Result<Self, ConfigError> {
        if n == 0 {
            return Err(ConfigError::new(
                COMPONENT,
                "max_concurrent_hashes must be at least 1",
            ));
        }
        self.max_concurrent_hashes = n;
        Ok(self)
    }

    /// Replaces the default rejection response. The challenge header is added
    /// to a `401`/`407` response if the maker did not set it.
    pub fn on_reject<F>(mut self, make: F) -> Self
    where
        F: Fn(&Rejection) -> Response<Bytes> + Send + Sync + 'static,
    {
        self.on_reject = Some(Arc::new(make));
        self
    }

    /// Throttles brute-force attempts: after too many failures from one
    /// client address or for one user name, answers `429` with `Retry-After`
    /// without running any password hash. See [`crate::throttle`].
    pub fn throttle(mut self, throttle: crate::throttle::Throttle) -> Self {
        self.throttle = Some(throttle);
        self
    }

    /// The layer.
    ///
    /// # Errors
    ///
    /// Neither users (a store) nor a validator was given, or both were.
    pub fn build(self) -> Result<BasicAuthLayer, ConfigError> {
        let source = match (self.store, self.validator) {
            (Some(store), None) => Source::Store(store),
            (None, Some(v)) => Source::Validator(v),
            (None, None) => {
                return Err(ConfigError::new(
                    COMPONENT,
                    "no credentials: call .users(..), .store(..) or .validator(..)",
                ))
            }
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    COMPONENT,
                    "both a users store and a validator were given; choose one",
                ))
            }
        };
        let escaped = self.realm.replace('\\', "\\\\").replace('"', "\\\"");
        let challenge =
            HeaderValue::try_from(format!("Basic realm=\"{escaped}\", charset=\"UTF-8\""))
                .map_err(|_| ConfigError::new(COMPONENT, "realm cannot be sent in a header"))?;
        Ok(BasicAuthLayer {
            config: Arc::new(Config {
                proxy: self.proxy,
                challenge,
                keep_credentials: self.keep_credentials,
                user_header: self.user_header,
                exempt: self.exempt,
                cors_preflight: self.cors_preflight,
                max_header_len: self.max_header_len,
                source,
                hashes: Arc::new(Semaphore::new(self.max_concurrent_hashes)),
                on_reject: self.on_reject,
                throttle: self.throttle,
            }),
        })
    }
}

#[cfg(test)]
impl BasicAuthLayer {
    pub(crate) fn config_permits(&self) -> usize {
        self.config.hashes.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users() -> Users {
        Users::builder().user("demo", "pw").unwrap().build()
    }

    #[test]
    fn realm_is_escaped_in_the_challenge() {
        let layer = BasicAuthLayer::builder()
            .realm(r#"Face "SDK" \ gateway"#)
            .unwrap()
            .users(users())
            .build()
            .unwrap();
        assert_eq!(
            layer.config.challenge.to_str().unwrap(),
            r#"Basic realm="Face \"SDK\" \\ gateway", charset="UTF-8""#
        );
    }

    #[test]
    fn bad_realms_are_rejected_at_build_time() {
        for bad in ["", "a\r\nb", "tab\there", "caf\u{e9}", &"x".repeat(300)] {
            let err = BasicAuthLayer::builder().realm(bad).unwrap_err();
            assert_eq!(err.component(), "basic-auth");
        }
    }

    #[test]
    fn build_needs_exactly_one_credential_source() {
        assert!(BasicAuthLayer::builder().build().is_err());
        let both = BasicAuthLayer::builder()
            .users(users())
            .validator(|_c: super::super::Credentials| async { super::super::Verdict::UnknownUser })
            .build();
        assert!(both.is_err());
    }

    #[test]
    fn reserved_user_headers_are_rejected() {
        assert!(BasicAuthLayer::builder()
            .forward_user_header("authorization")
            .is_err());
        assert!(BasicAuthLayer::builder()
            .forward_user_header("host")
            .is_err());
        assert!(BasicAuthLayer::builder()
            .forward_user_header("bad header")
            .is_err());
        assert!(BasicAuthLayer::builder()
            .forward_user_header("x-user")
            .is_ok());
    }

    #[test]
    fn limits_are_checked() {
        assert!(BasicAuthLayer::builder().max_concurrent_hashes(0).is_err());
        assert!(BasicAuthLayer::builder().max_header_len(4).is_err());
        assert!(BasicAuthLayer::builder().max_header_len(100_000).is_err());
    }

    #[test]
    fn debug_does_not_print_hashes() {
        let layer = BasicAuthLayer::builder().users(users()).build().unwrap();
        let dbg = format!("{layer:?}");
        assert!(dbg.contains("BasicAuthLayer"));
        assert!(!dbg.contains("pw\""));
    }
}
