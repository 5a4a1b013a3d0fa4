//! Who the client is and which scheme and host it used: the connection's own
//! facts, corrected by `Forwarded` / `X-Forwarded-*` headers from trusted
//! proxies only.

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use http::header::{HeaderMap, HeaderName, HOST};
use http::request::Parts;
use http::uri::Scheme;
use http::{Extensions, Request, Uri};
use ipnet::IpNet;

use super::host::RequestHost;
use super::transport::{PeerAddr, Transport};
use crate::ConfigError;

/// `X-Forwarded-For`.
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`.
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Which forwarding headers a trusted proxy writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum ForwardedHeaders {
    /// `X-Forwarded-For`, `X-Forwarded-Proto` and `X-Forwarded-Host` (what
    /// nginx, HAProxy, Traefik and most cloud load balancers write). The
    /// default.
    #[default]
    XForwarded,
    /// [RFC 7239](https://www.rfc-editor.org/rfc/rfc7239) `Forwarded`.
    Forwarded,
    /// `Forwarded` when the request has one, else `X-Forwarded-*`. Choose this
    /// only if every trusted proxy removes or rewrites both kinds, since a
    /// client can send the kind your proxy does not touch.
    Both,
}

/// Peer-address source: reads the connection's remote address from request
/// extensions.
pub type PeerSource = fn(&Extensions) -> Option<SocketAddr>;

/// Longest chain of proxies walked; a longer chain stops at this many hops.
const DEFAULT_MAX_HOPS: usize = 16;

/// The proxies whose `Forwarded` / `X-Forwarded-*` headers are believed, and
/// the one place where a request's client address, scheme and host are
/// decided ([`TrustedProxies::resolve`]).
///
/// # How a request is resolved
///
/// 1. The connection: the scheme is `https` if the listener marked the
///    request [`Transport::Tls`], `http` if it marked it
///    [`Transport::Plain`]; without a marker, the request URI's scheme (an
///    absolute-form or HTTP/2 request), else `http`. The host is the URI's
///    authority, else the `Host` header. The peer is [`PeerAddr`] (or the
///    [`peer_from`](TrustedProxies::peer_from) source).
/// 2. If the peer's address is in a trusted CIDR, the forwarding headers are
///    read **from the right**: each element was written by a trusted hop and
///    describes the hop before it. Its `proto` and `host` replace the
///    connection's, and its `for` becomes the client address. The walk goes
///    on only while that address is trusted too, and stops at the first
///    untrusted, unknown (`for=unknown`, obfuscated) or malformed element, or
///    after 16 hops. So whatever a client writes to the left of what the
///    first trusted proxy appended is never read.
/// 3. If the peer is not trusted (or unknown), forwarding headers are ignored
///    and, with [`strip_untrusted`](TrustedProxies::strip_untrusted), removed
///    by the layers of this module that see the request.
///
/// ```
/// use http::Request;
/// use tower_perimeter::https::{PeerAddr, TrustedProxies};
///
/// let proxies = TrustedProxies::new().trust("10.0.0.0/8")?;
///
/// let mut req = Request::get("/").header("host", "internal:8080")
///     .header("x-forwarded-for", "203.0.113.9, 10.1.2.3")
///     .header("x-forwarded-proto", "https")
///     .header("x-forwarded-host", "example.com")
///     .body(()).unwrap();
/// req.extensions_mut().insert(PeerAddr("10.0.0.2:41000".parse().unwrap()));
/// let info = proxies.resolve_request(&req);
/// assert_eq!(info.addr(), Some("203.0.113.9".parse().unwrap()));
/// assert!(info.is_secure());
/// assert_eq!(info.host().unwrap().host(), "example.com");
///
/// // the same headers from an untrusted peer are ignored
/// req.extensions_mut().insert(PeerAddr("198.51.100.1:41000".parse().unwrap()));
/// let info = proxies.resolve_request(&req);
/// assert_eq!(info.addr(), Some("198.51.100.1".parse().unwrap()));
/// assert!(!info.is_secure());
/// assert_eq!(info.host().unwrap().host(), "internal");
/// # Ok::<_, tower_perimeter::ConfigError>(())
/// ```
#[derive(Clone)]
#[must_use]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
    headers: ForwardedHeaders,
    strip_untrusted: bool,
    peer_from: Option<PeerSource>,
    max_hops: usize,
}

impl TrustedProxies {
    /// Trusts nobody: forwarding headers are always ignored.
    pub fn new() -> Self {
        Self {
            nets: Vec::new(),
            headers: ForwardedHeaders::default(),
            strip_untrusted: false,
            peer_from: None,
            max_hops: DEFAULT_MAX_HOPS,
        }
    }

    /// Trusts peers in `cidr` (`10.0.0.0/8`, `2001:db8::/32`; a bare address
    /// means that one address).
    ///
    /// # Errors
    ///
    /// If `cidr` is neither a CIDR block nor an IP address.
    pub fn trust(self, cidr: &str) -> Result<Self, ConfigError> {
        let cidr = cidr.trim();
        let net = match cidr.parse::<IpNet>() {
            Ok(net) => net,
            Err(_) => match cidr.parse::<IpAddr>() {
                Ok(ip) => IpNet::from(ip),
                Err(_) => {
                    return Err(ConfigError::new(
                        "https",
                        format!(
                            "invalid trusted proxy {cidr:?}: expected a CIDR such as 10.0.0.0/8"
                        ),
                    ))
                }
            },
        };
        Ok(self.trust_net(net))
    }

    /// Trusts peers in `net`.
    pub fn trust_net(mut self, net: IpNet) -> Self {
        self.nets.push(net.trunc());
        self
    }

    /// Trusts the loopback networks `127.0.0.0/8` and `::1/128`: for a proxy
    /// on the same machine.
    pub fn trust_loopback(self) -> Self {
        // Evaluated at compile time: the prefix lengths are checked by the
        // compiler, so nothing can fail here.
        const V4: IpNet = IpNet::new_assert(IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 0)), 8);
        const V6: IpNet = IpNet::new_assert(IpAddr::V6(std::net::Ipv6Addr::LOCALHOST), 128);
        self.trust_net(V4).trust_net(V6)
    }

    /// Which forwarding headers to read (default [`ForwardedHeaders::XForwarded`]).
    pub fn headers(mut self, headers: ForwardedHeaders) -> Self {
        self.headers = headers;
        self
    }

    /// Removes `Forwarded` and `X-Forwarded-*` from requests whose peer is not
    /// trusted, so that nothing further in (a handler, an upstream) can be
    /// fooled by them. Off by default.
    pub fn strip_untrusted(mut self, strip: bool) -> Self {
        self.strip_untrusted = strip;
        self
    }

    /// Reads the peer address with `source` when the request has no
    /// [`PeerAddr`]; for axum's `ConnectInfo`:
    ///
    /// ```
    /// use axum::extract::ConnectInfo;
    /// use std::net::SocketAddr;
    /// use tower_perimeter::https::TrustedProxies;
    ///
    /// let proxies = TrustedProxies::new().trust_loopback().peer_from(|ext| {
    ///     ext.get::<ConnectInfo<SocketAddr>>().map(|c| c.0)
    /// });
    /// # let _ = proxies;
    /// ```
    pub fn peer_from(mut self, source: PeerSource) -> Self {
        self.peer_from = Some(source);
        self
    }

    /// Walks at most `hops` forwarding elements (default 16, at least 1).
    pub fn max_hops(mut self, hops: usize) -> Self {
        self.max_hops = hops.max(1);
        self
    }

    /// `true` if `ip` is in a trusted network. IPv4-mapped IPv6 addresses
    /// (`::ffff:10.0.0.1`) are checked as IPv4.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        self.nets.iter().any(|net| net.contains(&ip))
    }

    /// `true` if untrusted forwarding headers should be removed.
    pub fn strips_untrusted(&self) -> bool {
        self.strip_untrusted
    }

    /// The connection's peer address: [`PeerAddr`], else the
    /// [`peer_from`](TrustedProxies::peer_from) source.
    pub fn peer_addr(&self, extensions: &Extensions) -> Option<SocketAddr> {
        extensions
            .get::<PeerAddr>()
            .map(|p| p.0)
            .or_else(|| self.peer_from.and_then(|f| f(extensions)))
    }

    /// Resolves the client address, scheme and host of a request head, with
    /// the rules described on [`TrustedProxies`]. Never fails: what cannot be
    /// known is `None` (or `http`).
    pub fn resolve(&self, parts: &Parts) -> ClientInfo {
        self.resolve_from(&parts.uri, &parts.headers, &parts.extensions)
    }

    /// Like [`TrustedProxies::resolve`], for a whole request.
    pub fn resolve_request<B>(&self, req: &Request<B>) -> ClientInfo {
        self.resolve_from(req.uri(), req.headers(), req.extensions())
    }

    /// Removes the forwarding headers from `headers` if `info` says the peer
    /// was not trusted and stripping is on; returns whether anything was
    /// removed.
    pub fn strip_if_untrusted(&self, info: &ClientInfo, headers: &mut HeaderMap) -> bool {
        if !self.strip_untrusted || info.peer_trusted {
            return false;
        }
        let mut removed = false;
        for name in [
            &http::header::FORWARDED,
            &X_FORWARDED_FOR,
            &X_FORWARDED_PROTO,
            &X_FORWARDED_HOST,
        ] {
            removed |= headers.remove(name).is_some();
        }
        removed
    }

    /// The resolution itself, from the request's pieces.
    pub fn resolve_from(
        &self,
        uri: &Uri,
        headers: &HeaderMap,
        extensions: &Extensions,
    ) -> ClientInfo {
        let peer = self.peer_addr(extensions);
        let secure = match extensions.get::<Transport>() {
            Some(t) => t.is_secure(),
            None => uri.scheme() == Some(&Scheme::HTTPS),
        };
        let host = match uri.authority() {
            Some(a) => RequestHost::parse(a.as_str()),
            None => headers
                .get(HOST)
                .and_then(|h| RequestHost::parse_bytes(h.as_bytes())),
        };
        let mut info = ClientInfo {
            addr: peer.map(|p| canonical_ip(p.ip())),
            peer,
            secure,
            host,
            peer_trusted: false,
            hops: 0,
        };
        let Some(peer) = peer else { return info };
        if !self.is_trusted(peer.ip()) {
            return info;
        }
        info.peer_trusted = true;
        let use_forwarded = match self.headers {
            ForwardedHeaders::Forwarded => true,
            ForwardedHeaders::XForwarded => false,
            ForwardedHeaders::Both => headers.contains_key(http::header::FORWARDED),
        };
        if use_forwarded {
            let elements = forwarded_elements_rev(headers);
            self.walk(&mut info, elements.into_iter().map(|e| parse_element(&e)));
        } else {
            let mut fors = rev_list(headers, &X_FORWARDED_FOR);
            let mut protos = rev_list(headers, &X_FORWARDED_PROTO);
            let mut hosts = rev_list(headers, &X_FORWARDED_HOST);
            let hops = std::iter::from_fn(|| {
                let (f, p, h) = (fors.next(), protos.next(), hosts.next());
                if f.is_none() && p.is_none() && h.is_none() {
                    return None;
                }
                Some(Hop {
                    valid: true,
                    node: f.map(parse_node),
                    proto: p.map(parse_proto),
                    host: h.map(|h| RequestHost::parse(h.trim())),
                })
            });
            self.walk(&mut info, hops);
        }
        info
    }

    fn walk(&self, info: &mut ClientInfo, hops: impl Iterator<Item = Hop>) {
        for hop in hops.take(self.max_hops) {
            // `hop` was written by a trusted proxy (the peer, or an address a
            // trusted proxy vouched for) and describes the hop before it.
            if !hop.valid {
                break;
            }
            info.hops += 1;
            if let Some(Some(secure)) = hop.proto {
                info.secure = secure;
            }
            if let Some(host) = hop.host {
                info.host = host;
            }
            match hop.node {
                Some(Node::Ip(ip)) => {
                    let ip = canonical_ip(ip);
                    info.addr = Some(ip);
                    if !self.is_trusted(ip) {
                        break;
                    }
                }
                // unknown or obfuscated: the next hop cannot be checked
                Some(Node::Unknown) | None => break,
            }
        }
    }
}

impl Default for TrustedProxies {
    /// [`TrustedProxies::new`]: trusts nobody.
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustedProxies")
            .field("nets", &self.nets)
            .field("headers", &self.headers)
            .field("strip_untrusted", &self.strip_untrusted)
            .field("peer_from", &self.peer_from.map(|_| "<fn>"))
            .field("max_hops", &self.max_hops)
            .finish()
    }
}

/// What [`TrustedProxies::resolve`] decided about a request: the client's
/// address, whether it used HTTPS, and the host it asked for.
///
/// [`HttpsRedirect`](super::HttpsRedirect) puts one into the extensions of the
/// requests it passes on; with the `axum` feature it is an extractor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientInfo {
    addr: Option<IpAddr>,
    peer: Option<SocketAddr>,
    secure: bool,
    host: Option<RequestHost>,
    peer_trusted: bool,
    hops: usize,
}

impl ClientInfo {
    /// The client's address: the outermost address vouched for by trusted
    /// proxies, else the peer's. `None` if the peer address is unknown.
    pub fn addr(&self) -> Option<IpAddr> {
        self.addr
    }

    /// The connection's peer (the nearest proxy, or the client itself).
    pub fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// `true` if the client used HTTPS.
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// `https` or `http`.
    pub fn scheme(&self) -> Scheme {
        if self.secure {
            Scheme::HTTPS
        } else {
            Scheme::HTTP
        }
    }

    /// The host the client asked for; `None` if absent or malformed.
    pub fn host(&self) -> Option<&RequestHost> {
        self.host.as_ref()
    }

    /// `true` if the peer is a trusted proxy.
    pub fn peer_is_trusted(&self) -> bool {
        self.peer_trusted
    }

    /// How many forwarding elements were used (0 without trusted proxies).
    pub fn forwarded_hops(&self) -> usize {
        self.hops
    }
}

/// One forwarding element, as written by one proxy.
struct Hop {
    /// `false` for a malformed element: the walk stops there.
    valid: bool,
    node: Option<Node>,
    /// `Some(None)` for an unrecognised proto.
    proto: Option<Option<bool>>,
    /// `Some(None)` for a malformed host: the host becomes unknown.
    host: Option<Option<RequestHost>>,
}

impl Hop {
    fn invalid() -> Self {
        Self {
            valid: false,
            node: None,
            proto: None,
            host: None,
        }
    }
}

enum Node {
    Ip(IpAddr),
    /// `unknown`, an obfuscated identifier, or a malformed address.
    Unknown,
}

fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The comma-separated items of every `name` header, last item first.
fn rev_list<'a>(headers: &'a HeaderMap, name: &HeaderName) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(name)
        .iter()
        .rev()
        // A value that is not visible ASCII becomes one item that parses as
        // nothing, which stops the walk.
        .flat_map(|v| v.to_str().unwrap_or("\u{0}").rsplit(','))
}

/// `true`/`false` for `https`/`http`; `None` for anything else.
fn parse_proto(p: &str) -> Option<bool> {
    let p = p.trim();
    if p.eq_ignore_ascii_case("https") {
        Some(true)
    } else if p.eq_ignore_ascii_case("http") {
        Some(false)
    } else {
        None
    }
}

/// An address as `X-Forwarded-For` or RFC 7239 `for=` writes it: `ip`,
/// `ip:port`, `[v6]`, `[v6]:port`, `unknown`, `_obfuscated`.
fn parse_node(s: &str) -> Node {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Node::Ip(ip);
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Node::Ip(sa.ip());
    }
    if let Some(inner) = s.strip_prefix('[') {
        // `[v6]` or `[v6]:obfport`
        if let Some((v6, rest)) = inner.split_once(']') {
            if rest.is_empty() || rest.starts_with(':') {
                if let Ok(ip) = v6.parse::<std::net::Ipv6Addr>() {
                    return Node::Ip(IpAddr::V6(ip));
                }
            }
        }
    }
    if let Some((v4, _port)) = s.split_once(':') {
        if let Ok(ip) = v4.parse::<std::net::Ipv4Addr>() {
            return Node::Ip(IpAddr::V4(ip));
        }
    }
    Node::Unknown
}

/// The elements of every `Forwarded` header, last first, split on commas
/// outside quoted strings.
fn forwarded_elements_rev(headers: &HeaderMap) -> Vec<Cow<'_, str>> {
    let mut out = Vec::new();
    for value in headers.get_all(http::header::FORWARDED).iter() {
        let Ok(s) = value.to_str() else {
            out.push(Cow::Borrowed("\u{0}"));
            continue;
        };
        out.extend(split_outside_quotes(s, b',').into_iter().map(Cow::Borrowed));
    }
    out.reverse();
    out
}

fn split_outside_quotes(s: &str, sep: u8) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut in_quotes, mut escaped) = (0, false, false);
    for (i, b) in s.bytes().enumerate() {
        if escaped {
            escaped = false;
        } else if in_quotes && b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            in_quotes = !in_quotes;
        } else if b == sep && !in_quotes {
            parts.push(&s[start..i]);
            start = i + 1;
        }
    }
    parts.push(&s[start..]);
    parts
}

/// Parses one RFC 7239 `forwarded-element`.
fn parse_element(element: &str) -> Hop {
    let element = element.trim();
    if element.is_empty() {
        return Hop::invalid();
    }
    let mut hop = Hop {
        valid: true,
        node: None,
        proto: None,
        host: None,
    };
    let mut seen = [false; 4];
    for pair in split_outside_quotes(element, b';') {
        let pair = pair.trim();
        if pair.is_empty() {
            continue;
        }
        let Some((name, value)) = pair.split_once('=') else {
            return Hop::invalid();
        };
        let Some(value) = parse_value(value) else {
            return Hop::invalid();
        };
        let slot = match name.to_ascii_lowercase().as_str() {
            "for" => 0,
            "by" => 1,
            "proto" => 2,
            "host" => 3,
            // RFC 7239 allows extension parameters: skipped.
            n if is_token(n) => continue,
            _ => return Hop::invalid(),
        };
        // Each parameter may occur once per element (RFC 7239 section 4).
        if std::mem::replace(&mut seen[slot], true) {
            return Hop::invalid();
        }
        match slot {
            0 => hop.node = Some(parse_node(&value)),
            2 => hop.proto = Some(parse_proto(&value)),
            3 => hop.host = Some(RequestHost::parse(&value)),
            _ => {}
        }
    }
    hop
}

/// `token` or `quoted-string`, unquoted.
fn parse_value(v: &str) -> Option<Cow<'_, str>> {
    let Some(inner) = v.strip_prefix('"') else {
        return is_token(v).then_some(Cow::Borrowed(v));
    };
    let inner = inner.strip_suffix('"')?;
    if !inner.contains('\\') {
        return (!inner.contains('"')).then_some(Cow::Borrowed(inner));
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '"' => return None,
            c => out.push(c),
        }
    }
    Some(Cow::Owned(out))
}

/// RFC 9110 `token`.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(peer: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::get("/x");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let mut r = b.body(()).unwrap();
        r.extensions_mut().insert(PeerAddr(peer.parse().unwrap()));
        r
    }

    fn lb() -> TrustedProxies {
        TrustedProxies::new().trust("10.0.0.0/8").unwrap()
    }

    #[test]
    fn spoofed_forwarded_proto_from_untrusted_peer_is_ignored() {
        let r = req(
            "203.0.113.5:1000",
            &[
                ("host", "example.com"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-for", "10.0.0.1"),
                ("x-forwarded-host", "evil.example"),
            ],
        );
        let info = lb().resolve_request(&r);
        assert!(!info.is_secure());
        assert_eq!(info.addr(), Some("203.0.113.5".parse().unwrap()));
        assert_eq!(info.host().unwrap().host(), "example.com");
        assert!(!info.peer_is_trusted());
        assert_eq!(info.forwarded_hops(), 0);
    }

    #[test]
    fn without_peer_address_headers_are_ignored() {
        let r = Request::get("/")
            .header("x-forwarded-proto", "https")
            .body(())
            .unwrap();
        let info = lb().resolve_request(&r);
        assert!(!info.is_secure());
        assert_eq!(info.addr(), None);
    }

    #[test]
    fn trusted_peer_sets_client_scheme_and_host() {
        let r = req(
            "10.0.0.2:1000",
            &[
                ("host", "backend"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-for", "203.0.113.7"),
                ("x-forwarded-host", "Example.com"),
            ],
        );
        let info = lb().resolve_request(&r);
        assert!(info.is_secure());
        assert_eq!(info.scheme(), Scheme::HTTPS);
        assert_eq!(info.addr(), Some("203.0.113.7".parse().unwrap()));
        assert_eq!(info.host().unwrap().host(), "example.com");
    }

    #[test]
    fn chain_walk_stops_at_first_untrusted_hop() {
        // client forged "1.1.1.1, 10.9.9.9" before the trusted proxies appended theirs
        let r = req(
            "10.0.0.2:1000",
            &[(
                "x-forwarded-for",
                "1.1.1.1, 10.9.9.9, 198.51.100.4, 10.0.0.3",
            )],
        );
        let info = lb().resolve_request(&r);
        assert_eq!(info.addr(), Some("198.51.100.4".parse().unwrap()));
        assert_eq!(info.forwarded_hops(), 2);
    }

    #[test]
    fn chain_through_several_trusted_proxies_reaches_the_client() {
        let r = req(
            "10.0.0.2:1000",
            &[("x-forwarded-for", "203.0.113.1, 10.0.0.5, 10.0.0.4")],
        );
        assert_eq!(
            lb().resolve_request(&r).addr(),
            Some("203.0.113.1".parse().unwrap())
        );
    }

    #[test]
    fn repeated_header_lines_form_one_list() {
        let r = req(
            "10.0.0.2:1000",
            &[
                ("x-forwarded-for", "203.0.113.1"),
                ("x-forwarded-for", "10.0.0.4"),
            ],
        );
        assert_eq!(
            lb().resolve_request(&r).addr(),
            Some("203.0.113.1".parse().unwrap())
        );
    }

    #[test]
    fn proto_aligned_from_the_right_outermost_wins() {
        let r = req(
            "10.0.0.2:1000",
            &[
                ("x-forwarded-for", "203.0.113.1, 10.0.0.5"),
                ("x-forwarded-proto", "https, http"),
            ],
        );
        assert!(lb().resolve_request(&r).is_secure());
        // the client's own "https" to the left of an untrusted hop is not read
        let r = req(
            "10.0.0.2:1000",
            &[
                ("x-forwarded-for", "203.0.113.1"),
                ("x-forwarded-proto", "https, http"),
            ],
        );
        assert!(!lb().resolve_request(&r).is_secure());
    }

    #[test]
    fn malformed_element_stops_the_walk() {
        let r = req(
            "10.0.0.2:1000",
            &[("x-forwarded-for", "203.0.113.1, garbage, 10.0.0.4")],
        );
        assert_eq!(
            lb().resolve_request(&r).addr(),
            Some("10.0.0.4".parse().unwrap())
        );
        let r = req(
            "10.0.0.2:1000",
            &[("x-forwarded-for", "203.0.113.1,,10.0.0.4")],
        );
        assert_eq!(
            lb().resolve_request(&r).addr(),
            Some("10.0.0.4".parse().unwrap())
        );
    }

    #[test]
    fn malformed_forwarded_host_makes_host_unknown() {
        let r = req(
            "10.0.0.2:1000",
            &[
                ("host", "backend"),
                ("x-forwarded-host", "user@evil.example"),
            ],
        );
        assert_eq!(lb().resolve_request(&r).host(), None);
    }

    #[test]
    fn rfc7239_forwarded_is_parsed_with_quotes_and_ipv6() {
        let p = lb().headers(ForwardedHeaders::Forwarded);
        let r = req(
            "10.0.0.2:1000",
            &[(
                "forwarded",
                r#"for="[2001:db8:cafe::17]:4711";proto=https;host="example.com:8443", for=10.1.1.1;proto=http"#,
            )],
        );
        let info = p.resolve_request(&r);
        assert_eq!(info.addr(), Some("2001:db8:cafe::17".parse().unwrap()));
        assert!(info.is_secure());
        assert_eq!(info.host().unwrap().to_string(), "example.com:8443");
        assert_eq!(info.forwarded_hops(), 2);
    }

    #[test]
    fn rfc7239_unknown_and_obfuscated_nodes_stop_the_walk() {
        let p = lb().headers(ForwardedHeaders::Forwarded);
        for node in ["unknown", "_hidden", "\"_x:_y\""] {
            let v = format!("for=203.0.113.1, for={node}, for=10.0.0.4");
            let r = req("10.0.0.2:1000", &[("forwarded", v.as_str())]);
            assert_eq!(
                p.resolve_request(&r).addr(),
                Some("10.0.0.4".parse().unwrap()),
                "{node}"
            );
        }
    }

    #[test]
    fn rfc7239_duplicate_parameter_is_malformed() {
        let p = lb().headers(ForwardedHeaders::Forwarded);
        let r = req(
            "10.0.0.2:1000",
            &[("forwarded", "for=203.0.113.1;proto=https;proto=http")],
        );
        let info = p.resolve_request(&r);
        assert!(!info.is_secure());
        assert_eq!(info.addr(), Some("10.0.0.2".parse().unwrap()));
    }

    #[test]
    fn quoted_comma_does_not_split_an_element() {
        let p = lb().headers(ForwardedHeaders::Forwarded);
        let r = req(
            "10.0.0.2:1000",
            &[("forwarded", r#"for=203.0.113.1;ext="a,b";proto=https"#)],
        );
        assert!(p.resolve_request(&r).is_secure());
    }

    #[test]
    fn x_forwarded_mode_ignores_forwarded_and_vice_versa() {
        let r = req(
            "10.0.0.2:1000",
            &[("forwarded", "for=203.0.113.1;proto=https")],
        );
        assert!(!lb().resolve_request(&r).is_secure());
        let r = req("10.0.0.2:1000", &[("x-forwarded-proto", "https")]);
        assert!(!lb()
            .headers(ForwardedHeaders::Forwarded)
            .resolve_request(&r)
            .is_secure());
        assert!(lb()
            .headers(ForwardedHeaders::Both)
            .resolve_request(&r)
            .is_secure());
    }

    #[test]
    fn transport_marker_beats_uri_scheme() {
        let mut r = Request::get("https://example.com/").body(()).unwrap();
        assert!(lb().resolve_request(&r).is_secure());
        r.extensions_mut().insert(Transport::Plain);
        assert!(!lb().resolve_request(&r).is_secure());
    }

    #[test]
    fn uri_authority_beats_host_header() {
        let r = Request::get("http://example.com/")
            .header("host", "evil.example")
            .body(())
            .unwrap();
        assert_eq!(
            lb().resolve_request(&r).host().unwrap().host(),
            "example.com"
        );
    }

    #[test]
    fn ipv4_mapped_peer_is_checked_as_ipv4() {
        let r = req("[::ffff:10.0.0.2]:1000", &[("x-forwarded-proto", "https")]);
        assert!(lb().resolve_request(&r).is_secure());
    }

    #[test]
    fn hop_limit_bounds_the_walk() {
        let chain = vec!["10.0.0.9"; 40].join(", ");
        let r = req("10.0.0.2:1000", &[("x-forwarded-for", chain.as_str())]);
        assert_eq!(lb().max_hops(3).resolve_request(&r).forwarded_hops(), 3);
    }

    #[test]
    fn untrusted_headers_are_stripped_when_asked() {
        let mut r = req(
            "203.0.113.5:1000",
            &[
                ("forwarded", "proto=https"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-for", "1.2.3.4"),
                ("x-forwarded-host", "a"),
            ],
        );
        let p = lb().strip_untrusted(true);
        let info = p.resolve_request(&r);
        assert!(p.strip_if_untrusted(&info, r.headers_mut()));
        assert!(r.headers().is_empty());
        // trusted peers keep theirs
        let mut r = req("10.0.0.2:1000", &[("x-forwarded-proto", "https")]);
        let info = p.resolve_request(&r);
        assert!(!p.strip_if_untrusted(&info, r.headers_mut()));
        assert_eq!(r.headers().len(), 1);
    }

    #[test]
    fn default_is_new() {
        let p = TrustedProxies::default().trust("10.0.0.0/8").unwrap();
        let r = req("10.0.0.2:1000", &[("x-forwarded-for", "203.0.113.1")]);
        assert_eq!(
            p.resolve_request(&r).addr(),
            Some("203.0.113.1".parse().unwrap())
        );
    }

    #[test]
    fn bad_cidr_is_a_config_error() {
        let err = TrustedProxies::new().trust("10.0.0.0/33").unwrap_err();
        assert_eq!(err.component(), "https");
        assert!(TrustedProxies::new()
            .trust("10.0.0.1")
            .unwrap()
            .is_trusted("10.0.0.1".parse().unwrap()));
        assert!(TrustedProxies::new()
            .trust_loopback()
            .is_trusted("127.8.9.1".parse().unwrap()));
        assert!(TrustedProxies::new()
            .trust_loopback()
            .is_trusted("::1".parse().unwrap()));
    }

    #[test]
    fn peer_source_is_used_without_peer_addr() {
        #[derive(Clone)]
        struct Conn(SocketAddr);
        let p = lb().peer_from(|ext| ext.get::<Conn>().map(|c| c.0));
        let mut r = Request::get("/")
            .header("x-forwarded-proto", "https")
            .body(())
            .unwrap();
        r.extensions_mut()
            .insert(Conn("10.0.0.2:5".parse().unwrap()));
        assert!(p.resolve_request(&r).is_secure());
    }
}
