//! Apache's `$apr1$` password hash (MD5-crypt with the `$apr1$` magic).
//!
//! No maintained crate implements this variant: the MD5-crypt in `pwhash`
//! fixes the `$1$` magic, which is part of the digest input, so it cannot
//! verify `$apr1$` entries. The scheme is written here over the RustCrypto
//! `md-5` primitive; the tests check it against Apache's `htpasswd` output.

use md5::{Digest, Md5};

const MAGIC: &[u8] = b"$apr1$";
const ITOA64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Whether `c` belongs to the crypt base64 alphabet.
pub(crate) fn is_crypt64(c: u8) -> bool {
    ITOA64.contains(&c)
}

/// The 22-character checksum of `password` with `salt` (at most 8 bytes are used).
pub(crate) fn checksum(password: &[u8], salt: &[u8]) -> [u8; 22] {
    let salt = &salt[..salt.len().min(8)];

    let mut alt = Md5::new();
    alt.update(password);
    alt.update(salt);
    alt.update(password);
    let alt = alt.finalize();

    let mut ctx = Md5::new();
    ctx.update(password);
    ctx.update(MAGIC);
    ctx.update(salt);
    let mut left = password.len();
    while left > 0 {
        let n = left.min(16);
        ctx.update(&alt[..n]);
        left -= n;
    }
    let mut bits = password.len();
    while bits > 0 {
        if bits & 1 == 1 {
            ctx.update([0u8]);
        } else {
            ctx.update(&password[..1]);
        }
        bits >>= 1;
    }
    let mut digest = ctx.finalize();

    for round in 0..1000 {
        let mut ctx = Md5::new();
        if round & 1 == 1 {
            ctx.update(password);
        } else {
            ctx.update(digest);
        }
        if round % 3 != 0 {
            ctx.update(salt);
        }
        if round % 7 != 0 {
            ctx.update(password);
        }
        if round & 1 == 1 {
            ctx.update(digest);
        } else {
            ctx.update(password);
        }
        digest = ctx.finalize();
    }

    let d = digest;
    let mut out = [0u8; 22];
    let mut pos = 0;
    let mut put = |mut v: u32, n: usize| {
        for _ in 0..n {
            out[pos] = ITOA64[(v & 0x3f) as usize];
            v >>= 6;
            pos += 1;
        }
    };
    for (a, b, c) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
        put(
            (u32::from(d[a]) << 16) | (u32::from(d[b]) << 8) | u32::from(d[c]),
            4,
        );
    }
    put(u32::from(d[11]), 2);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vector_matches() {
        // A published `$apr1$` entry for the password "password".
        assert_eq!(
            &checksum(b"password", b"lZL6V/ci"),
            b"eIMz/iKDkbtys/uU7LEK00"
        );
    }

    #[test]
    fn wrong_password_gives_another_checksum() {
        assert_ne!(
            &checksum(b"Password", b"lZL6V/ci"),
            b"eIMz/iKDkbtys/uU7LEK00"
        );
    }

    #[test]
    fn empty_and_long_passwords_do_not_panic() {
        let _ = checksum(b"", b"abc");
        let _ = checksum(&[b'x'; 1000], b"");
    }
}
