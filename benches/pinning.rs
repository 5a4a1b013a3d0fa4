//! Cost of certificate verification with pins, against rustls's own
//! `WebPkiServerVerifier` (CA validation without pins) on the same chain.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::RootCertStore;
use tower_perimeter::pinning::{Pin, PinSet, PinnedVerifier};

struct Chain {
    leaf: CertificateDer<'static>,
    int: CertificateDer<'static>,
    root: CertificateDer<'static>,
}

fn chain() -> Chain {
    let ca = |cn: &str| {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p
    };
    let root_key = KeyPair::generate().unwrap();
    let root = ca("Bench Root").self_signed(&root_key).unwrap();
    let int_key = KeyPair::generate().unwrap();
    let int = ca("Bench Issuing CA")
        .signed_by(&int_key, &root, &root_key)
        .unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &int, &int_key)
        .unwrap();
    Chain {
        leaf: leaf.der().clone(),
        int: int.der().clone(),
        root: root.der().clone(),
    }
}

fn bench(c: &mut Criterion) {
    let chain = chain();
    let mut roots = RootCertStore::empty();
    roots.add(chain.root.clone()).unwrap();
    let roots = Arc::new(roots);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let name = ServerName::try_from("localhost").unwrap();
    let now = UnixTime::now();
    let root_pin = Pin::from_certificate_der(&chain.root).unwrap();
    let leaf_pin = Pin::from_certificate_der(&chain.leaf).unwrap();
    let backup = Pin::from_sha256([7; 32]);
    let intermediates = [chain.int.clone()];

    let webpki = WebPkiServerVerifier::builder_with_provider(roots.clone(), provider)
        .build()
        .unwrap();
    let pinned_root = PinnedVerifier::new(
        PinSet::builder()
            .host_pins("localhost", [root_pin, backup])
            .unwrap()
            .build()
            .unwrap(),
        roots.clone(),
    )
    .unwrap();
    let without_ca = PinnedVerifier::without_ca(
        PinSet::builder()
            .host_pins("localhost", [leaf_pin, backup])
            .unwrap()
            .build()
            .unwrap(),
    )
    .unwrap();

    let mut group = c.benchmark_group("verify_server_cert");
    group.bench_function("rustls WebPkiServerVerifier (no pins)", |b| {
        b.iter(|| {
            webpki
                .verify_server_cert(&chain.leaf, &intermediates, &name, &[], now)
                .unwrap()
        })
    });
    group.bench_function("PinnedVerifier CA + root pin", |b| {
        b.iter(|| {
            pinned_root
                .verify_server_cert(&chain.leaf, &intermediates, &name, &[], now)
                .unwrap()
        })
    });
    group.bench_function("PinnedVerifier without CA, leaf pin", |b| {
        b.iter(|| {
            without_ca
                .verify_server_cert(&chain.leaf, &[], &name, &[], now)
                .unwrap()
        })
    });
    group.finish();

    let text = root_pin.to_string();
    c.bench_function("Pin::from_str", |b| {
        b.iter(|| black_box(&text).parse::<Pin>().unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
