//! Operator JWTs (HS256 only): issued by the CLI, checked by the admin API's extractors.

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// The issuer every token carries and every check requires.
pub const ISSUER: &str = "tollgate";

/// What an operator may do: `admin` everything, `viewer` read only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Viewer,
}

impl Role {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Self::Admin),
            "viewer" => Some(Self::Viewer),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The operator's name, recorded as the actor in the audit log.
    pub sub: String,
    pub role: Role,
    pub iss: String,
    pub iat: u64,
    pub exp: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the token is invalid: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
}

/// Signs a token for `subject` valid for `ttl_s` seconds from `now_s`.
pub fn issue(
    secret: &[u8],
    subject: &str,
    role: Role,
    now_s: u64,
    ttl_s: u64,
) -> Result<String, TokenError> {
    let claims = Claims {
        sub: subject.to_owned(),
        role,
        iss: ISSUER.to_owned(),
        iat: now_s,
        exp: now_s.saturating_add(ttl_s),
    };
    Ok(encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )?)
}

/// Checks signature (HS256 only: `alg: none` and every other algorithm are refused), issuer and
/// expiry (no leeway).
pub fn verify(secret: &[u8], token: &str) -> Result<Claims, TokenError> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_issuer(&[ISSUER]);
    validation.set_required_spec_claims(&["exp", "iss", "sub"]);
    validation.leeway = 0;
    Ok(decode::<Claims>(token, &DecodingKey::from_secret(secret), &validation)?.claims)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[test]
    fn issued_tokens_verify() {
        let t = issue(SECRET, "alice", Role::Viewer, now(), 60).unwrap();
        let c = verify(SECRET, &t).unwrap();
        assert_eq!((c.sub.as_str(), c.role), ("alice", Role::Viewer));
    }

    #[test]
    fn expired_forged_and_unsigned_tokens_are_refused() {
        let expired = issue(SECRET, "a", Role::Admin, now() - 120, 60).unwrap();
        assert!(verify(SECRET, &expired).is_err());
        let other = issue(
            b"another-secret-another-secret-xx",
            "a",
            Role::Admin,
            now(),
            60,
        )
        .unwrap();
        assert!(verify(SECRET, &other).is_err());
        // alg: none, with a valid-looking payload and no signature.
        let b64 = |s: &str| {
            use std::fmt::Write;
            let table = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            let bytes = s.as_bytes();
            let mut out = String::new();
            for chunk in bytes.chunks(3) {
                let n = chunk
                    .iter()
                    .enumerate()
                    .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
                for i in 0..=chunk.len() {
                    let _ = out.write_char(table[((n >> (18 - 6 * i)) & 63) as usize] as char);
                }
            }
            out
        };
        let payload = format!(
            r#"{{"sub":"a","role":"admin","iss":"tollgate","iat":0,"exp":{}}}"#,
            now() + 60
        );
        let none = format!(
            "{}.{}.",
            b64(r#"{"alg":"none","typ":"JWT"}"#),
            b64(&payload)
        );
        assert!(verify(SECRET, &none).is_err());
        assert!(verify(SECRET, "not.a.jwt").is_err());
    }
}
