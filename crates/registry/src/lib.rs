//! The registry: the durable store behind Boai (sqlx), on SQLite (embedded default, a file in
//! WAL mode) and PostgreSQL (production), through one query path (`sqlx::Any`; `$n`
//! placeholders, portable SQL, ISO-8601 text dates). Rules are enforced here, not only in
//! callers: enrolment age limits, no listing without recruitment consent, duplicate national
//! ids refused, withdrawal takes a donor out of search, status transitions, audit of every
//! change and every identity read.

pub mod atlas;
mod audit;
mod campaigns;
mod care;
mod clock;
mod consents;
mod contacts;
mod donations;
mod donors;
pub mod feed;
pub mod grid;
pub mod hml;
mod holidays;
pub mod import;
mod index_feed;
pub use index_feed::snapshot;
mod jobs;
mod model;
mod national_id;
mod organ;
mod organ_cases;
mod organ_import;
mod page;
mod patients;
pub mod people;
mod reports;
mod requests;
pub mod samples;
mod searches;
mod stations;
mod stats;
mod status;
mod support;
pub mod tokens;
mod typings;

use std::sync::Arc;

use hla::{Expander, TypingError};
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;

pub use audit::{AuditEntry, REQUEST_ID_MAX};
pub use campaigns::{CAMPAIGN_KINDS, Campaign, NewCampaign};
pub use care::{CARE_KINDS, CareFilter, CareRecord, MAX_AID_FEN, NewCare};
pub use clock::{Clock, DEFAULT_TIME_ZONE, day_number};
pub use consents::{CASE_CONSENT_SCOPES, CONSENT_SCOPES, ConsentRecord};
pub use contacts::{
    CONTACT_CHANNELS, CONTACT_OUTCOMES, ContactAttempt, ContactHistory, ContactOutcome, NewContact,
    ReconfirmationItem,
};
pub use donations::{DonationRecord, FOLLOWUP_LISTS, FollowupRecord, PRODUCTS, follow_up_schedule};
pub use donors::{DonorFilter, DonorUpdate};
pub use grid::{GridError, make_grid, validate_grid};
pub use holidays::{Holiday, add_working_days, is_weekend};
pub use index_feed::{IndexUpdate, Indexed};
pub use model::{
    ConsentInput, CordUnit, Donor, Identity, NewDonor, StatusChange, TypingInput, rh_code,
    rh_from_code,
};
pub use national_id::{NATIONAL_ID_MAX, normalise_national_id, resident_id_with_check};
pub use organ::{
    CHANNELS, ETHNICITY_MAX, NewOrganRegistration, ORGANS, OrganRegistration, REGISTRATION_STATES,
    TISSUES,
};
pub use organ_cases::{
    CASE_KINDS, CASE_STATES, CONSENT_RELATIONS, CaseCompletion, FamilyConsent, NewOrganCase,
    OrganCase, OrganCaseFilter,
};
pub use organ_import::{LineError, MAX_IMPORT_LINES, RegistrationImport};
pub use page::{MAX_PAGE, Page, PageRequest};
pub use patients::{NewPatient, Patient};
pub use report::{self, Format as ReportFormat, YearlyReport};
pub use requests::{
    CaseWarning, MILESTONES, MilestoneRecord, REQUEST_KINDS, REQUEST_STATES, RequestDetail,
    RequestFilter, RequestRecord,
};
pub use searches::{
    RunDiff, SEARCH_STATES, SearchFilter, SearchRecord, SearchRunRecord, SearchSummary,
};
pub use status::{DailyRun, REASON_CODES};
pub use typings::TypingRecord;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("not found: {0}")]
    NotFound(String),
    /// The actor's role may not do this (whoever calls: API, CLI or import).
    #[error("not allowed: {0}")]
    Forbidden(String),
    /// The donor has not given (or has withdrawn) the consent this step needs (§4).
    #[error("donor {donor_id} has no {scope} consent in force: {step} needs it")]
    ConsentRequired {
        donor_id: i64,
        scope: String,
        step: String,
    },
    #[error("invalid HLA typing: {0}")]
    Typing(#[from] TypingError),
    #[error(transparent)]
    Grid(#[from] GridError),
    #[error("unsupported database URL `{0}` (sqlite://PATH or postgres://…)")]
    Url(String),
}

impl RegistryError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        RegistryError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl RegistryError {
    /// The database is momentarily busy (no free connection, a lock held, a serialisation
    /// conflict): the same request may succeed if retried.
    pub fn is_busy(&self) -> bool {
        match self {
            RegistryError::Db(sqlx::Error::PoolTimedOut) => true,
            RegistryError::Db(sqlx::Error::Database(d)) => {
                matches!(
                    d.code().as_deref(),
                    Some("5" | "6" | "40001" | "40P01" | "55P03" | "53300")
                ) || d.message().contains("database is locked")
            }
            _ => false,
        }
    }
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

/// Registry rules that differ between registries (registry operations §3, §5, §6).
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Issuing organisation number for GRIDs (CMDP: 2197).
    pub ion: u16,
    pub min_enrol_age: u32,
    pub max_enrol_age: u32,
    /// Donors leave the searchable pool at this birthday.
    pub age_out: u32,
    /// Working days (Monday–Friday, less the `holidays` table) a reservation holds after
    /// confirmatory typing, and after extended typing.
    pub reservation_working_days: u32,
    pub extended_reservation_working_days: u32,
    /// Days a suspended search keeps its results before it is stopped.
    pub suspended_search_days: u32,
    /// The registry's time zone and where "now" comes from.
    pub clock: Clock,
    /// The local time the daily job runs at.
    pub daily_job_at: jiff::civil::Time,
    /// Minimum days between two donations of a product, and the per-product limit.
    pub pbsc_interval_days: u32,
    pub dli_interval_days: u32,
    pub max_donations_per_product: u32,
    /// Products the registry collects (CMDP: PBSC, and DLI later; never bone marrow).
    pub products: Vec<String>,
    /// How SQLite makes a commit durable (PostgreSQL is durable by its own settings).
    pub sqlite_sync: SqliteSync,
    /// Failed contact attempts in a row (since the last successful contact) after which an
    /// available donor goes TU with reason UC (unable to contact).
    pub contact_failures_to_uc: u32,
    /// A listed donor not reached for this many years is on the reconfirmation list.
    pub reconfirm_after_years: u32,
    /// Database connections kept open at most (default: 4 on SQLite, 8 on PostgreSQL).
    pub pool_max_connections: Option<u32>,
}

/// SQLite's `synchronous` setting in WAL mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SqliteSync {
    /// Every acknowledged commit is on disk (an fsync of the WAL per commit): a power loss
    /// loses nothing that was acknowledged. The default.
    #[default]
    Full,
    /// The WAL is synced at checkpoints only: faster commits, and a power loss (not a
    /// crash of the process) may lose the last acknowledged ones.
    Normal,
}

impl SqliteSync {
    pub fn from_code(code: &str) -> Option<SqliteSync> {
        match code.to_ascii_lowercase().as_str() {
            "full" => Some(SqliteSync::Full),
            "normal" => Some(SqliteSync::Normal),
            _ => None,
        }
    }

    fn pragma(self) -> &'static str {
        match self {
            SqliteSync::Full => "PRAGMA synchronous = FULL",
            SqliteSync::Normal => "PRAGMA synchronous = NORMAL",
        }
    }
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            ion: 2197,
            min_enrol_age: 18,
            max_enrol_age: 45,
            age_out: 61,
            reservation_working_days: 53,
            extended_reservation_working_days: 60,
            suspended_search_days: 42,
            clock: Clock::default(),
            daily_job_at: jiff::civil::time(2, 0, 0, 0),
            pbsc_interval_days: 90,
            dli_interval_days: 30,
            max_donations_per_product: 2,
            products: vec!["PBSC".into(), "DLI".into()],
            sqlite_sync: SqliteSync::default(),
            contact_failures_to_uc: 3,
            reconfirm_after_years: 2,
            pool_max_connections: None,
        }
    }
}

/// Who is acting, for the audit log.
#[derive(Debug, Clone)]
pub struct Actor {
    pub name: String,
    pub role: String,
    pub request_id: Option<String>,
    /// The station a station's actor acts for (ownership rules read it).
    pub station: Option<String>,
}

impl Actor {
    pub fn new(name: &str, role: &str) -> Actor {
        Actor {
            name: name.into(),
            role: role.into(),
            request_id: None,
            station: None,
        }
    }

    /// The same actor acting for `station`.
    pub fn at_station(mut self, station: &str) -> Actor {
        self.station = Some(station.into());
        self
    }
    pub fn system() -> Actor {
        Actor::new("system", "system")
    }
}

/// The store.
pub struct Registry {
    pub(crate) pool: AnyPool,
    /// The change feed's reader's own connections (PostgreSQL), so a reading cycle, which
    /// every search waits for, never queues behind request handlers for a connection.
    pub(crate) feed_pool: AnyPool,
    pub backend: Backend,
    pub config: RegistryConfig,
    pub(crate) expander: Arc<Expander>,
    pub url: String,
    /// SQLite writers queue here, in arrival order, before `BEGIN IMMEDIATE`: a writer
    /// that found the file locked would sit in SQLite's busy handler, which sleeps in steps
    /// of up to 100 ms however soon the lock frees.
    write_turns: Arc<tokio::sync::Mutex<()>>,
}

/// A writer's turn at the database (SQLite: held until its transaction ends; PostgreSQL
/// writers need none). Declared before the transaction so it is dropped after it.
pub(crate) type WriteTurn = Option<tokio::sync::OwnedMutexGuard<()>>;

impl Registry {
    /// Connect (creating a SQLite file if missing). Call [`Registry::migrate`] before use.
    pub async fn connect(
        url: &str,
        expander: Arc<Expander>,
        config: RegistryConfig,
    ) -> Result<Registry> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(RegistryError::Url(url.to_string()));
        };
        let pool = match backend {
            Backend::Sqlite => {
                let with_mode = if url.contains('?') {
                    url.to_string()
                } else {
                    format!("{url}?mode=rwc")
                };
                let sync = config.sqlite_sync.pragma();
                AnyPoolOptions::new()
                    .max_connections(config.pool_max_connections.unwrap_or(4))
                    .after_connect(move |conn, _| {
                        Box::pin(async move {
                            // WAL: readers never block the writer; `sync` says whether a
                            // power loss may lose acknowledged commits (see `SqliteSync`).
                            for pragma in [
                                "PRAGMA journal_mode = WAL",
                                sync,
                                "PRAGMA foreign_keys = ON",
                                "PRAGMA busy_timeout = 30000",
                            ] {
                                sqlx::query(pragma).execute(&mut *conn).await?;
                            }
                            Ok(())
                        })
                    })
                    .connect(&with_mode)
                    .await?
            }
            Backend::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(config.pool_max_connections.unwrap_or(8))
                    .connect(url)
                    .await?
            }
        };
        let feed_pool = match backend {
            Backend::Sqlite => pool.clone(),
            // Planned for each cycle's horizon: a generic plan of the feed's range query
            // (a third of the table, by its estimate) scans every change ever made.
            Backend::Postgres => AnyPoolOptions::new()
                .max_connections(2)
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        sqlx::query("SET plan_cache_mode = force_custom_plan")
                            .execute(&mut *conn)
                            .await?;
                        Ok(())
                    })
                })
                .connect_lazy(url)?,
        };
        Ok(Registry {
            pool,
            feed_pool,
            backend,
            config,
            expander,
            url: url.to_string(),
            write_turns: Arc::default(),
        })
    }

    /// Apply pending migrations (`migrations/sqlite` or `migrations/postgres`).
    pub async fn migrate(&self) -> Result<()> {
        match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&self.pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&self.pool).await?,
        }
        Ok(())
    }

    /// Begin a write transaction, with the turn to keep until it ends (bind both:
    /// `let (_turn, mut tx) = …`). SQLite writers take turns in the process, then the write
    /// lock up front (`BEGIN IMMEDIATE`) so a transaction never fails on lock upgrade; the
    /// busy timeout still covers other processes writing the same file.
    pub(crate) async fn begin(&self) -> Result<(WriteTurn, sqlx::Transaction<'static, sqlx::Any>)> {
        Ok(match self.backend {
            Backend::Sqlite => {
                let turn = self.write_turns.clone().lock_owned().await;
                (Some(turn), self.pool.begin_with("BEGIN IMMEDIATE").await?)
            }
            Backend::Postgres => (None, self.pool.begin().await?),
        })
    }

    /// Today, the registry's local date (its time zone), as days since 1900-01-01.
    pub fn today(&self) -> i64 {
        self.config.clock.today()
    }

    pub fn expander(&self) -> &Arc<Expander> {
        &self.expander
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The wall clock's UTC time as RFC 3339 text (the audit log's times: when a change was
/// really made, whatever the registry's clock says).
pub fn now_text() -> String {
    instant_text(jiff::Timestamp::now())
}

/// An instant as the store's RFC 3339 UTC text (microseconds, `Z`): text order is time order.
pub fn instant_text(at: jiff::Timestamp) -> String {
    at.round(jiff::Unit::Microsecond)
        .unwrap_or(at)
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

impl Registry {
    /// Now on the registry's clock, as record timestamps (`*_at`) store it.
    pub fn now_text(&self) -> String {
        instant_text(self.config.clock.now())
    }

    /// The database pool's connections: (open, idle).
    pub fn pool_use(&self) -> (u32, usize) {
        (self.pool.size(), self.pool.num_idle())
    }
}

#[cfg(test)]
mod tests {
    use super::RegistryError;

    #[test]
    fn only_a_momentarily_busy_database_is_busy() {
        assert!(RegistryError::Db(sqlx::Error::PoolTimedOut).is_busy());
        assert!(!RegistryError::Db(sqlx::Error::RowNotFound).is_busy());
        assert!(!RegistryError::invalid("f", "r").is_busy());
        assert!(!RegistryError::Conflict("taken".into()).is_busy());
    }
}
