//! Branches and their collection stations.

use crate::audit::{audit, commit_audited};
use crate::support::{check_text, is_unique_violation};
use crate::{Actor, Registry, RegistryError, Result};

impl Registry {
    pub async fn add_branch(
        &self,
        code: &str,
        name: &str,
        region: &str,
        actor: &Actor,
    ) -> Result<()> {
        check_text("branch", Some(code), true, 16)?;
        check_text("name", Some(name), true, 200)?;
        check_text("region", Some(region), false, 100)?;
        let (_turn, mut tx) = self.begin().await?;
        sqlx::query("INSERT INTO branches (code, name, region) VALUES ($1, $2, $3)")
            .bind(code)
            .bind(name)
            .bind(region)
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    RegistryError::Conflict(format!("branch {code} exists"))
                } else {
                    e.into()
                }
            })?;
        commit_audited(tx, actor, "branch.create", "branch", code, None).await?;
        Ok(())
    }

    pub async fn add_station(
        &self,
        code: &str,
        branch: &str,
        name: &str,
        region: &str,
        yearly_target: i64,
        actor: &Actor,
    ) -> Result<()> {
        self.add_station_in(code, branch, name, region, yearly_target, actor, false)
            .await
    }

    /// A station, and its branch (named by its code) when the registry has none yet: both
    /// or neither.
    pub async fn add_station_and_branch(
        &self,
        code: &str,
        branch: &str,
        name: &str,
        region: &str,
        yearly_target: i64,
        actor: &Actor,
    ) -> Result<()> {
        self.add_station_in(code, branch, name, region, yearly_target, actor, true)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn add_station_in(
        &self,
        code: &str,
        branch: &str,
        name: &str,
        region: &str,
        yearly_target: i64,
        actor: &Actor,
        create_branch: bool,
    ) -> Result<()> {
        check_text("code", Some(code), true, 16)?;
        check_text("branch", Some(branch), true, 16)?;
        check_text("name", Some(name), true, 200)?;
        check_text("region", Some(region), false, 100)?;
        if yearly_target < 0 {
            return Err(RegistryError::invalid(
                "yearly_target",
                "must not be negative",
            ));
        }
        let (_turn, mut tx) = self.begin().await?;
        let exists: Option<String> =
            sqlx::query_scalar("SELECT code FROM branches WHERE code = $1")
                .bind(branch)
                .fetch_optional(&mut *tx)
                .await?;
        if exists.is_none() && create_branch {
            sqlx::query("INSERT INTO branches (code, name, region) VALUES ($1, $1, $2)")
                .bind(branch)
                .bind(region)
                .execute(&mut *tx)
                .await?;
            audit(&mut tx, actor, "branch.create", "branch", branch, None).await?;
        } else if exists.is_none() {
            return Err(RegistryError::NotFound(format!("branch {branch}")));
        }
        sqlx::query("INSERT INTO stations (code, branch_code, name, region, yearly_target) VALUES ($1, $2, $3, $4, $5)")
            .bind(code)
            .bind(branch)
            .bind(name)
            .bind(region)
            .bind(yearly_target)
            .execute(&mut *tx)
            .await
            .map_err(|e| if is_unique_violation(&e) { RegistryError::Conflict(format!("station {code} exists")) } else { e.into() })?;
        commit_audited(tx, actor, "station.create", "station", code, None).await?;
        Ok(())
    }

    pub async fn station_exists(&self, code: &str) -> Result<bool> {
        let found: Option<String> = sqlx::query_scalar("SELECT code FROM stations WHERE code = $1")
            .bind(code)
            .fetch_optional(&self.pool)
            .await?;
        Ok(found.is_some())
    }

    /// Station codes, sorted.
    pub async fn station_codes(&self) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT code FROM stations ORDER BY code")
                .fetch_all(&self.pool)
                .await?,
        )
    }
}
