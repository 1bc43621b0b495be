//! Bearer tokens of the HTTP API: a role, for station tokens a station, and only the SHA-256
//! of the secret stored. Creating and revoking are audited.

use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::audit::commit_audited;
use crate::support::{NAME_MAX, check_text};
use crate::{Actor, Registry, RegistryError, Result};

pub const ROLES: [&str; 5] = ["station", "coordinator", "case_manager", "admin", "auditor"];

/// Who a valid token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenHolder {
    pub token_id: i64,
    pub role: String,
    /// Station tokens only.
    pub station: Option<String>,
    pub label: String,
}

fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

impl Registry {
    /// A role is one of [`ROLES`]; the station role, and only it, names a known station.
    /// `what` is what is being created (`token`, `account`), for the reason's words.
    pub(crate) async fn check_role_and_station(
        &self,
        role: &str,
        station: Option<&str>,
        what: &str,
    ) -> Result<()> {
        if !ROLES.contains(&role) {
            return Err(RegistryError::invalid(
                "role",
                format!("`{role}` is not one of {}", ROLES.join(", ")),
            ));
        }
        match (role, station) {
            ("station", None) => Err(RegistryError::invalid(
                "station",
                format!("a station {what} needs its station"),
            )),
            ("station", Some(code)) if !self.station_exists(code).await? => Err(
                RegistryError::invalid("station", format!("unknown station `{code}`")),
            ),
            (r, Some(_)) if r != "station" => Err(RegistryError::invalid(
                "station",
                format!("only station {what}s belong to a station"),
            )),
            _ => Ok(()),
        }
    }

    /// Create a token; returns its id and the secret, which is not stored and cannot be
    /// shown again.
    pub async fn create_token(
        &self,
        role: &str,
        station: Option<&str>,
        label: &str,
        actor: &Actor,
    ) -> Result<(i64, String)> {
        self.check_role_and_station(role, station, "token").await?;
        check_text("label", Some(label), false, NAME_MAX)?;
        let bytes: [u8; 32] = rand::random();
        let secret = format!("boai_{}", hex::encode(bytes));
        let (_turn, mut tx) = self.begin().await?;
        let id: i64 = sqlx::query_scalar("INSERT INTO api_tokens (token_hash, role, station_code, label, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id")
            .bind(digest(&secret))
            .bind(role)
            .bind(station)
            .bind(label)
            .bind(self.now_text())
            .fetch_one(&mut *tx)
            .await?;
        commit_audited(
            tx,
            actor,
            "token.create",
            "token",
            &id.to_string(),
            Some(role),
        )
        .await?;
        Ok((id, secret))
    }

    pub async fn revoke_token(&self, token_id: i64, actor: &Actor) -> Result<()> {
        let (_turn, mut tx) = self.begin().await?;
        let n = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(self.now_text())
        .bind(token_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(RegistryError::NotFound(format!("active token {token_id}")));
        }
        commit_audited(
            tx,
            actor,
            "token.revoke",
            "token",
            &token_id.to_string(),
            None,
        )
        .await?;
        Ok(())
    }

    /// The holder of a secret, if it names a token that is not revoked.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<TokenHolder>> {
        let row = sqlx::query("SELECT id, role, station_code, label FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL")
            .bind(digest(secret))
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(TokenHolder {
                token_id: r.try_get("id")?,
                role: r.try_get("role")?,
                station: r.try_get("station_code")?,
                label: r.try_get("label")?,
            })
        })
        .transpose()
    }
}
