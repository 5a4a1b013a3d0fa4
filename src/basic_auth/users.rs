//! The credential set: users from code and from htpasswd files.

use super::apr1;
use super::index::NameIndex;
use crate::ConfigError;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use subtle::ConstantTimeEq;

const COMPONENT: &str = "basic-auth";
const MAX_USER_LEN: usize = 256;

/// The hash formats a [`Users`] set can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HashFormat {
    /// A salted SHA-256 digest, for users given in code. Never written to disk.
    SaltedSha256,
    /// bcrypt (`$2y$`, `$2b$`, `$2a$`), with its cost.
    Bcrypt {
        /// The cost (log2 of the rounds).
        cost: u32,
    },
    /// Apache MD5-crypt (`$apr1$`), `htpasswd -m`. Weak.
    Apr1,
    /// Unsalted SHA-1 (`{SHA}`), `htpasswd -s`. Weak.
    Sha1,
    /// SHA-256-crypt (`$5$`), `htpasswd -2`, with its rounds.
    Sha256Crypt {
        /// Rounds.
        rounds: u32,
    },
    /// SHA-512-crypt (`$6$`), `htpasswd -5`, with its rounds.
    Sha512Crypt {
        /// Rounds.
        rounds: u32,
    },
    /// Argon2 (`$argon2id$`, `$argon2i$`, `$argon2d$`).
    Argon2,
}

impl HashFormat {
    /// Whether checking a password costs enough that it runs off the async
    /// executor.
    pub fn is_slow(self) -> bool {
        !matches!(self, Self::SaltedSha256 | Self::Sha1)
    }

    /// Whether the format is considered weak (loads with a warning).
    pub fn is_weak(self) -> bool {
        matches!(self, Self::Apr1 | Self::Sha1)
    }
}

/// One stored password hash.
#[derive(Clone)]
pub(crate) enum StoredHash {
    Salted {
        salt: [u8; 16],
        digest: [u8; 32],
    },
    Bcrypt {
        hash: Box<str>,
        cost: u32,
    },
    Apr1 {
        salt: Box<str>,
        checksum: [u8; 22],
    },
    Sha1 {
        digest: [u8; 20],
    },
    ShaCrypt {
        hash: Box<str>,
        sha512: bool,
        rounds: u32,
    },
    Argon2 {
        hash: Box<str>,
    },
}

impl StoredHash {
    pub(crate) fn format(&self) -> HashFormat {
        match self {
            Self::Salted { .. } => HashFormat::SaltedSha256,
            Self::Bcrypt { cost, .. } => HashFormat::Bcrypt { cost: *cost },
            Self::Apr1 { .. } => HashFormat::Apr1,
            Self::Sha1 { .. } => HashFormat::Sha1,
            Self::ShaCrypt {
                sha512: false,
                rounds,
                ..
            } => HashFormat::Sha256Crypt { rounds: *rounds },
            Self::ShaCrypt {
                sha512: true,
                rounds,
                ..
            } => HashFormat::Sha512Crypt { rounds: *rounds },
            Self::Argon2 { .. } => HashFormat::Argon2,
        }
    }

    fn salted(password: &str) -> Self {
        let salt: [u8; 16] = rand::random();
        let digest = salted_digest(&salt, password.as_bytes());
        Self::Salted { salt, digest }
    }

    /// Checks `password` against this hash. Comparisons are constant-time.
    pub(crate) fn verify(&self, password: &[u8]) -> bool {
        use password_hash::PasswordVerifier as _;
        match self {
            Self::Salted { salt, digest } => salted_digest(salt, password).ct_eq(digest).into(),
            Self::Bcrypt { hash, .. } => bcrypt::verify(password, hash).unwrap_or(false),
            Self::Apr1 { salt, checksum } => apr1::checksum(password, salt.as_bytes())
                .ct_eq(checksum)
                .into(),
            Self::Sha1 { digest } => {
                let d: [u8; 20] = sha1::Sha1::digest(password).into();
                d.ct_eq(digest).into()
            }
            Self::ShaCrypt { hash, .. } => sha_crypt::ShaCrypt::default()
                .verify_password(password, &**hash)
                .is_ok(),
            Self::Argon2 { hash } => argon2::Argon2::default()
                .verify_password(password, &**hash)
                .is_ok(),
        }
    }

    /// Parses the hash part of an htpasswd line.
    fn parse(hash: &str) -> Result<Self, String> {
        if let Some(rest) = hash.strip_prefix("{SHA}") {
            let bytes = STANDARD
                .decode(rest)
                .map_err(|_| "{SHA} entry is not valid base64".to_string())?;
            let digest: [u8; 20] = bytes
                .try_into()
                .map_err(|_| "{SHA} entry is not a 20-byte SHA-1 digest".to_string())?;
            return Ok(Self::Sha1 { digest });
        }
        if hash.starts_with("$2y$") || hash.starts_with("$2b$") || hash.starts_with("$2a$") {
            let b = hash.as_bytes();
            let cost_ok = b.len() == 60 && b[6] == b'$';
            let cost: u32 = hash
                .get(4..6)
                .and_then(|c| c.parse().ok())
                .filter(|c| (4..=31).contains(c) && cost_ok)
                .ok_or_else(|| {
                    "bcrypt entry must look like $2y$NN$ followed by 53 characters".to_string()
                })?;
            if !b[7..].iter().all(|c| apr1::is_crypt64(*c)) {
                return Err("bcrypt entry has characters outside its alphabet".into());
            }
            return Ok(Self::Bcrypt {
                hash: hash.into(),
                cost,
            });
        }
        if let Some(rest) = hash.strip_prefix("$apr1$") {
            let (salt, sum) = rest
                .split_once('$')
                .ok_or_else(|| "$apr1$ entry must look like $apr1$SALT$CHECKSUM".to_string())?;
            if salt.len() > 8 || !salt.bytes().all(apr1::is_crypt64) {
                return Err("$apr1$ salt must be up to 8 characters of [./0-9A-Za-z]".into());
            }
            let checksum: [u8; 22] = sum
                .as_bytes()
                .try_into()
                .ok()
                .filter(|c: &[u8; 22]| c.iter().all(|b| apr1::is_crypt64(*b)))
                .ok_or_else(|| {
                    "$apr1$ checksum must be 22 characters of [./0-9A-Za-z]".to_string()
                })?;
            return Ok(Self::Apr1 {
                salt: salt.into(),
                checksum,
            });
        }
        for (prefix, sha512, len) in [("$5$", false, 43), ("$6$", true, 86)] {
            if let Some(rest) = hash.strip_prefix(prefix) {
                let mut parts: Vec<&str> = rest.split('$').collect();
                let mut rounds = 5000;
                if parts.first().is_some_and(|p| p.starts_with("rounds=")) {
                    rounds = parts[0]["rounds=".len()..]
                        .parse()
                        .map_err(|_| format!("{prefix} entry has a bad rounds= value"))?;
                    parts.remove(0);
                }
                let ok = parts.len() == 2
                    && parts[0].len() <= 16
                    && parts[1].len() == len
                    && parts[1].bytes().all(apr1::is_crypt64)
                    && !parts[0].contains(['\n', ':']);
                if !ok || !(1000..=999_999_999).contains(&rounds) {
                    return Err(format!(
                        "{prefix} entry must look like {prefix}[rounds=N$]SALT${len} characters"
                    ));
                }
                return Ok(Self::ShaCrypt {
                    hash: hash.into(),
                    sha512,
                    rounds,
                });
            }
        }
        if hash.starts_with("$argon2id$")
            || hash.starts_with("$argon2i$")
            || hash.starts_with("$argon2d$")
        {
            let fields: Vec<&str> = hash.split('$').collect();
            let ok = fields.len() == 6
                && fields[2].starts_with("v=")
                && fields[3].contains("m=")
                && fields[3].contains("t=")
                && !fields[4].is_empty()
                && !fields[5].is_empty();
            if !ok {
                return Err(
                    "argon2 entry must be in PHC form: $argon2id$v=19$m=..,t=..,p=..$SALT$HASH"
                        .into(),
                );
            }
            return Ok(Self::Argon2 { hash: hash.into() });
        }
        if hash.starts_with("$1$") {
            return Err(
                "MD5-crypt ($1$) is not an htpasswd format; re-create the entry with `htpasswd -B`"
                    .into(),
            );
        }
        Err(
            "unrecognised hash: plaintext and DES-crypt entries are not accepted; \
             re-create the entry with `htpasswd -B` (bcrypt)"
                .into(),
        )
    }
}

fn salted_digest(salt: &[u8; 16], password: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(password);
    h.finalize().into()
}

fn check_user_name(user: &str) -> Result<(), String> {
    if user.is_empty() {
        return Err("empty user name".into());
    }
    if user.len() > MAX_USER_LEN {
        return Err(format!("user name longer than {MAX_USER_LEN} bytes"));
    }
    if user.contains(':') {
        return Err("user name contains ':'".into());
    }
    if user.chars().any(char::is_control) {
        return Err("user name contains a control character".into());
    }
    Ok(())
}

/// A set of users and their password hashes.
///
/// Build one from code with [`Users::builder`], or from an htpasswd file with
/// [`Users::from_htpasswd_file`]. Passwords given in code are kept only as
/// salted SHA-256 digests; htpasswd hashes are kept as they are. `Debug`
/// prints user names and formats, never hashes.
///
/// ```
/// use tower_perimeter::basic_auth::Users;
///
/// let users = Users::builder()
///     .user("alice", "correct horse battery staple")?
///     .htpasswd("# from htpasswd -nbs bob secret\nbob:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n")?
///     .build();
/// assert_eq!(users.len(), 2);
/// assert!(users.contains("bob"));
/// # Ok::<(), tower_perimeter::ConfigError>(())
/// ```
#[derive(Clone, Default)]
pub struct Users {
    /// Position in `slots` of each user name; see [`NameIndex`].
    index: NameIndex,
    /// The entries; `slots[0]` is the dummy that stands in for unknown users
    /// so that they cost the same work as a wrong password for a known one.
    /// Empty for an empty set.
    slots: Vec<(Arc<str>, StoredHash)>,
}

impl Users {
    /// A builder for a set of users.
    pub fn builder() -> UsersBuilder {
        UsersBuilder::default()
    }

    /// Parses the text of an htpasswd file.
    ///
    /// # Errors
    ///
    /// A malformed line, an unknown or plaintext hash, or a duplicate user is a
    /// [`ConfigError`] naming the line number.
    pub fn from_htpasswd(text: &str) -> Result<Self, ConfigError> {
        Ok(Self::builder().htpasswd(text)?.build())
    }

    /// Reads and parses an htpasswd file, as made by Apache's `htpasswd` tool.
    ///
    /// # Errors
    ///
    /// An unreadable file, or any error of [`Users::from_htpasswd`].
    pub fn from_htpasswd_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        Ok(Self::builder().htpasswd_file(path)?.build())
    }

    /// The number of users.
    pub fn len(&self) -> usize {
        self.slots.len().saturating_sub(1)
    }

    /// Whether the set is empty (every request is then rejected).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `user` is in the set.
    pub fn contains(&self, user: &str) -> bool {
        self.get(user).is_some()
    }

    /// The hash format stored for `user`.
    pub fn format_of(&self, user: &str) -> Option<HashFormat> {
        self.get(user).map(|(_, h)| h.format())
    }

    /// The stored hash for `user`, or the dummy that stands in for unknown
    /// users. `None` only for an empty set.
    #[cfg(test)]
    pub(crate) fn lookup(&self, user: &str) -> Option<(&StoredHash, bool)> {
        self.entry(user).map(|(_, h, known)| (h, known))
    }

    /// The shared name and stored hash of `user`, or the nameless dummy entry
    /// for unknown users, and whether the user is known. The lookup does the
    /// same work either way (see [`NameIndex`]). `None` only for an empty set.
    pub(crate) fn entry(&self, user: &str) -> Option<(&Arc<str>, &StoredHash, bool)> {
        let at = self.index.find(user);
        let (name, hash) = self.slots.get(at as usize)?;
        Some((name, hash, at != 0))
    }

    /// The entry of a known `user`, its name compared exactly (not for the
    /// request path, where [`Users::entry`] keeps the work uniform).
    fn get(&self, user: &str) -> Option<&(Arc<str>, StoredHash)> {
        let at = self.index.find(user);
        self.slots
            .get(at as usize)
            .filter(|(name, _)| at != 0 && &**name == user)
    }
}

impl fmt::Debug for Users {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<_> = self.slots.iter().skip(1).map(|(n, _)| n).collect();
        names.sort();
        f.debug_struct("Users")
            .field("count", &self.len())
            .field("users", &names)
            .field("hashes", &"<redacted>")
            .finish()
    }
}

/// Builds a [`Users`] set; each step checks its input.
#[derive(Default)]
pub struct UsersBuilder {
    entries: HashMap<Arc<str>, StoredHash>,
}

impl fmt::Debug for UsersBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UsersBuilder")
            .field("count", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl UsersBuilder {
    /// Adds a user with a password given in code. Only a salted SHA-256
    /// digest of the password is kept.
    ///
    /// # Errors
    ///
    /// The user name is empty, too long, contains `:` or a control character,
    /// the password contains a control character, or the user already exists.
    pub fn user(mut self, user: &str, password: &str) -> Result<Self, ConfigError> {
        check_user_name(user).map_err(|m| ConfigError::new(COMPONENT, m))?;
        if password.chars().any(char::is_control) {
            return Err(ConfigError::new(
                COMPONENT,
                format!("password of user {user:?} contains a control character"),
            ));
        }
        if self.entries.contains_key(user) {
            return Err(ConfigError::new(
                COMPONENT,
                format!("duplicate user {user:?}"),
            ));
        }
        self.entries
            .insert(user.into(), StoredHash::salted(password));
        Ok(self)
    }

    /// Adds the users of htpasswd text. Blank lines and lines starting with
    /// `#` are skipped.
    ///
    /// Accepted formats: bcrypt (`$2y$`, `$2b$`, `$2a$`), `$apr1$`, `{SHA}`,
    /// SHA-crypt (`$5$`, `$6$`) and argon2 (`$argon2id$`). `$apr1$` and
    /// `{SHA}` load with a `tracing` warning. Plaintext and DES-crypt entries
    /// are refused: Apache itself ignores plaintext outside Windows, and
    /// DES-crypt truncates passwords to eight characters.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first bad line: no `:`, a bad user name,
    /// an unknown or malformed hash, or a duplicate user.
    pub fn htpasswd(mut self, text: &str) -> Result<Self, ConfigError> {
        for (index, raw) in text.split('\n').enumerate() {
            let line_no = index + 1;
            let line = raw.strip_suffix('\r').unwrap_or(raw).trim_end();
            let trimmed = line.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let err = |m: String| ConfigError::new(COMPONENT, m).at_line(line_no);
            let (user, hash) = line
                .split_once(':')
                .ok_or_else(|| err("expected `user:hash`".into()))?;
            check_user_name(user).map_err(err)?;
            let stored = StoredHash::parse(hash).map_err(|m| err(format!("user {user:?}: {m}")))?;
            if stored.format().is_weak() {
                event!(
                    warn,
                    user = user,
                    line = line_no,
                    format = ?stored.format(),
                    "htpasswd entry uses a weak hash; re-create it with `htpasswd -B`"
                );
            }
            if self.entries.insert(user.into(), stored).is_some() {
                return Err(err(format!("duplicate user {user:?}")));
            }
        }
        Ok(self)
    }

    /// Reads an htpasswd file and adds its users, as [`UsersBuilder::htpasswd`].
    ///
    /// # Errors
    ///
    /// The file cannot be read or is not UTF-8 (naming the line), or any error
    /// of [`UsersBuilder::htpasswd`].
    pub fn htpasswd_file(self, path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| {
            ConfigError::new(
                COMPONENT,
                format!("cannot read htpasswd file {}: {e}", path.display()),
            )
        })?;
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => {
                let valid = e.utf8_error().valid_up_to();
                let line = e.as_bytes()[..valid]
                    .iter()
                    .filter(|b| **b == b'\n')
                    .count()
                    + 1;
                return Err(ConfigError::new(
                    COMPONENT,
                    format!("htpasswd file {} is not UTF-8", path.display()),
                )
                .at_line(line));
            }
        };
        self.htpasswd(&text).map_err(|e| {
            let msg = format!("{}: {}", path.display(), e.message());
            let out = ConfigError::new(COMPONENT, msg);
            match e.line() {
                Some(l) => out.at_line(l),
                None => out,
            }
        })
    }

    /// The finished set.
    ///
    /// The stand-in for unknown users uses the most common format (with its
    /// cost) of the set, so that an unknown user costs the same work as a
    /// wrong password for a typical known one.
    pub fn build(self) -> Users {
        let mut counts: HashMap<HashFormat, (usize, &StoredHash)> = HashMap::new();
        for hash in self.entries.values() {
            counts.entry(hash.format()).or_insert((0, hash)).0 += 1;
        }
        // Ties are broken by the slower-looking format so the dummy never
        // costs less than a real check.
        let dummy = counts
            .values()
            .max_by_key(|(n, h)| (*n, h.format().is_slow()))
            .map(|(_, h)| (Arc::from(""), dummy_like(h)));
        let Some(dummy) = dummy else {
            return Users::default();
        };
        let mut slots = Vec::with_capacity(self.entries.len() + 1);
        slots.push(dummy);
        slots.extend(self.entries);
        let names: Vec<&str> = slots[1..].iter().map(|(n, _)| &**n).collect();
        let index = NameIndex::build(&names);
        Users { index, slots }
    }
}

/// A hash of the same algorithm and cost as `like`, for a random password
/// nobody knows. For the slow formats the stored string of a real entry is
/// reused: the work of checking against it is identical, and a match is never
/// taken as success because the caller knows the user is unknown.
fn dummy_like(like: &StoredHash) -> StoredHash {
    match like {
        StoredHash::Salted { .. } => {
            StoredHash::salted(&STANDARD.encode(rand::random::<[u8; 24]>()))
        }
        StoredHash::Sha1 { .. } => StoredHash::Sha1 {
            digest: rand::random(),
        },
        other => other.clone(),
    }
}

/// An htpasswd line `user:$2b$...` with a bcrypt hash of `password`, as
/// `htpasswd -nbB -C cost user password` prints it.
///
/// # Errors
///
/// A bad user name, a cost outside 4..=31, or a password with a control
/// character.
pub fn htpasswd_bcrypt_line(user: &str, password: &str, cost: u32) -> Result<String, ConfigError> {
    check_user_name(user).map_err(|m| ConfigError::new(COMPONENT, m))?;
    if password.chars().any(char::is_control) {
        return Err(ConfigError::new(
            COMPONENT,
            "password contains a control character",
        ));
    }
    let hash = bcrypt::hash(password, cost)
        .map_err(|e| ConfigError::new(COMPONENT, format!("bcrypt: {e}")))?;
    Ok(format!("{user}:{hash}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    // `htpasswd -nbs bob secret`
    const SHA_BOB: &str = "bob:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=";

    #[test]
    fn code_users_verify_right_and_wrong_passwords() {
        let users = Users::builder().user("alice", "pw1").unwrap().build();
        let (h, known) = users.lookup("alice").unwrap();
        assert!(known);
        assert!(h.verify(b"pw1"));
        assert!(!h.verify(b"pw2"));
    }

    #[test]
    fn sha1_entries_verify() {
        let users = Users::from_htpasswd(SHA_BOB).unwrap();
        let (h, _) = users.lookup("bob").unwrap();
        assert!(h.verify(b"secret"));
        assert!(!h.verify(b"Secret"));
        assert_eq!(users.format_of("bob"), Some(HashFormat::Sha1));
    }

    #[test]
    fn apr1_entries_verify() {
        let users = Users::from_htpasswd("u:$apr1$lZL6V/ci$eIMz/iKDkbtys/uU7LEK00").unwrap();
        let (h, _) = users.lookup("u").unwrap();
        assert!(h.verify(b"password"));
        assert!(!h.verify(b"passwore"));
    }

    #[test]
    fn bcrypt_entries_verify() {
        let line = htpasswd_bcrypt_line("carol", "pässword", 4).unwrap();
        let users = Users::from_htpasswd(&line).unwrap();
        assert_eq!(
            users.format_of("carol"),
            Some(HashFormat::Bcrypt { cost: 4 })
        );
        let (h, _) = users.lookup("carol").unwrap();
        assert!(h.verify("pässword".as_bytes()));
        assert!(!h.verify(b"password"));
    }

    #[test]
    fn argon2_entries_verify() {
        use password_hash::PasswordHasher as _;
        let hash = argon2::Argon2::default()
            .hash_password_with_salt(b"hunter2", b"saltsaltsaltsalt")
            .unwrap()
            .to_string();
        let users = Users::from_htpasswd(&format!("dave:{hash}")).unwrap();
        let (h, _) = users.lookup("dave").unwrap();
        assert!(h.verify(b"hunter2"));
        assert!(!h.verify(b"hunter3"));
    }

    #[test]
    fn sha_crypt_entries_verify() {
        // "Hello world!" hashed by `openssl passwd -5/-6` and glibc crypt(3).
        let users = Users::from_htpasswd(
            "a:$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5\n\
             b:$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1\n\
             c:$5$rounds=10000$saltstringsaltst$3xv.VbSHBb41AL9AvLeujZkZRBAwqFMz2.opqey6IcA\n",
        )
        .unwrap();
        for user in ["a", "b", "c"] {
            let (h, _) = users.lookup(user).unwrap();
            assert!(h.verify(b"Hello world!"), "{user}");
            assert!(!h.verify(b"Hello world?"), "{user}");
        }
        assert_eq!(
            users.format_of("c"),
            Some(HashFormat::Sha256Crypt { rounds: 10000 })
        );
    }

    #[test]
    fn comments_and_blank_lines_are_skipped() {
        let text = format!("# users\n\n   \n{SHA_BOB}\r\n  # indented comment\n");
        assert_eq!(Users::from_htpasswd(&text).unwrap().len(), 1);
    }

    #[test]
    fn malformed_line_names_its_line_number() {
        let err = Users::from_htpasswd(&format!("# c\n{SHA_BOB}\nnocolon\n")).unwrap_err();
        assert_eq!(err.line(), Some(3));
        assert!(err.to_string().contains("line 3"), "{err}");
    }

    #[test]
    fn plaintext_entry_is_refused() {
        let err = Users::from_htpasswd("eve:plaintext").unwrap_err();
        assert_eq!(err.line(), Some(1));
        assert!(err.message().contains("htpasswd -B"));
        assert!(
            !err.message().contains("plaintext\""),
            "must not echo the value"
        );
    }

    #[test]
    fn des_crypt_entry_is_refused() {
        assert!(Users::from_htpasswd("eve:rl0uE3Z6sOydQ").is_err());
    }

    #[test]
    fn malformed_hashes_are_refused() {
        for bad in [
            "u:{SHA}notbase64!",
            "u:{SHA}YWJj",
            "u:$2y$10$short",
            "u:$2y$99$abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz1",
            "u:$apr1$toolongsalt$eIMz/iKDkbtys/uU7LEK00",
            "u:$apr1$salt$short",
            "u:$apr1$nodollar",
            "u:$5$salt$short",
            "u:$6$rounds=abc$salt$x",
            "u:$argon2id$garbage",
            "u:$1$abc$def",
            "u:",
            ":{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=",
        ] {
            let err = Users::from_htpasswd(bad).unwrap_err();
            assert_eq!(err.line(), Some(1), "{bad}");
        }
    }

    #[test]
    fn duplicate_user_is_refused() {
        let err = Users::from_htpasswd(&format!("{SHA_BOB}\n{SHA_BOB}")).unwrap_err();
        assert_eq!(err.line(), Some(2));
        assert!(err.message().contains("duplicate"));
        assert!(Users::builder()
            .user("a", "b")
            .unwrap()
            .user("a", "c")
            .is_err());
    }

    #[test]
    fn bad_user_names_are_refused() {
        assert!(Users::builder().user("", "x").is_err());
        assert!(Users::builder().user("a:b", "x").is_err());
        assert!(Users::builder().user("a\u{7}", "x").is_err());
        assert!(Users::builder().user(&"a".repeat(300), "x").is_err());
        assert!(Users::builder().user("a", "x\ny").is_err());
    }

    #[test]
    fn unknown_user_gets_a_dummy_of_the_dominant_format() {
        let line = htpasswd_bcrypt_line("carol", "pw", 4).unwrap();
        let users = Users::from_htpasswd(&format!(
            "{line}\n{SHA_BOB}\n{}",
            htpasswd_bcrypt_line("x", "y", 4).unwrap()
        ))
        .unwrap();
        let (dummy, known) = users.lookup("mallory").unwrap();
        assert!(!known);
        assert_eq!(dummy.format(), HashFormat::Bcrypt { cost: 4 });
    }

    #[test]
    fn code_user_dummy_never_matches() {
        let users = Users::builder().user("a", "").unwrap().build();
        let (dummy, known) = users.lookup("b").unwrap();
        assert!(!known);
        assert!(!dummy.verify(b""));
    }

    #[test]
    fn empty_set_has_no_dummy() {
        assert!(Users::builder().build().lookup("x").is_none());
    }

    #[test]
    fn debug_never_prints_hashes() {
        let users = Users::from_htpasswd(SHA_BOB).unwrap();
        let dbg = format!("{users:?}");
        assert!(dbg.contains("bob"));
        assert!(!dbg.contains("5en6G6"));
    }

    #[test]
    fn unreadable_file_is_a_config_error() {
        let err = Users::from_htpasswd_file("/nonexistent/htpasswd").unwrap_err();
        assert!(err.message().contains("cannot read"));
    }

    #[test]
    fn non_utf8_file_names_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("htpasswd");
        std::fs::write(&path, b"# ok\nbob:{SHA}\xff\n").unwrap();
        let err = Users::from_htpasswd_file(&path).unwrap_err();
        assert_eq!(err.line(), Some(2));
    }
}
