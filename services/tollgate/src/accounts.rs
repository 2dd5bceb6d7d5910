//! The web UI's accounts, for the CLI and the pages alike: operators (`tollgate operator …`) and
//! tenant members (invited by an operator), their passwords (argon2id) and the revocation of
//! their sessions when a password changes or an account is disabled.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use tollgate_store::{Accounts, Member, Operator, Store, Tenants};

use crate::tenancy::TenancyError;

/// Shortest and longest password accepted.
const PASSWORD_CHARS: std::ops::RangeInclusive<usize> = 12..=1024;

fn check_password(password: &str) -> Result<(), TenancyError> {
    if PASSWORD_CHARS.contains(&password.chars().count()) {
        Ok(())
    } else {
        Err(TenancyError::Invalid(format!(
            "a password has {} to {} characters",
            PASSWORD_CHARS.start(),
            PASSWORD_CHARS.end()
        )))
    }
}

/// An argon2id hash (PHC string) with the crate's default cost (19 MiB, 2 passes, OWASP's
/// minimum), computed on the blocking pool so it never stalls a worker.
pub async fn hash_password(password: String) -> Result<String, TenancyError> {
    let salt = crate::ids::os_random::<16>().map_err(|_| TenancyError::Randomness)?;
    tokio::task::spawn_blocking(move || {
        let salt =
            SaltString::encode_b64(&salt).map_err(|e| TenancyError::Invalid(e.to_string()))?;
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| TenancyError::Invalid(e.to_string()))
    })
    .await
    .map_err(|e| TenancyError::Invalid(e.to_string()))?
}

/// Whether `password` matches `hash` (on the blocking pool). A malformed hash never matches.
pub async fn verify_password(hash: String, password: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

fn check_operator_name(name: &str) -> Result<(), TenancyError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(TenancyError::Invalid(
            "an operator name has 1 to 64 letters, digits, '.', '_', '-' or '@'".into(),
        ))
    }
}

/// A new operator account (`admin` or `viewer`).
pub async fn create_operator(
    store: &Store,
    name: &str,
    role: &str,
    password: String,
) -> Result<Operator, TenancyError> {
    check_operator_name(name)?;
    if !matches!(role, "admin" | "viewer") {
        return Err(TenancyError::Invalid("the role is admin or viewer".into()));
    }
    check_password(&password)?;
    let op = Operator {
        name: name.into(),
        password_hash: hash_password(password).await?,
        role: role.into(),
        status: "active".into(),
        created_at_ms: tollgate_store::now_ms(),
    };
    store.create_operator(&op).await.map_err(|e| match e {
        tollgate_store::StoreError::Conflict(_) => {
            TenancyError::Conflict(format!("the operator {name} exists"))
        }
        other => other.into(),
    })?;
    Ok(op)
}

/// Changes an operator's password, role or status (whichever is given) and signs them out
/// everywhere.
pub async fn update_operator(
    store: &Store,
    name: &str,
    password: Option<String>,
    role: Option<&str>,
    active: Option<bool>,
) -> Result<Operator, TenancyError> {
    let mut op = store
        .operator(name)
        .await?
        .ok_or(TenancyError::NotFound("operator"))?;
    if let Some(p) = password {
        check_password(&p)?;
        op.password_hash = hash_password(p).await?;
    }
    if let Some(r) = role {
        if !matches!(r, "admin" | "viewer") {
            return Err(TenancyError::Invalid("the role is admin or viewer".into()));
        }
        op.role = r.into();
    }
    if let Some(a) = active {
        op.status = if a { "active" } else { "disabled" }.into();
    }
    if !store.save_operator(&op).await? {
        return Err(TenancyError::NotFound("operator"));
    }
    store
        .revoke_sessions_of("operator", name, tollgate_store::now_ms())
        .await?;
    Ok(op)
}

/// Invites a member of a tenant to the portal: they sign in by a one-time link until they set a
/// password.
pub async fn invite_member(
    store: &Store,
    actor: &str,
    tenant_id: &str,
    email: &str,
) -> Result<Member, TenancyError> {
    let email = email.trim().to_lowercase();
    let plausible = email.len() <= 254
        && email.split_once('@').is_some_and(|(user, host)| {
            !user.is_empty() && host.contains('.') && !host.contains('@')
        });
    if !plausible || email.chars().any(char::is_whitespace) {
        return Err(TenancyError::Invalid("that is not an email address".into()));
    }
    store
        .get_tenant(tenant_id)
        .await?
        .ok_or(TenancyError::NotFound("tenant"))?;
    let m = Member {
        id: crate::ids::new_id("mem_"),
        tenant_id: tenant_id.into(),
        email: email.clone(),
        password_hash: None,
        status: "active".into(),
        invited_by: actor.into(),
        created_at_ms: tollgate_store::now_ms(),
    };
    store.create_member(&m).await.map_err(|e| match e {
        tollgate_store::StoreError::Conflict(_) => {
            TenancyError::Conflict(format!("{email} is already a member"))
        }
        other => other.into(),
    })?;
    Ok(m)
}

/// Sets a member's password and signs them out everywhere.
pub async fn set_member_password(
    store: &Store,
    member_id: &str,
    password: String,
) -> Result<(), TenancyError> {
    check_password(&password)?;
    let mut m = store
        .member(member_id)
        .await?
        .ok_or(TenancyError::NotFound("member"))?;
    m.password_hash = Some(hash_password(password).await?);
    if !store.save_member(&m).await? {
        return Err(TenancyError::NotFound("member"));
    }
    store
        .revoke_sessions_of("member", member_id, tollgate_store::now_ms())
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passwords_hash_with_argon2id_and_verify() {
        let hash = hash_password("correct horse battery".into())
            .await
            .unwrap_or_default();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(verify_password(hash.clone(), "correct horse battery".into()).await);
        assert!(!verify_password(hash, "wrong".into()).await);
        assert!(!verify_password("not a hash".into(), "x".into()).await);
    }

    #[test]
    fn names_and_passwords_are_checked() {
        assert!(check_operator_name("ada.lovelace@ops").is_ok());
        assert!(check_operator_name("").is_err());
        assert!(check_operator_name("a b").is_err());
        assert!(check_password("short").is_err());
        assert!(check_password("twelve chars").is_ok());
    }
}
