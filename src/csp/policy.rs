//! A typed, validating Content-Security-Policy builder.

use super::nonce::{CspNonce, NONCE_LEN};
use crate::ConfigError;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use bytes::{BufMut as _, Bytes, BytesMut};
use http::HeaderValue;
use std::fmt;
use std::sync::Arc;

const COMPONENT: &str = "csp";

fn err(message: impl Into<std::borrow::Cow<'static, str>>) -> ConfigError {
    ConfigError::new(COMPONENT, message)
}

macro_rules! directives {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal, $method:ident, $kind:ident; )*) => {
        /// A directive that takes a source list, such as `script-src`.
        ///
        /// Directives that take something else have their own
        /// [`PolicyBuilder`] methods: [`report_uri`](PolicyBuilder::report_uri),
        /// [`report_to`](PolicyBuilder::report_to),
        /// [`upgrade_insecure_requests`](PolicyBuilder::upgrade_insecure_requests),
        /// [`sandbox`](PolicyBuilder::sandbox) and
        /// [`require_trusted_types_for_script`](PolicyBuilder::require_trusted_types_for_script).
        ///
        /// See [MDN: Content-Security-Policy](https://developer.mozilla.org/en-US/docs/Web/HTTP/Headers/Content-Security-Policy).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Directive {
            $( $(#[$doc])* $variant, )*
        }

        impl Directive {
            /// Every source-list directive, in specification order.
            pub const ALL: &'static [Directive] = &[$(Directive::$variant),*];

            /// The directive's name as written in a policy, e.g. `"script-src"`.
            pub fn name(self) -> &'static str {
                match self { $( Directive::$variant => $name, )* }
            }

            fn kind(self) -> Kind {
                match self { $( Directive::$variant => Kind::$kind, )* }
            }
        }

        impl PolicyBuilder {
            $(
                #[doc = concat!("Adds sources to `", $name, "` (see [`Directive::", stringify!($variant), "`]).")]
                pub fn $method(self, sources: impl IntoIterator<Item = Source>) -> Self {
                    self.directive(Directive::$variant, sources)
                }
            )*
        }
    };
}

/// What a directive's sources may contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `default-src`: everything.
    Default,
    /// Script directives: nonces, hashes, `'strict-dynamic'`, eval keywords.
    Script,
    /// Style directives: nonces, hashes, `'unsafe-inline'`, `'unsafe-hashes'`.
    Style,
    /// Other fetch directives (`img-src`, `connect-src`, ...): locations only.
    Fetch,
    /// `base-uri`, `form-action`, `frame-ancestors`: locations only.
    Navigation,
}

directives! {
    /// `default-src`: the fallback for every fetch directive not given.
    DefaultSrc = "default-src", default_src, Default;
    /// `script-src`: where scripts may come from.
    ScriptSrc = "script-src", script_src, Script;
    /// `script-src-elem`: `<script>` elements (overrides `script-src`).
    ScriptSrcElem = "script-src-elem", script_src_elem, Script;
    /// `script-src-attr`: inline event handlers (overrides `script-src`).
    ScriptSrcAttr = "script-src-attr", script_src_attr, Script;
    /// `style-src`: where style sheets may come from.
    StyleSrc = "style-src", style_src, Style;
    /// `style-src-elem`: `<style>` and `<link rel=stylesheet>` elements.
    StyleSrcElem = "style-src-elem", style_src_elem, Style;
    /// `style-src-attr`: inline `style` attributes.
    StyleSrcAttr = "style-src-attr", style_src_attr, Style;
    /// `img-src`: images and favicons.
    ImgSrc = "img-src", img_src, Fetch;
    /// `font-src`: fonts loaded with `@font-face`.
    FontSrc = "font-src", font_src, Fetch;
    /// `connect-src`: `fetch`, XHR, WebSocket, EventSource, `sendBeacon`.
    ConnectSrc = "connect-src", connect_src, Fetch;
    /// `media-src`: `<audio>`, `<video>` and `<track>`.
    MediaSrc = "media-src", media_src, Fetch;
    /// `object-src`: `<object>` and `<embed>`.
    ObjectSrc = "object-src", object_src, Fetch;
    /// `frame-src`: `<iframe>` and `<frame>`.
    FrameSrc = "frame-src", frame_src, Fetch;
    /// `child-src`: frames and workers, where `frame-src`/`worker-src` are absent.
    ChildSrc = "child-src", child_src, Fetch;
    /// `worker-src`: `Worker`, `SharedWorker` and `ServiceWorker` scripts.
    WorkerSrc = "worker-src", worker_src, Fetch;
    /// `manifest-src`: web app manifests.
    ManifestSrc = "manifest-src", manifest_src, Fetch;
    /// `base-uri`: the URLs a `<base>` element may set.
    BaseUri = "base-uri", base_uri, Navigation;
    /// `form-action`: where forms may be submitted.
    FormAction = "form-action", form_action, Navigation;
    /// `frame-ancestors`: who may embed this page (replaces `X-Frame-Options`).
    FrameAncestors = "frame-ancestors", frame_ancestors, Navigation;
}

impl Directive {
    /// Looks a directive up by name (case-insensitive).
    ///
    /// # Errors
    ///
    /// Unknown, misspelt or deprecated names, and names of directives that do
    /// not take a source list, with a message saying what to write instead.
    pub fn from_name(name: &str) -> Result<Self, ConfigError> {
        let lower = name.to_ascii_lowercase();
        if let Some(d) = Self::ALL.iter().find(|d| d.name() == lower) {
            return Ok(*d);
        }
        let msg = match lower.as_str() {
            "report-uri" => "`report-uri` takes URLs, not sources: use PolicyBuilder::report_uri".into(),
            "report-to" => "`report-to` takes an endpoint name: use PolicyBuilder::report_to".into(),
            "upgrade-insecure-requests" => "`upgrade-insecure-requests` takes no value: use PolicyBuilder::upgrade_insecure_requests".into(),
            "sandbox" => "`sandbox` takes flags, not sources: use PolicyBuilder::sandbox".into(),
            "require-trusted-types-for" => "use PolicyBuilder::require_trusted_types_for_script".into(),
            "block-all-mixed-content" => "`block-all-mixed-content` is deprecated: use upgrade-insecure-requests (PolicyBuilder::upgrade_insecure_requests)".into(),
            "plugin-types" => "`plugin-types` is obsolete: write `object-src 'none'` instead".into(),
            "prefetch-src" => "`prefetch-src` was removed from the specification: use default-src".into(),
            "referrer" => "`referrer` is obsolete: send a `Referrer-Policy` header instead".into(),
            "reflected-xss" => "`reflected-xss` is obsolete: a nonce-based script-src is the protection".into(),
            _ => match closest(&lower) {
                Some(near) => format!("unknown directive `{}`; did you mean `{near}`?", printable(name)),
                None => format!("unknown directive `{}`", printable(name)),
            },
        };
        Err(err(msg))
    }
}

impl fmt::Display for Directive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The closest known directive name, if it is within two edits.
fn closest(name: &str) -> Option<&'static str> {
    let extra = [
        "report-uri",
        "report-to",
        "upgrade-insecure-requests",
        "sandbox",
    ];
    Directive::ALL
        .iter()
        .map(|d| d.name())
        .chain(extra)
        .map(|known| (edit_distance(name, known), known))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, known)| known)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// A value as it may be quoted in an error message: control characters
/// escaped, long values cut.
fn printable(value: &str) -> String {
    let mut out: String = value
        .chars()
        .take(80)
        .flat_map(char::escape_debug)
        .collect();
    if value.chars().count() > 80 {
        out.push('…');
    }
    out
}

/// A hash algorithm for a hash source (`'sha256-…'`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlgorithm {
    /// SHA-256 (32-byte digest).
    Sha256,
    /// SHA-384 (48-byte digest).
    Sha384,
    /// SHA-512 (64-byte digest).
    Sha512,
}

impl HashAlgorithm {
    fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "sha256",
            Self::Sha384 => "sha384",
            Self::Sha512 => "sha512",
        }
    }

    fn digest_len(self) -> usize {
        match self {
            Self::Sha256 => 32,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
        }
    }
}

/// One source expression in a directive's source list.
///
/// Keywords are variants, so they are always quoted correctly; locations
/// ([`host`](Source::host), [`scheme`](Source::scheme)) and
/// [hashes](Source::hash) are checked when the policy is
/// [built](PolicyBuilder::build).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Source {
    /// `'self'`: the page's own origin.
    SelfOrigin,
    /// `'none'`: nothing. It cannot be combined with other sources.
    None,
    /// `'nonce-…'`: the per-response nonce, filled in by
    /// [`CspLayer`](super::CspLayer) for every response.
    Nonce,
    /// `'strict-dynamic'`: scripts loaded by a nonced or hashed script are
    /// trusted too; host and `'self'` sources are then ignored by browsers
    /// that understand it.
    StrictDynamic,
    /// `'wasm-unsafe-eval'`: allows compiling WebAssembly without allowing
    /// JavaScript `eval`.
    WasmUnsafeEval,
    /// `'unsafe-inline'`: any inline script or style. Ignored by browsers when a
    /// nonce or hash is present in the same directive.
    UnsafeInline,
    /// `'unsafe-eval'`: JavaScript `eval` and friends.
    UnsafeEval,
    /// `'unsafe-hashes'`: lets hashes match inline event handlers and `style`
    /// attributes.
    UnsafeHashes,
    /// `'report-sample'`: include the first 40 characters of a blocked script
    /// or style in violation reports.
    ReportSample,
    /// `'inline-speculation-rules'`: inline speculation-rules scripts.
    InlineSpeculationRules,
    /// `'sha256-…'` and friends: the base64 digest of an allowed inline script
    /// or style.
    Hash(HashAlgorithm, String),
    /// A host source such as `https://api.example.com`, `*.example.com:443`
    /// or `https://cdn.example.com/lib/`.
    Host(String),
    /// A scheme source such as `https:`, `blob:` or `data:`.
    Scheme(String),
}

impl Source {
    /// A host source such as `https://api.example.com` (checked at build).
    pub fn host(host: impl Into<String>) -> Self {
        Self::Host(host.into())
    }

    /// A scheme source: `Source::scheme("blob")` or `Source::scheme("blob:")`
    /// both give `blob:` (checked at build).
    pub fn scheme(scheme: impl Into<String>) -> Self {
        Self::Scheme(scheme.into())
    }

    /// A hash source from the base64 of a digest (checked at build).
    pub fn hash(algorithm: HashAlgorithm, base64_digest: impl Into<String>) -> Self {
        Self::Hash(algorithm, base64_digest.into())
    }

    /// `Source::hash(HashAlgorithm::Sha256, base64_digest)`.
    pub fn sha256(base64_digest: impl Into<String>) -> Self {
        Self::hash(HashAlgorithm::Sha256, base64_digest)
    }

    /// Parses one source expression as written in a policy, such as
    /// `'self'`, `https:` or `https://api.example.com`. The per-response nonce
    /// is written `'nonce'`, without a value.
    ///
    /// # Errors
    ///
    /// An expression that is not valid, with a message saying what to write
    /// instead: unquoted keywords, a fixed nonce, unknown quoted keywords,
    /// hashes of the wrong length or alphabet, separators or whitespace in a
    /// location.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let source = match text.to_ascii_lowercase().as_str() {
            "'self'" => Self::SelfOrigin,
            "'none'" => Self::None,
            "'nonce'" => Self::Nonce,
            "'strict-dynamic'" => Self::StrictDynamic,
            "'wasm-unsafe-eval'" => Self::WasmUnsafeEval,
            "'unsafe-inline'" => Self::UnsafeInline,
            "'unsafe-eval'" => Self::UnsafeEval,
            "'unsafe-hashes'" => Self::UnsafeHashes,
            "'report-sample'" => Self::ReportSample,
            "'inline-speculation-rules'" => Self::InlineSpeculationRules,
            lower if lower.starts_with("'nonce-") => {
                return Err(err(format!(
                    "`{}` is a fixed nonce, which would be reused on every response; write 'nonce' (Source::Nonce) and the layer fills in a fresh one",
                    printable(text)
                )));
            }
            lower if lower.starts_with('\'') => {
                let inner = text.trim_matches('\'');
                let hash = [
                    HashAlgorithm::Sha256,
                    HashAlgorithm::Sha384,
                    HashAlgorithm::Sha512,
                ]
                .into_iter()
                .find_map(|alg| {
                    inner
                        .get(..alg.name().len() + 1)
                        .filter(|p| p.eq_ignore_ascii_case(&format!("{}-", alg.name())))
                        .map(|p| (alg, &inner[p.len()..]))
                });
                match hash {
                    Some((alg, digest)) if text.len() >= 2 && text.ends_with('\'') => {
                        Self::Hash(alg, digest.to_owned())
                    }
                    _ => {
                        return Err(err(format!(
                            "unknown quoted source `{}`; quoted sources are keywords such as 'self', 'none', 'strict-dynamic', 'wasm-unsafe-eval', the nonce ('nonce') or hashes ('sha256-…')",
                            printable(text)
                        )));
                    }
                }
            }
            lower if is_scheme_source(lower) => Self::Scheme(text.to_owned()),
            _ => Self::Host(text.to_owned()),
        };
        source.validate()?;
        Ok(source)
    }

    /// Checks a source on its own (not its place in a directive).
    fn validate(&self) -> Result<(), ConfigError> {
        match self {
            Self::Hash(alg, digest) => validate_hash(*alg, digest),
            Self::Scheme(scheme) => validate_scheme(scheme),
            Self::Host(host) => validate_host(host),
            _ => Ok(()),
        }
    }

    fn is_location(&self) -> bool {
        matches!(self, Self::SelfOrigin | Self::Host(_) | Self::Scheme(_))
    }

    /// Renders the source; `Nonce` is rendered by the caller.
    fn render(&self, out: &mut String) {
        match self {
            Self::SelfOrigin => out.push_str("'self'"),
            Self::None => out.push_str("'none'"),
            Self::Nonce => out.push_str("'nonce-'"),
            Self::StrictDynamic => out.push_str("'strict-dynamic'"),
            Self::WasmUnsafeEval => out.push_str("'wasm-unsafe-eval'"),
            Self::UnsafeInline => out.push_str("'unsafe-inline'"),
            Self::UnsafeEval => out.push_str("'unsafe-eval'"),
            Self::UnsafeHashes => out.push_str("'unsafe-hashes'"),
            Self::ReportSample => out.push_str("'report-sample'"),
            Self::InlineSpeculationRules => out.push_str("'inline-speculation-rules'"),
            Self::Hash(alg, digest) => {
                out.push('\'');
                out.push_str(alg.name());
                out.push('-');
                out.push_str(digest);
                out.push('\'');
            }
            Self::Host(host) => out.push_str(host),
            Self::Scheme(scheme) => {
                out.push_str(scheme);
                if !scheme.ends_with(':') {
                    out.push(':');
                }
            }
        }
    }

    fn describe(&self) -> String {
        let mut s = String::new();
        match self {
            Self::Nonce => s.push_str("'nonce-…'"),
            other => other.render(&mut s),
        }
        s
    }
}

fn is_scheme_source(lower: &str) -> bool {
    lower
        .strip_suffix(':')
        .is_some_and(|s| is_scheme_name(s) && !s.is_empty())
}

fn is_scheme_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// Rejects separators, whitespace, control and non-ASCII characters, which
/// would split or corrupt the header.
fn check_chars(what: &str, value: &str) -> Result<(), ConfigError> {
    if value.is_empty() {
        return Err(err(format!("{what} is empty")));
    }
    for c in value.chars() {
        let problem = match c {
            ';' => "`;` ends a directive",
            ',' => "`,` separates policies",
            c if c.is_whitespace() => "whitespace separates sources; pass each source separately",
            c if c.is_control() => "control characters are not allowed",
            c if !c.is_ascii() => "non-ASCII characters are not allowed; write internationalised host names in punycode (xn--…)",
            '"' | '\\' | '\'' => "quotes and backslashes are not allowed in a location",
            _ => continue,
        };
        return Err(err(format!("{what} `{}`: {problem}", printable(value))));
    }
    Ok(())
}

const KEYWORDS: &[(&str, &str)] = &[
    ("self", "Source::SelfOrigin"),
    ("none", "Source::None"),
    ("strict-dynamic", "Source::StrictDynamic"),
    ("wasm-unsafe-eval", "Source::WasmUnsafeEval"),
    ("unsafe-inline", "Source::UnsafeInline"),
    ("unsafe-eval", "Source::UnsafeEval"),
    ("unsafe-hashes", "Source::UnsafeHashes"),
    ("report-sample", "Source::ReportSample"),
    ("inline-speculation-rules", "Source::InlineSpeculationRules"),
    ("nonce", "Source::Nonce"),
];

fn validate_host(host: &str) -> Result<(), ConfigError> {
    let lower = host.to_ascii_lowercase();
    if let Some((kw, variant)) = KEYWORDS.iter().find(|(kw, _)| *kw == lower) {
        return Err(err(format!(
            "`{}` is a keyword and must be quoted: write '{kw}' ({variant}); unquoted it means a host named `{kw}`",
            printable(host)
        )));
    }
    if host.starts_with('\'') {
        return Err(err(format!(
            "`{}` is quoted, so it is not a host: use the matching Source variant for keywords, Source::Nonce for the nonce and Source::hash for hashes",
            printable(host)
        )));
    }
    check_chars("host source", host)?;
    if is_scheme_source(&lower) {
        return Err(err(format!(
            "`{}` is a scheme, not a host: use Source::scheme(\"{}\")",
            printable(host),
            printable(host)
        )));
    }
    // [scheme "://"] host [":" port] [path]
    let rest = match lower.split_once("://") {
        Some((scheme, rest)) => {
            if !is_scheme_name(scheme) {
                return Err(err(format!(
                    "host source `{}`: `{}` is not a valid scheme",
                    printable(host),
                    printable(scheme)
                )));
            }
            rest
        }
        None => lower.as_str(),
    };
    let (authority, _path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let (hostname, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    if let Some(port) = port {
        let valid = port == "*"
            || (!port.is_empty()
                && port.len() <= 5
                && port.bytes().all(|b| b.is_ascii_digit())
                && port.parse::<u32>().is_ok_and(|p| p <= 65535));
        if !valid {
            return Err(err(format!(
                "host source `{}`: port `{}` must be a number up to 65535 or `*`",
                printable(host),
                printable(port)
            )));
        }
    }
    let labels = match hostname {
        "*" => return Ok(()),
        h => h.strip_prefix("*.").unwrap_or(h),
    };
    let valid_labels = !labels.is_empty()
        && labels.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !valid_labels {
        return Err(err(format!(
            "host source `{}`: `{}` is not a host name; write e.g. `api.example.com`, `*.example.com` or `https://api.example.com:8443` (IP literals in brackets are not part of CSP)",
            printable(host),
            printable(hostname)
        )));
    }
    Ok(())
}

fn validate_scheme(scheme: &str) -> Result<(), ConfigError> {
    check_chars("scheme source", scheme)?;
    let name = scheme.strip_suffix(':').unwrap_or(scheme);
    if name.contains("//") || name.contains('/') {
        return Err(err(format!(
            "scheme source `{}` contains a path: use Source::host for `scheme://host` sources",
            printable(scheme)
        )));
    }
    if !is_scheme_name(name) {
        return Err(err(format!(
            "scheme source `{}`: a scheme is a letter followed by letters, digits, `+`, `-` or `.`, e.g. `https:` or `blob:`",
            printable(scheme)
        )));
    }
    Ok(())
}

fn validate_hash(alg: HashAlgorithm, digest: &str) -> Result<(), ConfigError> {
    let name = alg.name();
    if let Some(bad) = digest
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '-' | '_' | '=')))
    {
        return Err(err(format!(
            "{name} hash `{}` contains `{}`; write the digest in base64 (A-Z a-z 0-9 + / or - _, with = padding)",
            printable(digest),
            bad.escape_debug()
        )));
    }
    let decoded = [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(digest).ok());
    let expected = alg.digest_len();
    match decoded {
        Some(bytes) if bytes.len() == expected => Ok(()),
        Some(bytes) => Err(err(format!(
            "{name} hash decodes to {} bytes, but a {name} digest is {expected} bytes ({} base64 characters); was it made with another algorithm or written in hex?",
            bytes.len(),
            expected.div_ceil(3) * 4
        ))),
        None => Err(err(format!(
            "{name} hash `{}` is not valid base64",
            printable(digest)
        ))),
    }
}

/// A directive that does not take a source list.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Extra {
    UpgradeInsecureRequests,
    Sandbox(Vec<String>),
    RequireTrustedTypesForScript,
    ReportUri(Vec<String>),
    ReportTo(String),
}

impl Extra {
    fn name(&self) -> &'static str {
        match self {
            Self::UpgradeInsecureRequests => "upgrade-insecure-requests",
            Self::Sandbox(_) => "sandbox",
            Self::RequireTrustedTypesForScript => "require-trusted-types-for",
            Self::ReportUri(_) => "report-uri",
            Self::ReportTo(_) => "report-to",
        }
    }
}

const SANDBOX_FLAGS: &[&str] = &[
    "allow-downloads",
    "allow-forms",
    "allow-modals",
    "allow-orientation-lock",
    "allow-pointer-lock",
    "allow-popups",
    "allow-popups-to-escape-sandbox",
    "allow-presentation",
    "allow-same-origin",
    "allow-scripts",
    "allow-storage-access-by-user-activation",
    "allow-top-navigation",
    "allow-top-navigation-by-user-activation",
    "allow-top-navigation-to-custom-protocols",
];

/// Builder for a [`Policy`]; see [`Policy::builder`].
///
/// Steps never fail; [`build`](Self::build) checks everything at once and
/// returns the first mistake. Adding sources to a directive that already has
/// some extends its list, so a preset can be extended.
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct PolicyBuilder {
    directives: Vec<(Directive, Vec<Source>)>,
    extras: Vec<Extra>,
    errors: Vec<ConfigError>,
}

impl PolicyBuilder {
    /// Adds `sources` to `directive`, creating it if needed.
    pub fn directive(
        mut self,
        directive: Directive,
        sources: impl IntoIterator<Item = Source>,
    ) -> Self {
        let index = match self.directives.iter().position(|(d, _)| *d == directive) {
            Some(i) => i,
            None => {
                self.directives.push((directive, Vec::new()));
                self.directives.len() - 1
            }
        };
        let list = &mut self.directives[index].1;
        for source in sources {
            if !list.contains(&source) {
                list.push(source);
            }
        }
        self
    }

    /// Replaces the sources of `directive`.
    pub fn set(self, directive: Directive, sources: impl IntoIterator<Item = Source>) -> Self {
        self.remove(directive).directive(directive, sources)
    }

    /// Removes `directive` and its sources.
    pub fn remove(mut self, directive: Directive) -> Self {
        self.directives.retain(|(d, _)| *d != directive);
        self
    }

    /// Adds a directive written as text, e.g. `("img-src", "'self' data:")`.
    /// Mistakes (unknown names, bad sources) are reported by
    /// [`build`](Self::build).
    pub fn parse_directive(mut self, name: &str, sources: &str) -> Self {
        let lower = name.to_ascii_lowercase();
        let value: Vec<&str> = sources.split_ascii_whitespace().collect();
        match lower.as_str() {
            "upgrade-insecure-requests" if value.is_empty() => {
                return self.upgrade_insecure_requests()
            }
            "report-uri" => return value.into_iter().fold(self, |b, uri| b.report_uri(uri)),
            "report-to" if value.len() == 1 => return self.report_to(value[0]),
            "sandbox" => return self.sandbox(value),
            "require-trusted-types-for" if value == ["'script'"] => {
                return self.require_trusted_types_for_script()
            }
            _ => {}
        }
        match Directive::from_name(name) {
            Ok(directive) => {
                if self.directives.iter().any(|(d, _)| *d == directive) {
                    self.errors.push(err(format!(
                        "`{directive}` is given twice; browsers ignore all but the first, so merge the source lists"
                    )));
                    return self;
                }
                let mut parsed = Vec::new();
                for text in value {
                    match Source::parse(text) {
                        Ok(source) => parsed.push(source),
                        Err(e) => {
                            self.errors
                                .push(err(format!("{directive}: {}", e.message())));
                            return self;
                        }
                    }
                }
                if parsed.is_empty() {
                    self.errors.push(err(format!(
                        "`{directive}` has no sources; write 'none' to allow nothing"
                    )));
                    return self;
                }
                self.directive(directive, parsed)
            }
            Err(e) => {
                self.errors.push(e);
                self
            }
        }
    }

    /// `upgrade-insecure-requests`: the browser fetches `http:` subresources
    /// over `https:`.
    pub fn upgrade_insecure_requests(mut self) -> Self {
        if !self.extras.contains(&Extra::UpgradeInsecureRequests) {
            self.extras.push(Extra::UpgradeInsecureRequests);
        }
        self
    }

    /// `sandbox`: applies an iframe-like sandbox to the page, with the given
    /// `allow-*` flags (none for the strictest sandbox).
    pub fn sandbox<I, T>(mut self, flags: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.extras.retain(|e| !matches!(e, Extra::Sandbox(_)));
        self.extras
            .push(Extra::Sandbox(flags.into_iter().map(Into::into).collect()));
        self
    }

    /// `require-trusted-types-for 'script'`: DOM XSS sinks only accept
    /// Trusted Types.
    pub fn require_trusted_types_for_script(mut self) -> Self {
        if !self.extras.contains(&Extra::RequireTrustedTypesForScript) {
            self.extras.push(Extra::RequireTrustedTypesForScript);
        }
        self
    }

    /// `report-uri`: where browsers POST `application/csp-report` violation
    /// reports (see [`ReportReceiver`](super::ReportReceiver)). May be given
    /// more than once. Browsers that support `report-to` ignore `report-uri`
    /// when both are present, so giving both serves old and new browsers.
    pub fn report_uri(mut self, uri: impl Into<String>) -> Self {
        let uri = uri.into();
        match self.extras.iter_mut().find_map(|e| match e {
            Extra::ReportUri(list) => Some(list),
            _ => None,
        }) {
            Some(list) => list.push(uri),
            None => self.extras.push(Extra::ReportUri(vec![uri])),
        }
        self
    }

    /// `report-to`: the name of a reporting endpoint, declared in the
    /// `Reporting-Endpoints` header (see
    /// [`CspLayerBuilder::reporting_endpoint`](super::CspLayerBuilder::reporting_endpoint)),
    /// where browsers POST `application/reports+json` reports.
    pub fn report_to(mut self, endpoint: impl Into<String>) -> Self {
        self.extras.retain(|e| !matches!(e, Extra::ReportTo(_)));
        self.extras.push(Extra::ReportTo(endpoint.into()));
        self
    }

    /// Checks the policy and renders it once, leaving only the nonce to be
    /// filled in per response.
    ///
    /// # Errors
    ///
    /// The first of: a directive given twice or unknown (from
    /// [`parse_directive`](Self::parse_directive)), an empty policy, an empty
    /// source list, `'none'` combined with other sources, a source in a
    /// directive where it has no effect (a nonce in `img-src`), a
    /// `'strict-dynamic'` without a nonce or hash beside it, a malformed host,
    /// scheme or hash, an unknown sandbox flag, or a bad report endpoint.
    pub fn build(self) -> Result<Policy, ConfigError> {
        if let Some(e) = self.errors.into_iter().next() {
            return Err(e);
        }
        if self.directives.is_empty() && self.extras.is_empty() {
            return Err(err(
                "the policy is empty; start from Policy::builder().default_src([Source::SelfOrigin]) or the Face SDK preset",
            ));
        }
        for (directive, sources) in &self.directives {
            check_directive(*directive, sources)?;
        }
        for extra in &self.extras {
            check_extra(extra)?;
        }
        Ok(Policy::render(self.directives, self.extras))
    }
}

fn check_directive(directive: Directive, sources: &[Source]) -> Result<(), ConfigError> {
    if sources.is_empty() {
        return Err(err(format!(
            "`{directive}` has no sources; add Source::None to allow nothing"
        )));
    }
    for source in sources {
        source
            .validate()
            .map_err(|e| err(format!("{directive}: {}", e.message())))?;
    }
    if sources.contains(&Source::None) && sources.len() > 1 {
        let others: Vec<String> = sources
            .iter()
            .filter(|s| **s != Source::None)
            .map(Source::describe)
            .collect();
        return Err(err(format!(
            "`{directive}` combines 'none' with {}; browsers ignore 'none' then, so remove 'none' or the other sources",
            others.join(" ")
        )));
    }
    let kind = directive.kind();
    for source in sources {
        let allowed = match source {
            Source::None => true,
            s if s.is_location() => true,
            Source::Nonce | Source::Hash(..) | Source::UnsafeInline | Source::ReportSample => {
                matches!(kind, Kind::Default | Kind::Script | Kind::Style)
            }
            Source::UnsafeHashes => matches!(kind, Kind::Default | Kind::Script | Kind::Style),
            Source::StrictDynamic
            | Source::WasmUnsafeEval
            | Source::UnsafeEval
            | Source::InlineSpeculationRules => matches!(kind, Kind::Default | Kind::Script),
            _ => false,
        };
        if !allowed {
            let what = if matches!(kind, Kind::Style) {
                "style directives"
            } else {
                "this directive"
            };
            return Err(err(format!(
                "{} has no effect in `{directive}` ({what} only load from locations); put it in script-src or style-src, or remove it",
                source.describe()
            )));
        }
    }
    if sources.contains(&Source::StrictDynamic)
        && !sources
            .iter()
            .any(|s| matches!(s, Source::Nonce | Source::Hash(..)))
    {
        return Err(err(format!(
            "`{directive}` has 'strict-dynamic' without a nonce or hash, which blocks every script; add Source::Nonce"
        )));
    }
    Ok(())
}

fn check_extra(extra: &Extra) -> Result<(), ConfigError> {
    match extra {
        Extra::UpgradeInsecureRequests | Extra::RequireTrustedTypesForScript => Ok(()),
        Extra::Sandbox(flags) => {
            for flag in flags {
                if !SANDBOX_FLAGS.contains(&flag.as_str()) {
                    return Err(err(format!(
                        "unknown sandbox flag `{}`; known flags are {}",
                        printable(flag),
                        SANDBOX_FLAGS.join(", ")
                    )));
                }
            }
            Ok(())
        }
        Extra::ReportUri(uris) => {
            for uri in uris {
                check_chars("report-uri", uri)?;
                if uri.starts_with('\'') || uri.contains('"') {
                    return Err(err(format!(
                        "report-uri `{}` must be a URL, such as `/csp-reports` or `https://reports.example.com/csp`",
                        printable(uri)
                    )));
                }
            }
            Ok(())
        }
        Extra::ReportTo(name) => check_endpoint_name(name),
    }
}

/// Endpoint names are structured-field keys: lowercase letter or `*`, then
/// lowercase letters, digits, `_`, `-`, `.`, `*`.
pub(crate) fn check_endpoint_name(name: &str) -> Result<(), ConfigError> {
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '*')
        && chars.all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.' | '*')
        });
    if valid {
        Ok(())
    } else {
        Err(err(format!(
            "reporting endpoint name `{}` must start with a lowercase letter and contain only lowercase letters, digits, `_`, `-` and `.`, e.g. `csp-endpoint`",
            printable(name)
        )))
    }
}

/// A checked Content-Security-Policy, rendered once at build time.
///
/// Rendering for a response only splices the nonce into the pre-rendered
/// text: one allocation and a copy, no formatting.
///
/// ```
/// use tower_perimeter::csp::{Policy, Source};
///
/// let policy = Policy::builder()
///     .default_src([Source::None])
///     .script_src([Source::Nonce, Source::StrictDynamic, Source::WasmUnsafeEval])
///     .img_src([Source::SelfOrigin, Source::scheme("data:")])
///     .report_uri("/csp-reports")
///     .build()?;
/// assert_eq!(
///     policy.template(),
///     "default-src 'none'; script-src 'nonce-{nonce}' 'strict-dynamic' 'wasm-unsafe-eval'; \
///      img-src 'self' data:; report-uri /csp-reports"
/// );
///
/// // Mistakes are caught when building, with a hint.
/// let err = Policy::builder().script_src([Source::host("self")]).build().unwrap_err();
/// assert!(err.message().contains("write 'self'"));
/// # Ok::<(), tower_perimeter::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct Policy {
    inner: Arc<Rendered>,
}

#[derive(Debug)]
struct Rendered {
    /// Literal text between nonce positions; `segments.len() - 1` nonces.
    segments: Box<[Bytes]>,
    /// Total length of a rendered header.
    len: usize,
    directives: Vec<(Directive, Vec<Source>)>,
    extras: Vec<Extra>,
}

impl Policy {
    /// Starts an empty policy.
    pub fn builder() -> PolicyBuilder {
        PolicyBuilder::default()
    }

    /// Parses a policy written as text, such as
    /// `"default-src 'self'; script-src 'nonce' 'strict-dynamic'"`. The
    /// per-response nonce is written `'nonce'`.
    ///
    /// # Errors
    ///
    /// As [`PolicyBuilder::build`], plus a `,` (which would make two
    /// policies).
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        if text.contains(',') {
            return Err(err(
                "a policy cannot contain `,` (it would separate two policies); give each policy to the layer separately",
            ));
        }
        let mut builder = Self::builder();
        for part in text.split(';') {
            let part = part.trim_matches(|c: char| c.is_ascii_whitespace());
            if part.is_empty() {
                continue;
            }
            let (name, value) = part
                .split_once(|c: char| c.is_ascii_whitespace())
                .unwrap_or((part, ""));
            builder = builder.parse_directive(name, value);
        }
        builder.build()
    }

    /// A builder holding this policy's directives, to derive a variant.
    pub fn to_builder(&self) -> PolicyBuilder {
        PolicyBuilder {
            directives: self.inner.directives.clone(),
            extras: self.inner.extras.clone(),
            errors: Vec::new(),
        }
    }

    fn render(directives: Vec<(Directive, Vec<Source>)>, extras: Vec<Extra>) -> Self {
        let mut segments = Vec::new();
        let mut current = String::new();
        let mut parts = 0;
        let mut separator = |current: &mut String| {
            if parts > 0 {
                current.push_str("; ");
            }
            parts += 1;
        };
        for (directive, sources) in &directives {
            separator(&mut current);
            current.push_str(directive.name());
            for source in sources {
                current.push(' ');
                if *source == Source::Nonce {
                    current.push_str("'nonce-");
                    segments.push(Bytes::from(std::mem::take(&mut current)));
                    current.push('\'');
                } else {
                    source.render(&mut current);
                }
            }
        }
        for extra in &extras {
            separator(&mut current);
            current.push_str(extra.name());
            match extra {
                Extra::UpgradeInsecureRequests => {}
                Extra::RequireTrustedTypesForScript => current.push_str(" 'script'"),
                Extra::Sandbox(flags) => flags.iter().for_each(|f| {
                    current.push(' ');
                    current.push_str(f);
                }),
                Extra::ReportUri(uris) => uris.iter().for_each(|u| {
                    current.push(' ');
                    current.push_str(u);
                }),
                Extra::ReportTo(name) => {
                    current.push(' ');
                    current.push_str(name);
                }
            }
        }
        segments.push(Bytes::from(current));
        let nonces = segments.len() - 1;
        let len = segments.iter().map(Bytes::len).sum::<usize>() + nonces * NONCE_LEN;
        Self {
            inner: Arc::new(Rendered {
                segments: segments.into_boxed_slice(),
                len,
                directives,
                extras,
            }),
        }
    }

    /// Whether the policy contains the nonce, i.e. whether rendering it
    /// reveals a per-response secret.
    pub fn uses_nonce(&self) -> bool {
        self.inner.segments.len() > 1
    }

    /// The header value for a response whose nonce is `nonce`.
    pub fn header_value(&self, nonce: &CspNonce) -> HeaderValue {
        let segments = &self.inner.segments;
        if segments.len() == 1 {
            // No nonce: the pre-rendered text is shared, not copied.
            return HeaderValue::from_maybe_shared(segments[0].clone())
                .unwrap_or_else(|_| HeaderValue::from_static(FAIL_CLOSED));
        }
        let mut buf = BytesMut::with_capacity(self.inner.len);
        for (i, segment) in segments.iter().enumerate() {
            if i > 0 {
                buf.put_slice(nonce.as_bytes());
            }
            buf.put_slice(segment);
        }
        // Every character was checked at build time and the nonce is base64,
        // so this cannot fail; if it somehow did, block everything rather
        // than send no policy.
        HeaderValue::from_maybe_shared(buf.freeze())
            .unwrap_or_else(|_| HeaderValue::from_static(FAIL_CLOSED))
    }

    /// The endpoint name of the policy's `report-to` directive, if any.
    pub fn report_to_endpoint(&self) -> Option<&str> {
        self.inner.extras.iter().find_map(|e| match e {
            Extra::ReportTo(name) => Some(name.as_str()),
            _ => None,
        })
    }

    /// The policy text with `{nonce}` where the nonce goes.
    pub fn template(&self) -> String {
        let mut out = String::with_capacity(self.inner.len);
        for (i, segment) in self.inner.segments.iter().enumerate() {
            if i > 0 {
                out.push_str("{nonce}");
            }
            out.push_str(&String::from_utf8_lossy(segment));
        }
        out
    }
}

/// Sent if rendering ever failed: blocks everything.
const FAIL_CLOSED: &str = "default-src 'none'";

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Policy").field(&self.template()).finish()
    }
}

impl PartialEq for Policy {
    fn eq(&self, other: &Self) -> bool {
        self.inner.segments == other.inner.segments
    }
}

impl Eq for Policy {}

impl std::str::FromStr for Policy {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build_err(builder: PolicyBuilder) -> String {
        builder.build().unwrap_err().message().to_owned()
    }

    #[test]
    fn nonce_is_spliced_into_every_nonce_position() {
        let policy = Policy::builder()
            .script_src([Source::Nonce])
            .style_src([Source::Nonce, Source::SelfOrigin])
            .build()
            .unwrap();
        let nonce = CspNonce::generate();
        let value = policy.header_value(&nonce);
        assert_eq!(
            value.to_str().unwrap(),
            format!("script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}' 'self'")
        );
        assert!(policy.uses_nonce());
    }

    #[test]
    fn policy_without_nonce_renders_as_is() {
        let policy = Policy::builder()
            .default_src([Source::SelfOrigin])
            .build()
            .unwrap();
        assert!(!policy.uses_nonce());
        assert_eq!(
            policy.header_value(&CspNonce::generate()),
            "default-src 'self'"
        );
    }

    #[test]
    fn adding_to_a_directive_extends_its_list_without_duplicates() {
        let policy = Policy::builder()
            .img_src([Source::SelfOrigin])
            .img_src([Source::scheme("blob"), Source::SelfOrigin])
            .build()
            .unwrap();
        assert_eq!(policy.template(), "img-src 'self' blob:");
    }

    #[test]
    fn unquoted_keyword_is_rejected_with_the_quoted_form() {
        let msg = build_err(Policy::builder().script_src([Source::host("strict-dynamic")]));
        assert!(msg.contains("'strict-dynamic'"), "{msg}");
        assert!(msg.contains("Source::StrictDynamic"), "{msg}");
    }

    #[test]
    fn quoted_text_as_host_is_rejected() {
        let msg = build_err(Policy::builder().script_src([Source::host("'self'")]));
        assert!(msg.contains("quoted"), "{msg}");
    }

    #[test]
    fn separators_whitespace_and_control_characters_in_values_are_rejected() {
        for (bad, word) in [
            ("a.com;script-src *", "`;`"),
            ("a.com,b.com", "`,`"),
            ("a.com b.com", "whitespace"),
            ("a.com\r\nX-Evil: 1", "whitespace"),
            ("a.com\u{7}", "control"),
            ("exämple.com", "punycode"),
        ] {
            let msg = build_err(Policy::builder().connect_src([Source::host(bad)]));
            assert!(msg.contains(word), "{bad:?}: {msg}");
        }
        let msg = build_err(Policy::builder().report_uri("/r; script-src *"));
        assert!(msg.contains("`;`"), "{msg}");
    }

    #[test]
    fn none_mixed_with_other_sources_is_rejected() {
        let msg = build_err(Policy::builder().object_src([Source::None, Source::SelfOrigin]));
        assert!(msg.contains("'none'") && msg.contains("'self'"), "{msg}");
    }

    #[test]
    fn hash_with_bad_characters_or_length_is_rejected() {
        let msg = build_err(Policy::builder().script_src([Source::sha256("abc$def")]));
        assert!(msg.contains("`$`"), "{msg}");
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let msg = build_err(Policy::builder().script_src([Source::sha256(hex)]));
        assert!(msg.contains("32 bytes"), "{msg}");
        let ok = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
        let policy = Policy::builder()
            .script_src([Source::sha256(ok)])
            .build()
            .unwrap();
        assert_eq!(policy.template(), format!("script-src 'sha256-{ok}'"));
    }

    #[test]
    fn unknown_directive_is_rejected_with_a_suggestion() {
        let msg = build_err(Policy::builder().parse_directive("scirpt-src", "'self'"));
        assert!(msg.contains("did you mean `script-src`"), "{msg}");
        let msg = Directive::from_name("block-all-mixed-content")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("upgrade-insecure-requests"), "{msg}");
    }

    #[test]
    fn fixed_nonce_in_text_is_rejected() {
        let msg = Policy::parse("script-src 'nonce-abc123'")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("reused"), "{msg}");
    }

    #[test]
    fn nonce_in_a_location_directive_is_rejected() {
        let msg = build_err(Policy::builder().img_src([Source::Nonce]));
        assert!(msg.contains("no effect in `img-src`"), "{msg}");
        let msg = build_err(Policy::builder().style_src([Source::StrictDynamic, Source::Nonce]));
        assert!(msg.contains("style-src"), "{msg}");
    }

    #[test]
    fn strict_dynamic_without_nonce_or_hash_is_rejected() {
        let msg = build_err(Policy::builder().script_src([Source::StrictDynamic]));
        assert!(msg.contains("Source::Nonce"), "{msg}");
    }

    #[test]
    fn empty_policy_and_empty_source_list_are_rejected() {
        assert!(build_err(Policy::builder()).contains("empty"));
        assert!(build_err(Policy::builder().img_src([])).contains("no sources"));
    }

    #[test]
    fn duplicate_directive_in_text_is_rejected() {
        let msg = Policy::parse("img-src 'self'; img-src data:")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("twice"), "{msg}");
    }

    #[test]
    fn bad_ports_hosts_and_schemes_are_rejected() {
        for bad in ["a.com:99999", "a.com:x", "a..com", "[::1]", "1http://a.com"] {
            assert!(
                Policy::builder()
                    .connect_src([Source::host(bad)])
                    .build()
                    .is_err(),
                "{bad}"
            );
        }
        for bad in ["ht tp", "1http", "https://x"] {
            assert!(
                Policy::builder()
                    .connect_src([Source::scheme(bad)])
                    .build()
                    .is_err(),
                "{bad}"
            );
        }
        assert!(
            build_err(Policy::builder().connect_src([Source::host("https:")]))
                .contains("Source::scheme")
        );
    }

    #[test]
    fn good_locations_are_accepted() {
        let policy = Policy::builder()
            .connect_src([
                Source::host("https://api.example.com:8443/v1/"),
                Source::host("*.example.com"),
                Source::host("*"),
                Source::host("wss://ws.example.com:*"),
                Source::scheme("https"),
            ])
            .build()
            .unwrap();
        assert!(policy.template().ends_with("https:"));
    }

    #[test]
    fn report_endpoints_and_extras_are_checked_and_rendered() {
        let policy = Policy::builder()
            .default_src([Source::None])
            .upgrade_insecure_requests()
            .sandbox(["allow-scripts"])
            .report_uri("/csp-reports")
            .report_to("csp-endpoint")
            .build()
            .unwrap();
        assert_eq!(
            policy.template(),
            "default-src 'none'; upgrade-insecure-requests; sandbox allow-scripts; report-uri /csp-reports; report-to csp-endpoint"
        );
        assert!(build_err(Policy::builder().report_to("Bad Name")).contains("lowercase"));
        assert!(build_err(Policy::builder().sandbox(["allow-everything"]))
            .contains("unknown sandbox flag"));
    }

    #[test]
    fn text_policy_round_trips_through_the_template() {
        let text = "default-src 'none'; script-src 'nonce' 'strict-dynamic' 'wasm-unsafe-eval'; img-src 'self' blob: data:; report-uri /r; report-to csp";
        let policy = Policy::parse(text).unwrap();
        let again =
            Policy::parse(&policy.template().replace("'nonce-{nonce}'", "'nonce'")).unwrap();
        assert_eq!(policy, again);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn any_accepted_source_renders_as_one_directive(text in "\\PC{0,40}") {
                if let Ok(source) = Source::parse(&text) {
                    if let Ok(policy) = Policy::builder().default_src([source]).build() {
                        let header = policy.header_value(&CspNonce::generate());
                        let rendered = header.to_str().unwrap();
                        prop_assert!(!rendered.contains(';'), "{rendered}");
                        prop_assert!(!rendered.contains(','), "{rendered}");
                        prop_assert_eq!(rendered.split(' ').count(), 2, "{}", rendered);
                    }
                }
            }

            #[test]
            fn policy_parse_never_panics(text in "\\PC{0,120}") {
                if let Ok(policy) = Policy::parse(&text) {
                    let header = policy.header_value(&CspNonce::generate());
                    prop_assert!(header.to_str().is_ok());
                    prop_assert!(!header.to_str().unwrap().contains(','));
                }
            }

            #[test]
            fn well_formed_hosts_are_accepted(
                scheme in proptest::option::of("(https?|wss?)"),
                labels in proptest::collection::vec("[a-z0-9][a-z0-9-]{0,9}", 1..4),
                port in proptest::option::of(1u32..=65535),
                path in proptest::option::of("/[a-z0-9/._-]{0,12}"),
            ) {
                let mut host = String::new();
                if let Some(scheme) = scheme {
                    host.push_str(&scheme);
                    host.push_str("://");
                }
                host.push_str(&labels.join("."));
                if let Some(port) = port {
                    host.push_str(&format!(":{port}"));
                }
                host.push_str(path.as_deref().unwrap_or(""));
                let keyword = KEYWORDS.iter().any(|(kw, _)| *kw == host);
                let result = Policy::builder().connect_src([Source::host(host.clone())]).build();
                prop_assert_eq!(result.is_ok(), !keyword, "{}", host);
            }

            #[test]
            fn injected_separators_are_always_rejected(
                before in "[a-z]{1,8}",
                sep in prop_oneof![Just(';'), Just(','), Just(' '), Just('\n'), Just('\r'), Just('\t'), Just('\0')],
                after in "[a-z -]{0,12}",
            ) {
                let value = format!("{before}.example.com{sep}{after}");
                prop_assert!(Policy::builder().connect_src([Source::host(value.clone())]).build().is_err());
                prop_assert!(Policy::builder().report_uri(value.clone()).build().is_err());
                prop_assert!(Policy::builder().script_src([Source::sha256(value)]).build().is_err());
            }
        }
    }

    #[test]
    fn to_builder_derives_a_variant() {
        let base = Policy::builder()
            .default_src([Source::SelfOrigin])
            .build()
            .unwrap();
        let variant = base
            .to_builder()
            .img_src([Source::scheme("data")])
            .build()
            .unwrap();
        assert_eq!(variant.template(), "default-src 'self'; img-src data:");
    }
}
