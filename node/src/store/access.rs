//! The store's side of credentials: adding, revoking, listing, looking a token up by its hash,
//! personal accounts (a credential with a password hash, disabled and enabled by an admin),
//! dashboard sessions, and the workbench's record of forms already applied. Neither a token
//! nor a password is written anywhere.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row, params};

use super::{Store, StoreError, WriteTx};
use crate::access::{Credential, Role, check_name, new_session_id, new_token, token_hash};
use crate::region::RegionCode;
use crate::validate::ValidationError;

fn parse_time(text: &str, name: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| StoreError::Io(format!("credential {name}: time {text:?} is malformed")))
}

/// The columns [`credential`] reads, in its order.
/// A query that reads more after them starts at index 8 ([`CredentialRow`]'s length).
const COLUMNS: &str = "c.name, c.role, c.created_at, c.revoked_at, c.password_hash IS NOT NULL, c.disabled_at, c.within, c.api_only";

type CredentialRow = (
    String,
    String,
    String,
    Option<String>,
    bool,
    Option<String>,
    Option<String>,
    bool,
);

fn row(r: &Row<'_>) -> rusqlite::Result<CredentialRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
    ))
}

fn credential(
    (name, role, created_at, revoked_at, has_password, disabled_at, within, api_only): CredentialRow,
) -> Result<Credential, StoreError> {
    let within = within
        .map(|w| {
            RegionCode::parse("within", &w).map_err(|e| {
                StoreError::Io(format!(
                    "credential {name}: within is malformed: {}",
                    e.rule
                ))
            })
        })
        .transpose()?;
    let role = Role::parse("role", &role)
        .map_err(|e| StoreError::Io(format!("credential {name}: role is malformed: {}", e.rule)))?;
    let created_at = parse_time(&created_at, &name)?;
    let revoked_at = revoked_at.map(|t| parse_time(&t, &name)).transpose()?;
    let disabled_at = disabled_at.map(|t| parse_time(&t, &name)).transpose()?;
    Ok(Credential {
        name,
        role,
        created_at,
        revoked_at,
        has_password,
        disabled_at,
        within,
        api_only,
    })
}

/// The idempotency key a workbench form carries: 32 hex digits the page drew at random.
pub fn check_form_key(key: &str) -> Result<(), ValidationError> {
    if key.len() == 32 && key.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(ValidationError::new(
            "form_key",
            "表单缺少有效的防重复提交编号，请重新打开页面再提交",
        ))
    }
}

impl WriteTx<'_> {
    fn credential_exists(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self
            .tx
            .query_row("SELECT 1 FROM credentials WHERE name = ?1", [name], |r| {
                r.get::<_, i64>(0)
            })
            .optional()?
            .is_some())
    }

    /// Creates a credential and returns its token, which exists nowhere else afterwards.
    pub fn add_credential(&mut self, name: &str, role: Role) -> Result<String, StoreError> {
        self.insert_credential(name, role, None)
    }

    /// Creates a personal account: a credential staff log in to with its name and the password
    /// `password_hash` was made from (`access::hash_password`, run before the write so the
    /// store thread does not wait on it). Its token is drawn and dropped: an account is for
    /// people, and programs get a credential of their own.
    pub fn add_account(
        &mut self,
        name: &str,
        role: Role,
        password_hash: &str,
    ) -> Result<(), StoreError> {
        self.insert_credential(name, role, Some(password_hash))
            .map(drop)
    }

    /// Creates a credential for a program: it reads the Query API, about `within`'s subtree
    /// only when given (a region within this node's), and opens no dashboard and no other
    /// service, whatever its role. Returns the token, as [`WriteTx::add_credential`] does.
    pub fn add_api_credential(
        &mut self,
        name: &str,
        role: Role,
        within: Option<RegionCode>,
    ) -> Result<String, StoreError> {
        let me = self.node.region;
        if let Some(within) = within
            && !within.is_within(&me)
        {
            return Err(ValidationError::new(
                "within",
                format!("{within} 不在本节点 {me} 的辖区内"),
            )
            .into());
        }
        let token = self.insert_credential(name, role, None)?;
        self.tx.execute(
            "UPDATE credentials SET api_only = 1, within = ?2 WHERE name = ?1",
            params![name.trim(), within.as_ref().map(|w| w.as_str())],
        )?;
        Ok(token)
    }

    fn insert_credential(
        &mut self,
        name: &str,
        role: Role,
        password_hash: Option<&str>,
    ) -> Result<String, StoreError> {
        check_name(name)?;
        let name = name.trim();
        if self.credential_exists(name)? {
            return Err(ValidationError::new(
                "name",
                format!("已有名为“{name}”的凭据（吊销的名称也不能重用）"),
            )
            .into());
        }
        let token = new_token();
        self.tx.execute(
            "INSERT INTO credentials (name, role, token_hash, created_at, password_hash) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                name,
                role.as_str(),
                token_hash(&token),
                Utc::now().to_rfc3339(),
                password_hash,
            ],
        )?;
        Ok(token)
    }

    fn existing(&self, name: &str) -> Result<Credential, StoreError> {
        let found = self
            .tx
            .query_row(
                &format!("SELECT {COLUMNS} FROM credentials c WHERE c.name = ?1"),
                [name],
                row,
            )
            .optional()?;
        match found {
            Some(r) => credential(r),
            None => Err(ValidationError::new("name", format!("没有名为“{name}”的凭据")).into()),
        }
    }

    /// Revokes a credential: its token stops working at once.
    pub fn revoke_credential(&mut self, name: &str) -> Result<Credential, StoreError> {
        let name = name.trim();
        let changed = self.tx.execute(
            "UPDATE credentials SET revoked_at = ?2 WHERE name = ?1 AND revoked_at IS NULL",
            params![name, Utc::now().to_rfc3339()],
        )?;
        if changed == 0 {
            self.existing(name)?;
            return Err(ValidationError::new("name", format!("凭据“{name}”已经吊销")).into());
        }
        self.existing(name)
    }

    /// Sets an account's password (an admin's reset, or a password for a credential that had
    /// only a token) and ends its sessions, so whoever knew the old one is logged out.
    pub fn set_password(&mut self, name: &str, password_hash: &str) -> Result<(), StoreError> {
        let name = name.trim();
        let credential = self.existing(name)?;
        if credential.revoked_at.is_some() {
            return Err(ValidationError::new("name", format!("凭据“{name}”已经吊销")).into());
        }
        self.tx.execute(
            "UPDATE credentials SET password_hash = ?2 WHERE name = ?1",
            params![name, password_hash],
        )?;
        self.tx
            .execute("DELETE FROM sessions WHERE credential = ?1", [name])?;
        Ok(())
    }

    /// Disables an account or enables it again. Disabling ends its sessions at once; setting
    /// what is already set writes nothing and returns `false`.
    pub fn set_disabled(&mut self, name: &str, disabled: bool) -> Result<bool, StoreError> {
        let name = name.trim();
        let credential = self.existing(name)?;
        if credential.revoked_at.is_some() {
            return Err(ValidationError::new("name", format!("凭据“{name}”已经吊销")).into());
        }
        if credential.disabled_at.is_some() == disabled {
            return Ok(false);
        }
        let at = disabled.then(|| Utc::now().to_rfc3339());
        self.tx.execute(
            "UPDATE credentials SET disabled_at = ?2 WHERE name = ?1",
            params![name, at],
        )?;
        if disabled {
            self.tx
                .execute("DELETE FROM sessions WHERE credential = ?1", [name])?;
        }
        Ok(true)
    }

    /// The node's secret `name`, 32 random bytes made on first use and kept in the node's file
    /// only (never synced, never shown).
    pub fn secret(&mut self, name: &str) -> Result<Vec<u8>, StoreError> {
        let held: Option<Vec<u8>> = self
            .tx
            .query_row(
                "SELECT value FROM node_secrets WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(value) = held {
            return Ok(value);
        }
        let value: [u8; 32] = rand::random();
        self.tx.execute(
            "INSERT INTO node_secrets (name, value) VALUES (?1, ?2)",
            params![name, value.to_vec()],
        )?;
        Ok(value.to_vec())
    }

    /// The record a workbench form with this idempotency key wrote, if it was applied already:
    /// `Some(None)` when it was applied and wrote no record of its own.
    pub fn form_applied(&self, key: &str) -> Result<Option<Option<String>>, StoreError> {
        Ok(self
            .tx
            .query_row(
                "SELECT record FROM form_submissions WHERE key = ?1",
                [key],
                |r| r.get::<_, Option<String>>(0),
            )
            .optional()?)
    }

    /// Notes that the form with this key was applied, in the transaction that applied it.
    pub fn note_form_applied(
        &mut self,
        key: &str,
        credential: &str,
        record: Option<&str>,
    ) -> Result<(), StoreError> {
        check_form_key(key)?;
        self.tx.execute(
            "INSERT INTO form_submissions (key, credential, record, at) VALUES (?1, ?2, ?3, ?4)",
            params![key, credential, record, Utc::now().timestamp()],
        )?;
        Ok(())
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
    /// credential was revoked or disabled since.
    pub fn session_credential(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Credential>, StoreError> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM sessions s JOIN credentials c ON c.name = s.credential
                 WHERE s.id_hash = ?1 AND s.expires_at > ?2 AND c.revoked_at IS NULL AND c.disabled_at IS NULL"
            ))?
            .query_row(params![token_hash(id), now.timestamp()], row)
            .optional()?
            .map(credential)
            .transpose()
    }

    /// Every credential, revoked ones included, by name.
    pub fn credentials(&self) -> Result<Vec<Credential>, StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM credentials c ORDER BY c.name"
        ))?;
        let rows = stmt.query_map([], row)?;
        let mut out = Vec::new();
        for r in rows {
            out.push(credential(r?)?);
        }
        Ok(out)
    }

    /// The live credential a token proves, or `None` for an unknown, revoked or disabled token.
    pub fn authenticate(&self, token: &str) -> Result<Option<Credential>, StoreError> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM credentials c WHERE c.token_hash = ?1 AND c.revoked_at IS NULL AND c.disabled_at IS NULL"
            ))?
            .query_row([token_hash(token)], row)
            .optional()?
            .map(credential)
            .transpose()
    }

    /// A live account's credential and password hash, for checking a login off the store
    /// thread; `None` for a name with no live account.
    pub fn account(&self, name: &str) -> Result<Option<(Credential, String)>, StoreError> {
        let found = self
            .conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS}, c.password_hash FROM credentials c
                 WHERE c.name = ?1 AND c.password_hash IS NOT NULL AND c.revoked_at IS NULL AND c.disabled_at IS NULL"
            ))?
            .query_row([name.trim()], |r| Ok((row(r)?, r.get::<_, String>(8)?)))
            .optional()?;
        found
            .map(|(r, hash)| Ok((credential(r)?, hash)))
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

    #[test]
    fn an_account_logs_in_by_its_password_until_disabled_and_a_reset_ends_its_sessions() {
        let (_dir, mut store) = store();
        let hash = crate::access::hash_password("秀洲区代表工委1").unwrap();
        store
            .write(|tx| tx.add_account("秀洲区 张敏", Role::Clerk, &hash))
            .unwrap();
        let (found, stored) = store.account("秀洲区 张敏").unwrap().expect("an account");
        assert!(found.has_password && found.is_live());
        assert!(crate::access::verify_password("秀洲区代表工委1", &stored));
        let now = chrono::Utc::now();
        let ttl = chrono::Duration::hours(12);
        let session = store
            .write(|tx| tx.open_session("秀洲区 张敏", now, ttl))
            .unwrap();

        assert!(
            store
                .write(|tx| tx.set_disabled("秀洲区 张敏", true))
                .unwrap()
        );
        assert!(
            !store
                .write(|tx| tx.set_disabled("秀洲区 张敏", true))
                .unwrap(),
            "already"
        );
        assert_eq!(store.account("秀洲区 张敏").unwrap(), None, "disabled");
        assert_eq!(store.session_credential(&session, now).unwrap(), None);
        assert!(
            store
                .write(|tx| tx.set_disabled("秀洲区 张敏", false))
                .unwrap()
        );
        assert!(
            store.account("秀洲区 张敏").unwrap().is_some(),
            "enabled again"
        );

        let session = store
            .write(|tx| tx.open_session("秀洲区 张敏", now, ttl))
            .unwrap();
        let reset = crate::access::hash_password("新密码新密码新密码").unwrap();
        store
            .write(|tx| tx.set_password("秀洲区 张敏", &reset))
            .unwrap();
        assert_eq!(
            store.session_credential(&session, now).unwrap(),
            None,
            "a reset logs out"
        );
        let (_, stored) = store.account("秀洲区 张敏").unwrap().unwrap();
        assert!(!crate::access::verify_password("秀洲区代表工委1", &stored));

        // A credential made for a program has no password to log in with.
        store
            .write(|tx| tx.add_credential("报表程序", Role::Viewer))
            .unwrap();
        assert_eq!(store.account("报表程序").unwrap(), None);
        let missing = store.write(|tx| tx.set_disabled("王五", true)).unwrap_err();
        assert!(matches!(missing, StoreError::Invalid(ref v) if v.field == "name"));
    }

    #[test]
    fn a_form_key_is_noted_once_with_the_record_it_wrote() {
        let (_dir, mut store) = store();
        let key = "0123456789abcdef0123456789abcdef";
        assert_eq!(store.write(|tx| tx.form_applied(key)).unwrap(), None);
        store
            .write(|tx| tx.note_form_applied(key, "张敏", Some("01JREC")))
            .unwrap();
        assert_eq!(
            store.write(|tx| tx.form_applied(key)).unwrap(),
            Some(Some("01JREC".to_string()))
        );
        assert!(
            store
                .write(|tx| tx.note_form_applied(key, "张敏", None))
                .is_err()
        );
        let bad = store
            .write(|tx| tx.note_form_applied("not-a-key", "张敏", None))
            .unwrap_err();
        assert!(matches!(bad, StoreError::Invalid(ref v) if v.field == "form_key"));
    }
}
