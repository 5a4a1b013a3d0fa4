//! The [`BasicAuth`] service.

use super::future::{Check, ResponseFuture};
use super::header::{parse_basic, Credentials};
use super::layer::{Config, Source};
use super::{AuthenticatedUser, FailureReason, Verdict};
use http::request::Parts;
use http::{HeaderValue, Request, Response};
use std::sync::Arc;
use std::task::{Context, Poll};
use tower_service::Service;

/// Middleware that requires HTTP Basic credentials; made by
/// [`BasicAuthLayer`](super::BasicAuthLayer).
#[derive(Clone, Debug)]
pub struct BasicAuth<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> BasicAuth<S> {
    pub(crate) fn new(inner: S, config: Arc<Config>) -> Self {
        Self { inner, config }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes `self`, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// The outcome of the synchronous part of a check.
pub(crate) enum Decision {
    Accept(Arc<str>),
    Reject(FailureReason, Option<String>),
    Pending(Check),
}

/// Puts the authenticated user on the request: in extensions and, if
/// configured, in the forwarding header.
pub(crate) fn admit(
    config: &Config,
    parts: &mut Parts,
    user: Arc<str>,
) -> Result<(), FailureReason> {
    if let Some(name) = &config.user_header {
        // User names never hold control characters (checked when parsed and
        // when loaded), so this only fails for a validator's odd choice.
        let value =
            HeaderValue::from_bytes(user.as_bytes()).map_err(|_| FailureReason::Malformed)?;
        parts.headers.insert(name.clone(), value);
    }
    parts.extensions.insert(AuthenticatedUser::from_arc(user));
    Ok(())
}

/// The one event a rejected request emits: a reason code, the user name
/// where known and, for malformed headers, what was wrong; never the header
/// or the password.
pub(crate) fn log_rejection(
    reason: FailureReason,
    user: Option<&str>,
    detail: Option<&'static str>,
) {
    let _ = (reason, user, detail);
    match reason {
        FailureReason::Missing => {
            event!(
                debug,
                reason = reason.as_str(),
                "basic auth: no credentials"
            )
        }
        _ => event!(
            warn,
            reason = reason.as_str(),
            user = ?user,
            detail = ?detail,
            "basic auth: request rejected"
        ),
    }
}

fn decide(config: &Arc<Config>, creds: Credentials) -> Decision {
    match &config.source {
        Source::Validator(v) => {
            let v = Arc::clone(v);
            let user = creds.user().to_owned();
            Decision::Pending(Box::pin(async move {
                match v.validate(creds).await {
                    Verdict::Accept(u) => Ok(u.into_arc()),
                    Verdict::UnknownUser => Err((FailureReason::UnknownUser, Some(user))),
                    Verdict::WrongPassword => Err((FailureReason::WrongPassword, Some(user))),
                }
            }))
        }
        Source::Store(store) => {
            let snap = store.snapshot();
            let key = store.cache().map(|c| c.key(creds.user(), creds.password()));
            if let (Some(cache), Some(key)) = (store.cache(), &key) {
                if let Some(user) = cache.get(key, snap.generation) {
                    return Decision::Accept(user);
                }
            }
            let Some((hash, known)) = snap.users.lookup(creds.user()) else {
                return Decision::Reject(FailureReason::UnknownUser, Some(creds.user().to_owned()));
            };
            let miss = if known {
                FailureReason::WrongPassword
            } else {
                FailureReason::UnknownUser
            };
            if !hash.format().is_slow() {
                return if hash.verify(creds.password().as_bytes()) && known {
                    Decision::Accept(creds.user().into())
                } else {
                    Decision::Reject(miss, Some(creds.user().to_owned()))
                };
            }
            let hash = hash.clone();
            let store = store.clone();
            let permits = Arc::clone(&config.hashes);
            let generation = snap.generation;
            Decision::Pending(Box::pin(async move {
                // The semaphore is never closed, so acquiring only waits.
                let permit = permits.acquire_owned().await;
                let password = creds.password().as_bytes().to_vec();
                let ok = run_blocking(move || hash.verify(&password)).await;
                drop(permit);
                let user: Arc<str> = creds.user().into();
                if ok && known {
                    if let (Some(cache), Some(key)) = (store.cache(), key) {
                        cache.insert(key, Arc::clone(&user), generation);
                    }
                    Ok(user)
                } else {
                    Err((miss, Some(creds.user().to_owned())))
                }
            }))
        }
    }
}

/// Runs a password hash on tokio's blocking pool when a runtime is present,
/// inline otherwise. A panic inside the hash counts as a failed check.
async fn run_blocking(f: impl FnOnce() -> bool + Send + 'static) -> bool {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => handle.spawn_blocking(f).await.unwrap_or(false),
        Err(_) => f(),
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for BasicAuth<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
{
    type Response = Response<crate::PerimeterBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let config = &self.config;
        let (mut parts, body) = req.into_parts();
        // A client must never be able to choose the user an upstream sees.
        if let Some(name) = &config.user_header {
            parts.headers.remove(name);
        }
        if config.is_exempt(&parts) {
            return ResponseFuture::inner(self.inner.call(Request::from_parts(parts, body)));
        }

        let header = config.credential_header();
        let mut values = parts.headers.get_all(&header).iter();
        let value = match (values.next(), values.next()) {
            (None, _) => return self.reject(FailureReason::Missing, None),
            (Some(_), Some(_)) => {
                return self.reject_with(FailureReason::Malformed, None, Some("several_headers"))
            }
            (Some(v), None) => v,
        };
        let creds = match parse_basic(value.as_bytes(), config.max_header_len) {
            Ok(c) => c,
            Err(e) => return self.reject_with(FailureReason::Malformed, None, Some(e.as_str())),
        };
        if !config.keep_credentials {
            parts.headers.remove(&header);
        }

        match decide(config, creds) {
            Decision::Accept(user) => {
                if let Err(reason) = admit(config, &mut parts, user) {
                    return self.reject(reason, None);
                }
                ResponseFuture::inner(self.inner.call(Request::from_parts(parts, body)))
            }
            Decision::Reject(reason, user) => self.reject(reason, user.as_deref()),
            Decision::Pending(check) => {
                // The ready service goes with the request; a fresh clone stays.
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::checking(
                    check,
                    inner,
                    Request::from_parts(parts, body),
                    Arc::clone(config),
                )
            }
        }
    }
}

impl<S> BasicAuth<S> {
    fn reject<ReqBody>(
        &self,
        reason: FailureReason,
        user: Option<&str>,
    ) -> ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        self.reject_with(reason, user, None)
    }

    fn reject_with<ReqBody>(
        &self,
        reason: FailureReason,
        user: Option<&str>,
        detail: Option<&'static str>,
    ) -> ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        log_rejection(reason, user, detail);
        ResponseFuture::rejected(self.config.reject(reason))
    }
}
