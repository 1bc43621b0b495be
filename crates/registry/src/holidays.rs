//! Working days: Monday to Friday, less the registry's holidays (a table, so every server
//! and command counts the same days). Reservations hold for a number of working days
//! (registry operations §5: 53 after confirmatory typing, 60 after extended typing).

use matching::model::format_day;
use sqlx::Row;

use crate::audit::commit_audited;
use crate::support::{NAME_MAX, check_text, date};
use crate::{Actor, Registry, RegistryError, Result};

/// Whether `day` (days since 1900-01-01) is a Saturday or Sunday. 1900-01-01 was a Monday.
pub fn is_weekend(day: i64) -> bool {
    day.rem_euclid(7) >= 5
}

/// The `n`th working day after `from` (not counting `from`), skipping weekends and
/// `holidays` (sorted days).
pub fn add_working_days(from: i64, n: u32, holidays: &[i64]) -> i64 {
    let mut day = from;
    let mut left = n;
    while left > 0 {
        day += 1;
        if !is_weekend(day) && holidays.binary_search(&day).is_err() {
            left -= 1;
        }
    }
    day
}

/// A holiday of the registry.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Holiday {
    pub day: String,
    pub name: String,
}

impl Registry {
    /// Add (or rename) a holiday: a day that is not a working day.
    pub async fn add_holiday(&self, day: &str, name: &str, actor: &Actor) -> Result<()> {
        date("day", day)?;
        let name = name.trim();
        check_text("name", Some(name), true, NAME_MAX)?;
        let (_turn, mut tx) = self.begin().await?;
        sqlx::query("DELETE FROM holidays WHERE day = $1")
            .bind(day)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO holidays (day, name) VALUES ($1, $2)")
            .bind(day)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        commit_audited(tx, actor, "holiday.add", "holiday", day, Some(name)).await
    }

    pub async fn remove_holiday(&self, day: &str, actor: &Actor) -> Result<()> {
        date("day", day)?;
        let (_turn, mut tx) = self.begin().await?;
        let n = sqlx::query("DELETE FROM holidays WHERE day = $1")
            .bind(day)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(RegistryError::NotFound(format!("holiday {day}")));
        }
        commit_audited(tx, actor, "holiday.remove", "holiday", day, None).await
    }

    /// Holidays in a year (or all), by date.
    pub async fn holidays(&self, year: Option<i32>) -> Result<Vec<Holiday>> {
        let (from, to) = match year {
            Some(y) => (format!("{y:04}-01-01"), format!("{y:04}-12-31")),
            None => ("0000-01-01".into(), "9999-12-31".into()),
        };
        let rows = sqlx::query(
            "SELECT day, name FROM holidays WHERE day >= $1 AND day <= $2 ORDER BY day",
        )
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Holiday {
                    day: r.try_get("day")?,
                    name: r.try_get("name")?,
                })
            })
            .collect()
    }

    /// The `n`th working day after `from`, with the registry's holidays.
    pub async fn working_days_after(&self, from: i64, n: u32) -> Result<i64> {
        // Generous bound: n working days never span more than 2n + 2 weeks of holidays.
        let to = from + n as i64 * 2 + 60;
        let days: Vec<String> = sqlx::query_scalar(
            "SELECT day FROM holidays WHERE day > $1 AND day <= $2 ORDER BY day",
        )
        .bind(format_day(from.clamp(0, u16::MAX as i64) as u16))
        .bind(format_day(to.clamp(0, u16::MAX as i64) as u16))
        .fetch_all(&self.pool)
        .await?;
        let holidays: Vec<i64> = days.iter().map(|d| date("day", d)).collect::<Result<_>>()?;
        Ok(add_working_days(from, n, &holidays))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use matching::model::days_from_civil as day_of;

    #[test]
    fn weekends_and_holidays_are_skipped() {
        // 2027-01-01 is a Friday.
        let fri = day_of(2027, 1, 1);
        assert!(!is_weekend(fri));
        assert!(is_weekend(fri + 1) && is_weekend(fri + 2));
        assert_eq!(add_working_days(fri, 1, &[]), fri + 3);
        assert_eq!(add_working_days(fri, 1, &[fri + 3]), fri + 4);
        // 53 working days from a Monday: 10 full weeks and 3 days.
        let mon = day_of(2027, 3, 1);
        assert_eq!(add_working_days(mon, 53, &[]), mon + 73);
    }
}
