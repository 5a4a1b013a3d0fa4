//! The [`BasicAuth`] service.

use super::future::{Check, Denied, ResponseFuture};
use super::header::{parse_basic_in, Credentials, ParseError, MAX_DECODED};
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

fn decide(config: &Arc<Config>, user: &str, password: &str) -> Decision {
    match &config.source {
        Source::Validator(v) => {
            let v = Arc::clone(v);
            let creds = Credentials::new(user, password);
            let user = user.to_owned();
            Decision::Pending(Box::pin(async move {
                match v.validate(creds).await {
                    Verdict::Accept(u) => Ok(u.into_arc()),
                    Verdict::UnknownUser => {
                        Err(Denied::new(FailureReason::UnknownUser, Some(user)))
                    }
                    Verdict::WrongPassword => {
                        Err(Denied::new(FailureReason::WrongPassword, Some(user)))
                    }
                }
            }))
        }
        Source::Store(store) => {
            let snap = store.snapshot();
            let Some((name, hash, known)) = snap.users.entry(user) else {
                return Decision::Reject(FailureReason::UnknownUser, Some(user.to_owned()));
            };
            let miss = if known {
                FailureReason::WrongPassword
            } else {
                FailureReason::UnknownUser
            };
            if !hash.format().is_slow() {
                // Cheap enough to check inline; nothing to gain from a cache.
                // Known and unknown users take the same steps (the dummy has a
                // name too, and `&` does not short-circuit).
                let ok = hash.verify(password.as_bytes()) & known;
                let name = Arc::clone(name);
                return if ok {
                    Decision::Accept(name)
                } else {
                    Decision::Reject(miss, Some(user.to_owned()))
                };
            }
            let key = store.cache().map(|c| c.key(user, password));
            if let (Some(cache), Some(key)) = (store.cache(), &key) {
                if let Some(user) = cache.get(key, snap.generation) {
                    return Decision::Accept(user);
                }
            }
            let hash = hash.clone();
            let store = store.clone();
            let permits = Arc::clone(&config.hashes);
            let generation = snap.generation;
            let name = Arc::clone(name);
            let user = user.to_owned();
            let password = password.as_bytes().to_vec();
            Decision::Pending(Box::pin(async move {
                // The semaphore is never closed, so acquiring only waits.
                let permit = permits.acquire_owned().await;
                let ok = run_blocking(move || hash.verify(&password)).await;
                drop(permit);
                if ok & known {
                    if let (Some(cache), Some(key)) = (store.cache(), key) {
                        cache.insert(key, Arc::clone(&name), generation);
                    }
                    Ok(name)
                } else {
                    Err(Denied::new(miss, Some(user)))
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
        let mut buf = [0u8; MAX_DECODED];
        let mut values = parts.headers.get_all(&header).iter();
        let parsed = match (values.next(), values.next()) {
            (None, _) => return self.reject(FailureReason::Missing, None),
            (Some(_), Some(_)) => Err("several_headers"),
            (Some(v), None) => parse_basic_in(v.as_bytes(), config.max_header_len, &mut buf)
                .map_err(ParseError::as_str),
        };

        if let Some(throttle) = &config.throttle {
            let parsed = parsed.map(|(u, p)| Credentials::new(u, p));
            if parsed.is_ok() && !config.keep_credentials {
                parts.headers.remove(&header);
            }
            let addr = throttle.addr_of(&parts);
            let check = throttled(Arc::clone(config), throttle.clone(), addr, parsed);
            return self.pending(check, parts, body);
        }

        let (user, password) = match parsed {
            Ok(c) => c,
            Err(detail) => return self.reject_with(FailureReason::Malformed, None, Some(detail)),
        };
        let decision = decide(config, user, password);
        if !config.keep_credentials {
            parts.headers.remove(&header);
        }
        match decision {
            Decision::Accept(user) => {
                if let Err(reason) = admit(config, &mut parts, user) {
                    return self.reject(reason, None);
                }
                ResponseFuture::inner(self.inner.call(Request::from_parts(parts, body)))
            }
            Decision::Reject(reason, user) => self.reject(reason, user.as_deref()),
            Decision::Pending(check) => self.pending(check, parts, body),
        }
    }
}

/// The whole check behind a [`Throttle`](crate::throttle::Throttle): a locked
/// client or user is refused before any hash runs; failures are counted;
/// a success clears the user's count.
fn throttled(
    config: Arc<Config>,
    throttle: crate::throttle::Throttle,
    addr: Option<std::net::IpAddr>,
    parsed: Result<Credentials, &'static str>,
) -> Check {
    Box::pin(async move {
        let user = parsed.as_ref().ok().map(|c| c.user().to_owned());
        let keys = throttle.keys(addr, user.as_deref());
        if let Some(wait) = throttle.locked_for(&keys).await {
            return Err(Denied {
                reason: FailureReason::Throttled,
                user,
                detail: None,
                retry_after: Some(wait),
            });
        }
        let creds = match parsed {
            Ok(c) => c,
            Err(detail) => {
                throttle.failed(&keys).await;
                return Err(Denied {
                    reason: FailureReason::Malformed,
                    user: None,
                    detail: Some(detail),
                    retry_after: None,
                });
            }
        };
        let attempted = creds.user().to_owned();
        let outcome = match decide(&config, creds.user(), creds.password()) {
            Decision::Accept(u) => Ok(u),
            Decision::Reject(reason, user) => Err(Denied::new(reason, user)),
            Decision::Pending(check) => check.await,
        };
        match &outcome {
            Ok(_) => throttle.succeeded(&attempted).await,
            Err(d)
                if matches!(
                    d.reason,
                    FailureReason::UnknownUser | FailureReason::WrongPassword
                ) =>
            {
                throttle.failed(&keys).await
            }
            Err(_) => {}
        }
        outcome
    })
}

impl<S> BasicAuth<S> {
    fn pending<ReqBody>(
        &mut self,
        check: Check,
        parts: Parts,
        body: ReqBody,
    ) -> ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>> + Clone,
    {
        // The ready service goes with the request; a fresh clone stays.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::checking(
            check,
            inner,
            Request::from_parts(parts, body),
            Arc::clone(&self.config),
        )
    }
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
        ResponseFuture::rejected(self.config.reject(reason, None))
    }
}
