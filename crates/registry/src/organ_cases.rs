//! Death-donation cases (registry operations §9), typed: organ, body (遗体) or cornea
//! (眼角膜). A case is recorded by a case manager with the family's structured consent
//! (who: spouse, adult children, parents; in writing; the date) and one or more Red Cross
//! witnesses, then completed (what was recovered, recipients helped) or cancelled.
//!
//! What may be recovered follows the kind: an organ case recovers at least one organ (and
//! may add corneas), a body case gives the whole body to medical education (and may add
//! corneas, never organs), a cornea case recovers corneas only. Counts are per organ:
//! kidneys, lungs and corneas up to two, every other organ one.

use std::collections::BTreeMap;

use sqlx::{Any, Row, Transaction};

use crate::audit::{audit, commit_audited};
use crate::campaigns::check_year;
use crate::page::{Arg, Filter, Page, PageRequest};
use crate::support::{NAME_MAX, NOTE_MAX, check_choice, check_one_of, check_text, past_date};
use crate::{Actor, ORGANS, Registry, RegistryError, Result};

pub const CASE_KINDS: [&str; 3] = ["organ", "body", "cornea"];
pub const CASE_STATES: [&str; 3] = ["open", "completed", "cancelled"];
/// Who in the family may consent (jointly, in writing).
pub const CONSENT_RELATIONS: [&str; 3] = ["spouse", "adult_children", "parents"];
/// The most recipients one case may record (a generous bound against typing errors).
pub const MAX_RECIPIENTS: i64 = 50;
const MAX_WITNESSES: usize = 10;

/// The family's consent to donation.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FamilyConsent {
    /// spouse, adult_children, parents: who consented, jointly.
    pub relations: Vec<String>,
    /// Consent must be in writing.
    pub in_writing: bool,
    /// `YYYY-MM-DD`.
    pub consented_on: String,
    pub note: Option<String>,
}

/// What a completed case recovered.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CaseCompletion {
    /// `YYYY-MM-DD`, not before death or consent, not after today.
    pub completed_on: String,
    /// Organ or `cornea` → count (kidney, lung, cornea: 1–2; others: 1).
    #[serde(default)]
    pub recovered: BTreeMap<String, i64>,
    #[serde(default)]
    pub recipients_helped: i64,
}

#[derive(Debug, Clone, Default)]
pub struct NewOrganCase {
    /// The deceased's registration of intent, when there is one (must not be revoked).
    pub registration_id: Option<i64>,
    pub kind: String,
    /// `YYYY-MM-DD`.
    pub died_on: String,
    pub family_consent: FamilyConsent,
    pub witnesses: Vec<String>,
    /// The OPO, hospital or (body donation) receiving medical school.
    pub opo: String,
    /// The Red Cross station recording the case; default: the registration's.
    pub station: Option<String>,
    /// Default: the station's region.
    pub region: Option<String>,
    /// Recorded already completed.
    pub completion: Option<CaseCompletion>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OrganCase {
    pub id: i64,
    pub registration_id: Option<i64>,
    /// None for a case recorded before cases were typed.
    pub kind: Option<String>,
    pub state: String,
    pub died_on: String,
    pub family_consent: FamilyConsent,
    pub witnesses: Vec<String>,
    pub opo: Option<String>,
    pub station: Option<String>,
    pub region: Option<String>,
    pub completed_on: Option<String>,
    pub recovered: BTreeMap<String, i64>,
    pub recipients_helped: Option<i64>,
    pub cancel_reason: Option<String>,
    pub recorded_at: String,
}

fn most_of(item: &str) -> i64 {
    match item {
        "kidney" | "lung" | "cornea" => 2,
        _ => 1,
    }
}

/// `kidney:2,liver:1` ↔ a map.
pub(crate) fn recovered_text(m: &BTreeMap<String, i64>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k}:{v}"))
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) fn parse_recovered(text: Option<&str>) -> BTreeMap<String, i64> {
    text.unwrap_or("")
        .split(',')
        .filter_map(|p| p.split_once(':'))
        .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
        .collect()
}

/// Check a completion against the case's kind and dates.
fn check_completion(
    c: &CaseCompletion,
    kind: &str,
    after: &[(&str, &str)],
    today: i64,
) -> Result<()> {
    let done = past_date("completed_on", &c.completed_on, today)?;
    for (name, day) in after {
        if done < crate::support::date(name, day)? {
            return Err(RegistryError::invalid(
                "completed_on",
                format!("{} is before {name} ({day})", c.completed_on),
            ));
        }
    }
    let mut organs = 0;
    for (item, n) in &c.recovered {
        let field = format!("recovered.{item}");
        if !(ORGANS.contains(&item.as_str()) || item == "cornea") {
            return Err(RegistryError::invalid(
                field,
                format!("`{item}` is not one of {}, cornea", ORGANS.join(", ")),
            ));
        }
        if !(1..=most_of(item)).contains(n) {
            return Err(RegistryError::invalid(
                field,
                format!("{n} is not between 1 and {}", most_of(item)),
            ));
        }
        if item != "cornea" {
            organs += n;
        }
    }
    let corneas = c.recovered.get("cornea").copied().unwrap_or(0);
    match kind {
        "organ" if organs == 0 => Err(RegistryError::invalid(
            "recovered",
            "an organ donation recovers at least one organ",
        )),
        "body" if organs > 0 => Err(RegistryError::invalid(
            "recovered",
            "a body donation gives the whole body; record organs as an organ case",
        )),
        "cornea" if organs > 0 || corneas == 0 => Err(RegistryError::invalid(
            "recovered",
            "a cornea donation recovers corneas only",
        )),
        _ if !(0..=MAX_RECIPIENTS).contains(&c.recipients_helped) => Err(RegistryError::invalid(
            "recipients_helped",
            format!(
                "{} is not between 0 and {MAX_RECIPIENTS}",
                c.recipients_helped
            ),
        )),
        _ => Ok(()),
    }
}

fn case_managers_only(actor: &Actor) -> Result<()> {
    if actor.role == "case_manager" {
        Ok(())
    } else {
        Err(RegistryError::Forbidden(
            "death-donation cases are recorded by case managers".into(),
        ))
    }
}

impl Registry {
    /// Record a death-donation case (see the module for the rules).
    pub async fn record_organ_case(&self, new: &NewOrganCase, actor: &Actor) -> Result<i64> {
        case_managers_only(actor)?;
        let today = self.today();
        check_one_of("kind", &new.kind, &CASE_KINDS)?;
        past_date("died_on", &new.died_on, today)?;
        let consent = &new.family_consent;
        let relations: Vec<&str> = consent.relations.iter().map(String::as_str).collect();
        check_choice(&relations, &CONSENT_RELATIONS, "family_consent.relations")?;
        if relations.is_empty() {
            return Err(RegistryError::invalid(
                "family_consent.relations",
                "donation needs the family's consent: name who gave it (spouse, adult_children, parents)",
            ));
        }
        if !consent.in_writing {
            return Err(RegistryError::invalid(
                "family_consent.in_writing",
                "the family's consent must be given in writing",
            ));
        }
        past_date("family_consent.consented_on", &consent.consented_on, today)?;
        check_text(
            "family_consent.note",
            consent.note.as_deref(),
            false,
            NOTE_MAX,
        )?;
        if new.witnesses.is_empty() {
            return Err(RegistryError::invalid(
                "witnesses",
                "every donation case has at least one Red Cross witness",
            ));
        }
        if new.witnesses.len() > MAX_WITNESSES {
            return Err(RegistryError::invalid(
                "witnesses",
                format!("at most {MAX_WITNESSES} witnesses"),
            ));
        }
        for (i, w) in new.witnesses.iter().enumerate() {
            check_text(&format!("witnesses[{i}]"), Some(w), true, NAME_MAX)?;
            if new.witnesses[..i].iter().any(|o| o.trim() == w.trim()) {
                return Err(RegistryError::invalid(
                    format!("witnesses[{i}]"),
                    format!("`{}` is listed twice", w.trim()),
                ));
            }
        }
        check_text("opo", Some(&new.opo), true, NAME_MAX)?;
        check_text("region", new.region.as_deref(), false, NAME_MAX)?;
        if let Some(c) = &new.completion {
            check_completion(
                c,
                &new.kind,
                &[
                    ("died_on", &new.died_on),
                    ("family_consent.consented_on", &consent.consented_on),
                ],
                today,
            )?;
        }
        let (_turn, mut tx) = self.begin().await?;
        let mut station = new.station.clone();
        if let Some(r) = new.registration_id {
            let row =
                sqlx::query("SELECT state, station_code FROM organ_registrations WHERE id = $1")
                    .bind(r)
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or_else(|| {
                        RegistryError::invalid(
                            "registration_id",
                            format!("no organ registration {r}"),
                        )
                    })?;
            // A revoked intent is final (registry operations §9): it cannot back a case.
            if row.try_get::<String, _>("state")? == "revoked" {
                return Err(RegistryError::Conflict(format!(
                    "organ registration {r} was revoked"
                )));
            }
            if station.is_none() {
                station = row.try_get("station_code")?;
            }
        }
        let station = station.ok_or_else(|| {
            RegistryError::invalid("station", "name the Red Cross station recording the case")
        })?;
        let region: Option<String> =
            sqlx::query_scalar("SELECT region FROM stations WHERE code = $1")
                .bind(&station)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(station_region) = region else {
            return Err(RegistryError::invalid(
                "station",
                format!("unknown station `{station}`"),
            ));
        };
        let region = match &new.region {
            Some(r) if !r.trim().is_empty() => r.trim().to_string(),
            _ => station_region,
        };
        let completion = new.completion.as_ref();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO organ_cases (registration_id, died_on, family_consent, witness, outcome, recorded_at, kind, state, station_code, region, opo, \
             consent_by, consent_in_writing, consent_on, recovered, recipients_helped, completed_on) \
             VALUES ($1, $2, $3, $4, NULL, $5, $6, $7, $8, $9, $10, $11, TRUE, $12, $13, $14, $15) RETURNING id",
        )
        .bind(new.registration_id)
        .bind(&new.died_on)
        .bind(consent.note.as_deref().unwrap_or(""))
        .bind(new.witnesses[0].trim())
        .bind(self.now_text())
        .bind(&new.kind)
        .bind(if completion.is_some() { "completed" } else { "open" })
        .bind(&station)
        .bind(&region)
        .bind(new.opo.trim())
        .bind(consent.relations.join(","))
        .bind(&consent.consented_on)
        .bind(completion.map(|c| recovered_text(&c.recovered)))
        .bind(completion.map(|c| c.recipients_helped))
        .bind(completion.map(|c| c.completed_on.clone()))
        .fetch_one(&mut *tx)
        .await?;
        for (i, w) in new.witnesses.iter().enumerate() {
            sqlx::query(
                "INSERT INTO organ_case_witnesses (case_id, position, name) VALUES ($1, $2, $3)",
            )
            .bind(id)
            .bind(i as i64 + 1)
            .bind(w.trim())
            .execute(&mut *tx)
            .await?;
        }
        commit_audited(
            tx,
            actor,
            "organ.case",
            "organ_case",
            &id.to_string(),
            Some(&new.kind),
        )
        .await?;
        Ok(id)
    }

    /// Complete an open case with what was recovered.
    pub async fn complete_organ_case(
        &self,
        id: i64,
        completion: &CaseCompletion,
        actor: &Actor,
    ) -> Result<OrganCase> {
        case_managers_only(actor)?;
        let (_turn, mut tx) = self.begin().await?;
        let case = open_case(&mut tx, id).await?;
        let kind = case.kind.clone().ok_or_else(|| {
            RegistryError::Conflict(format!(
                "organ case {id} was recorded before cases were typed; record it anew with its kind"
            ))
        })?;
        let mut after = vec![("died_on", case.died_on.as_str())];
        if !case.family_consent.consented_on.is_empty() {
            after.push((
                "family_consent.consented_on",
                &case.family_consent.consented_on,
            ));
        }
        check_completion(completion, &kind, &after, self.today())?;
        sqlx::query("UPDATE organ_cases SET state = 'completed', recovered = $1, recipients_helped = $2, completed_on = $3 WHERE id = $4")
            .bind(recovered_text(&completion.recovered))
            .bind(completion.recipients_helped)
            .bind(&completion.completed_on)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        audit(
            &mut tx,
            actor,
            "organ.case.complete",
            "organ_case",
            &id.to_string(),
            None,
        )
        .await?;
        tx.commit().await?;
        self.organ_case(id).await
    }

    /// Cancel an open case (e.g. the medical evaluation ruled donation out); the reason is
    /// required.
    pub async fn cancel_organ_case(
        &self,
        id: i64,
        reason: &str,
        actor: &Actor,
    ) -> Result<OrganCase> {
        case_managers_only(actor)?;
        check_text("reason", Some(reason), true, NOTE_MAX)?;
        let (_turn, mut tx) = self.begin().await?;
        open_case(&mut tx, id).await?;
        sqlx::query("UPDATE organ_cases SET state = 'cancelled', cancel_reason = $1 WHERE id = $2")
            .bind(reason.trim())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        audit(
            &mut tx,
            actor,
            "organ.case.cancel",
            "organ_case",
            &id.to_string(),
            Some(reason.trim()),
        )
        .await?;
        tx.commit().await?;
        self.organ_case(id).await
    }

    pub async fn organ_case(&self, id: i64) -> Result<OrganCase> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{CASE_SELECT} WHERE c.id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| RegistryError::NotFound(format!("organ case {id}")))?;
        let mut case = case_from_row(&row)?;
        case.witnesses = witnesses(&self.pool, id).await?;
        Ok(case)
    }

    /// Cases, filtered by kind, state, station and the year they were completed (or, for
    /// open and cancelled ones, the year of death); in id order.
    pub async fn list_organ_cases(
        &self,
        actor: &Actor,
        filter: &OrganCaseFilter,
        page: &PageRequest,
    ) -> Result<Page<OrganCase>> {
        if !matches!(actor.role.as_str(), "case_manager" | "admin" | "auditor") {
            return Err(RegistryError::Forbidden(
                "death-donation cases are read by case managers, admins and auditors".into(),
            ));
        }
        let mut f = Filter::default();
        if let Some(k) = &filter.kind {
            check_one_of("kind", k, &CASE_KINDS)?;
            f.with("c.kind = ?", Arg::Text(k.clone()));
        }
        if let Some(s) = &filter.state {
            check_one_of("state", s, &CASE_STATES)?;
            f.with("c.state = ?", Arg::Text(s.clone()));
        }
        if let Some(s) = &filter.station {
            f.with("c.station_code = ?", Arg::Text(s.clone()));
        }
        if let Some(y) = filter.year {
            check_year(y)?;
            f.with(
                "COALESCE(c.completed_on, c.died_on) >= ?",
                Arg::Text(format!("{y:04}-01-01")),
            );
            f.with(
                "COALESCE(c.completed_on, c.died_on) <= ?",
                Arg::Text(format!("{y:04}-12-31")),
            );
        }
        let mut page = self
            .page(CASE_SELECT, "c.id", f, page, case_from_row, |c| c.id)
            .await?;
        for c in &mut page.items {
            c.witnesses = witnesses(&self.pool, c.id).await?;
        }
        Ok(page)
    }
}

#[derive(Debug, Clone, Default)]
pub struct OrganCaseFilter {
    pub kind: Option<String>,
    pub state: Option<String>,
    pub station: Option<String>,
    pub year: Option<i32>,
}

const CASE_SELECT: &str = "SELECT c.id, c.registration_id, c.kind, c.state, c.died_on, c.family_consent, c.consent_by, \
     CAST(CASE WHEN c.consent_in_writing THEN 1 ELSE 0 END AS BIGINT) AS consent_in_writing, c.consent_on, c.opo, c.station_code, \
     c.region, c.completed_on, c.recovered, c.recipients_helped, c.cancel_reason, c.recorded_at FROM organ_cases c";

fn case_from_row(r: &sqlx::any::AnyRow) -> Result<OrganCase> {
    let note: String = r.try_get("family_consent")?;
    Ok(OrganCase {
        id: r.try_get("id")?,
        registration_id: r.try_get("registration_id")?,
        kind: r.try_get("kind")?,
        state: r.try_get("state")?,
        died_on: r.try_get("died_on")?,
        family_consent: FamilyConsent {
            relations: r
                .try_get::<Option<String>, _>("consent_by")?
                .unwrap_or_default()
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            in_writing: r.try_get::<i64, _>("consent_in_writing")? != 0,
            consented_on: r
                .try_get::<Option<String>, _>("consent_on")?
                .unwrap_or_default(),
            note: Some(note).filter(|n| !n.is_empty()),
        },
        witnesses: Vec::new(),
        opo: r.try_get("opo")?,
        station: r.try_get("station_code")?,
        region: r.try_get("region")?,
        completed_on: r.try_get("completed_on")?,
        recovered: parse_recovered(r.try_get::<Option<String>, _>("recovered")?.as_deref()),
        recipients_helped: r.try_get("recipients_helped")?,
        cancel_reason: r.try_get("cancel_reason")?,
        recorded_at: r.try_get("recorded_at")?,
    })
}

async fn witnesses<'e, E: sqlx::Executor<'e, Database = Any>>(
    db: E,
    id: i64,
) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT name FROM organ_case_witnesses WHERE case_id = $1 ORDER BY position",
    )
    .bind(id)
    .fetch_all(db)
    .await?)
}

/// The case, which must exist and be open.
async fn open_case(tx: &mut Transaction<'_, Any>, id: i64) -> Result<OrganCase> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{CASE_SELECT} WHERE c.id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| RegistryError::NotFound(format!("organ case {id}")))?;
    let case = case_from_row(&row)?;
    if case.state != "open" {
        return Err(RegistryError::Conflict(format!(
            "organ case {id} is {}",
            case.state
        )));
    }
    Ok(case)
}
