//! The yearly report (registry operations §10), computed from the store on either backend
//! for a year and optionally a branch or a station. The figures' definitions are in the
//! `report` crate; this room counts them.
//!
//! Dates kept as local dates (`YYYY-MM-DD`: samples, donations, follow-ups, contacts,
//! registrations, cases, care, campaigns) are compared with the year's first and last day;
//! instants kept in UTC (consents, requests, status changes) with the instants the local
//! year starts and ends in the registry's time zone.

use std::collections::{BTreeMap, HashMap};

use jiff::civil::date;
use report::{
    AGE_BANDS, BranchSize, CampaignYield, DonationOrdinal, FollowUp, OrganRegistrations,
    Reachability, Scope, StationSamples, YearPoint, YearlyReport, age_band,
};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::campaigns::{CAMPAIGN_SELECT, campaign_from_row, check_year};
use crate::organ_cases::parse_recovered;
use crate::{Actor, Registry, RegistryError, Result};

/// How many years the charts look back.
const HISTORY_YEARS: i32 = 10;

/// Bound values of one query, in placeholder order.
#[derive(Default)]
struct Args(Vec<String>);

impl Args {
    fn arg(&mut self, v: impl Into<String>) -> String {
        self.0.push(v.into());
        format!("${}", self.0.len())
    }
}

/// Which stations a report covers.
#[derive(Debug, Clone)]
enum Coverage {
    All,
    Branch(String),
    Station(String),
}

impl Coverage {
    /// A condition on a station-code column.
    fn clause(&self, column: &str, a: &mut Args) -> String {
        match self {
            Coverage::All => "1 = 1".into(),
            Coverage::Branch(b) => format!(
                "{column} IN (SELECT code FROM stations WHERE branch_code = {})",
                a.arg(b.clone())
            ),
            Coverage::Station(s) => format!("{column} = {}", a.arg(s.clone())),
        }
    }
}

/// One year's bounds: local dates and UTC instants.
struct YearBounds {
    first_day: String,
    last_day: String,
    start: String,
    end: String,
}

impl Registry {
    fn year_bounds(&self, year: i32) -> YearBounds {
        let clock = &self.config.clock;
        YearBounds {
            first_day: format!("{year:04}-01-01"),
            last_day: format!("{year:04}-12-31"),
            start: clock.start_of_day_text(date(year as i16, 1, 1)),
            end: clock.start_of_day_text(date(year as i16 + 1, 1, 1)),
        }
    }

    async fn rows(&self, sql: String, a: Args) -> Result<Vec<AnyRow>> {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for v in a.0 {
            q = q.bind(v);
        }
        Ok(q.fetch_all(&self.pool).await?)
    }

    async fn count(&self, sql: String, a: Args) -> Result<i64> {
        let rows = self.rows(sql, a).await?;
        Ok(match rows.first() {
            Some(r) => r.try_get::<i64, _>(0)?,
            None => 0,
        })
    }

    /// The yearly report. Read by admins, auditors, coordinators and case managers for any
    /// scope; a station reads its own station's.
    pub async fn yearly_report(
        &self,
        year: i32,
        branch: Option<&str>,
        station: Option<&str>,
        actor: &Actor,
    ) -> Result<YearlyReport> {
        check_year(year)?;
        let (this_year, _, _) = matching::model::civil_from_days(self.today());
        if year > this_year {
            return Err(RegistryError::invalid(
                "year",
                format!("{year} has not begun (this year is {this_year})"),
            ));
        }
        match actor.role.as_str() {
            "admin" | "auditor" | "coordinator" | "case_manager" => {}
            "station" => {
                let own = actor.station.as_deref();
                if branch.is_some() || (station.is_some() && station != own) || own.is_none() {
                    return Err(RegistryError::Forbidden(
                        "a station reads its own station's report".into(),
                    ));
                }
            }
            _ => {
                return Err(RegistryError::Forbidden(
                    "reports are read by registry staff".into(),
                ));
            }
        }
        let station = station.or(if actor.role == "station" {
            actor.station.as_deref()
        } else {
            None
        });
        let mut name = None;
        let coverage = match (branch, station) {
            (_, Some(s)) => {
                let row = sqlx::query("SELECT branch_code, name FROM stations WHERE code = $1")
                    .bind(s)
                    .fetch_optional(&self.pool)
                    .await?
                    .ok_or_else(|| {
                        RegistryError::invalid("station", format!("unknown station `{s}`"))
                    })?;
                let of: String = row.try_get("branch_code")?;
                if let Some(b) = branch
                    && b != of
                {
                    return Err(RegistryError::invalid(
                        "station",
                        format!("station {s} belongs to branch {of}, not {b}"),
                    ));
                }
                name = Some(row.try_get::<String, _>("name")?);
                Coverage::Station(s.to_string())
            }
            (Some(b), None) => {
                let found: Option<String> =
                    sqlx::query_scalar("SELECT name FROM branches WHERE code = $1")
                        .bind(b)
                        .fetch_optional(&self.pool)
                        .await?;
                name = Some(found.ok_or_else(|| {
                    RegistryError::invalid("branch", format!("unknown branch `{b}`"))
                })?);
                Coverage::Branch(b.to_string())
            }
            (None, None) => Coverage::All,
        };
        let mut r = YearlyReport {
            scope: Scope {
                year,
                branch: branch.map(str::to_string),
                station: station.map(str::to_string),
                name,
            },
            generated_on: matching::model::format_day(self.today() as u16),
            ..Default::default()
        };
        let b = self.year_bounds(year);
        self.stem_cell_figures(&mut r, &b, &coverage).await?;
        self.organ_figures(&mut r, &b, &coverage).await?;
        self.care_figures(&mut r, &b, &coverage).await?;
        r.history = self.history(year, &coverage).await?;
        r.summarise();
        Ok(r)
    }

    async fn samples_collected(&self, b: &YearBounds, c: &Coverage) -> Result<i64> {
        let mut a = Args::default();
        let sql = format!(
            "SELECT COUNT(*) FROM samples s WHERE s.request_id IS NULL AND s.collected_at >= {} AND s.collected_at <= {} AND {}",
            a.arg(&b.first_day),
            a.arg(&b.last_day),
            c.clause("s.station_code", &mut a)
        );
        self.count(sql, a).await
    }

    /// Donors on the registry at the end of the year: (branch, donor type, birth year) → n.
    async fn registry_at_year_end(
        &self,
        b: &YearBounds,
        c: &Coverage,
    ) -> Result<Vec<(String, String, Option<i32>, i64)>> {
        let mut a = Args::default();
        let end = a.arg(&b.end);
        // Set-wise, never per donor: the donors whose recruitment consent was in force at
        // the end, less those deferred by then (DE is final, so any DE row before the end
        // means DE at the end).
        let sql = format!(
            "SELECT s.branch_code, d.donor_type, SUBSTR(d.birth_date, 1, 4) AS born, COUNT(*) AS n \
             FROM donors d JOIN stations s ON s.code = d.station_code \
             JOIN (SELECT DISTINCT c.donor_id FROM consents c WHERE c.scope = 'recruitment' AND c.given_at < {end} \
                   AND (c.withdrawn_at IS NULL OR c.withdrawn_at >= {end})) listed ON listed.donor_id = d.id \
             WHERE {} AND d.id NOT IN (SELECT h.donor_id FROM status_history h WHERE h.status = 'DE' AND h.at < {end}) \
             GROUP BY s.branch_code, d.donor_type, SUBSTR(d.birth_date, 1, 4)",
            c.clause("d.station_code", &mut a)
        );
        self.rows(sql, a)
            .await?
            .iter()
            .map(|row| {
                Ok((
                    row.try_get("branch_code")?,
                    row.try_get("donor_type")?,
                    row.try_get::<Option<String>, _>("born")?
                        .and_then(|y| y.parse().ok()),
                    row.try_get("n")?,
                ))
            })
            .collect()
    }

    async fn stem_cell_figures(
        &self,
        r: &mut YearlyReport,
        b: &YearBounds,
        c: &Coverage,
    ) -> Result<()> {
        let year = r.scope.year;
        r.samples_collected = self.samples_collected(b, c).await?;
        let mut a = Args::default();
        let (first, last) = (a.arg(&b.first_day), a.arg(&b.last_day));
        let sql = format!(
            "SELECT st.code, st.name, st.branch_code, st.yearly_target, \
             (SELECT COUNT(*) FROM samples s WHERE s.station_code = st.code AND s.request_id IS NULL AND s.collected_at >= {first} AND s.collected_at <= {last}) AS collected \
             FROM stations st WHERE {} ORDER BY st.code",
            c.clause("st.code", &mut a)
        );
        r.samples_by_station = self
            .rows(sql, a)
            .await?
            .iter()
            .map(|row| {
                Ok(StationSamples {
                    station: row.try_get("code")?,
                    name: row.try_get("name")?,
                    branch: row.try_get("branch_code")?,
                    target: row.try_get("yearly_target")?,
                    collected: row.try_get("collected")?,
                })
            })
            .collect::<Result<_>>()?;

        let mut a = Args::default();
        let scope = c.clause("d.station_code", &mut a);
        let sql = format!(
            "SELECT COUNT(*) FROM (SELECT c.donor_id, MIN(c.given_at) AS first FROM consents c JOIN donors d ON d.id = c.donor_id \
             WHERE c.scope = 'recruitment' AND {scope} GROUP BY c.donor_id) t WHERE t.first >= {} AND t.first < {}",
            a.arg(&b.start),
            a.arg(&b.end)
        );
        r.donors_listed_new = self.count(sql, a).await?;

        let mut by_branch: BTreeMap<String, BranchSize> = BTreeMap::new();
        let mut by_band: BTreeMap<String, i64> =
            AGE_BANDS.iter().map(|b| (b.to_string(), 0)).collect();
        for (branch, kind, born, n) in self.registry_at_year_end(b, c).await? {
            let band = if kind == "cord" {
                "cord"
            } else {
                age_band(born.map(|y| year - y))
            };
            *by_band.entry(band.into()).or_default() += n;
            let e = by_branch
                .entry(branch.clone())
                .or_insert_with(|| BranchSize {
                    branch,
                    ..Default::default()
                });
            e.size += n;
            *e.by_age_band.entry(band.into()).or_default() += n;
        }
        r.registry_size = by_band.values().sum();
        r.registry_size_by_age_band = by_band;
        r.registry_size_by_branch = by_branch.into_values().collect();

        let requests = |kind: &'static str, distinct: bool| {
            let mut a = Args::default();
            let what = if distinct {
                "COUNT(DISTINCT q.donor_id)"
            } else {
                "COUNT(*)"
            };
            let sql = format!(
                "SELECT {what} FROM requests q JOIN donors d ON d.id = q.donor_id WHERE q.kind = '{kind}' AND q.opened_at >= {} AND q.opened_at < {} AND {}",
                a.arg(&b.start),
                a.arg(&b.end),
                c.clause("d.station_code", &mut a)
            );
            (sql, a)
        };
        let (sql, a) = requests("confirmatory_typing", true);
        r.utilisation_donors = self.count(sql, a).await?;
        r.utilisation =
            (r.registry_size > 0).then(|| r.utilisation_donors as f64 / r.registry_size as f64);
        let (sql, a) = requests("confirmatory_typing", false);
        r.ct_requests = self.count(sql, a).await?;
        let (sql, a) = requests("workup", false);
        r.workups = self.count(sql, a).await?;

        self.donation_figures(r, b, c).await?;
        self.follow_up_figures(r, b, c).await?;
        self.reachability_figures(r, b, c).await
    }

    async fn donation_figures(
        &self,
        r: &mut YearlyReport,
        b: &YearBounds,
        c: &Coverage,
    ) -> Result<()> {
        // Ordinals count every donor of the branch, so read the branch's whole history.
        let mut a = Args::default();
        let sql = format!(
            "SELECT dn.id, dn.donor_id, dn.donated_on, dn.product, s.branch_code, d.station_code, \
             CAST(CASE WHEN {} THEN 1 ELSE 0 END AS BIGINT) AS in_scope \
             FROM donations dn JOIN donors d ON d.id = dn.donor_id JOIN stations s ON s.code = d.station_code \
             WHERE dn.donated_on <= {} ORDER BY dn.donated_on, dn.id",
            c.clause("d.station_code", &mut a),
            a.arg(&b.last_day)
        );
        let mut next: HashMap<String, i64> = HashMap::new();
        let mut ordinal_of: HashMap<i64, i64> = HashMap::new();
        for row in self.rows(sql, a).await? {
            let donor: i64 = row.try_get("donor_id")?;
            let branch: String = row.try_get("branch_code")?;
            let repeat = ordinal_of.contains_key(&donor);
            let ordinal = *ordinal_of.entry(donor).or_insert_with(|| {
                let n = next.entry(branch.clone()).or_insert(0);
                *n += 1;
                *n
            });
            let on: String = row.try_get("donated_on")?;
            if on >= b.first_day && row.try_get::<i64, _>("in_scope")? == 1 {
                r.donation_ordinals.push(DonationOrdinal {
                    donation_id: row.try_get("id")?,
                    donor_id: donor,
                    donated_on: on,
                    product: row.try_get("product")?,
                    branch,
                    ordinal,
                    repeat,
                });
            }
        }
        r.donations = r.donation_ordinals.len() as i64;
        Ok(())
    }

    async fn follow_up_figures(
        &self,
        r: &mut YearlyReport,
        b: &YearBounds,
        c: &Coverage,
    ) -> Result<()> {
        let mut a = Args::default();
        let today = a.arg(matching::model::format_day(self.today() as u16));
        let sql = format!(
            "SELECT f.state, CAST(CASE WHEN f.due_on < {today} THEN 1 ELSE 0 END AS BIGINT) AS past, COUNT(*) AS n \
             FROM followups f JOIN donors d ON d.id = f.donor_id WHERE f.due_on >= {} AND f.due_on <= {} AND {} GROUP BY f.state, past",
            a.arg(&b.first_day),
            a.arg(&b.last_day),
            c.clause("d.station_code", &mut a)
        );
        let mut f = FollowUp::default();
        for row in self.rows(sql, a).await? {
            let n: i64 = row.try_get("n")?;
            let past = row.try_get::<i64, _>("past")? == 1;
            f.due += n;
            match (row.try_get::<String, _>("state")?.as_str(), past) {
                ("done", _) => f.done += n,
                ("missed", _) => f.missed += n,
                (_, true) => f.overdue += n,
                (_, false) => f.pending += n,
            }
        }
        let settled = f.done + f.missed + f.overdue;
        f.completion = (settled > 0).then(|| f.done as f64 / settled as f64);
        r.follow_up = f;
        Ok(())
    }

    async fn reachability_figures(
        &self,
        r: &mut YearlyReport,
        b: &YearBounds,
        c: &Coverage,
    ) -> Result<()> {
        let mut a = Args::default();
        let sql = format!(
            "SELECT COUNT(DISTINCT x.donor_id) AS contacted, \
             COUNT(DISTINCT CASE WHEN x.outcome IN ('reached', 'declined') THEN x.donor_id END) AS reached, COUNT(*) AS attempts \
             FROM contact_attempts x JOIN donors d ON d.id = x.donor_id WHERE x.attempted_on >= {} AND x.attempted_on <= {} AND {}",
            a.arg(&b.first_day),
            a.arg(&b.last_day),
            c.clause("d.station_code", &mut a)
        );
        let rows = self.rows(sql, a).await?;
        let mut reach = Reachability::default();
        if let Some(row) = rows.first() {
            reach.donors_contacted = row.try_get("contacted")?;
            reach.donors_reached = row.try_get("reached")?;
            reach.attempts = row.try_get("attempts")?;
        }
        reach.rate = (reach.donors_contacted > 0)
            .then(|| reach.donors_reached as f64 / reach.donors_contacted as f64);
        let mut a = Args::default();
        let sql = format!(
            "SELECT COUNT(*) FROM status_history h JOIN donors d ON d.id = h.donor_id WHERE h.status = 'TU' AND h.reason = 'UC' AND h.at >= {} AND h.at < {} AND {}",
            a.arg(&b.start),
            a.arg(&b.end),
            c.clause("d.station_code", &mut a)
        );
        reach.made_unreachable = self.count(sql, a).await?;
        r.reachability = reach;
        Ok(())
    }

    async fn organ_figures(
        &self,
        r: &mut YearlyReport,
        b: &YearBounds,
        c: &Coverage,
    ) -> Result<()> {
        let on = "COALESCE(o.registered_on, SUBSTR(o.registered_at, 1, 10))";
        let mut a = Args::default();
        let (first, last) = (a.arg(&b.first_day), a.arg(&b.last_day));
        let sql = format!(
            "SELECT o.channel, \
             CAST(SUM(CASE WHEN {on} >= {first} AND {on} <= {last} THEN 1 ELSE 0 END) AS BIGINT) AS new, \
             CAST(SUM(CASE WHEN {on} <= {last} AND (o.revoked_on IS NULL OR o.revoked_on > {last}) THEN 1 ELSE 0 END) AS BIGINT) AS in_force, \
             CAST(SUM(CASE WHEN o.revoked_on >= {first} AND o.revoked_on <= {last} THEN 1 ELSE 0 END) AS BIGINT) AS revoked \
             FROM organ_registrations o WHERE {} GROUP BY o.channel",
            c.clause("o.station_code", &mut a)
        );
        let mut regs = OrganRegistrations::default();
        for row in self.rows(sql, a).await? {
            let new: i64 = row.try_get::<Option<i64>, _>("new")?.unwrap_or(0);
            regs.new += new;
            regs.in_force += row.try_get::<Option<i64>, _>("in_force")?.unwrap_or(0);
            regs.revoked += row.try_get::<Option<i64>, _>("revoked")?.unwrap_or(0);
            if new > 0 {
                regs.new_by_channel.insert(row.try_get("channel")?, new);
            }
        }
        r.organ_registrations = regs;
        let (cases, organs, corneas, recipients) = self.completed_cases(b, c).await?;
        r.completed_cases = cases;
        r.organs_recovered = organs;
        r.corneas_recovered = corneas;
        r.recipients_helped = recipients;
        Ok(())
    }

    /// Cases completed in the year: by kind, organs, corneas, recipients.
    async fn completed_cases(
        &self,
        b: &YearBounds,
        c: &Coverage,
    ) -> Result<(BTreeMap<String, i64>, i64, i64, i64)> {
        let mut a = Args::default();
        let sql = format!(
            "SELECT c.kind, c.recovered, c.recipients_helped FROM organ_cases c WHERE c.state = 'completed' AND c.completed_on >= {} AND c.completed_on <= {} AND {}",
            a.arg(&b.first_day),
            a.arg(&b.last_day),
            c.clause("c.station_code", &mut a)
        );
        let mut by_kind: BTreeMap<String, i64> = crate::CASE_KINDS
            .iter()
            .map(|k| (k.to_string(), 0))
            .collect();
        let (mut organs, mut corneas, mut recipients) = (0, 0, 0);
        for row in self.rows(sql, a).await? {
            let kind: Option<String> = row.try_get("kind")?;
            *by_kind
                .entry(kind.unwrap_or_else(|| "untyped".into()))
                .or_default() += 1;
            for (item, n) in
                parse_recovered(row.try_get::<Option<String>, _>("recovered")?.as_deref())
            {
                if item == "cornea" {
                    corneas += n;
                } else {
                    organs += n;
                }
            }
            recipients += row
                .try_get::<Option<i64>, _>("recipients_helped")?
                .unwrap_or(0);
        }
        Ok((by_kind, organs, corneas, recipients))
    }

    async fn care_figures(&self, r: &mut YearlyReport, b: &YearBounds, c: &Coverage) -> Result<()> {
        let mut a = Args::default();
        let sql = format!(
            "SELECT k.kind, k.donor_id, k.organ_case_id, CAST(CASE WHEN k.for_family THEN 1 ELSE 0 END AS BIGINT) AS for_family, k.amount_fen, k.fund \
             FROM care_records k LEFT JOIN donors d ON d.id = k.donor_id LEFT JOIN organ_cases oc ON oc.id = k.organ_case_id \
             WHERE k.on_date >= {} AND k.on_date <= {} AND {}",
            a.arg(&b.first_day),
            a.arg(&b.last_day),
            c.clause("COALESCE(d.station_code, oc.station_code)", &mut a)
        );
        let mut families = std::collections::HashSet::new();
        for row in self.rows(sql, a).await? {
            let kind: String = row.try_get("kind")?;
            let subject = (
                row.try_get::<Option<i64>, _>("donor_id")?,
                row.try_get::<Option<i64>, _>("organ_case_id")?,
            );
            let care = &mut r.care;
            match kind.as_str() {
                "visit" | "condolence" => {
                    care.visits += 1;
                    if row.try_get::<i64, _>("for_family")? == 1 {
                        families.insert(subject);
                    }
                }
                "aid" => {
                    let fen: i64 = row.try_get::<Option<i64>, _>("amount_fen")?.unwrap_or(0);
                    let fund: String = row
                        .try_get::<Option<String>, _>("fund")?
                        .unwrap_or_default();
                    care.aid.count += 1;
                    care.aid.amount_fen += fen;
                    let e = care.aid.by_fund.entry(fund).or_default();
                    e.0 += 1;
                    e.1 += fen;
                }
                "benefit" => care.benefits += 1,
                "honour" => care.honours += 1,
                "memorial" => care.memorials += 1,
                _ => {}
            }
        }
        r.care.families_visited = families.len() as i64;
        let mut a = Args::default();
        let sql = format!(
            "{CAMPAIGN_SELECT} WHERE c.held_on >= {} AND c.held_on <= {} AND {} ORDER BY c.held_on, c.id",
            a.arg(&b.first_day),
            a.arg(&b.last_day),
            c.clause("c.station_code", &mut a)
        );
        r.campaigns = self
            .rows(sql, a)
            .await?
            .iter()
            .map(|row| {
                let c = campaign_from_row(row)?;
                Ok(CampaignYield {
                    id: c.id,
                    name: c.name,
                    kind: c.kind,
                    held_on: c.held_on,
                    station: c.station,
                    enrolments: c.enrolments,
                    samples: c.samples,
                    organ_registrations: c.organ_registrations,
                })
            })
            .collect::<Result<_>>()?;
        Ok(())
    }

    /// This year and up to nine before it, from the first year with any record.
    async fn history(&self, year: i32, c: &Coverage) -> Result<Vec<YearPoint>> {
        let first: Option<String> = sqlx::query_scalar(
            "SELECT MIN(y) FROM (SELECT MIN(SUBSTR(given_at, 1, 4)) AS y FROM consents \
             UNION ALL SELECT MIN(SUBSTR(collected_at, 1, 4)) FROM samples \
             UNION ALL SELECT MIN(SUBSTR(donated_on, 1, 4)) FROM donations \
             UNION ALL SELECT MIN(SUBSTR(completed_on, 1, 4)) FROM organ_cases) t",
        )
        .fetch_one(&self.pool)
        .await?;
        let first = first.and_then(|y| y.parse::<i32>().ok()).unwrap_or(year);
        let from = first.max(year - HISTORY_YEARS + 1).min(year);
        let mut points = Vec::new();
        for y in from..=year {
            let b = self.year_bounds(y);
            let registry_size = self
                .registry_at_year_end(&b, c)
                .await?
                .iter()
                .map(|t| t.3)
                .sum();
            let mut a = Args::default();
            let sql = format!(
                "SELECT COUNT(*) FROM donations dn JOIN donors d ON d.id = dn.donor_id WHERE dn.donated_on >= {} AND dn.donated_on <= {} AND {}",
                a.arg(&b.first_day),
                a.arg(&b.last_day),
                c.clause("d.station_code", &mut a)
            );
            let donations = self.count(sql, a).await?;
            points.push(YearPoint {
                year: y,
                registry_size,
                samples_collected: self.samples_collected(&b, c).await?,
                donations,
                completed_cases: self.completed_cases(&b, c).await?.0,
            });
        }
        Ok(points)
    }
}
