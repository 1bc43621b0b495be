//! The registry's clock. A registry keeps a time zone (default `Asia/Shanghai`): "today" is
//! its local date, so something recorded at 07:00 in Beijing (23:00 UTC the day before) is
//! dated the Beijing day. Record timestamps (`*_at`) stay instants in UTC.
//!
//! Tests move time without waiting: [`Clock::manual`] is set in process, and a clock file
//! (`BOAI_CLOCK_FILE`, an RFC 3339 instant re-read at every tick) moves the clock of a
//! running `boai serve`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;

use crate::RegistryError;

/// The default time zone of a registry (CMDP).
pub const DEFAULT_TIME_ZONE: &str = "Asia/Shanghai";

#[derive(Debug, Clone)]
enum Source {
    System,
    /// Tests: the instant written in this file (the system clock while it is unreadable).
    File(PathBuf),
    /// Tests: an instant set in process.
    Manual(Arc<Mutex<Timestamp>>),
}

/// A time zone and where "now" comes from.
#[derive(Debug, Clone)]
pub struct Clock {
    zone: TimeZone,
    zone_name: String,
    source: Source,
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::system(DEFAULT_TIME_ZONE).expect("the bundled time zone database has Shanghai")
    }
}

fn zone(name: &str) -> Result<TimeZone, RegistryError> {
    TimeZone::get(name).map_err(|e| {
        RegistryError::invalid(
            "time_zone",
            format!("unknown time zone `{name}` (an IANA name such as Asia/Shanghai): {e}"),
        )
    })
}

impl Clock {
    /// The system clock in time zone `name` (IANA, e.g. `Asia/Shanghai`).
    pub fn system(name: &str) -> Result<Clock, RegistryError> {
        Ok(Clock {
            zone: zone(name)?,
            zone_name: name.to_string(),
            source: Source::System,
        })
    }

    /// For tests: the instant written in `path` (RFC 3339, e.g. `2027-03-01T07:30:00+08:00`).
    pub fn from_file(name: &str, path: PathBuf) -> Result<Clock, RegistryError> {
        Ok(Clock {
            source: Source::File(path),
            ..Clock::system(name)?
        })
    }

    /// For tests: a clock that stands at `at` until [`Clock::set`] moves it.
    pub fn manual(name: &str, at: Timestamp) -> Result<Clock, RegistryError> {
        Ok(Clock {
            source: Source::Manual(Arc::new(Mutex::new(at))),
            ..Clock::system(name)?
        })
    }

    /// Move a manual clock (no effect on the others).
    pub fn set(&self, at: Timestamp) {
        if let Source::Manual(m) = &self.source {
            *m.lock().unwrap_or_else(|e| e.into_inner()) = at;
        }
    }

    pub fn zone_name(&self) -> &str {
        &self.zone_name
    }

    /// Now, as an instant.
    pub fn now(&self) -> Timestamp {
        match &self.source {
            Source::System => Timestamp::now(),
            Source::File(path) => std::fs::read_to_string(path)
                .ok()
                .and_then(|t| t.trim().parse::<Timestamp>().ok())
                .unwrap_or_else(Timestamp::now),
            Source::Manual(m) => *m.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }

    /// The registry's local date and time now.
    pub fn local_now(&self) -> (Date, Time) {
        let z = self.now().to_zoned(self.zone.clone());
        (z.date(), z.time())
    }

    /// The instant local midnight starts `date` (the first instant of that local day), as
    /// the store's UTC text: instants before it belong to earlier local days.
    pub fn start_of_day_text(&self, date: Date) -> String {
        let at = date
            .to_zoned(self.zone.clone())
            .map(|z| z.timestamp())
            .unwrap_or_else(|_| {
                date.to_zoned(TimeZone::UTC)
                    .map(|z| z.timestamp())
                    .unwrap_or_default()
            });
        crate::instant_text(at)
    }

    /// A stored instant (RFC 3339) as the registry's local time, `YYYY-MM-DD HH:MM`, for
    /// people to read; text that is not an instant comes back unchanged.
    pub fn local_time_text(&self, instant: &str) -> String {
        match instant.parse::<Timestamp>() {
            Ok(t) => t
                .to_zoned(self.zone.clone())
                .strftime("%Y-%m-%d %H:%M")
                .to_string(),
            Err(_) => instant.to_string(),
        }
    }

    /// Today, the registry's local date, as days since 1900-01-01.
    pub fn today(&self) -> i64 {
        day_number(self.local_now().0)
    }
}

/// A civil date as days since 1900-01-01 (the registry's date arithmetic).
pub fn day_number(d: Date) -> i64 {
    matching::model::days_from_civil(d.year() as i32, d.month() as u32, d.day() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shanghai_morning_is_the_local_date() {
        // 2026-12-02 23:30 UTC is 2026-12-03 07:30 in Beijing.
        let at: Timestamp = "2026-12-02T23:30:00Z".parse().unwrap();
        let clock = Clock::manual(DEFAULT_TIME_ZONE, at).unwrap();
        assert_eq!(clock.today(), matching::model::days_from_civil(2026, 12, 3));
        let utc = Clock::manual("UTC", at).unwrap();
        assert_eq!(utc.today(), matching::model::days_from_civil(2026, 12, 2));
    }

    #[test]
    fn stored_instants_read_in_local_time() {
        let clock = Clock::default();
        assert_eq!(
            clock.local_time_text("2026-12-02T23:30:00.000000Z"),
            "2026-12-03 07:30"
        );
        assert_eq!(clock.local_time_text("2026-12-03"), "2026-12-03");
    }

    #[test]
    fn an_unknown_zone_is_refused_by_name() {
        let e = Clock::system("Mars/Olympus").unwrap_err().to_string();
        assert!(e.contains("Mars/Olympus"), "{e}");
    }
}
