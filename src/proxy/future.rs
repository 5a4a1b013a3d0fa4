//! The response future of [`ReverseProxy`](super::ReverseProxy).

use super::{errors, FromUpstream};
use crate::body::PerimeterBody;
use http::{Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::client::legacy;
use pin_project_lite::pin_project;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::time::Timeout;

type ProxyResponse = Response<PerimeterBody<Incoming>>;

pin_project! {
    /// Response future of [`ReverseProxy`](super::ReverseProxy): the
    /// upstream's response, or the proxy's own error response.
    pub struct ResponseFuture {
        #[pin]
        kind: Kind,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind {
        Ready { response: Option<ProxyResponse> },
        Timed { #[pin] fut: Timeout<legacy::ResponseFuture> },
        Untimed { #[pin] fut: legacy::ResponseFuture },
    }
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.kind {
            Kind::Ready { .. } => "ready",
            Kind::Timed { .. } | Kind::Untimed { .. } => "upstream",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

impl ResponseFuture {
    pub(crate) fn ready(response: ProxyResponse) -> Self {
        Self {
            kind: Kind::Ready {
                response: Some(response),
            },
        }
    }

    pub(crate) fn upstream(fut: legacy::ResponseFuture, timeout: Option<Duration>) -> Self {
        let kind = match timeout {
            Some(t) => Kind::Timed {
                fut: tokio::time::timeout(t, fut),
            },
            None => Kind::Untimed { fut },
        };
        Self { kind }
    }
}

impl Future for ResponseFuture {
    type Output = Result<ProxyResponse, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let result = match self.project().kind.project() {
            KindProj::Ready { response } => {
                // `take` yields `None` only if polled after completion, which
                // the `Future` contract rules out; answer 502 rather than panic.
                return Poll::Ready(Ok(response
                    .take()
                    .unwrap_or_else(|| errors::json_error(StatusCode::BAD_GATEWAY))));
            }
            KindProj::Timed { fut } => match ready!(fut.poll(cx)) {
                Ok(result) => result,
                Err(_elapsed) => {
                    event!(
                        warn,
                        reason = "upstream_timeout",
                        status = 504,
                        "upstream did not answer in time"
                    );
                    return Poll::Ready(Ok(errors::json_error(StatusCode::GATEWAY_TIMEOUT)));
                }
            },
            KindProj::Untimed { fut } => ready!(fut.poll(cx)),
        };
        Poll::Ready(Ok(match result {
            Ok(response) => relay(response),
            Err(err) => errors::upstream_error(&err),
        }))
    }
}

fn relay(response: Response<Incoming>) -> ProxyResponse {
    let (mut parts, body) = response.into_parts();
    super::headers::remove_hop_by_hop(&mut parts.headers);
    parts.extensions.insert(FromUpstream);
    Response::from_parts(parts, PerimeterBody::inner(body))
}
