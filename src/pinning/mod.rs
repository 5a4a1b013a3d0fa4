//! Certificate pinning for rustls clients: hyper-rustls, reqwest, tokio-rustls.
//!
//! A pin is the SHA-256 digest of a server key ([`Pin`]); a [`PinSet`] maps
//! host patterns to pins; a [`PinnedVerifier`] plugs the set into rustls,
//! either on top of CA validation or, for self-signed servers in a private
//! network, instead of it.
//!
//! With CA validation the pins are checked against the path the validator
//! **built and trusted** (leaf, intermediates and trust anchor, including a
//! root the server never sent), not against whatever certificates the server
//! chose to send. A failure is a typed [`PinningError`] that names the host,
//! every certificate of the chain with its subject and pin, and the pins
//! configured, reachable from the rustls, `io` or HTTP-client error with
//! [`PinningError::find`].
//!
//! ```
//! use std::sync::Arc;
//! use tower_perimeter::pinning::{self, PinSet};
//!
//! let pins = PinSet::builder()
//!     .host("faces.example.com", [
//!         "sha256/47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=", // key in use
//!         "sha256/YLh1dUR9y6Kja30RrAn7JKnbQG/uEtLMkBgFF2Fuihg=", // offline backup key
//!     ])?
//!     .build()?;
//!
//! # let ca = rcgen::generate_simple_self_signed(vec!["ca".into()]).unwrap();
//! let mut roots = rustls::RootCertStore::empty();
//! # roots.add(ca.cert.der().clone()).unwrap();
//! // roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()); or your own CA
//! let config = pinning::client_config(pins, roots)?;
//!
//! // hyper-rustls:
//! let https = hyper_rustls::HttpsConnectorBuilder::new()
//!     .with_tls_config(config)
//!     .https_only()
//!     .enable_http1()
//!     .build();
//! // reqwest: reqwest::Client::builder().use_preconfigured_tls(config)
//! # let _ = https;
//! # Ok::<(), tower_perimeter::ConfigError>(())
//! ```
//!
//! To find the pins to configure, run the `pin` example on a PEM chain or a
//! live server (`cargo run --example pin --features pinning -- cert.pem`, or
//! `-- --connect host:443`), or compute them with openssl:
//!
//! ```text
//! openssl x509 -in cert.pem -pubkey -noout | openssl pkey -pubin -outform der \
//!   | openssl dgst -sha256 -binary | openssl enc -base64
//! ```
//!
//! # Choosing what to pin
//!
//! Pin a key you control or a CA you have chosen, and always a backup: the
//! builder refuses a host with a single pin unless
//! [`PinSetBuilder::allow_single_pin`] is called. Set an expiry date
//! ([`PinSetBuilder::expires_at`]) and decide what happens after it
//! ([`AfterExpiry`]); try new pins with [`PinSetBuilder::report_only`] first.
//!
//! # Crypto provider
//!
//! Everything here uses rustls's *ring* provider explicitly, independent of
//! any process-wide default; see [`PinnedVerifier`].
//!
//! # Deployment caveats
//!
//! - With CA validation, hosts that no pattern covers get CA validation
//!   alone, as in OkHttp. Without CA validation they are refused.
//! - A `ClientConfig`'s pins are fixed. Resumed TLS sessions skip
//!   certificate verification (the session was verified when it was made),
//!   so to change pins build a new `ClientConfig`, whose session cache starts
//!   empty, rather than relying on existing connections to re-check.
//! - Without CA validation the server certificate must name the host in its
//!   subjectAltName (`openssl req -x509 ... -addext subjectAltName=DNS:host`);
//!   the common name is not used, as in every current TLS client.

mod error;
mod pin;
mod pin_set;
mod verifier;

pub use error::{ChainCertificate, PinningError, PinningFailure};
pub use pin::Pin;
pub use pin_set::{AfterExpiry, HostPattern, PinSet, PinSetBuilder};
pub use verifier::{client_config, client_config_without_ca, PinnedVerifier};
