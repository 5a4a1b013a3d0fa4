//! A dudect-style timing check of `BasicAuthLayer`.
//!
//! For each pair of request classes it takes many interleaved samples (the
//! class of each sample is drawn at random, so drift and noise hit both
//! alike), times each request through the layer, and reports Welch's t
//! statistic. |t| under 4.5 means no timing difference was found at that
//! sample size.
//!
//! ```sh
//! cargo run --release --example timing             # default sample counts
//! cargo run --release --example timing -- 200000   # samples per fast pair
//! ```
//!
//! Pairs checked, for a set of salted-digest users (given in code) and for a
//! set of bcrypt users (as in htpasswd files):
//! - an unknown user against a known user with a wrong password (names and
//!   passwords of equal length, so that only the user's existence differs);
//! - a wrong password sharing a long prefix with the right one against a
//!   random wrong password of the same length.

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, Response};
use http_body_util::Full;
use std::convert::Infallible;
use std::time::Instant;
use tower::{service_fn, Layer, ServiceExt};
use tower_perimeter::basic_auth::{
    htpasswd_bcrypt_line, BasicAuthLayer, CredentialStore, Credentials, Users,
};

const RIGHT: &str = "Correct-Horse-Battery-Staple-0042";
const WRONG: &str = "Wrong-Horse-Battery-Staple-000042";

fn header(user: &str, password: &str) -> HeaderValue {
    Credentials::new(user, password)
        .to_header_value()
        .expect("valid credentials")
}

/// Welch's t and the means of two samples, in nanoseconds.
fn welch(a: &[f64], b: &[f64]) -> (f64, f64, f64) {
    let mean = |x: &[f64]| x.iter().sum::<f64>() / x.len() as f64;
    let var =
        |x: &[f64], m: f64| x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (x.len() as f64 - 1.0);
    let (ma, mb) = (mean(a), mean(b));
    let t = (ma - mb) / (var(a, ma) / a.len() as f64 + var(b, mb) / b.len() as f64).sqrt();
    (t, ma, mb)
}

/// Drops samples above the pooled `pct` percentile (scheduler noise).
fn crop(a: &[f64], b: &[f64], pct: f64) -> (Vec<f64>, Vec<f64>) {
    let mut all: Vec<f64> = a.iter().chain(b).copied().collect();
    all.sort_by(f64::total_cmp);
    let cut = all[((all.len() as f64 - 1.0) * pct) as usize];
    (
        a.iter().copied().filter(|v| *v <= cut).collect(),
        b.iter().copied().filter(|v| *v <= cut).collect(),
    )
}

async fn measure(
    layer: &BasicAuthLayer,
    a: &HeaderValue,
    b: &HeaderValue,
    samples: usize,
) -> (Vec<f64>, Vec<f64>) {
    let svc = layer.layer(service_fn(|_r: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
    }));
    let (mut xa, mut xb) = (Vec::with_capacity(samples), Vec::with_capacity(samples));
    for _ in 0..samples {
        let pick_a: bool = rand::random();
        let value = if pick_a { a } else { b };
        let req = Request::get("/")
            .header(AUTHORIZATION, value.clone())
            .body(Full::default())
            .expect("request");
        let start = Instant::now();
        let res = svc.clone().oneshot(req).await.expect("infallible");
        let took = start.elapsed().as_nanos() as f64;
        assert_eq!(res.status(), 401, "every sample is a failure");
        if pick_a {
            xa.push(took)
        } else {
            xb.push(took)
        }
    }
    (xa, xb)
}

fn report(name: &str, a: &[f64], b: &[f64]) -> bool {
    let (t_raw, ma, mb) = welch(a, b);
    let (ca, cb) = crop(a, b, 0.95);
    let (t_crop, _, _) = welch(&ca, &cb);
    let pass = t_crop.abs() < 4.5;
    println!(
        "| {name} | {} / {} | {:.0} / {:.0} | {t_raw:+.2} | {t_crop:+.2} | {} |",
        a.len(),
        b.len(),
        ma,
        mb,
        if pass { "pass" } else { "FAIL" }
    );
    pass
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let fast_samples: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let slow_samples = (fast_samples / 50).max(200);

    // Salted-digest users, no cache (failures are never cached anyway).
    let mut builder = Users::builder();
    for i in 0..1000 {
        builder = builder
            .user(&format!("user{i}"), &format!("pw-{i}"))
            .expect("user");
    }
    let digest_users = builder.user("demo", RIGHT).expect("user").build();
    let digest = BasicAuthLayer::builder()
        .store(CredentialStore::without_cache(digest_users))
        .build()
        .expect("layer");

    // bcrypt users at Apache's default cost.
    let mut text = String::new();
    for user in ["demo", "alice", "bob"] {
        text.push_str(&htpasswd_bcrypt_line(user, RIGHT, 5).expect("hash"));
        text.push('\n');
    }
    let bcrypt = BasicAuthLayer::builder()
        .store(CredentialStore::without_cache(
            Users::from_htpasswd(&text).expect("htpasswd"),
        ))
        .build()
        .expect("layer");

    let prefix = format!("{}X", &RIGHT[..RIGHT.len() - 1]);
    let random: String = (0..RIGHT.len())
        .map(|i| (b'a' + (i * 7 % 26) as u8) as char)
        .collect();

    println!("| pair | samples A / B | mean ns A / B | t (raw) | t (cropped p95) | |t| < 4.5 |");
    println!("|---|---|---|---|---|---|");
    let mut ok = true;
    for (label, layer, n) in [
        ("digest", &digest, fast_samples),
        ("bcrypt-5", &bcrypt, slow_samples),
    ] {
        // Same lengths on both sides: only the user's existence differs.
        let (a, b) = measure(layer, &header("dem0", WRONG), &header("demo", WRONG), n).await;
        ok &= report(&format!("{label}: unknown user vs wrong password"), &a, &b);
        let (a, b) = measure(layer, &header("demo", &prefix), &header("demo", &random), n).await;
        ok &= report(&format!("{label}: long shared prefix vs random"), &a, &b);
    }
    if !ok {
        std::process::exit(1);
    }
}
