//! Tenant API keys: `tg-<env>-<public id>-<secret>`.
//!
//! - `env`: 1–12 lowercase letters or digits (`live`, `test`), so a leaked key says where it works.
//! - `public id`: 12 base62 characters (71 bits), shown in listings and logs to name the key.
//! - `secret`: 32 base62 characters (190 bits) from the OS's randomness (passed in by the caller:
//!   this crate does no I/O).
//!
//! Only the SHA-256 of the whole key is stored; lookups are by that hash, compared in constant
//! time. A key is shown once, at creation; afterwards only its masked label
//! (`tg-live-AbCdEf012345-…wxyz`). Every malformed key is the same error, so a caller learns
//! nothing about which part was wrong.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const PREFIX: &str = "tg-";
pub const PUBLIC_ID_LEN: usize = 12;
pub const SECRET_LEN: usize = 32;
const MAX_ENV_LEN: usize = 12;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Random bytes needed to mint one key (rejection sampling discards a few).
pub const RANDOM_BYTES: usize = 64;

/// The SHA-256 digest of a whole key: what is stored and looked up.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyHash(pub [u8; 32]);

impl KeyHash {
    pub fn of(key: &str) -> Self {
        Self(Sha256::digest(key.as_bytes()).into())
    }

    /// Constant-time equality.
    pub fn ct_eq(&self, other: &KeyHash) -> bool {
        bool::from(self.0.ct_eq(&other.0))
    }

    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyHash({}…)", &self.to_hex()[..8])
    }
}

/// The one error for any key that is not well-formed. Deliberately carries no detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed API key")]
pub struct MalformedKey;

/// A presented key whose shape is right (it may still be unknown, revoked or expired).
#[derive(Clone, PartialEq, Eq)]
pub struct PresentedKey<'a> {
    pub env: &'a str,
    pub public_id: &'a str,
    pub hash: KeyHash,
}

impl fmt::Debug for PresentedKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PresentedKey(tg-{}-{}-…)", self.env, self.public_id)
    }
}

fn is_base62(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Checks a presented key's shape and hashes it. Does the same work whatever part is wrong.
pub fn parse(key: &str) -> Result<PresentedKey<'_>, MalformedKey> {
    parse_hashed(key, KeyHash::of(key))
}

/// [`parse`] for a caller that already hashed the key (to compare it with another credential).
pub fn parse_hashed(key: &str, hash: KeyHash) -> Result<PresentedKey<'_>, MalformedKey> {
    let mut ok = key.len() <= PREFIX.len() + MAX_ENV_LEN + 2 + PUBLIC_ID_LEN + SECRET_LEN;
    let rest = key.strip_prefix(PREFIX).unwrap_or("");
    ok &= key.starts_with(PREFIX);
    let mut parts = rest.splitn(3, '-');
    let env = parts.next().unwrap_or("");
    let public_id = parts.next().unwrap_or("");
    let secret = parts.next().unwrap_or("");
    ok &= !env.is_empty()
        && env.len() <= MAX_ENV_LEN
        && env
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    ok &= public_id.len() == PUBLIC_ID_LEN && is_base62(public_id);
    ok &= secret.len() == SECRET_LEN && is_base62(secret);
    if ok {
        Ok(PresentedKey {
            env,
            public_id,
            hash,
        })
    } else {
        Err(MalformedKey)
    }
}

/// A freshly minted key: the plaintext is shown once, then dropped.
pub struct NewKey {
    pub plaintext: String,
    pub public_id: String,
    pub hash: KeyHash,
    pub label: String,
}

impl fmt::Debug for NewKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewKey")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

/// Why a key could not be minted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MintError {
    #[error("key environment must be 1-12 lowercase letters or digits")]
    BadEnv,
    #[error("not enough random bytes to mint a key")]
    NotEnoughRandomness,
}

/// Mints a key for `env` from uniformly random bytes (rejection sampling: no modulo bias).
pub fn mint(env: &str, random: &[u8; RANDOM_BYTES]) -> Result<NewKey, MintError> {
    if env.is_empty()
        || env.len() > MAX_ENV_LEN
        || !env
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return Err(MintError::BadEnv);
    }
    // 62 * 4 = 248: bytes >= 248 are discarded, the rest map uniformly onto base62.
    let mut chars = random
        .iter()
        .filter(|b| **b < 248)
        .map(|b| BASE62[usize::from(*b % 62)] as char);
    let public_id: String = chars.by_ref().take(PUBLIC_ID_LEN).collect();
    let secret: String = chars.take(SECRET_LEN).collect();
    if public_id.len() < PUBLIC_ID_LEN || secret.len() < SECRET_LEN {
        return Err(MintError::NotEnoughRandomness);
    }
    let plaintext = format!("{PREFIX}{env}-{public_id}-{secret}");
    let label = mask(env, &public_id, &secret);
    Ok(NewKey {
        hash: KeyHash::of(&plaintext),
        plaintext,
        public_id,
        label,
    })
}

/// `tg-live-AbCdEf012345-…wxyz`: enough to recognise a key, useless to use it.
pub fn mask(env: &str, public_id: &str, secret: &str) -> String {
    let tail = secret.get(secret.len().saturating_sub(4)..).unwrap_or("");
    format!("{PREFIX}{env}-{public_id}-…{tail}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn random(seed: u8) -> [u8; RANDOM_BYTES] {
        let mut r = [0u8; RANDOM_BYTES];
        for (i, b) in r.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37).wrapping_add(seed);
        }
        r
    }

    #[test]
    fn minted_keys_parse_back_to_their_hash() {
        let key = mint("live", &random(1)).unwrap();
        assert!(key.plaintext.starts_with("tg-live-"));
        assert_eq!(
            key.plaintext.len(),
            3 + 4 + 1 + PUBLIC_ID_LEN + 1 + SECRET_LEN
        );
        let parsed = parse(&key.plaintext).unwrap();
        assert_eq!(
            (parsed.env, parsed.public_id),
            ("live", key.public_id.as_str())
        );
        assert!(parsed.hash.ct_eq(&key.hash));
        assert!(key
            .label
            .starts_with(&format!("tg-live-{}-…", key.public_id)));
        assert!(!key.label.contains(&key.plaintext[20..]));
        assert!(!format!("{key:?}").contains(&key.plaintext));
    }

    #[test]
    fn malformed_keys_are_one_error() {
        let good = mint("test", &random(2)).unwrap().plaintext;
        let bad = [
            String::new(),
            "sk-abc".into(),
            good.replacen("tg-", "tx-", 1),
            good.replacen("-test-", "-TEST-", 1),
            good[..good.len() - 1].to_owned(),
            format!("{good}x"),
            good.replacen('-', "_", 2),
            format!("tg-toolongenvironment-{}", &good[8..]),
            good.replace('a', "é"),
        ];
        for b in &bad {
            if b != &good {
                assert_eq!(parse(b), Err(MalformedKey), "{b}");
            }
        }
        assert_eq!(mint("Live", &random(0)).err(), Some(MintError::BadEnv));
        assert_eq!(
            mint("live", &[255; RANDOM_BYTES]).err(),
            Some(MintError::NotEnoughRandomness)
        );
    }

    proptest! {
        #[test]
        fn any_random_bytes_mint_a_valid_distinct_key(bytes in prop::collection::vec(0u8..248, RANDOM_BYTES)) {
            let mut r = [0u8; RANDOM_BYTES];
            r.copy_from_slice(&bytes);
            let key = mint("live", &r).unwrap();
            prop_assert!(parse(&key.plaintext).is_ok());
            prop_assert!(key.plaintext.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
        }

        #[test]
        fn arbitrary_strings_never_panic(s in ".{0,120}") {
            let _ = parse(&s);
        }
    }
}
