//! The error returned when a layer is configured wrongly.

use std::borrow::Cow;
use std::fmt;

/// A configuration mistake, found when a layer is built rather than when a
/// request arrives.
///
/// Every builder step that can be wrong returns `Result<_, ConfigError>`, so a
/// misconfigured perimeter fails at start-up with a message that names the
/// component, the problem and, where it applies, the line of the input file.
/// The message never contains a secret (a password, a hash or a key).
///
/// ```
/// # #[cfg(feature = "basic-auth")] {
/// use tower_perimeter::basic_auth::BasicAuthLayer;
///
/// let err = BasicAuthLayer::builder()
///     .realm("bad\"realm\u{7}")
///     .unwrap_err();
/// assert_eq!(err.component(), "basic-auth");
/// assert!(err.to_string().contains("realm"));
/// # }
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ConfigError {
    component: &'static str,
    message: Cow<'static, str>,
    line: Option<usize>,
}

impl ConfigError {
    /// A new error for `component` (a feature name such as `"basic-auth"`).
    #[allow(dead_code)]
    pub(crate) fn new(component: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            component,
            message: message.into(),
            line: None,
        }
    }

    /// The same error, located at a 1-based line of an input file.
    #[allow(dead_code)]
    pub(crate) fn at_line(mut self, line: usize) -> Self {
        self.line = Some(line);
        self
    }

    /// The component that rejected the configuration, such as `"basic-auth"`,
    /// `"csp"`, `"https"` or `"pinning"`.
    pub fn component(&self) -> &'static str {
        self.component
    }

    /// What is wrong and, where possible, what to write instead.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The 1-based line of the input file the error was found on, if any.
    pub fn line(&self) -> Option<usize> {
        self.line
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}: line {}: {}", self.component, line, self.message),
            None => write!(f, "{}: {}", self.component, self.message),
        }
    }
}

impl fmt::Debug for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigError")
            .field("component", &self.component)
            .field("message", &self.message)
            .field("line", &self.line)
            .finish()
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_component_and_line() {
        let err = ConfigError::new("basic-auth", "missing ':'").at_line(3);
        assert_eq!(err.to_string(), "basic-auth: line 3: missing ':'");
        assert_eq!(err.line(), Some(3));
        assert_eq!(err.component(), "basic-auth");
        assert_eq!(err.message(), "missing ':'");
    }

    #[test]
    fn display_without_line() {
        let err = ConfigError::new("csp", "bad directive");
        assert_eq!(err.to_string(), "csp: bad directive");
        assert_eq!(err.line(), None);
    }
}
