//! Donor care (人道关怀): visits and condolences, hardship aid, transport and other
//! benefits, honours, memorial entries — for a donor, or for a deceased donor's family (a
//! stem-cell donor's, or a death-donation case's). Records hold no identity data: the
//! donor or case is named by id, as everywhere else. Case managers record and read them;
//! auditors read them.

use sqlx::Row;

use crate::audit::commit_audited;
use crate::campaigns::check_year;
use crate::page::{Arg, Filter, Page, PageRequest};
use crate::support::{NAME_MAX, NOTE_MAX, check_one_of, check_text, past_date};
use crate::{Actor, Registry, RegistryError, Result};

pub const CARE_KINDS: [&str; 6] = [
    "visit",
    "condolence",
    "aid",
    "benefit",
    "honour",
    "memorial",
];
/// The largest amount of one aid record, in fen (¥1,000,000).
pub const MAX_AID_FEN: i64 = 100_000_000;

/// A care record to make. Which fields a kind needs: `aid` an amount and its fund;
/// `benefit` a title (what was given, e.g. transport) and optionally an amount; `honour`
/// its title and awarding body; `memorial` the memorial park (plot and commemoration
/// optional). A `condolence` is for a family.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct NewCare {
    #[serde(default)]
    pub donor_id: Option<i64>,
    #[serde(default)]
    pub organ_case_id: Option<i64>,
    #[serde(default)]
    pub for_family: bool,
    pub kind: String,
    /// `YYYY-MM-DD`, not after today.
    pub on_date: String,
    /// CNY in fen (¥12.50 is 1250).
    #[serde(default)]
    pub amount_fen: Option<i64>,
    #[serde(default)]
    pub fund: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub awarding_body: Option<String>,
    #[serde(default)]
    pub memorial_park: Option<String>,
    #[serde(default)]
    pub plot: Option<String>,
    #[serde(default)]
    pub commemoration: Option<String>,
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CareRecord {
    pub id: i64,
    pub donor_id: Option<i64>,
    pub organ_case_id: Option<i64>,
    pub for_family: bool,
    pub kind: String,
    pub on_date: String,
    pub amount_fen: Option<i64>,
    pub fund: Option<String>,
    pub title: Option<String>,
    pub awarding_body: Option<String>,
    pub memorial_park: Option<String>,
    pub plot: Option<String>,
    pub commemoration: Option<String>,
    pub note: Option<String>,
    pub recorded_by: String,
    pub recorded_at: String,
}

#[derive(Debug, Clone, Default)]
pub struct CareFilter {
    pub donor_id: Option<i64>,
    pub organ_case_id: Option<i64>,
    pub kind: Option<String>,
    pub year: Option<i32>,
}

const CARE_SELECT: &str = "SELECT id, donor_id, organ_case_id, CAST(CASE WHEN for_family THEN 1 ELSE 0 END AS BIGINT) AS for_family, kind, on_date, \
     amount_fen, fund, title, awarding_body, memorial_park, plot, commemoration, note, recorded_by, recorded_at FROM care_records";

fn care_from_row(r: &sqlx::any::AnyRow) -> Result<CareRecord> {
    Ok(CareRecord {
        id: r.try_get("id")?,
        donor_id: r.try_get("donor_id")?,
        organ_case_id: r.try_get("organ_case_id")?,
        for_family: r.try_get::<i64, _>("for_family")? != 0,
        kind: r.try_get("kind")?,
        on_date: r.try_get("on_date")?,
        amount_fen: r.try_get("amount_fen")?,
        fund: r.try_get("fund")?,
        title: r.try_get("title")?,
        awarding_body: r.try_get("awarding_body")?,
        memorial_park: r.try_get("memorial_park")?,
        plot: r.try_get("plot")?,
        commemoration: r.try_get("commemoration")?,
        note: r.try_get("note")?,
        recorded_by: r.try_get("recorded_by")?,
        recorded_at: r.try_get("recorded_at")?,
    })
}

fn required(field: &str, value: &Option<String>, kind: &str) -> Result<()> {
    match value.as_deref().map(str::trim) {
        Some(v) if !v.is_empty() => Ok(()),
        _ => Err(RegistryError::invalid(
            field,
            format!("a `{kind}` record needs it"),
        )),
    }
}

fn check_care(c: &NewCare, today: i64) -> Result<()> {
    if c.donor_id.is_some() == c.organ_case_id.is_some() {
        return Err(RegistryError::invalid(
            "donor_id",
            "name either the donor or the death-donation case (organ_case_id)",
        ));
    }
    check_one_of("kind", &c.kind, &CARE_KINDS)?;
    past_date("on_date", &c.on_date, today)?;
    for (field, value, max) in [
        ("fund", &c.fund, NAME_MAX),
        ("title", &c.title, NAME_MAX),
        ("awarding_body", &c.awarding_body, NAME_MAX),
        ("memorial_park", &c.memorial_park, NAME_MAX),
        ("plot", &c.plot, NAME_MAX),
        ("commemoration", &c.commemoration, NAME_MAX),
        ("note", &c.note, NOTE_MAX),
    ] {
        check_text(field, value.as_deref(), false, max)?;
    }
    if let Some(a) = c.amount_fen
        && !(1..=MAX_AID_FEN).contains(&a)
    {
        return Err(RegistryError::invalid(
            "amount_fen",
            format!("{a} is not between 1 and {MAX_AID_FEN} fen"),
        ));
    }
    match c.kind.as_str() {
        "aid" => {
            if c.amount_fen.is_none() {
                return Err(RegistryError::invalid(
                    "amount_fen",
                    "hardship aid has an amount",
                ));
            }
            required("fund", &c.fund, "aid")
        }
        "benefit" => required("title", &c.title, "benefit"),
        "honour" => {
            required("title", &c.title, "honour")?;
            required("awarding_body", &c.awarding_body, "honour")
        }
        "memorial" => required("memorial_park", &c.memorial_park, "memorial"),
        "condolence" if !c.for_family => Err(RegistryError::invalid(
            "for_family",
            "a condolence is for the family",
        )),
        _ if c.amount_fen.is_some() => Err(RegistryError::invalid(
            "amount_fen",
            format!("a `{}` record has no amount", c.kind),
        )),
        _ => Ok(()),
    }
}

impl Registry {
    /// Record care for a donor or a deceased donor's family (case managers).
    pub async fn record_care(&self, c: &NewCare, actor: &Actor) -> Result<CareRecord> {
        if actor.role != "case_manager" {
            return Err(RegistryError::Forbidden(
                "care is recorded by case managers".into(),
            ));
        }
        check_care(c, self.today())?;
        let (_turn, mut tx) = self.begin().await?;
        if let Some(d) = c.donor_id {
            let status: Option<(String, Option<String>)> =
                sqlx::query_as("SELECT status, status_reason FROM donors WHERE id = $1")
                    .bind(d)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some((status, reason)) = status else {
                return Err(RegistryError::invalid("donor_id", format!("no donor {d}")));
            };
            // A family's memorial and condolence records are for a donor who died.
            if (c.for_family || c.kind == "memorial")
                && !(status == "DE" && reason.as_deref() == Some("DD"))
            {
                return Err(RegistryError::invalid(
                    "for_family",
                    format!("donor {d} is not recorded as deceased (DE/DD)"),
                ));
            }
        }
        if let Some(k) = c.organ_case_id {
            let exists: Option<i64> =
                sqlx::query_scalar("SELECT id FROM organ_cases WHERE id = $1")
                    .bind(k)
                    .fetch_optional(&mut *tx)
                    .await?;
            if exists.is_none() {
                return Err(RegistryError::invalid(
                    "organ_case_id",
                    format!("no organ case {k}"),
                ));
            }
            if !c.for_family && c.kind != "memorial" && c.kind != "honour" {
                return Err(RegistryError::invalid(
                    "for_family",
                    "care after a death-donation case is for the donor's family",
                ));
            }
        }
        let id: i64 = sqlx::query_scalar("INSERT INTO care_records (donor_id, organ_case_id, for_family, kind, on_date, amount_fen, fund, title, awarding_body, memorial_park, plot, commemoration, note, recorded_by, recorded_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING id")
            .bind(c.donor_id)
            .bind(c.organ_case_id)
            .bind(c.for_family || c.organ_case_id.is_some())
            .bind(&c.kind)
            .bind(&c.on_date)
            .bind(c.amount_fen)
            .bind(c.fund.as_deref().map(str::trim))
            .bind(c.title.as_deref().map(str::trim))
            .bind(c.awarding_body.as_deref().map(str::trim))
            .bind(c.memorial_park.as_deref().map(str::trim))
            .bind(c.plot.as_deref().map(str::trim))
            .bind(c.commemoration.as_deref().map(str::trim))
            .bind(c.note.as_deref())
            .bind(&actor.name)
            .bind(self.now_text())
            .fetch_one(&mut *tx)
            .await?;
        let (entity, entity_id) = match (c.donor_id, c.organ_case_id) {
            (Some(d), _) => ("donor", d),
            (_, Some(k)) => ("organ_case", k),
            _ => unreachable!("checked: exactly one subject"),
        };
        commit_audited(
            tx,
            actor,
            "care.record",
            entity,
            &entity_id.to_string(),
            Some(&format!("{} {id}", c.kind)),
        )
        .await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{CARE_SELECT} WHERE id = $1")))
            .bind(id)
            .fetch_one(&self.pool)
            .await?;
        care_from_row(&row)
    }

    /// Care records (case managers, auditors): per donor, per case, per kind, per year.
    pub async fn list_care(
        &self,
        actor: &Actor,
        filter: &CareFilter,
        page: &PageRequest,
    ) -> Result<Page<CareRecord>> {
        if !matches!(actor.role.as_str(), "case_manager" | "auditor") {
            return Err(RegistryError::Forbidden(
                "care records are read by case managers and auditors".into(),
            ));
        }
        let mut f = Filter::default();
        if let Some(d) = filter.donor_id {
            f.with("donor_id = ?", Arg::Int(d));
        }
        if let Some(k) = filter.organ_case_id {
            f.with("organ_case_id = ?", Arg::Int(k));
        }
        if let Some(k) = &filter.kind {
            check_one_of("kind", k, &CARE_KINDS)?;
            f.with("kind = ?", Arg::Text(k.clone()));
        }
        if let Some(y) = filter.year {
            check_year(y)?;
            f.with("on_date >= ?", Arg::Text(format!("{y:04}-01-01")));
            f.with("on_date <= ?", Arg::Text(format!("{y:04}-12-31")));
        }
        self.page(CARE_SELECT, "id", f, page, care_from_row, |c| c.id)
            .await
    }
}
