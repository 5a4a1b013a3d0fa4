//! The streaming nonce substitution: for any page cut into any chunks, the
//! rewritten body equals a plain replace of the placeholder by the nonce the
//! header carries.
#![no_main]

use bytes::Bytes;
use http::{header, Request, Response};
use http_body_util::{BodyExt, StreamBody};
use libfuzzer_sys::fuzz_target;
use std::convert::Infallible;
use tower::{service_fn, Layer, ServiceExt};
use tower_perimeter::csp::{CspLayer, Policy};

type Frame = Result<http_body::Frame<Bytes>, Infallible>;

fuzz_target!(|data: &[u8]| {
    // First byte: the chunk length; the rest: the page.
    let Some((&cut, page)) = data.split_first() else { return };
    let cut = usize::from(cut).max(1);
    let page = page.to_vec();
    let chunks: Vec<Bytes> = page.chunks(cut).map(Bytes::copy_from_slice).collect();
    let layer = CspLayer::builder()
        .enforce(Policy::parse("script-src 'nonce'").expect("policy"))
        .substitute_placeholder("{{csp-nonce}}")
        .expect("placeholder")
        .build()
        .expect("layer");
    let svc = layer.layer(service_fn(move |_req: Request<()>| {
        let body = StreamBody::new(futures_stream(chunks.clone()));
        let mut res = Response::new(body);
        res.headers_mut().insert(header::CONTENT_TYPE, "text/html; charset=utf-8".parse().expect("ct"));
        async move { Ok::<_, Infallible>(res) }
    }));
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    rt.block_on(async {
        let res = svc.oneshot(Request::new(())).await.expect("infallible");
        let policy = res.headers()[header::CONTENT_SECURITY_POLICY].to_str().expect("ascii").to_owned();
        let nonce = policy
            .split("'nonce-")
            .nth(1)
            .and_then(|s| s.split('\'').next())
            .expect("nonce in header")
            .to_owned();
        let body = res.into_body().collect().await.expect("body").to_bytes();
        let expected = replace(&page, b"{{csp-nonce}}", nonce.as_bytes());
        assert_eq!(&body[..], &expected[..]);
    });
});

fn replace(hay: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(needle) {
            out.extend_from_slice(with);
            i += needle.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}

fn futures_stream(chunks: Vec<Bytes>) -> impl futures_core::Stream<Item = Frame> {
    Iter(chunks.into_iter())
}

struct Iter(std::vec::IntoIter<Bytes>);

impl futures_core::Stream for Iter {
    type Item = Frame;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Frame>> {
        std::task::Poll::Ready(self.0.next().map(|b| Ok(http_body::Frame::data(b))))
    }
}
