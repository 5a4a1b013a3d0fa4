//! Streaming replacement of a nonce placeholder in HTML bodies.

use super::nonce::CspNonce;
use bytes::{Buf, Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use memchr::memmem;
use pin_project_lite::pin_project;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

/// The placeholder and its precompiled searcher, shared by all responses.
#[derive(Debug)]
pub(crate) struct Placeholder {
    finder: memmem::Finder<'static>,
}

impl Placeholder {
    pub(crate) fn new(text: &str) -> Self {
        Self {
            finder: memmem::Finder::new(text.as_bytes()).into_owned(),
        }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.finder.needle()
    }
}

/// Replaces every placeholder in a stream of chunks, holding back at most
/// `placeholder.len() - 1` bytes between chunks.
#[derive(Debug)]
pub(crate) struct Substituter {
    placeholder: Arc<Placeholder>,
    nonce: CspNonce,
    /// The end of the previous chunk that may begin a placeholder.
    carry: BytesMut,
}

impl Substituter {
    pub(crate) fn new(placeholder: Arc<Placeholder>, nonce: CspNonce) -> Self {
        Self {
            placeholder,
            nonce,
            carry: BytesMut::new(),
        }
    }

    /// Feeds one chunk and returns what can be sent now (possibly empty).
    pub(crate) fn feed(&mut self, chunk: Bytes) -> Bytes {
        let data = if self.carry.is_empty() {
            chunk
        } else {
            // Only the few held-back bytes force a copy of this chunk.
            let mut joined = BytesMut::with_capacity(self.carry.len() + chunk.len());
            joined.extend_from_slice(&self.carry);
            joined.extend_from_slice(&chunk);
            self.carry.clear();
            joined.freeze()
        };
        let needle = self.placeholder.as_bytes();
        let mut out: Option<BytesMut> = None;
        let mut last = 0;
        for pos in self.placeholder.finder.find_iter(&data) {
            let buf = out.get_or_insert_with(|| BytesMut::with_capacity(data.len() + 32));
            buf.extend_from_slice(&data[last..pos]);
            buf.extend_from_slice(self.nonce.as_bytes());
            last = pos + needle.len();
        }
        let keep = data.len() - held_suffix(&data[last..], needle);
        self.carry.extend_from_slice(&data[keep..]);
        match out {
            None => data.slice(..keep),
            Some(mut buf) => {
                buf.extend_from_slice(&data[last..keep]);
                buf.freeze()
            }
        }
    }

    /// The bytes still held back at the end of the body.
    pub(crate) fn finish(&mut self) -> Bytes {
        self.carry.split().freeze()
    }

    fn is_empty(&self) -> bool {
        self.carry.is_empty()
    }
}

/// The length of the longest proper prefix of `needle` that `tail` ends with.
fn held_suffix(tail: &[u8], needle: &[u8]) -> usize {
    let max = needle.len().saturating_sub(1).min(tail.len());
    // Only a suffix starting with the needle's first byte can match.
    let Some(&first) = needle.first() else {
        return 0;
    };
    let window = &tail[tail.len() - max..];
    // The leftmost candidate is the longest.
    memchr::memchr_iter(first, window)
        .find(|&i| needle.starts_with(&window[i..]))
        .map_or(0, |i| window.len() - i)
}

pin_project! {
    /// Response body of [`CspLayer`](super::CspLayer): the inner body,
    /// either untouched or with every nonce placeholder replaced by the
    /// response's nonce (see
    /// [`CspLayerBuilder::substitute_placeholder`](super::CspLayerBuilder::substitute_placeholder)).
    ///
    /// Replacement streams: each chunk is sent as soon as it is scanned,
    /// except for the few bytes at its end that could begin a placeholder
    /// split across chunks. Memory use is bounded by the largest chunk.
    #[derive(Debug)]
    pub struct ResponseBody<B> {
        #[pin]
        body: B,
        // Boxed so that the common, untouched body stays small.
        state: Option<Box<State>>,
    }
}

#[derive(Debug)]
struct State {
    substituter: Substituter,
    trailers: Option<HeaderMap>,
    done: bool,
}

impl<B> ResponseBody<B> {
    pub(crate) fn passthrough(body: B) -> Self {
        Self { body, state: None }
    }

    pub(crate) fn substituting(body: B, substituter: Substituter) -> Self {
        Self {
            body,
            state: Some(Box::new(State {
                substituter,
                trailers: None,
                done: false,
            })),
        }
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body,
    B::Data: Buf,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        let Some(state) = this.state.as_deref_mut() else {
            return this
                .body
                .poll_frame(cx)
                .map(|opt| opt.map(|res| res.map(|f| f.map_data(into_bytes))));
        };
        let mut body = this.body;
        loop {
            if let Some(trailers) = state.trailers.take() {
                return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
            }
            if state.done {
                return Poll::Ready(None);
            }
            let frame = match ready!(body.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => frame,
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => {
                    state.done = true;
                    let rest = state.substituter.finish();
                    if rest.is_empty() {
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Ok(Frame::data(rest))));
                }
            };
            match frame.into_data() {
                Ok(data) => {
                    let out = state.substituter.feed(into_bytes(data));
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(out))));
                    }
                }
                Err(frame) => {
                    // Trailers end the data: flush what was held back first.
                    if let Ok(trailers) = frame.into_trailers() {
                        state.trailers = Some(trailers);
                    }
                    let rest = state.substituter.finish();
                    if !rest.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(rest))));
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.state {
            None => self.body.is_end_stream(),
            Some(state) => {
                state.done
                    || (state.trailers.is_none()
                        && state.substituter.is_empty()
                        && self.body.is_end_stream())
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.state {
            None => self.body.size_hint(),
            // The length changes when placeholders are replaced.
            Some(_) => SizeHint::default(),
        }
    }
}

fn into_bytes<D: Buf>(mut data: D) -> Bytes {
    // Zero-copy when `D` is `Bytes`.
    data.copy_to_bytes(data.remaining())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};
    use proptest::prelude::*;
    use std::convert::Infallible;

    const PLACEHOLDER: &str = "{{csp-nonce}}";

    fn substitute_chunks(chunks: &[&[u8]], nonce: CspNonce) -> (Vec<u8>, usize) {
        let mut s = Substituter::new(Arc::new(Placeholder::new(PLACEHOLDER)), nonce);
        let mut out = Vec::new();
        let mut max_carry = 0;
        for chunk in chunks {
            out.extend_from_slice(&s.feed(Bytes::copy_from_slice(chunk)));
            max_carry = max_carry.max(s.carry.len());
        }
        out.extend_from_slice(&s.finish());
        (out, max_carry)
    }

    fn naive(input: &[u8], nonce: &CspNonce) -> Vec<u8> {
        // Byte-wise replace, since inputs need not be UTF-8.
        let needle = PLACEHOLDER.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < input.len() {
            if input[i..].starts_with(needle) {
                out.extend_from_slice(nonce.as_bytes());
                i += needle.len();
            } else {
                out.push(input[i]);
                i += 1;
            }
        }
        out
    }

    #[test]
    fn placeholder_split_across_chunks_is_replaced() {
        let nonce = CspNonce::generate();
        let (out, _) = substitute_chunks(&[b"<script nonce=\"{{csp", b"-non", b"ce}}\">"], nonce);
        assert_eq!(out, format!("<script nonce=\"{nonce}\">").into_bytes());
    }

    #[test]
    fn partial_placeholder_at_end_of_body_is_kept() {
        let nonce = CspNonce::generate();
        let (out, _) = substitute_chunks(&[b"a {{csp-non"], nonce);
        assert_eq!(out, b"a {{csp-non");
    }

    #[test]
    fn chunk_without_placeholder_is_passed_through_without_copy() {
        let mut s = Substituter::new(
            Arc::new(Placeholder::new(PLACEHOLDER)),
            CspNonce::generate(),
        );
        let chunk = Bytes::from_static(b"<p>hello</p>");
        let out = s.feed(chunk.clone());
        assert_eq!(out.as_ptr(), chunk.as_ptr());
    }

    #[test]
    fn held_suffix_finds_the_longest_prefix() {
        assert_eq!(held_suffix(b"xx{{csp", b"{{csp-nonce}}"), 5);
        assert_eq!(held_suffix(b"xx{", b"{{csp-nonce}}"), 1);
        assert_eq!(held_suffix(b"xx{x", b"{{csp-nonce}}"), 0);
        assert_eq!(held_suffix(b"", b"{{csp-nonce}}"), 0);
        assert_eq!(held_suffix(b"aaa", b"aab"), 2);
    }

    #[tokio::test]
    async fn trailers_follow_the_flushed_data() {
        let nonce = CspNonce::generate();
        let mut trailers = HeaderMap::new();
        trailers.insert("x-checksum", "1".parse().unwrap());
        let frames: Vec<Result<Frame<Bytes>, Infallible>> = vec![
            Ok(Frame::data(Bytes::from_static(b"end {{csp"))),
            Ok(Frame::trailers(trailers.clone())),
        ];
        let body = StreamBody::new(futures_util::stream::iter(frames));
        let placeholder = Arc::new(Placeholder::new(PLACEHOLDER));
        let collected = ResponseBody::substituting(body, Substituter::new(placeholder, nonce))
            .collect()
            .await
            .unwrap();
        assert_eq!(collected.trailers(), Some(&trailers));
        assert_eq!(&collected.to_bytes()[..], b"end {{csp");
    }

    proptest! {
        #[test]
        fn substitution_equals_naive_replace_for_any_chunking(
            pieces in proptest::collection::vec(
                prop_oneof![
                    Just(b"{{csp-nonce}}".to_vec()),
                    Just(b"{{csp-".to_vec()),
                    Just(b"{".to_vec()),
                    Just(b"}}".to_vec()),
                    proptest::collection::vec(any::<u8>(), 0..20),
                ],
                0..30,
            ),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
        ) {
            let input: Vec<u8> = pieces.concat();
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(input.len() + 1)).collect();
            points.sort_unstable();
            let mut chunks = Vec::new();
            let mut start = 0;
            for p in points {
                chunks.push(&input[start..p]);
                start = p;
            }
            chunks.push(&input[start..]);
            let nonce = CspNonce::generate();
            let (out, max_carry) = substitute_chunks(&chunks, nonce);
            prop_assert_eq!(out, naive(&input, &nonce));
            prop_assert!(max_carry < PLACEHOLDER.len());
        }
    }
}
