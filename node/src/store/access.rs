//! The store's side of credentials: adding, revoking, listing, and looking a token up by its
//! hash. The token itself is never written anywhere.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError, WriteTx};
use crate::access::{Credential, Role, check_name, new_session_id, new_token, token_hash};
use crate::validate::ValidationError;

fn parse_time(text: &str, name: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| StoreError::Io(format!("credential {name}: time {text:?} is malformed")))
}

fn credential(
    name: String,
    role: String,
    created_at: String,
    revoked_at: Option<String>,
) -> Result<Credential, StoreError> {
    let role = Role::parse("role", &role)
        .map_err(|e| StoreError::Io(format!("credential {name}: role is malformed: {}", e.rule)))?;
    let created_at = parse_time(&created_at, &name)?;
    let revoked_at = revoked_at.map(|t| parse_time(&t, &name)).transpose()?;
    Ok(Credential {
        name,
        role,
        created_at,
        revoked_at,
    })
}

impl WriteTx<'_> {
    /// Creates a credential and returns its token, which exists nowhere else afterwards.
    pub fn add_credential(&mut self, name: &str, role: Role) -> Result<String, StoreError> {
        check_name(name)?;
        let name = name.trim();
        let exists: Option<i64> = self
            .tx
            .query_row("SELECT 1 FROM credentials WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()?;
        if exists.is_some() {
            return Err(ValidationError::new(
                "name",
                format!("已有名为“{name}”的凭据（吊销的名称也不能重用）"),
            )
            .into());
        }
        let token = new_token();
        self.tx.execute(
            "INSERT INTO credentials (name, role, token_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![
                name,
                role.as_str(),
                token_hash(&token),
                Utc::now().to_rfc3339()
            ],
        )?;
        Ok(token)
    }

    /// Revokes a credential: its token stops working at once.
    pub fn revoke_credential(&mut self, name: &str) -> Result<Credential, StoreError> {
        let name = name.trim();
        let changed = self.tx.execute(
            "UPDATE credentials SET revoked_at = ?2 WHERE name = ?1 AND revoked_at IS NULL",
            params![name, Utc::now().to_rfc3339()],
        )?;
        if changed == 0 {
            let exists: Option<i64> = self
                .tx
                .query_row("SELECT 1 FROM credentials WHERE name = ?1", [name], |r| {
                    r.get(0)
                })
                .optional()?;
            return Err(ValidationError::new(
                "name",
                if exists.is_some() {
                    format!("凭据“{name}”已经吊销")
                } else {
                    format!("没有名为“{name}”的凭据")
                },
            )
            .into());
        }
        let (role, created_at, revoked_at) = self.tx.query_row(
            "SELECT role, created_at, revoked_at FROM credentials WHERE name = ?1",
            [name],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        credential(name.to_string(), role, created_at, revoked_at)
    }
}

impl WriteTx<'_> {
    /// Opens a dashboard session for a live credential until `now + ttl` and returns its id,
    /// which exists nowhere else afterwards (the store keeps its hash). Expired sessions are
    /// dropped on the way.
    pub fn open_session(
        &mut self,
        credential: &str,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> Result<String, StoreError> {
        self.tx.execute(
            "DELETE FROM sessions WHERE expires_at <= ?1",
            [now.timestamp()],
        )?;
        let id = new_session_id();
        self.tx.execute(
            "INSERT INTO sessions (id_hash, credential, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
            params![
                token_hash(&id),
                credential,
                now.timestamp(),
                (now + ttl).timestamp()
            ],
        )?;
        Ok(id)
    }

    /// Ends a session (logout); an unknown id is already ended.
    pub fn close_session(&mut self, id: &str) -> Result<(), StoreError> {
        self.tx
            .execute("DELETE FROM sessions WHERE id_hash = ?1", [token_hash(id)])?;
        Ok(())
    }
}

impl Store {
    /// The live credential of a session: `None` for an unknown or expired session, or one whose
    /// credential was revoked since.
    pub fn session_credential(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Credential>, StoreError> {
        let row: Option<(String, String, String)> = self
            .conn
            .prepare_cached(
                "SELECT c.name, c.role, c.created_at FROM sessions s JOIN credentials c ON c.name = s.credential
                 WHERE s.id_hash = ?1 AND s.expires_at > ?2 AND c.revoked_at IS NULL",
            )?
            .query_row(params![token_hash(id), now.timestamp()], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?;
        row.map(|(name, role, created_at)| credential(name, role, created_at, None))
            .transpose()
    }

    /// Every credential, revoked ones included, by name.
    pub fn credentials(&self) -> Result<Vec<Credential>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT name, role, created_at, revoked_at FROM credentials ORDER BY name")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (name, role, created_at, revoked_at) = row?;
            out.push(credential(name, role, created_at, revoked_at)?);
        }
        Ok(out)
    }

    /// The live credential a token proves, or `None` for an unknown or revoked token.
    pub fn authenticate(&self, token: &str) -> Result<Option<Credential>, StoreError> {
        let row: Option<(String, String, String)> = self
            .conn
            .prepare_cached(
                "SELECT name, role, created_at FROM credentials WHERE token_hash = ?1 AND revoked_at IS NULL",
            )?
            .query_row([token_hash(token)], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        row.map(|(name, role, created_at)| credential(name, role, created_at, None))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use crate::access::Role;
    use crate::region::RegionCode;
    use crate::store::{Store, StoreError};

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let region = RegionCode::parse("region", "330411000000").unwrap();
        let store = Store::init(dir.path(), region, "秀洲区人大常委会", None).unwrap();
        (dir, store)
    }

    #[test]
    fn a_session_lasts_until_it_expires_is_closed_or_its_credential_is_revoked() {
        let (_dir, mut store) = store();
        store
            .write(|tx| tx.add_credential("代表工委 张三", Role::Clerk))
            .unwrap();
        let now = chrono::Utc::now();
        let ttl = chrono::Duration::hours(12);
        let id = store
            .write(|tx| tx.open_session("代表工委 张三", now, ttl))
            .unwrap();
        assert!(id.starts_with(crate::access::SESSION_PREFIX));
        let found = store.session_credential(&id, now).unwrap().unwrap();
        assert_eq!(found.role, Role::Clerk);
        assert_eq!(
            store.authenticate(&id).unwrap(),
            None,
            "a session id is no token"
        );
        assert_eq!(
            store.session_credential(&id, now + ttl).unwrap(),
            None,
            "expired"
        );
        store.write(|tx| tx.close_session(&id)).unwrap();
        assert_eq!(store.session_credential(&id, now).unwrap(), None, "closed");
        let again = store
            .write(|tx| tx.open_session("代表工委 张三", now, ttl))
            .unwrap();
        store
            .write(|tx| tx.revoke_credential("代表工委 张三"))
            .unwrap();
        assert_eq!(
            store.session_credential(&again, now).unwrap(),
            None,
            "revoked"
        );
    }

    #[test]
    fn a_token_proves_its_credential_until_revoked() {
        let (_dir, mut store) = store();
        let token = store
            .write(|tx| tx.add_credential("代表工委 张三", Role::Clerk))
            .unwrap();
        let found = store
            .authenticate(&token)
            .unwrap()
            .expect("the token logs in");
        assert_eq!(
            (found.name.as_str(), found.role),
            ("代表工委 张三", Role::Clerk)
        );
        assert_eq!(store.authenticate("renda_00").unwrap(), None);

        store
            .write(|tx| tx.revoke_credential("代表工委 张三"))
            .unwrap();
        assert_eq!(store.authenticate(&token).unwrap(), None);
        let listed = store.credentials().unwrap();
        assert!(listed[0].revoked_at.is_some());
    }

    #[test]
    fn the_token_is_stored_only_as_its_hash() {
        let (dir, mut store) = store();
        let token = store
            .write(|tx| tx.add_credential("运维", Role::Admin))
            .unwrap();
        drop(store);
        let bytes = std::fs::read(dir.path().join(crate::store::DB_FILE)).unwrap();
        let hex = token.trim_start_matches(crate::access::TOKEN_PREFIX);
        assert!(!String::from_utf8_lossy(&bytes).contains(hex));
    }

    #[test]
    fn names_are_unique_and_revoking_twice_names_the_field() {
        let (_dir, mut store) = store();
        store
            .write(|tx| tx.add_credential("李四", Role::Viewer))
            .unwrap();
        let dup = store
            .write(|tx| tx.add_credential("李四", Role::Admin))
            .unwrap_err();
        assert!(
            matches!(dup, StoreError::Invalid(ref v) if v.field == "name"),
            "{dup}"
        );
        store.write(|tx| tx.revoke_credential("李四")).unwrap();
        let again = store.write(|tx| tx.revoke_credential("李四")).unwrap_err();
        assert!(matches!(again, StoreError::Invalid(ref v) if v.rule.contains("已经吊销")));
        let none = store.write(|tx| tx.revoke_credential("王五")).unwrap_err();
        assert!(matches!(none, StoreError::Invalid(ref v) if v.rule.contains("没有")));
    }
}
