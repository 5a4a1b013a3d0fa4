//! The layer and its builder.

use super::html::Placeholder;
use super::policy::{check_endpoint_name, Policy};
use super::service::Csp;
use crate::ConfigError;
use http::HeaderValue;
use std::fmt;
use std::sync::Arc;
use tower_layer::Layer;

/// What to do when the handler's response already carries a
/// `Content-Security-Policy` (or `…-Report-Only`) header.
///
/// The layer never overwrites a handler's policy unless told to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ExistingPolicy {
    /// Keep the handler's header and add nothing (the default): the handler
    /// knows best about its own response.
    #[default]
    Keep,
    /// Replace the handler's header with the layer's policy.
    Replace,
    /// Send the layer's policy as a second header beside the handler's.
    /// Browsers enforce both, so a resource must pass each of them.
    Append,
}

/// Per-response choice of policy, set by a handler in the response's
/// extensions (for axum, return `Extension(CspOverride::…)` as a response
/// part).
///
/// ```
/// # #[cfg(feature = "axum")] {
/// use axum::{response::IntoResponse, Extension};
/// use tower_perimeter::csp::CspOverride;
///
/// // A page that embeds a third-party widget and manages its own policy.
/// async fn widget() -> impl IntoResponse {
///     (Extension(CspOverride::Skip), "<p>no CSP header from the layer</p>")
/// }
/// # }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum CspOverride {
    /// Send no policy header from the layer for this response.
    Skip,
    /// Enforce this policy instead of the layer's (report-only unchanged).
    Enforce(Policy),
    /// Use this report-only policy instead of the layer's (enforced policy
    /// unchanged).
    ReportOnly(Policy),
    /// Exactly these policies; `None` sends no header of that kind.
    Policies {
        /// The enforced policy, if any.
        enforce: Option<Policy>,
        /// The report-only policy, if any.
        report_only: Option<Policy>,
    },
}

pub(crate) struct Config {
    pub(crate) enforce: Option<Policy>,
    pub(crate) report_only: Option<Policy>,
    pub(crate) reporting_endpoints: Option<HeaderValue>,
    pub(crate) existing: ExistingPolicy,
    pub(crate) html_only: bool,
    pub(crate) cache_control: bool,
    pub(crate) placeholder: Option<Arc<Placeholder>>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CspLayer")
            .field("enforce", &self.enforce)
            .field("report_only", &self.report_only)
            .field("reporting_endpoints", &self.reporting_endpoints)
            .field("existing", &self.existing)
            .field("html_only", &self.html_only)
            .field("cache_control", &self.cache_control)
            .field(
                "placeholder",
                &self
                    .placeholder
                    .as_ref()
                    .map(|p| String::from_utf8_lossy(p.as_bytes()).into_owned()),
            )
            .finish()
    }
}

/// Layer that gives every response a fresh CSP nonce; see the
/// [module docs](super).
#[derive(Clone)]
#[must_use]
pub struct CspLayer {
    config: Arc<Config>,
}

impl CspLayer {
    /// A layer that enforces `policy` with the default settings: a handler's
    /// own policy is kept, nonced responses get `Cache-Control: private,
    /// no-store` unless they set their own, every response gets the header,
    /// no body substitution.
    pub fn new(policy: Policy) -> Self {
        Self {
            config: Arc::new(Config {
                enforce: Some(policy),
                report_only: None,
                reporting_endpoints: None,
                existing: ExistingPolicy::Keep,
                html_only: false,
                cache_control: true,
                placeholder: None,
            }),
        }
    }

    /// A builder for every setting.
    pub fn builder() -> CspLayerBuilder {
        CspLayerBuilder::default()
    }
}

impl fmt::Debug for CspLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.config.fmt(f)
    }
}

impl<S> Layer<S> for CspLayer {
    type Service = Csp<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Csp::new(inner, self.config.clone())
    }
}

/// Builder for [`CspLayer`]; see [`CspLayer::builder`].
#[derive(Debug)]
#[must_use]
pub struct CspLayerBuilder {
    enforce: Option<Policy>,
    report_only: Option<Policy>,
    endpoints: Vec<(String, String)>,
    existing: ExistingPolicy,
    html_only: bool,
    cache_control: bool,
    placeholder: Option<String>,
}

impl Default for CspLayerBuilder {
    fn default() -> Self {
        Self {
            enforce: None,
            report_only: None,
            endpoints: Vec::new(),
            existing: ExistingPolicy::Keep,
            html_only: false,
            cache_control: true,
            placeholder: None,
        }
    }
}

/// The default placeholder for [`CspLayerBuilder::substitute_placeholder`].
pub const DEFAULT_PLACEHOLDER: &str = "{{csp-nonce}}";

const MAX_PLACEHOLDER: usize = 64;

impl CspLayerBuilder {
    /// The policy browsers enforce (`Content-Security-Policy`).
    pub fn enforce(mut self, policy: Policy) -> Self {
        self.enforce = Some(policy);
        self
    }

    /// A policy browsers only report on
    /// (`Content-Security-Policy-Report-Only`); it may be given together
    /// with an enforced policy, for example to try a stricter policy before
    /// enforcing it. Give it a `report-uri` or `report-to`, or it does
    /// nothing.
    pub fn report_only(mut self, policy: Policy) -> Self {
        self.report_only = Some(policy);
        self
    }

    /// Declares a reporting endpoint in the
    /// [`Reporting-Endpoints`](https://developer.mozilla.org/en-US/docs/Web/HTTP/Headers/Reporting-Endpoints)
    /// header, for a policy's [`report_to`](super::PolicyBuilder::report_to).
    /// `url` may be relative (`/csp-reports`); browsers only deliver to
    /// secure (`https:` or loopback) origins.
    ///
    /// # Errors
    ///
    /// A name that is not a lowercase token, or a URL with quotes,
    /// backslashes, whitespace, control or non-ASCII characters.
    pub fn reporting_endpoint(mut self, name: &str, url: &str) -> Result<Self, ConfigError> {
        check_endpoint_name(name)?;
        let bad = url.is_empty()
            || url
                .chars()
                .any(|c| !c.is_ascii_graphic() || c == '"' || c == '\\');
        if bad {
            return Err(ConfigError::new(
                "csp",
                format!(
                    "reporting endpoint `{name}`: the URL must be non-empty printable ASCII without quotes, backslashes or spaces (percent-encode them), e.g. `/csp-reports`"
                ),
            ));
        }
        self.endpoints.retain(|(n, _)| n != name);
        self.endpoints.push((name.to_owned(), url.to_owned()));
        Ok(self)
    }

    /// What to do with a handler's own policy header; see
    /// [`ExistingPolicy`]. The default is [`ExistingPolicy::Keep`].
    pub fn existing_policy(mut self, existing: ExistingPolicy) -> Self {
        self.existing = existing;
        self
    }

    /// Only add policies to HTML responses (`text/html`,
    /// `application/xhtml+xml`). Off by default: a policy on a JSON or image
    /// response costs little and protects it if a browser renders it.
    pub fn html_only(mut self, html_only: bool) -> Self {
        self.html_only = html_only;
        self
    }

    /// Whether responses that carry a nonce get `Cache-Control: private,
    /// no-store` when the handler set no `Cache-Control` (on by default).
    ///
    /// A cached page replays an old nonce that no longer matches a fresh
    /// header, and a shared cache hands one user's nonce to everyone, which
    /// makes it guessable. Turn this off only if something else keeps these
    /// pages out of caches.
    pub fn cache_control(mut self, enabled: bool) -> Self {
        self.cache_control = enabled;
        self
    }

    /// Replace `placeholder` (such as [`DEFAULT_PLACEHOLDER`],
    /// `{{csp-nonce}}`) with the response's nonce in HTML bodies, so static
    /// HTML files can carry nonces: `<script nonce="{{csp-nonce}}">`.
    ///
    /// Only uncompressed `text/html`/`application/xhtml+xml` bodies are
    /// rewritten; `Content-Length` is removed since the length changes.
    ///
    /// # Errors
    ///
    /// A placeholder shorter than 4 or longer than 64 bytes, with control
    /// characters, or made only of letters, digits, `-` and `_` (it would
    /// match ordinary text or a nonce).
    pub fn substitute_placeholder(mut self, placeholder: &str) -> Result<Self, ConfigError> {
        let reason = if placeholder.len() < 4 || placeholder.len() > MAX_PLACEHOLDER {
            Some("must be 4 to 64 bytes long")
        } else if placeholder.chars().any(char::is_control) {
            Some("must not contain control characters")
        } else if placeholder
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            Some("needs a delimiter such as braces, or it could match ordinary text")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(ConfigError::new(
                "csp",
                format!("the nonce placeholder {reason}; the default is `{DEFAULT_PLACEHOLDER}`"),
            ));
        }
        self.placeholder = Some(placeholder.to_owned());
        Ok(self)
    }

    /// Checks the settings and builds the layer.
    ///
    /// # Errors
    ///
    /// No policy at all, or a policy whose `report-to` names an endpoint
    /// that was not declared with
    /// [`reporting_endpoint`](Self::reporting_endpoint).
    pub fn build(self) -> Result<CspLayer, ConfigError> {
        if self.enforce.is_none() && self.report_only.is_none() {
            return Err(ConfigError::new(
                "csp",
                "no policy: call .enforce(policy) and/or .report_only(policy)",
            ));
        }
        for policy in self.enforce.iter().chain(&self.report_only) {
            if let Some(name) = policy.report_to_endpoint() {
                if !self.endpoints.iter().any(|(n, _)| n == name) {
                    return Err(ConfigError::new(
                        "csp",
                        format!(
                            "the policy reports to `{name}`, but no such endpoint is declared; add .reporting_endpoint(\"{name}\", \"/csp-reports\")"
                        ),
                    ));
                }
            }
        }
        let reporting_endpoints = if self.endpoints.is_empty() {
            None
        } else {
            let text = self
                .endpoints
                .iter()
                .map(|(name, url)| format!("{name}=\"{url}\""))
                .collect::<Vec<_>>()
                .join(", ");
            Some(HeaderValue::try_from(text).map_err(|_| {
                ConfigError::new("csp", "the reporting endpoints do not form a valid header")
            })?)
        };
        Ok(CspLayer {
            config: Arc::new(Config {
                enforce: self.enforce,
                report_only: self.report_only,
                reporting_endpoints,
                existing: self.existing,
                html_only: self.html_only,
                cache_control: self.cache_control,
                placeholder: self.placeholder.map(|p| Arc::new(Placeholder::new(&p))),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::csp::Source;

    fn policy() -> Policy {
        Policy::builder()
            .script_src([Source::Nonce])
            .build()
            .unwrap()
    }

    #[test]
    fn layer_without_policy_is_rejected() {
        let err = CspLayer::builder().build().unwrap_err();
        assert!(err.message().contains(".enforce(policy)"), "{err}");
    }

    #[test]
    fn report_to_an_undeclared_endpoint_is_rejected() {
        let p = Policy::builder()
            .script_src([Source::Nonce])
            .report_to("csp")
            .build()
            .unwrap();
        let err = CspLayer::builder()
            .report_only(p.clone())
            .build()
            .unwrap_err();
        assert!(
            err.message().contains("reporting_endpoint(\"csp\""),
            "{err}"
        );
        let layer = CspLayer::builder()
            .report_only(p)
            .reporting_endpoint("csp", "/csp-reports")
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(
            layer.config.reporting_endpoints.as_ref().unwrap(),
            "csp=\"/csp-reports\""
        );
    }

    #[test]
    fn bad_reporting_endpoints_are_rejected() {
        assert!(CspLayer::builder().reporting_endpoint("Csp", "/r").is_err());
        assert!(CspLayer::builder()
            .reporting_endpoint("csp", "/r\", x=\"y")
            .is_err());
        assert!(CspLayer::builder()
            .reporting_endpoint("csp", "/a b")
            .is_err());
        assert!(CspLayer::builder().reporting_endpoint("csp", "").is_err());
    }

    #[test]
    fn weak_placeholders_are_rejected() {
        for bad in ["{}", "nonce", "csp_nonce_here", "{{\n}}", &"{".repeat(65)] {
            assert!(
                CspLayer::builder().substitute_placeholder(bad).is_err(),
                "{bad:?}"
            );
        }
        assert!(CspLayer::builder()
            .enforce(policy())
            .substitute_placeholder(DEFAULT_PLACEHOLDER)
            .unwrap()
            .build()
            .is_ok());
    }

    #[test]
    fn debug_shows_settings() {
        let debug = format!("{:?}", CspLayer::new(policy()));
        assert!(debug.contains("script-src 'nonce-{nonce}'"), "{debug}");
    }
}
