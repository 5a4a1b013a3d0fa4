//! Pin sets: which pins apply to which hosts, until when, and what happens
//! on a mismatch.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use super::pin::COMPONENT;
use super::{Pin, PinningError};
use crate::ConfigError;

/// Two-label public suffixes under which a `*.` wildcard would cover
/// unrelated registrants (`*.co.uk`). Single-label suffixes (`*.com`) are
/// rejected by the "at least two labels after `*.`" rule; this list adds the
/// common multi-label ones. It is deliberately small: a pattern it misses is
/// still a one-label wildcard, never a subtree.
const MULTI_LABEL_SUFFIXES: &[&str] = &[
    "ac.jp",
    "ac.uk",
    "co.at",
    "co.id",
    "co.il",
    "co.in",
    "co.jp",
    "co.kr",
    "co.nz",
    "co.th",
    "co.uk",
    "co.za",
    "com.ar",
    "com.au",
    "com.br",
    "com.cn",
    "com.co",
    "com.hk",
    "com.mx",
    "com.my",
    "com.pl",
    "com.ru",
    "com.sg",
    "com.tr",
    "com.tw",
    "com.ua",
    "edu.au",
    "gov.uk",
    "ltd.uk",
    "me.uk",
    "ne.jp",
    "net.au",
    "net.br",
    "net.cn",
    "or.jp",
    "org.au",
    "org.br",
    "org.cn",
    "org.nz",
    "org.uk",
    "plc.uk",
    "azurewebsites.net",
    "cloudfront.net",
    "github.io",
    "herokuapp.com",
    "pages.dev",
    "vercel.app",
];

/// A host pattern: an exact name (`api.example.com`), an IP address
/// (`10.0.0.7`, `::1`), or a one-label wildcard (`*.example.com`).
///
/// `*.example.com` matches `api.example.com` but neither `example.com` nor
/// `a.b.example.com`, as in OkHttp's `*.` and RFC 6125. A wildcard needs at
/// least two labels after `*.` and may not sit on a known public suffix
/// (`*.co.uk`, `*.github.io`), so it can never pin a whole top-level domain.
/// Names are compared case-insensitively and without a trailing dot.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct HostPattern {
    wildcard: bool,
    name: String,
}

impl HostPattern {
    /// Parses a pattern.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] for an empty or malformed name, a wildcard that is not
    /// the whole leftmost label, or a wildcard on a public suffix.
    pub fn parse(pattern: &str) -> Result<Self, ConfigError> {
        let err = |why: &str| {
            let shown: String = pattern
                .chars()
                .take(80)
                .flat_map(char::escape_debug)
                .collect();
            ConfigError::new(
                COMPONENT,
                format!("invalid host pattern \"{shown}\": {why}"),
            )
        };
        let trimmed = pattern.trim();
        if let Ok(ip) = trimmed
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            return Ok(Self {
                wildcard: false,
                name: ip.to_string(),
            });
        }
        let lower = trimmed.to_ascii_lowercase();
        let lower = lower.strip_suffix('.').unwrap_or(&lower);
        let (wildcard, name) = match lower.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, lower),
        };
        if name.is_empty() {
            return Err(err("empty host name"));
        }
        if name.len() > 253 {
            return Err(err("a host name has at most 253 characters"));
        }
        for label in name.split('.') {
            if label.contains('*') {
                return Err(err(
                    "a wildcard must be the whole leftmost label, as in *.example.com",
                ));
            }
            if label.is_empty() || label.len() > 63 {
                return Err(err("each label needs 1 to 63 characters"));
            }
            if !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                || label.starts_with('-')
                || label.ends_with('-')
            {
                return Err(err(
                    "labels are letters, digits and inner hyphens (use the punycode form of international names)",
                ));
            }
        }
        if wildcard {
            if !name.contains('.') {
                return Err(err(
                    "a wildcard needs at least two labels after \"*.\" (*.com would pin a whole top-level domain)",
                ));
            }
            if MULTI_LABEL_SUFFIXES.contains(&name) {
                return Err(err("a wildcard may not sit directly on a public suffix"));
            }
        }
        Ok(Self {
            wildcard,
            name: name.to_owned(),
        })
    }

    /// Whether the pattern is a `*.` wildcard.
    pub fn is_wildcard(&self) -> bool {
        self.wildcard
    }

    /// Whether `host` matches (compared case-insensitively, ignoring a
    /// trailing dot).
    pub fn matches(&self, host: &str) -> bool {
        let host = normalize_host(host);
        if !self.wildcard {
            return host == self.name;
        }
        match host.split_once('.') {
            Some((label, rest)) => !label.is_empty() && label != "*" && rest == self.name,
            None => false,
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.wildcard {
            write!(f, "*.{}", self.name)
        } else {
            f.write_str(&self.name)
        }
    }
}

impl fmt::Debug for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HostPattern({self})")
    }
}

pub(crate) fn normalize_host(host: &str) -> String {
    let lower = host.to_ascii_lowercase();
    match lower.strip_suffix('.') {
        Some(stripped) => stripped.to_owned(),
        None => lower,
    }
}

/// What a pin set does once its expiry date has passed.
///
/// Pins outliving their keys are the classic way pinning bricks a client, so
/// an expiry date is a safety valve; the choice is what the valve opens to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum AfterExpiry {
    /// Stop checking pins and rely on CA validation alone, with a `warn`
    /// event per connection (`reason = "pins_expired"`). This is what Android's
    /// Network Security Config and TrustKit do, and the default. Without CA
    /// validation ([`PinnedVerifier::without_ca`](super::PinnedVerifier::without_ca))
    /// there is nothing to fall back to, so an expired set refuses instead.
    #[default]
    Unpinned,
    /// Keep checking, but only report mismatches (event and callback)
    /// instead of failing. Without CA validation an expired set refuses.
    ReportOnly,
    /// Refuse every connection to the pinned hosts with
    /// [`PinningFailure::Expired`](super::PinningFailure::Expired) until the
    /// pins are renewed: fail closed.
    Refuse,
}

type Reporter = Arc<dyn Fn(&PinningError) + Send + Sync>;

#[derive(Clone)]
pub(crate) struct HostPins {
    pub(crate) pattern: HostPattern,
    pub(crate) pins: Vec<Pin>,
}

/// Pins per host pattern, with an optional expiry date and a report-only
/// mode. Build one with [`PinSet::builder`], then give it to a
/// [`PinnedVerifier`](super::PinnedVerifier).
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use tower_perimeter::pinning::{AfterExpiry, PinSet};
///
/// let pins = PinSet::builder()
///     .host("api.example.com", [
///         "sha256/47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=", // current key
///         "sha256/YLh1dUR9y6Kja30RrAn7JKnbQG/uEtLMkBgFF2Fuihg=", // backup key
///     ])?
///     .expires_at(SystemTime::now() + Duration::from_secs(180 * 86_400))
///     .after_expiry(AfterExpiry::Unpinned)
///     .build()?;
/// assert!(pins.covers("api.example.com"));
/// assert!(!pins.covers("www.example.com"));
/// # Ok::<(), tower_perimeter::ConfigError>(())
/// ```
///
/// A host matches its exact pattern if there is one, otherwise a wildcard
/// pattern; the pins of the most specific pattern apply, they are not merged.
#[derive(Clone)]
pub struct PinSet {
    pub(crate) hosts: Vec<HostPins>,
    pub(crate) expires: Option<SystemTime>,
    pub(crate) after_expiry: AfterExpiry,
    pub(crate) report_only: bool,
    pub(crate) reporter: Option<Reporter>,
}

impl PinSet {
    /// A builder for a pin set.
    pub fn builder() -> PinSetBuilder {
        PinSetBuilder {
            set: PinSet {
                hosts: Vec::new(),
                expires: None,
                after_expiry: AfterExpiry::default(),
                report_only: false,
                reporter: None,
            },
            allow_single_pin: false,
        }
    }

    /// Whether some pattern of the set covers `host`.
    pub fn covers(&self, host: &str) -> bool {
        self.lookup(host).is_some()
    }

    /// The pins that apply to `host`, if any pattern covers it.
    pub fn pins_for(&self, host: &str) -> Option<&[Pin]> {
        self.lookup(host).map(|h| h.pins.as_slice())
    }

    /// Whether the set only reports mismatches instead of failing.
    pub fn is_report_only(&self) -> bool {
        self.report_only
    }

    /// The expiry date, if one is set.
    pub fn expires(&self) -> Option<SystemTime> {
        self.expires
    }

    pub(crate) fn lookup(&self, host: &str) -> Option<&HostPins> {
        let host = normalize_host(host);
        self.hosts
            .iter()
            .find(|h| !h.pattern.wildcard && h.pattern.matches(&host))
            .or_else(|| self.hosts.iter().find(|h| h.pattern.matches(&host)))
    }

    pub(crate) fn is_expired_at(&self, now_secs: u64) -> bool {
        self.expires.is_some_and(|at| {
            at.duration_since(SystemTime::UNIX_EPOCH)
                .map_or(true, |d| d.as_secs() <= now_secs)
        })
    }

    pub(crate) fn report(&self, err: &PinningError) {
        if let Some(reporter) = &self.reporter {
            reporter(err);
        }
    }
}

impl fmt::Debug for PinSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hosts: Vec<_> = self
            .hosts
            .iter()
            .map(|h| (h.pattern.to_string(), &h.pins))
            .collect();
        f.debug_struct("PinSet")
            .field("hosts", &hosts)
            .field("expires", &self.expires)
            .field("after_expiry", &self.after_expiry)
            .field("report_only", &self.report_only)
            .field("reporter", &self.reporter.as_ref().map(|_| "<callback>"))
            .finish()
    }
}

/// Builds a [`PinSet`]. Steps that can be wrong return a [`ConfigError`].
#[must_use]
pub struct PinSetBuilder {
    set: PinSet,
    allow_single_pin: bool,
}

impl PinSetBuilder {
    /// Pins `pattern` (see [`HostPattern`]) to `pins`, given in any of the
    /// spellings [`Pin`] parses.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] for a bad pattern, a bad pin, no pins, or a pattern
    /// given twice.
    pub fn host<I>(self, pattern: &str, pins: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let pins = pins
            .into_iter()
            .map(|p| p.as_ref().parse::<Pin>())
            .collect::<Result<Vec<_>, _>>()?;
        self.host_pins(pattern, pins)
    }

    /// Like [`host`](Self::host), with pins already parsed.
    ///
    /// # Errors
    ///
    /// As [`host`](Self::host).
    pub fn host_pins(
        mut self,
        pattern: &str,
        pins: impl IntoIterator<Item = Pin>,
    ) -> Result<Self, ConfigError> {
        let pattern = HostPattern::parse(pattern)?;
        let mut seen = BTreeSet::new();
        let pins: Vec<Pin> = pins.into_iter().filter(|p| seen.insert(*p)).collect();
        if pins.is_empty() {
            return Err(ConfigError::new(
                COMPONENT,
                format!("no pins given for {pattern}"),
            ));
        }
        if self.set.hosts.iter().any(|h| h.pattern == pattern) {
            return Err(ConfigError::new(
                COMPONENT,
                format!("{pattern} is pinned twice; give all its pins in one call"),
            ));
        }
        self.set.hosts.push(HostPins { pattern, pins });
        Ok(self)
    }

    /// Accepts hosts with a single pin.
    ///
    /// By default every host needs at least two distinct pins: the key in use
    /// and a backup key kept offline, so losing or rotating the key does not
    /// lock clients out (RFC 7469 section 4.3). Opt out only where the client
    /// can be reconfigured as fast as the server's key changes.
    pub fn allow_single_pin(mut self) -> Self {
        self.allow_single_pin = true;
        self
    }

    /// Sets an expiry date; what happens after it is chosen with
    /// [`after_expiry`](Self::after_expiry). The handshake's own clock
    /// (rustls's `now`) decides.
    pub fn expires_at(mut self, at: SystemTime) -> Self {
        self.set.expires = Some(at);
        self
    }

    /// What the set does after its expiry date (default
    /// [`AfterExpiry::Unpinned`]).
    pub fn after_expiry(mut self, policy: AfterExpiry) -> Self {
        self.set.after_expiry = policy;
        self
    }

    /// Reports mismatches instead of failing the handshake: a `warn` event
    /// (`reason = "pin_mismatch"`, with the `tracing` feature) and the
    /// [`on_failure`](Self::on_failure) callback, then the connection goes on
    /// with CA validation alone. For trying pins out before enforcing them.
    /// Not available without CA validation.
    pub fn report_only(mut self) -> Self {
        self.set.report_only = true;
        self
    }

    /// A callback for every pinning failure, enforced or reported, called on
    /// the handshake's thread before the handshake fails or goes on. Keep it
    /// quick (queue the report rather than send it from here).
    pub fn on_failure(mut self, callback: impl Fn(&PinningError) + Send + Sync + 'static) -> Self {
        self.set.reporter = Some(Arc::new(callback));
        self
    }

    /// The pin set.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] if no host is pinned, or a host has a single pin
    /// without [`allow_single_pin`](Self::allow_single_pin).
    pub fn build(self) -> Result<PinSet, ConfigError> {
        if self.set.hosts.is_empty() {
            return Err(ConfigError::new(COMPONENT, "no host is pinned"));
        }
        if !self.allow_single_pin {
            if let Some(h) = self.set.hosts.iter().find(|h| h.pins.len() < 2) {
                return Err(ConfigError::new(
                    COMPONENT,
                    format!(
                        "{} has a single pin; add the pin of a backup key, or call allow_single_pin()",
                        h.pattern
                    ),
                ));
            }
        }
        Ok(self.set)
    }
}

impl fmt::Debug for PinSetBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinSetBuilder")
            .field("set", &self.set)
            .field("allow_single_pin", &self.allow_single_pin)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "sha256/47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
    const B: &str = "sha256/YLh1dUR9y6Kja30RrAn7JKnbQG/uEtLMkBgFF2Fuihg=";
    const C: &str = "sha256/Vjs8r4z+80wjNcr1YKepWQboSIRi63WsWXhIMN+eWys=";

    #[test]
    fn exact_pattern_matches_case_insensitively_and_without_trailing_dot() {
        let p = HostPattern::parse("API.Example.com.").unwrap();
        assert!(p.matches("api.example.com"));
        assert!(p.matches("api.EXAMPLE.com."));
        assert!(!p.matches("www.example.com"));
    }

    #[test]
    fn wildcard_matches_exactly_one_label() {
        let p = HostPattern::parse("*.example.com").unwrap();
        assert!(p.matches("api.example.com"));
        assert!(!p.matches("example.com"));
        assert!(!p.matches("a.b.example.com"));
        assert!(!p.matches(".example.com"));
    }

    #[test]
    fn wildcard_on_public_suffix_is_rejected() {
        for bad in ["*.com", "*.co.uk", "*.github.io", "*.", "*"] {
            assert!(HostPattern::parse(bad).is_err(), "{bad}");
        }
        assert!(HostPattern::parse("*.example.co.uk").is_ok());
    }

    #[test]
    fn partial_and_inner_wildcards_are_rejected() {
        for bad in [
            "f*.example.com",
            "api.*.example.com",
            "**.example.com",
            "*.*.example.com",
        ] {
            assert!(HostPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ip_patterns_are_normalized() {
        let p = HostPattern::parse("[::0001]").unwrap();
        assert!(p.matches("::1"));
        assert!(HostPattern::parse("127.0.0.1")
            .unwrap()
            .matches("127.0.0.1"));
    }

    #[test]
    fn single_pin_needs_explicit_opt_out() {
        let err = PinSet::builder()
            .host("a.example", [A])
            .unwrap()
            .build()
            .unwrap_err();
        assert!(err.message().contains("backup"), "{err}");
        assert!(PinSet::builder()
            .host("a.example", [A])
            .unwrap()
            .allow_single_pin()
            .build()
            .is_ok());
    }

    #[test]
    fn duplicate_pins_do_not_count_as_a_backup() {
        let err = PinSet::builder()
            .host("a.example", [A, A])
            .unwrap()
            .build()
            .unwrap_err();
        assert!(err.message().contains("single pin"), "{err}");
    }

    #[test]
    fn pattern_given_twice_is_rejected() {
        let err = PinSet::builder()
            .host("a.example", [A, B])
            .unwrap()
            .host("A.example.", [C, B])
            .unwrap_err();
        assert!(err.message().contains("twice"), "{err}");
    }

    #[test]
    fn exact_pattern_wins_over_wildcard() {
        let set = PinSet::builder()
            .host("*.example.com", [A, B])
            .unwrap()
            .host("api.example.com", [B, C])
            .unwrap()
            .build()
            .unwrap();
        let c: Pin = C.parse().unwrap();
        let a: Pin = A.parse().unwrap();
        assert!(set.pins_for("api.example.com").unwrap().contains(&c));
        assert!(set.pins_for("www.example.com").unwrap().contains(&a));
        assert!(set.pins_for("example.com").is_none());
    }

    #[test]
    fn empty_set_is_rejected() {
        assert!(PinSet::builder().build().is_err());
    }

    #[test]
    fn expiry_compares_with_handshake_time() {
        let set = PinSet::builder()
            .host("a.example", [A, B])
            .unwrap()
            .expires_at(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000))
            .build()
            .unwrap();
        assert!(!set.is_expired_at(999));
        assert!(set.is_expired_at(1000));
    }
}
