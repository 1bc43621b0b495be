//! The plan of a synthetic registry's activity: what happens on which day, drawn from a
//! seeded stream (same seed, same plan).

use jiff::civil::{Date, date};
use matching::model::days_from_civil;
use synth::Rng;

use super::{ActivityPlan, pick};

/// One thing to do on a day; events of a day run in the order they were planned.
#[derive(Debug, Clone)]
pub(super) enum Event {
    Campaign {
        station: String,
        kind: &'static str,
        name: String,
    },
    Enrol {
        station: String,
        campaign_day: bool,
    },
    ContactRound {
        station: String,
    },
    Withdraw {
        station: String,
    },
    Patient {
        case: usize,
    },
    Workup {
        case: usize,
    },
    Donation {
        case: usize,
    },
    FollowUps,
    OrganRegistration {
        station: String,
        channel: &'static str,
    },
    Revoke {
        station: String,
    },
    OrganCase {
        station: String,
        kind: &'static str,
    },
    Qingming,
}

pub(super) fn day_of(d: Date) -> i64 {
    days_from_civil(d.year() as i32, d.month() as u32, d.day() as u32)
}

pub(super) fn date_of(day: i64) -> Date {
    let (y, m, d) = matching::model::civil_from_days(day);
    date(y as i16, m as i8, d as i8)
}

/// The third Saturday of September (World Marrow Donor Day).
fn wmdd(year: i32) -> i64 {
    let first = day_of(date(year as i16, 9, 1));
    let weekday = date(year as i16, 9, 1).weekday().to_monday_zero_offset() as i64;
    first + (5 - weekday).rem_euclid(7) + 14
}

/// The plan of events, by day.
pub(super) fn plan(
    stations: &[String],
    first: i64,
    today: i64,
    plan: &ActivityPlan,
    rng: &mut Rng,
) -> Vec<(i64, Event)> {
    let mut events = Vec::new();
    let (first_year, _, _) = matching::model::civil_from_days(first);
    let (last_year, _, _) = matching::model::civil_from_days(today);
    let mut case = 0;
    for year in first_year..=last_year {
        let jan1 = day_of(date(year as i16, 1, 1));
        let days = day_of(date(year as i16, 12, 31)) - jan1 + 1;
        let any_day = |rng: &mut Rng| jan1 + rng.below(days as usize) as i64;
        events.push((day_of(date(year as i16, 4, 4)), Event::Qingming));
        for station in stations {
            let campaign_days = [
                (wmdd(year), "world_marrow_donor_day", "世界骨髓捐献者日"),
                (day_of(date(year as i16, 4, 4)), "qingming", "清明缅怀"),
                (jan1 + 60 + rng.below(90) as i64, "school_drive", "高校招募"),
            ];
            for (day, kind, name) in campaign_days {
                events.push((
                    day,
                    Event::Campaign {
                        station: station.clone(),
                        kind,
                        name: format!("{year} {name}"),
                    },
                ));
            }
            for _ in 0..plan.donors_per_station {
                let at_campaign = rng.below(100) < 35;
                let day = if at_campaign {
                    campaign_days[rng.below(3)].0
                } else {
                    any_day(rng)
                };
                events.push((
                    day,
                    Event::Enrol {
                        station: station.clone(),
                        campaign_day: at_campaign,
                    },
                ));
            }
            for _ in 0..4 {
                events.push((
                    any_day(rng),
                    Event::ContactRound {
                        station: station.clone(),
                    },
                ));
            }
            for _ in 0..(plan.donors_per_station / 60).max(1) {
                events.push((
                    any_day(rng),
                    Event::Withdraw {
                        station: station.clone(),
                    },
                ));
            }
            for _ in 0..(plan.donors_per_station / 3).max(2) {
                let channel = *pick(rng, &["online", "online", "paper", "drive"]);
                let day = if channel == "drive" {
                    campaign_days[rng.below(3)].0
                } else {
                    any_day(rng)
                };
                events.push((
                    day,
                    Event::OrganRegistration {
                        station: station.clone(),
                        channel,
                    },
                ));
            }
            events.push((
                any_day(rng),
                Event::Revoke {
                    station: station.clone(),
                },
            ));
            for kind in ["organ", "body", "body", "cornea"] {
                if rng.below(100) < 70 {
                    events.push((
                        any_day(rng),
                        Event::OrganCase {
                            station: station.clone(),
                            kind,
                        },
                    ));
                }
            }
            for _ in 0..2 {
                let start = any_day(rng);
                events.push((start, Event::Patient { case }));
                events.push((start + 30, Event::Workup { case }));
                events.push((start + 75, Event::Donation { case }));
                case += 1;
            }
        }
        for month in 1..=12 {
            events.push((day_of(date(year as i16, month, 28)), Event::FollowUps));
        }
    }
    let mut events: Vec<(i64, Event)> = events
        .into_iter()
        .filter(|(d, _)| *d >= first && *d <= today)
        .collect();
    events.sort_by_key(|(d, _)| *d);
    events
}
