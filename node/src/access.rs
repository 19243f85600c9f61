//! Who may use a node's local API and dashboard: named credentials, each with a role, each
//! proven by a bearer token that is shown once when the credential is created and stored only
//! as its SHA-256 hash.
//!
//! Tokens are 32 random bytes, so a plain hash is enough to make a stolen database useless for
//! logging in (a slow password hash protects guessable secrets; nobody guesses 256 bits). The
//! store keeps the credentials (`store::access`); this module holds the pure parts: roles, the
//! token's form, its hash.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::validate::ValidationError;

/// What a credential may do, each role including the ones below it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads every page and query: leaders and anyone who only looks.
    Viewer,
    /// Also works on the dashboard's workbench (every office operation, imports): clerks.
    Clerk,
    /// Also manages accounts and reads the audit log: the node's operator.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Clerk, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Clerk => "clerk",
            Role::Admin => "admin",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Role::Viewer => "查看",
            Role::Clerk => "办理",
            Role::Admin => "管理",
        }
    }

    pub fn parse(field: &str, s: &str) -> Result<Role, ValidationError> {
        let s = s.trim();
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s || r.label() == s)
            .ok_or_else(|| {
                ValidationError::new(
                    field,
                    format!(
                        "角色必须是 admin（管理）、clerk（办理）或 viewer（查看），实际为“{s}”"
                    ),
                )
            })
    }

    /// Whether a credential of this role may do what needs `needed`.
    pub fn allows(self, needed: Role) -> bool {
        self >= needed
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What every token starts with, so one pasted into the wrong place is recognisable.
pub const TOKEN_PREFIX: &str = "renda_";

/// A new random token.
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    let mut token = String::with_capacity(TOKEN_PREFIX.len() + 64);
    token.push_str(TOKEN_PREFIX);
    for b in bytes {
        token.push_str(&format!("{b:02x}"));
    }
    token
}

/// What every dashboard session id starts with.
pub const SESSION_PREFIX: &str = "session_";

/// A new random session id: what a browser's cookie holds after a login.
pub fn new_session_id() -> String {
    let bytes: [u8; 32] = rand::random();
    let mut id = String::with_capacity(SESSION_PREFIX.len() + 64);
    id.push_str(SESSION_PREFIX);
    for b in bytes {
        id.push_str(&format!("{b:02x}"));
    }
    id
}

/// The hash a token is stored and looked up by.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.trim().as_bytes()).to_vec()
}

/// A credential's name: what staff see in lists and the audit of who did what.
pub fn check_name(name: &str) -> Result<(), ValidationError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(ValidationError::new("name", "凭据名称不能为空"));
    }
    if name.chars().count() > 64 {
        return Err(ValidationError::new("name", "凭据名称不能超过 64 个字"));
    }
    if name.chars().any(|c| c.is_control()) {
        return Err(ValidationError::new("name", "凭据名称不能含控制字符"));
    }
    Ok(())
}

/// A credential as the store keeps it, without its token or password.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Credential {
    pub name: String,
    pub role: Role,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// When it was revoked; a revoked credential no longer logs in.
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
    /// A personal account: staff log in to the dashboard with its name and a password.
    #[serde(default)]
    pub has_password: bool,
    /// When an admin disabled it; a disabled account logs in again once enabled.
    #[serde(default)]
    pub disabled_at: Option<chrono::DateTime<chrono::Utc>>,
    /// A program's credential limited to this region's subtree: it reads the Query API about
    /// that subtree only, and opens nothing else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within: Option<crate::region::RegionCode>,
    /// A program's credential (`renda credential add --api`, and every one limited to a
    /// subtree): it reads the Query API and opens neither the dashboard nor the first Query
    /// service, so a program's token can never write, whatever its role.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub api_only: bool,
}

impl Credential {
    /// Whether it may log in and call the API now.
    pub fn is_live(&self) -> bool {
        self.revoked_at.is_none() && self.disabled_at.is_none()
    }
}

/// Fewest characters a password has: an office PC's password, typed by hand, guessed only
/// through the rate-limited login form or from a stolen database, where argon2 makes each
/// guess cost.
pub const PASSWORD_MIN_CHARS: usize = 8;
const PASSWORD_MAX_CHARS: usize = 128;

/// A password an admin sets for an account: long enough to resist guessing through the login
/// form, short enough that hashing it costs what it should.
pub fn check_password(password: &str) -> Result<(), ValidationError> {
    let chars = password.chars().count();
    if chars < PASSWORD_MIN_CHARS {
        return Err(ValidationError::new(
            "password",
            format!("密码至少 {PASSWORD_MIN_CHARS} 个字符"),
        ));
    }
    if chars > PASSWORD_MAX_CHARS {
        return Err(ValidationError::new(
            "password",
            format!("密码不能超过 {PASSWORD_MAX_CHARS} 个字符"),
        ));
    }
    if password.chars().any(|c| c.is_control()) {
        return Err(ValidationError::new("password", "密码不能含控制字符"));
    }
    Ok(())
}

/// The PHC string a password is stored as: argon2id with the crate's recommended cost (19 MiB,
/// two passes) and a random salt. Slow on purpose, so callers run it off the store thread.
pub fn hash_password(password: &str) -> Result<String, ValidationError> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    check_password(password)?;
    let salt: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt)
        .map_err(|e| ValidationError::new("password", format!("无法生成盐值：{e}")))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ValidationError::new("password", format!("无法计算密码摘要：{e}")))
}

/// Whether `password` is the one `stored` was made from. A malformed stored hash matches nothing.
pub fn verify_password(password: &str, stored: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(stored).is_ok_and(|parsed| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_is_stored_as_a_salted_argon2_hash_that_only_it_matches() {
        let a = hash_password("王店镇人大办2026").unwrap();
        let b = hash_password("王店镇人大办2026").unwrap();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert!(verify_password("王店镇人大办2026", &a));
        assert!(verify_password("王店镇人大办2026", &b));
        assert!(!verify_password("王店镇人大办2025", &a));
        assert!(!verify_password("王店镇人大办2026", "not a hash"));
        assert_eq!(hash_password("short").unwrap_err().field, "password");
        assert_eq!(
            check_password(&"长".repeat(129)).unwrap_err().field,
            "password"
        );
        assert!(check_password("tab\there!").is_err());
    }

    #[test]
    fn roles_include_the_ones_below() {
        assert!(Role::Admin.allows(Role::Clerk));
        assert!(Role::Clerk.allows(Role::Viewer));
        assert!(Role::Clerk.allows(Role::Clerk));
        assert!(!Role::Viewer.allows(Role::Clerk));
        assert!(!Role::Clerk.allows(Role::Admin));
    }

    #[test]
    fn roles_parse_by_id_or_label_and_name_the_field() {
        assert_eq!(Role::parse("role", "clerk").unwrap(), Role::Clerk);
        assert_eq!(Role::parse("role", "查看").unwrap(), Role::Viewer);
        let e = Role::parse("role", "root").unwrap_err();
        assert_eq!(e.field, "role");
        assert!(e.rule.contains("root"));
    }

    #[test]
    fn tokens_are_random_prefixed_and_hashed() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() == TOKEN_PREFIX.len() + 64);
        assert_eq!(token_hash(&a), token_hash(&format!(" {a}\n")));
        assert_ne!(token_hash(&a), token_hash(&b));
        assert_eq!(token_hash(&a).len(), 32);
    }

    #[test]
    fn names_are_required_and_bounded() {
        assert!(check_name("张三").is_ok());
        assert_eq!(check_name("  ").unwrap_err().field, "name");
        assert!(check_name(&"字".repeat(65)).is_err());
        assert!(check_name("a\u{7}b").is_err());
    }
}
