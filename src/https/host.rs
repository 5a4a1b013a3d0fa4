//! `Host` / authority validation and the allow-list of public hosts that
//! redirects may point to.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use http::uri::Authority;

use crate::ConfigError;

/// Longest host name accepted (RFC 1035: 253 characters without the root dot).
const MAX_NAME_LEN: usize = 253;
/// Longest label of a host name (RFC 1035).
const MAX_LABEL_LEN: usize = 63;
/// Longest authority accepted: a bracketed IPv6 literal or a maximal name,
/// plus `:65535`.
const MAX_AUTHORITY_LEN: usize = MAX_NAME_LEN + 1 + 6;

/// What kind of host a [`RequestHost`] names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    Name,
    Ipv4,
    Ipv6,
}

/// A validated `Host` (or `:authority`, or `Forwarded: host=`) value: a
/// lower-case DNS name, an IPv4 literal or a bracketed IPv6 literal, with an
/// optional port.
///
/// Parsing is strict, because the value comes from the client: user info
/// (`user@host`), empty or non-numeric ports, port 0, ports above 65535,
/// unbracketed IPv6, IPv6 zone identifiers, numeric forms that are not
/// dotted-quad IPv4 (`0x7f.1`, `2130706433`), characters outside
/// letters/digits/`-`/`_`/`.`, empty or overlong labels and values longer than
/// 260 bytes are all refused. One trailing dot (`example.com.`) is removed.
///
/// ```
/// use tower_perimeter::https::RequestHost;
///
/// let h = RequestHost::parse("WWW.Example.com:8080").unwrap();
/// assert_eq!((h.host(), h.port()), ("www.example.com", Some(8080)));
///
/// let v6 = RequestHost::parse("[2001:DB8::1]").unwrap();
/// assert_eq!(v6.host(), "[2001:db8::1]");
/// assert!(v6.is_ip_literal());
///
/// assert!(RequestHost::parse("user@example.com").is_none());
/// assert!(RequestHost::parse("example.com:99999").is_none());
/// assert!(RequestHost::parse("::1").is_none());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RequestHost {
    /// Lower-case; IPv6 in brackets, in the canonical text form.
    host: String,
    port: Option<u16>,
    kind: Kind,
}

impl RequestHost {
    /// Parses and validates `value`; `None` if it is not an acceptable host.
    pub fn parse(value: &str) -> Option<Self> {
        Self::parse_bytes(value.as_bytes())
    }

    /// Like [`RequestHost::parse`], from header bytes.
    pub fn parse_bytes(value: &[u8]) -> Option<Self> {
        if value.is_empty() || value.len() > MAX_AUTHORITY_LEN || !value.is_ascii() {
            return None;
        }
        // ASCII was checked just above, so this cannot fail.
        let value = std::str::from_utf8(value).ok()?;
        if value.contains('@') {
            return None;
        }
        let (host, port) = if let Some(rest) = value.strip_prefix('[') {
            let end = rest.find(']')?;
            let inside = &rest[..end];
            let after = &rest[end + 1..];
            let addr: Ipv6Addr = inside.parse().ok()?;
            let port = match after {
                "" => None,
                _ => Some(parse_port(after.strip_prefix(':')?)?),
            };
            return Some(Self {
                host: format!("[{addr}]"),
                port,
                kind: Kind::Ipv6,
            });
        } else {
            match value.split_once(':') {
                Some((h, p)) => (h, Some(parse_port(p)?)),
                None => (value, None),
            }
        };
        let host = host.strip_suffix('.').unwrap_or(host);
        if host.is_empty() || host.len() > MAX_NAME_LEN {
            return None;
        }
        if let Ok(v4) = host.parse::<Ipv4Addr>() {
            return Some(Self {
                host: v4.to_string(),
                port,
                kind: Kind::Ipv4,
            });
        }
        let mut last_label = "";
        for label in host.split('.') {
            if label.is_empty()
                || label.len() > MAX_LABEL_LEN
                || label.starts_with('-')
                || label.ends_with('-')
                || !label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return None;
            }
            last_label = label;
        }
        // A name whose last label is numeric is an IPv4 address in a form
        // that resolvers and browsers read differently (`127.1`, `0x7f.1`).
        if last_label.bytes().all(|b| b.is_ascii_digit())
            || (last_label.len() > 2
                && last_label[..2].eq_ignore_ascii_case("0x")
                && last_label[2..].bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return None;
        }
        Some(Self {
            host: host.to_ascii_lowercase(),
            port,
            kind: Kind::Name,
        })
    }

    /// The host in lower case, IPv6 literals in brackets.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port, if the value had one.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// `true` for an IPv4 or IPv6 literal.
    pub fn is_ip_literal(&self) -> bool {
        !matches!(self.kind, Kind::Name)
    }

    /// `true` for `localhost` and names under `.localhost` (RFC 6761).
    pub fn is_localhost(&self) -> bool {
        self.kind == Kind::Name && (self.host == "localhost" || self.host.ends_with(".localhost"))
    }
}

impl fmt::Debug for RequestHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for RequestHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(port) => write!(f, "{}:{}", self.host, port),
            None => f.write_str(&self.host),
        }
    }
}

fn parse_port(p: &str) -> Option<u16> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match p.parse::<u16>() {
        Ok(0) | Err(_) => None,
        Ok(port) => Some(port),
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct PublicHost {
    host: RequestHost,
}

/// The allow-list of hosts an HTTPS redirect may point to, with an optional
/// canonical host and a mapping from plain-HTTP ports to HTTPS ports.
///
/// The redirect target is computed, never copied: the request's host must be
/// on the list (compared by name, case-insensitively, ignoring the request's
/// port), and the target port is, in order, the port written in the list
/// entry, the [mapped](PublicHosts::map_port) HTTPS port for the request's
/// port (80 when it has none), or the default port 443 (omitted).
///
/// ```
/// use tower_perimeter::https::{PublicHosts, RequestHost};
///
/// let hosts = PublicHosts::new()
///     .allow("example.com")?
///     .allow("www.example.com")?
///     .allow("localhost:8443")?
///     .map_port(8080, 8443);
/// let target = |h: &str| hosts.https_authority(&RequestHost::parse(h).unwrap());
/// assert_eq!(target("Example.com").unwrap(), "example.com");
/// assert_eq!(target("www.example.com:8080").unwrap(), "www.example.com:8443");
/// assert_eq!(target("localhost:8080").unwrap(), "localhost:8443");
/// assert!(target("evil.example").is_none());
/// # Ok::<_, tower_perimeter::ConfigError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[must_use]
pub struct PublicHosts {
    hosts: Vec<PublicHost>,
    canonical: Option<usize>,
    port_map: Vec<(u16, u16)>,
}

impl PublicHosts {
    /// An empty list: no host is allowed yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Allows `host` (`HOST` or `HOST:PORT`, IPv6 in brackets). A port given
    /// here is the HTTPS port redirects to this host use.
    ///
    /// # Errors
    ///
    /// If `host` is not a valid host, or its name is already on the list.
    pub fn allow(mut self, host: &str) -> Result<Self, ConfigError> {
        self.push(host)?;
        Ok(self)
    }

    /// Allows `host` and makes it the canonical host: every redirect from an
    /// allowed host goes to this one.
    ///
    /// # Errors
    ///
    /// As for [`PublicHosts::allow`], and if a canonical host was already set.
    pub fn canonical(mut self, host: &str) -> Result<Self, ConfigError> {
        if self.canonical.is_some() {
            return Err(ConfigError::new("https", "canonical host set twice"));
        }
        let index = self.push(host)?;
        self.canonical = Some(index);
        Ok(self)
    }

    /// Redirects requests that arrived on plain-HTTP port `http` to HTTPS
    /// port `https` (for entries that name no port themselves). Port 443 is
    /// written as no port.
    pub fn map_port(mut self, http: u16, https: u16) -> Self {
        self.port_map.retain(|(from, _)| *from != http);
        self.port_map.push((http, https));
        self
    }

    /// `true` if nothing is allowed.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// `true` if `host`'s name is on the list.
    pub fn is_allowed(&self, host: &RequestHost) -> bool {
        self.find(host).is_some()
    }

    /// The authority (`host[:port]`) of the HTTPS URL to redirect a request
    /// for `host` to, or `None` if `host` is not allowed.
    pub fn https_authority(&self, host: &RequestHost) -> Option<Authority> {
        let index = self.find(host)?;
        let target = &self.hosts[self.canonical.unwrap_or(index)].host;
        let port = target.port.or_else(|| {
            let from = host.port.unwrap_or(80);
            self.port_map
                .iter()
                .find(|(http, _)| *http == from)
                .map(|(_, https)| *https)
        });
        let text = match port {
            None | Some(443) => target.host.clone(),
            Some(port) => format!("{}:{}", target.host, port),
        };
        // Built from a validated host and a number; a failure here would be a
        // bug, and it is answered as an unknown host rather than a panic.
        Authority::try_from(text).ok()
    }

    fn find(&self, host: &RequestHost) -> Option<usize> {
        self.hosts.iter().position(|p| p.host.host == host.host)
    }

    fn push(&mut self, host: &str) -> Result<usize, ConfigError> {
        let parsed = RequestHost::parse(host).ok_or_else(|| {
            ConfigError::new(
                "https",
                format!(
                    "invalid public host {host:?}: expected HOST or HOST:PORT, IPv6 in brackets"
                ),
            )
        })?;
        if self.find(&parsed).is_some() {
            return Err(ConfigError::new(
                "https",
                format!("public host {:?} listed twice", parsed.host),
            ));
        }
        self.hosts.push(PublicHost { host: parsed });
        Ok(self.hosts.len() - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(s: &str) -> Option<(String, Option<u16>)> {
        RequestHost::parse(s).map(|h| (h.host, h.port))
    }

    #[test]
    fn names_are_lowercased_and_trailing_dot_removed() {
        assert_eq!(host("Example.COM."), Some(("example.com".into(), None)));
    }

    #[test]
    fn ports_are_parsed_and_bounded() {
        assert_eq!(host("a.example:1"), Some(("a.example".into(), Some(1))));
        assert_eq!(host("a.example:65535").unwrap().1, Some(65535));
        for bad in [
            "a.example:65536",
            "a.example:0",
            "a.example:",
            "a.example:-1",
            "a.example:+80",
            "a.example:8o",
            "a.example:000080",
            "a.example:80:80",
        ] {
            assert_eq!(host(bad), None, "{bad}");
        }
    }

    #[test]
    fn userinfo_is_refused() {
        assert_eq!(host("user@example.com"), None);
        assert_eq!(host("user:pw@example.com"), None);
        assert_eq!(host("example.com@evil.example"), None);
    }

    #[test]
    fn ipv6_literals_keep_brackets_and_canonical_form() {
        assert_eq!(host("[::1]"), Some(("[::1]".into(), None)));
        assert_eq!(
            host("[2001:DB8:0:0::1]:8443"),
            Some(("[2001:db8::1]".into(), Some(8443)))
        );
        assert_eq!(host("::1"), None);
        assert_eq!(host("[::1"), None);
        assert_eq!(host("[::1]x"), None);
        assert_eq!(host("[fe80::1%eth0]"), None);
        assert_eq!(host("[not-v6]"), None);
        assert!(RequestHost::parse("[::1]").unwrap().is_ip_literal());
    }

    #[test]
    fn ambiguous_numeric_hosts_are_refused() {
        assert_eq!(host("127.0.0.1"), Some(("127.0.0.1".into(), None)));
        for bad in [
            "127.1",
            "2130706433",
            "0x7f.0.0.1",
            "1.2.3.0x4",
            "01.2.3.4",
            "256.1.1.1",
        ] {
            assert_eq!(host(bad), None, "{bad}");
        }
    }

    #[test]
    fn bad_characters_and_lengths_are_refused() {
        for bad in [
            "",
            ".",
            "a..b",
            "-a.example",
            "a-.example",
            "a b",
            "a/b",
            "a\\b",
            "exa%6dple.com",
            "é.example",
            "a\u{0}b",
            "a.example/",
            "*.example",
        ] {
            assert_eq!(host(bad), None, "{bad:?}");
        }
        let long_label = format!("{}.example", "a".repeat(64));
        assert_eq!(host(&long_label), None);
        let ok_label = format!("{}.example", "a".repeat(63));
        assert!(host(&ok_label).is_some());
        let long_name = ["abcdefghi"; 30].join(".");
        assert!(long_name.len() > MAX_NAME_LEN);
        assert_eq!(host(&long_name), None);
        assert_eq!(host(&"a".repeat(10_000)), None);
    }

    #[test]
    fn localhost_names_are_recognised() {
        assert!(RequestHost::parse("localhost:8443").unwrap().is_localhost());
        assert!(RequestHost::parse("app.localhost").unwrap().is_localhost());
        assert!(!RequestHost::parse("localhost.example")
            .unwrap()
            .is_localhost());
    }

    #[test]
    fn unknown_host_gets_no_authority() {
        let hosts = PublicHosts::new().allow("example.com").unwrap();
        assert!(hosts
            .https_authority(&RequestHost::parse("evil.example").unwrap())
            .is_none());
        assert!(hosts
            .https_authority(&RequestHost::parse("example.com.evil.example").unwrap())
            .is_none());
    }

    #[test]
    fn canonical_host_receives_every_allowed_host() {
        let hosts = PublicHosts::new()
            .allow("www.example.com")
            .unwrap()
            .canonical("example.com")
            .unwrap();
        let a = hosts
            .https_authority(&RequestHost::parse("www.example.com").unwrap())
            .unwrap();
        assert_eq!(a, "example.com");
    }

    #[test]
    fn ports_are_mapped_and_443_is_omitted() {
        let hosts = PublicHosts::new()
            .allow("example.com")
            .unwrap()
            .allow("[::1]")
            .unwrap()
            .map_port(8080, 8443)
            .map_port(80, 443);
        let t = |h: &str| {
            hosts
                .https_authority(&RequestHost::parse(h).unwrap())
                .unwrap()
        };
        assert_eq!(t("example.com:8080"), "example.com:8443");
        assert_eq!(t("example.com"), "example.com");
        assert_eq!(t("example.com:80"), "example.com");
        // an unmapped port is never copied into the target
        assert_eq!(t("example.com:1234"), "example.com");
        assert_eq!(t("[::1]:8080"), "[::1]:8443");
    }

    #[test]
    fn config_errors_name_the_problem() {
        let err = PublicHosts::new().allow("user@example.com").unwrap_err();
        assert_eq!(err.component(), "https");
        assert!(err.message().contains("invalid public host"));
        let err = PublicHosts::new()
            .allow("a.example")
            .unwrap()
            .allow("A.example:8443")
            .unwrap_err();
        assert!(err.message().contains("twice"));
        let err = PublicHosts::new()
            .canonical("a.example")
            .unwrap()
            .canonical("b.example")
            .unwrap_err();
        assert!(err.message().contains("canonical"));
    }
}
