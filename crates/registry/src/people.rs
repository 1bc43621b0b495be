//! People who sign in to the web pages: a name, a role (the API's roles), a station for the
//! station role, an argon2id password hash; sessions held in the store (only a digest of the
//! cookie's secret) with their CSRF token; lock-out after repeated failed sign-ins. Creating
//! and disabling accounts, signing in (and failing to), and signing out are audited.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use jiff::SignedDuration;
use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::audit::{audit, commit_audited};
use crate::{Actor, Registry, RegistryError, Result, instant_text};

/// Failed sign-ins in a row that lock an account.
pub const LOCK_AFTER_FAILURES: i64 = 5;
/// How long a locked account stays locked.
pub const LOCK_FOR: SignedDuration = SignedDuration::from_mins(15);
/// How long a session lasts after signing in (a working day and a little more).
pub const SESSION_LENGTH: SignedDuration = SignedDuration::from_hours(12);
/// Shortest password accepted (characters).
pub const PASSWORD_MIN: usize = 10;
/// Longest password accepted (characters): hashing cost stays bounded.
pub const PASSWORD_MAX: usize = 256;
/// Longest account name.
pub const PERSON_NAME_MAX: usize = 64;

/// A person's account (never the password hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub id: i64,
    pub name: String,
    pub role: String,
    pub station: Option<String>,
    pub created_at: String,
    pub locked_until: Option<String>,
    pub disabled: bool,
}

/// A signed-in person's session.
#[derive(Debug, Clone)]
pub struct WebSession {
    pub session_id: i64,
    pub person: Person,
    /// Every form of this session carries it; a post without it is refused.
    pub csrf_token: String,
    pub expires_at: String,
}

/// Why a sign-in was refused. The same words for an unknown name and a wrong password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignInRefused {
    WrongNameOrPassword,
    /// Too many failures: no password is tried until this instant (RFC 3339).
    Locked {
        until: String,
    },
}

fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn hasher() -> Argon2<'static> {
    // argon2id with the crate's recommended memory and time costs (19 MiB, 2 passes).
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::default())
}

/// A PHC string of the password's argon2id hash.
fn hash_password(password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| RegistryError::invalid("password", e.to_string()))
}

fn password_matches(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|parsed| {
            hasher()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Hash off the async runtime: argon2 is tens of milliseconds of one core by design.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("password hashing does not panic")
}

pub fn check_password(password: &str) -> Result<()> {
    let n = password.chars().count();
    if n < PASSWORD_MIN {
        return Err(RegistryError::invalid(
            "password",
            format!("at least {PASSWORD_MIN} characters"),
        ));
    }
    if n > PASSWORD_MAX {
        return Err(RegistryError::invalid(
            "password",
            format!("at most {PASSWORD_MAX} characters"),
        ));
    }
    Ok(())
}

fn check_name(name: &str) -> Result<()> {
    let n = name.chars().count();
    if n == 0 || n > PERSON_NAME_MAX {
        return Err(RegistryError::invalid(
            "name",
            format!("1 to {PERSON_NAME_MAX} characters"),
        ));
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(RegistryError::invalid(
            "name",
            "no spaces or control characters (a sign-in name such as `wang.li`)",
        ));
    }
    Ok(())
}

const PERSON_COLUMNS: &str =
    "p.id, p.name, p.role, p.station_code, p.created_at, p.locked_until, p.disabled_at";

fn person_from(row: &AnyRow) -> Result<Person> {
    Ok(Person {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        role: row.try_get("role")?,
        station: row.try_get("station_code")?,
        created_at: row.try_get("created_at")?,
        locked_until: row.try_get("locked_until")?,
        disabled: row.try_get::<Option<String>, _>("disabled_at")?.is_some(),
    })
}

impl Person {
    /// The audit log's actor for what this person does.
    pub fn actor(&self) -> Actor {
        let mut actor = Actor::new(&format!("person:{}", self.id), &self.role);
        actor.station = self.station.clone();
        actor
    }
}

impl Registry {
    /// Create a person's account. The password is hashed (argon2id); only the hash is kept.
    pub async fn create_person(
        &self,
        name: &str,
        role: &str,
        station: Option<&str>,
        password: &str,
        actor: &Actor,
    ) -> Result<Person> {
        check_name(name)?;
        self.check_role_and_station(role, station, "account")
            .await?;
        check_password(password)?;
        let password = password.to_string();
        let phc = blocking(move || hash_password(&password)).await?;
        let (_turn, mut tx) = self.begin().await?;
        let taken: Option<i64> = sqlx::query_scalar("SELECT id FROM people WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        if taken.is_some() {
            return Err(RegistryError::Conflict(format!(
                "an account named `{name}` exists"
            )));
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO people (name, role, station_code, password_hash, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(name)
        .bind(role)
        .bind(station)
        .bind(&phc)
        .bind(self.now_text())
        .fetch_one(&mut *tx)
        .await?;
        commit_audited(
            tx,
            actor,
            "person.create",
            "person",
            &id.to_string(),
            Some(role),
        )
        .await?;
        self.person(id).await
    }

    pub async fn person(&self, id: i64) -> Result<Person> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PERSON_COLUMNS} FROM people p WHERE p.id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| RegistryError::NotFound(format!("person {id}")))?;
        person_from(&row)
    }

    /// Every account, by name.
    pub async fn people(&self) -> Result<Vec<Person>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PERSON_COLUMNS} FROM people p ORDER BY p.name"
        )))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(person_from)
        .collect()
    }

    /// Set a new password (an admin's reset, or the command line's): the lock and the
    /// failure count are cleared and the account's sessions end.
    pub async fn set_person_password(&self, id: i64, password: &str, actor: &Actor) -> Result<()> {
        check_password(password)?;
        let password = password.to_string();
        let phc = blocking(move || hash_password(&password)).await?;
        let now = self.now_text();
        let (_turn, mut tx) = self.begin().await?;
        let n = sqlx::query(
            "UPDATE people SET password_hash = $1, failed_attempts = 0, locked_until = NULL WHERE id = $2",
        )
        .bind(&phc)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(RegistryError::NotFound(format!("person {id}")));
        }
        sqlx::query(
            "UPDATE web_sessions SET ended_at = $1 WHERE person_id = $2 AND ended_at IS NULL",
        )
        .bind(&now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        commit_audited(
            tx,
            actor,
            "person.password",
            "person",
            &id.to_string(),
            None,
        )
        .await
    }

    /// Disable (or enable again) an account; disabling ends its sessions.
    pub async fn set_person_disabled(&self, id: i64, disabled: bool, actor: &Actor) -> Result<()> {
        let now = self.now_text();
        let (_turn, mut tx) = self.begin().await?;
        let n = sqlx::query("UPDATE people SET disabled_at = $1, failed_attempts = 0, locked_until = NULL WHERE id = $2")
            .bind(disabled.then_some(now.as_str()))
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(RegistryError::NotFound(format!("person {id}")));
        }
        if disabled {
            sqlx::query(
                "UPDATE web_sessions SET ended_at = $1 WHERE person_id = $2 AND ended_at IS NULL",
            )
            .bind(&now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        let action = if disabled {
            "person.disable"
        } else {
            "person.enable"
        };
        commit_audited(tx, actor, action, "person", &id.to_string(), None).await
    }

    /// Check a name and password; on success open a session and return the cookie's secret
    /// (not stored) with the session. After [`LOCK_AFTER_FAILURES`] failures in a row the
    /// account is locked for [`LOCK_FOR`], the right password included.
    pub async fn sign_in(
        &self,
        name: &str,
        password: &str,
        request_id: Option<&str>,
    ) -> Result<std::result::Result<(String, WebSession), SignInRefused>> {
        // A name no account could have (too long, control characters: PostgreSQL cannot
        // even compare a NUL) and an over-long password are answered as any wrong pair,
        // without asking the store or hashing without bound.
        let possible = check_name(name).is_ok() && password.chars().count() <= PASSWORD_MAX;
        let row = if possible {
            sqlx::query(
                "SELECT id, role, password_hash, failed_attempts, locked_until FROM people WHERE name = $1 AND disabled_at IS NULL",
            )
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
        } else {
            None
        };
        let now = self.config.clock.now();
        let now_text = instant_text(now);
        let Some(row) = row else {
            // The same work and the same answer as a wrong password: names do not leak.
            let password: String = password.chars().take(PASSWORD_MAX).collect();
            blocking(move || password_matches(&password, DUMMY_HASH)).await;
            let mut actor = Actor::new("anonymous", "none");
            actor.request_id = request_id.map(str::to_string);
            let (_turn, mut tx) = self.begin().await?;
            commit_audited_in(&mut tx, &actor, "person.sign_in_failed", "").await?;
            tx.commit().await?;
            return Ok(Err(SignInRefused::WrongNameOrPassword));
        };
        let id: i64 = row.try_get("id")?;
        let role: String = row.try_get("role")?;
        let phc: String = row.try_get("password_hash")?;
        let locked_until: Option<String> = row.try_get("locked_until")?;
        let mut actor = Actor::new(&format!("person:{id}"), &role);
        actor.request_id = request_id.map(str::to_string);
        if let Some(until) = locked_until.filter(|u| *u > now_text) {
            let (_turn, mut tx) = self.begin().await?;
            commit_audited_in(&mut tx, &actor, "person.sign_in_locked", &id.to_string()).await?;
            tx.commit().await?;
            return Ok(Err(SignInRefused::Locked { until }));
        }
        let password = password.to_string();
        let good = blocking(move || password_matches(&password, &phc)).await;
        let (_turn, mut tx) = self.begin().await?;
        if !good {
            // Counted in the store, so every server of a deployment counts the same failures.
            let failures: i64 = sqlx::query_scalar(
                "UPDATE people SET failed_attempts = failed_attempts + 1 WHERE id = $1 RETURNING failed_attempts",
            )
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
            let refusal = if failures >= LOCK_AFTER_FAILURES {
                let until = instant_text(now + LOCK_FOR);
                sqlx::query(
                    "UPDATE people SET failed_attempts = 0, locked_until = $1 WHERE id = $2",
                )
                .bind(&until)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                audit(
                    &mut tx,
                    &actor,
                    "person.lock",
                    "person",
                    &id.to_string(),
                    None,
                )
                .await?;
                SignInRefused::Locked { until }
            } else {
                SignInRefused::WrongNameOrPassword
            };
            commit_audited_in(&mut tx, &actor, "person.sign_in_failed", &id.to_string()).await?;
            tx.commit().await?;
            return Ok(Err(refusal));
        }
        sqlx::query("UPDATE people SET failed_attempts = 0, locked_until = NULL WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let secret = format!("boai_s_{}", hex::encode(rand::random::<[u8; 32]>()));
        let csrf = hex::encode(rand::random::<[u8; 24]>());
        let expires = instant_text(now + SESSION_LENGTH);
        let session_id: i64 = sqlx::query_scalar(
            "INSERT INTO web_sessions (token_hash, person_id, csrf_token, created_at, expires_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(digest(&secret))
        .bind(id)
        .bind(&csrf)
        .bind(&now_text)
        .bind(&expires)
        .fetch_one(&mut *tx)
        .await?;
        commit_audited(
            tx,
            &actor,
            "person.sign_in",
            "web_session",
            &session_id.to_string(),
            None,
        )
        .await?;
        let session = WebSession {
            session_id,
            person: self.person(id).await?,
            csrf_token: csrf,
            expires_at: expires,
        };
        Ok(Ok((secret, session)))
    }

    /// The live session a cookie's secret names: not ended, not expired, its person enabled.
    pub async fn web_session(&self, secret: &str) -> Result<Option<WebSession>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT s.id AS session_id, s.csrf_token, s.expires_at, {PERSON_COLUMNS} FROM web_sessions s JOIN people p ON p.id = s.person_id WHERE s.token_hash = $1 AND s.ended_at IS NULL AND s.expires_at > $2 AND p.disabled_at IS NULL"
        )))
        .bind(digest(secret))
        .bind(self.now_text())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(WebSession {
                session_id: r.try_get("session_id")?,
                csrf_token: r.try_get("csrf_token")?,
                expires_at: r.try_get("expires_at")?,
                person: person_from(&r)?,
            })
        })
        .transpose()
    }

    /// End a session (sign-out).
    pub async fn sign_out(&self, session: &WebSession, request_id: Option<&str>) -> Result<()> {
        let mut actor = session.person.actor();
        actor.request_id = request_id.map(str::to_string);
        let (_turn, mut tx) = self.begin().await?;
        sqlx::query("UPDATE web_sessions SET ended_at = $1 WHERE id = $2 AND ended_at IS NULL")
            .bind(self.now_text())
            .bind(session.session_id)
            .execute(&mut *tx)
            .await?;
        commit_audited(
            tx,
            &actor,
            "person.sign_out",
            "web_session",
            &session.session_id.to_string(),
            None,
        )
        .await
    }
}

async fn commit_audited_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    actor: &Actor,
    action: &str,
    person_id: &str,
) -> Result<()> {
    audit(tx, actor, action, "person", person_id, None).await
}

/// A valid argon2id hash of a random password nobody knows: an unknown name costs the same
/// verification as a known one.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0Kx1Ue8Dr4Q3kVYmYX6a8PM4YbDr3jvvI2BAeV1N+Wc";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_and_verify() {
        let phc = hash_password("correct horse battery").unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(password_matches("correct horse battery", &phc));
        assert!(!password_matches("wrong horse battery", &phc));
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
        assert!(!password_matches("", DUMMY_HASH));
    }
}
