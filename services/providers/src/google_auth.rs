//! Google service-account authentication (Vertex AI): an RS256-signed JWT assertion exchanged at
//! the account's `token_uri` for an OAuth access token (`grant_type`
//! `urn:ietf:params:oauth:grant-type:jwt-bearer`, scope `cloud-platform`), cached until a minute
//! before it expires. One exchange at a time per provider; requests wait for it (bounded by the
//! connect and first-byte time limits of the provider).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::signature::{KeyPair as _, RsaKeyPair};
use serde::Deserialize;

/// The OAuth scope Vertex AI needs.
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// How long an assertion is valid (Google's maximum).
const ASSERTION_LIFETIME: u64 = 3600;
/// A token is renewed this long before it expires.
const RENEW_BEFORE: Duration = Duration::from_secs(60);

/// Why a service account cannot be used or a token not obtained.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GoogleAuthError {
    #[error("the service account JSON is invalid: {0}")]
    BadAccount(String),
    #[error("the service account's private key is not a PKCS#8 RSA key in PEM: {0}")]
    BadKey(String),
    #[error("signing the token request failed")]
    Signing,
    #[error("the token endpoint refused: {0}")]
    Refused(String),
}

/// A service account key file's fields that matter here.
#[derive(Deserialize)]
struct KeyFile {
    client_email: String,
    private_key: String,
    token_uri: String,
}

/// A parsed service account, ready to sign assertions.
pub struct ServiceAccount {
    pub client_email: String,
    pub token_uri: String,
    key: EncodingKey,
    /// The public key (DER, PKCS#1).
    public_key: Vec<u8>,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .finish_non_exhaustive()
    }
}

/// The DER inside a PEM block.
fn pem_der(pem: &str) -> Result<Vec<u8>, GoogleAuthError> {
    let body: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("-----"))
        .collect();
    STANDARD
        .decode(body)
        .map_err(|e| GoogleAuthError::BadKey(e.to_string()))
}

impl ServiceAccount {
    /// Parses a service account key file (the JSON Google issues).
    pub fn from_json(json: &str) -> Result<Self, GoogleAuthError> {
        let file: KeyFile =
            serde_json::from_str(json).map_err(|e| GoogleAuthError::BadAccount(e.to_string()))?;
        if !file.private_key.contains("BEGIN PRIVATE KEY") {
            return Err(GoogleAuthError::BadKey(
                "expected a PKCS#8 PEM block".into(),
            ));
        }
        // Parsed and checked once here, so a bad key is refused at start-up, not at the first
        // request; the key pair also gives the public key.
        let der = pem_der(&file.private_key)?;
        let pair =
            RsaKeyPair::from_pkcs8(&der).map_err(|e| GoogleAuthError::BadKey(e.to_string()))?;
        let key = EncodingKey::from_rsa_pem(file.private_key.as_bytes())
            .map_err(|e| GoogleAuthError::BadKey(e.to_string()))?;
        Ok(Self {
            client_email: file.client_email,
            token_uri: file.token_uri,
            key,
            public_key: pair.public_key().as_ref().to_vec(),
        })
    }

    /// The public key (DER, PKCS#1), for verifying assertions in tests.
    pub fn public_key(&self) -> &[u8] {
        &self.public_key
    }

    /// A signed JWT assertion for a token at `now`.
    pub fn assertion(&self, now: SystemTime) -> Result<String, GoogleAuthError> {
        let iat = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let claims = serde_json::json!({
            "iss": self.client_email,
            "scope": SCOPE,
            "aud": self.token_uri,
            "iat": iat,
            "exp": iat + ASSERTION_LIFETIME,
        });
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &self.key)
            .map_err(|_| GoogleAuthError::Signing)
    }

    /// The form body of the token request.
    pub fn token_request(&self, now: SystemTime) -> Result<String, GoogleAuthError> {
        Ok(format!(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={}",
            self.assertion(now)?
        ))
    }
}

/// A token endpoint's answer.
#[derive(Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    #[serde(default = "default_expiry")]
    pub expires_in: u64,
}

fn default_expiry() -> u64 {
    3600
}

/// An access token and when to renew it.
#[derive(Debug, Clone)]
pub struct CachedToken {
    pub header: http::HeaderValue,
    pub renew_at: std::time::Instant,
}

impl CachedToken {
    /// From a token endpoint's JSON answer, received at `now`.
    pub fn from_response(body: &[u8], now: std::time::Instant) -> Result<Self, GoogleAuthError> {
        let t: TokenResponse = serde_json::from_slice(body)
            .map_err(|e| GoogleAuthError::Refused(format!("unexpected answer: {e}")))?;
        let mut header = http::HeaderValue::from_str(&format!("Bearer {}", t.access_token))
            .map_err(|_| GoogleAuthError::Refused("the token is not a header value".into()))?;
        header.set_sensitive(true);
        let lifetime = Duration::from_secs(t.expires_in).saturating_sub(RENEW_BEFORE);
        Ok(Self {
            header,
            renew_at: now + lifetime,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn account() -> ServiceAccount {
        let json = include_str!("../../../tests/fixtures/google/service-account.json");
        ServiceAccount::from_json(json).unwrap()
    }

    #[test]
    fn assertions_are_rs256_jwts_google_can_verify() {
        let sa = account();
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let jwt = sa.assertion(now).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["alg"], "RS256");
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(
            claims["iss"],
            "gateway@tollgate-test.iam.gserviceaccount.com"
        );
        assert_eq!(claims["aud"], "https://oauth2.googleapis.com/token");
        assert_eq!(claims["scope"], SCOPE);
        assert_eq!(claims["iat"], 1_700_000_000u64);
        assert_eq!(claims["exp"], 1_700_003_600u64);
        // The signature verifies with the account's public key.
        let public = ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            sa.public_key(),
        );
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        assert!(public
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
            .is_ok());
        assert!(sa.token_request(now).unwrap().starts_with(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=ey"
        ));
    }

    #[test]
    fn bad_accounts_and_answers_are_refused() {
        assert!(matches!(
            ServiceAccount::from_json("{}"),
            Err(GoogleAuthError::BadAccount(_))
        ));
        let no_key = r#"{"client_email":"a","token_uri":"b","private_key":"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"}"#;
        assert!(matches!(
            ServiceAccount::from_json(no_key),
            Err(GoogleAuthError::BadKey(_))
        ));
        let now = std::time::Instant::now();
        let t = CachedToken::from_response(br#"{"access_token":"ya29.x","expires_in":3599}"#, now)
            .unwrap();
        assert_eq!(t.header, "Bearer ya29.x");
        assert!(t.renew_at > now + Duration::from_secs(3000));
        assert!(CachedToken::from_response(br#"{"error":"invalid_grant"}"#, now).is_err());
    }
}
