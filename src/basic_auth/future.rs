//! The response future of [`BasicAuth`](super::BasicAuth).

use super::layer::Config;
use super::service::{admit, log_rejection};
use super::FailureReason;
use crate::PerimeterBody;
use bytes::Bytes;
use http::{Request, Response};
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tower_service::Service;

/// Why a check failed, for the log line and the response.
#[derive(Debug)]
pub(crate) struct Denied {
    pub(crate) reason: FailureReason,
    pub(crate) user: Option<String>,
    pub(crate) detail: Option<&'static str>,
    pub(crate) retry_after: Option<Duration>,
}

impl Denied {
    pub(crate) fn new(reason: FailureReason, user: Option<String>) -> Self {
        Self {
            reason,
            user,
            detail: None,
            retry_after: None,
        }
    }
}

pub(crate) type Check = Pin<Box<dyn Future<Output = Result<Arc<str>, Denied>> + Send>>;

pin_project! {
    /// Response future of [`BasicAuth`](super::BasicAuth).
    pub struct ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        kind: Kind<S, ReqBody>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        Inner { #[pin] future: S::Future },
        Checking {
            check: Check,
            inner: Option<S>,
            request: Option<Request<ReqBody>>,
            config: Arc<Config>,
        },
        Rejected { response: Option<Response<Bytes>> },
    }
}

impl<S, ReqBody> ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    pub(crate) fn inner(future: S::Future) -> Self {
        Self {
            kind: Kind::Inner { future },
        }
    }

    pub(crate) fn rejected(response: Response<Bytes>) -> Self {
        Self {
            kind: Kind::Rejected {
                response: Some(response),
            },
        }
    }

    pub(crate) fn checking(
        check: Check,
        inner: S,
        request: Request<ReqBody>,
        config: Arc<Config>,
    ) -> Self {
        Self {
            kind: Kind::Checking {
                check,
                inner: Some(inner),
                request: Some(request),
                config,
            },
        }
    }
}

fn into_body<B>(res: Response<Bytes>) -> Response<PerimeterBody<B>> {
    res.map(PerimeterBody::full)
}

impl<S, ReqBody, ResBody> Future for ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Output = Result<Response<PerimeterBody<ResBody>>, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let next = match self.as_mut().project().kind.project() {
                KindProj::Inner { future } => {
                    let res = ready!(future.poll(cx))?;
                    return Poll::Ready(Ok(res.map(PerimeterBody::inner)));
                }
                KindProj::Rejected { response } => {
                    // Polled again after completion: answer with an empty 401
                    // rather than panic.
                    let res = response.take().unwrap_or_else(|| {
                        let mut res = Response::new(Bytes::new());
                        *res.status_mut() = http::StatusCode::UNAUTHORIZED;
                        res
                    });
                    return Poll::Ready(Ok(into_body(res)));
                }
                KindProj::Checking {
                    check,
                    inner,
                    request,
                    config,
                } => {
                    let outcome = ready!(check.as_mut().poll(cx));
                    match (outcome, inner.take(), request.take()) {
                        (Ok(user), Some(mut svc), Some(req)) => {
                            let (mut parts, body) = req.into_parts();
                            match admit(config, &mut parts, user) {
                                Ok(()) => Kind::Inner {
                                    future: svc.call(Request::from_parts(parts, body)),
                                },
                                Err(reason) => {
                                    log_rejection(reason, None, Some("user_header"));
                                    Kind::Rejected {
                                        response: Some(config.reject(reason, None)),
                                    }
                                }
                            }
                        }
                        (Err(denied), _, _) => {
                            log_rejection(denied.reason, denied.user.as_deref(), denied.detail);
                            Kind::Rejected {
                                response: Some(config.reject(denied.reason, denied.retry_after)),
                            }
                        }
                        // Only reachable if polled after completion.
                        (Ok(_), _, _) => Kind::Rejected {
                            response: Some(config.reject(FailureReason::Malformed, None)),
                        },
                    }
                }
            };
            self.as_mut().project().kind.set(next);
        }
    }
}

impl<S, ReqBody> fmt::Debug for ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.kind {
            Kind::Inner { .. } => "Inner",
            Kind::Checking { .. } => "Checking",
            Kind::Rejected { .. } => "Rejected",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}
