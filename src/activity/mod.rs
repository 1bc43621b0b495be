//! `boai synth activity`: several years of believable registry activity, made through the
//! registry's own methods (every rule held, every change audited) on a clock moved day by
//! day: campaigns, enrolments with consent, typing and sample, contact rounds and the
//! TU/UC rule, withdrawals, patients with confirmatory typing, workups, donations and
//! follow-ups, care, organ/body/cornea registrations (online, paper, drive) and
//! death-donation cases. Same seed and start, same activity.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use jiff::civil::{Date, date};
use jiff::tz::TimeZone;
use matching::model::format_day;
use registry::{
    Actor, CaseCompletion, ConsentInput, FamilyConsent, Identity, MAX_PAGE, NewCampaign, NewCare,
    NewContact, NewDonor, NewOrganCase, NewOrganRegistration, NewPatient, OrganCaseFilter,
    PageRequest, Registry, TypingInput,
};
use synth::{Rng, Synth};

mod plan;

use plan::{Event, date_of, day_of, plan};

/// How much activity to make.
#[derive(Debug, Clone)]
pub struct ActivityPlan {
    /// Years of activity, ending today.
    pub years: i32,
    /// Donors enrolled per station and year.
    pub donors_per_station: usize,
    pub seed: u64,
}

/// What was made.
#[derive(Debug, Default, serde::Serialize)]
pub struct ActivityCounts {
    pub campaigns: usize,
    pub donors: usize,
    pub samples: usize,
    pub contacts: usize,
    pub withdrawals: usize,
    pub patients: usize,
    pub ct_requests: usize,
    pub workups: usize,
    pub donations: usize,
    pub followups: usize,
    pub care: usize,
    pub organ_registrations: usize,
    pub organ_cases: usize,
    /// Steps the registry refused (a rule held: e.g. a donor no longer available).
    pub refused: usize,
}

const FAMILY: [&str; 12] = [
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙",
];
const GIVEN: [&str; 12] = [
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳",
];
const OPOS: [&str; 3] = ["省人体器官获取组织", "市第一人民医院", "医科大学附属医院"];

fn pick<'a, T>(rng: &mut Rng, items: &'a [T]) -> &'a T {
    &items[rng.below(items.len())]
}

struct Maker<'a> {
    reg: &'a Registry,
    synth: &'a Synth,
    rng: Rng,
    counts: ActivityCounts,
    /// Per station, the donors enrolled (id) in order.
    donors: BTreeMap<String, Vec<i64>>,
    /// Campaign held on a day by a station.
    campaigns: BTreeMap<(String, i64), i64>,
    /// Per planned case: (patient, donor, station, the open workup request).
    cases: BTreeMap<usize, (i64, i64, String, Option<i64>)>,
    people: Vec<synth::Person>,
    next_person: usize,
    coordinator: Actor,
    case_manager: Actor,
}

impl Maker<'_> {
    fn station(&self, code: &str) -> Actor {
        Actor::new(&format!("synth:{code}"), "station").at_station(code)
    }

    fn refused<T>(&mut self, r: registry::Result<T>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::debug!("activity step refused: {e}");
                self.counts.refused += 1;
                None
            }
        }
    }

    fn name(&mut self) -> (String, String) {
        (
            pick(&mut self.rng, &FAMILY).to_string(),
            format!(
                "{}{}",
                pick(&mut self.rng, &GIVEN),
                pick(&mut self.rng, &GIVEN)
            ),
        )
    }

    fn national_id(&mut self, birth: Date) -> String {
        let first17 = format!(
            "110105{:04}{:02}{:02}{:03}",
            birth.year(),
            birth.month(),
            birth.day(),
            self.rng.below(1000)
        );
        registry::resident_id_with_check(&first17).expect("17 digits")
    }

    fn birth(&mut self, today: i64, min_age: i64, span: i64) -> Date {
        date_of(today - (min_age * 365 + 30) - self.rng.below((span * 365) as usize) as i64)
    }

    async fn run(&mut self, today: i64, event: Event) -> Result<()> {
        let on = format_day(today as u16);
        match event {
            Event::Campaign {
                station,
                kind,
                name,
            } => {
                let place = format!("{name}现场");
                let made = self
                    .reg
                    .create_campaign(
                        &NewCampaign {
                            name,
                            kind: kind.into(),
                            held_on: on.clone(),
                            station: station.clone(),
                            place,
                            note: None,
                        },
                        &Actor::new("synth:admin", "admin"),
                    )
                    .await;
                if let Some(c) = self.refused(made) {
                    self.campaigns.insert((station, today), c.id);
                    self.counts.campaigns += 1;
                }
            }
            Event::Enrol {
                station,
                campaign_day,
            } => {
                if self.next_person >= self.people.len() {
                    return Ok(());
                }
                let person = self.people[self.next_person].clone();
                self.next_person += 1;
                let birth = self.birth(today, 18, 26);
                let (family_name, given_name) = self.name();
                let national_id = self.national_id(birth);
                let campaign_id = if campaign_day {
                    self.campaigns.get(&(station.clone(), today)).copied()
                } else {
                    None
                };
                let new = NewDonor {
                    external_id: format!("SYN-{}-{:06}", station, person.key),
                    station: station.clone(),
                    birth_date: Some(birth.to_string()),
                    sex: person.sex,
                    abo: person.abo,
                    rh_positive: Some(person.rh_positive),
                    cmv: person.cmv,
                    population: "API".into(),
                    identity: Some(Identity {
                        family_name,
                        given_name,
                        national_id: Some(national_id),
                        phone: Some(format!("139{:08}", self.rng.below(100_000_000))),
                        ..Default::default()
                    }),
                    recruitment_consent: Some(ConsentInput {
                        form_version: "CMDP-2024".into(),
                        note: None,
                    }),
                    typing: Some(TypingInput {
                        gl: self.synth.gl_string(&person),
                        lab: Some("HLA lab".into()),
                        method: Some("NGS".into()),
                        ..Default::default()
                    }),
                    campaign_id,
                    ..Default::default()
                };
                let actor = self.station(&station);
                let enrolled = self.reg.enrol(&new, &actor, today).await;
                if let Some(d) = self.refused(enrolled) {
                    self.counts.donors += 1;
                    self.donors.entry(station.clone()).or_default().push(d.id);
                    let sample = registry::samples::NewSample {
                        station: station.clone(),
                        collected_on: on,
                        volume_ml: Some(4.0),
                        barcode: format!("S{}{:07}", station, d.id),
                        lab: Some("HLA lab".into()),
                        request_id: None,
                        campaign_id,
                    };
                    let recorded = self.reg.record_sample(d.id, &sample, &actor).await;
                    if self.refused(recorded).is_some() {
                        self.counts.samples += 1;
                    }
                }
            }
            Event::ContactRound { station } => {
                let donors = self.donors.get(&station).cloned().unwrap_or_default();
                let actor = self.station(&station);
                let chosen: Vec<i64> = donors
                    .into_iter()
                    .filter(|_| self.rng.below(100) < 12)
                    .collect();
                for d in chosen {
                    // Some donors are hard to reach: several failed attempts in a row.
                    let hard = self.rng.below(100) < 15;
                    for attempt in 0..if hard { 3 } else { 1 } {
                        let roll = self.rng.below(100);
                        let outcome = match (hard, roll) {
                            (true, r) if r < 85 => "no_answer",
                            (true, _) => "wrong_number",
                            (false, r) if r < 75 => "reached",
                            (false, r) if r < 90 => "no_answer",
                            (false, r) if r < 96 => "wrong_number",
                            _ => "declined",
                        };
                        let channel =
                            *pick(&mut self.rng, &["phone", "sms", "wechat", "phone", "visit"]);
                        let contact = NewContact {
                            attempted_on: format_day((today - 2 + attempt) as u16),
                            channel: channel.into(),
                            outcome: outcome.into(),
                            note: None,
                        };
                        let made = self.reg.record_contact(d, &contact, &actor).await;
                        if self.refused(made).is_some() {
                            self.counts.contacts += 1;
                        }
                    }
                }
            }
            Event::Withdraw { station } => {
                let donors = self.donors.get(&station).cloned().unwrap_or_default();
                if !donors.is_empty() {
                    let d = *pick(&mut self.rng, &donors);
                    let done = self
                        .reg
                        .withdraw_consent(
                            d,
                            "recruitment",
                            &self.station(&station),
                            Some("personal reasons"),
                        )
                        .await;
                    if self.refused(done).is_some() {
                        self.counts.withdrawals += 1;
                    }
                }
            }
            Event::Patient { case } => {
                let person = self.synth.patients(1, self.rng.next_u64()).remove(0);
                let patient = NewPatient {
                    external_id: format!("SYN-PAT-{case:05}"),
                    gl: self.synth.gl_string(&person),
                    weight_kg: Some(60.0),
                    diagnosis: Some("AML".into()),
                    transplant_centre: Some("Transplant centre".into()),
                    ..Default::default()
                };
                let registered = self.reg.register_patient(&patient, &self.coordinator).await;
                let Some(patient_id) = self.refused(registered) else {
                    return Ok(());
                };
                self.counts.patients += 1;
                let stations: Vec<String> = self.donors.keys().cloned().collect();
                let station = pick(&mut self.rng, &stations).clone();
                let donors = self.donors.get(&station).cloned().unwrap_or_default();
                if donors.is_empty() {
                    return Ok(());
                }
                let donor = *pick(&mut self.rng, &donors);
                let actor = self.station(&station);
                let consent = ConsentInput {
                    form_version: "CMDP-CT-2024".into(),
                    note: None,
                };
                let given = self
                    .reg
                    .give_consent(donor, "confirmatory_typing", &consent, &actor)
                    .await;
                if self.refused(given).is_none() {
                    return Ok(());
                }
                let opened = self
                    .reg
                    .open_request(
                        patient_id,
                        donor,
                        "confirmatory_typing",
                        &self.coordinator,
                        today,
                    )
                    .await;
                if let Some(r) = self.refused(opened) {
                    self.counts.ct_requests += 1;
                    let closed = self
                        .reg
                        .close_request(r.value, "done", &self.coordinator)
                        .await;
                    self.refused(closed);
                    self.cases.insert(case, (patient_id, donor, station, None));
                }
            }
            Event::Workup { case } => {
                let Some((patient, donor, station, _)) = self.cases.get(&case).cloned() else {
                    return Ok(());
                };
                for scope in ["workup", "follow_up_contact"] {
                    let consent = ConsentInput {
                        form_version: "CMDP-WU-2024".into(),
                        note: None,
                    };
                    let given = self
                        .reg
                        .give_consent(donor, scope, &consent, &self.station(&station))
                        .await;
                    if self.refused(given).is_none() {
                        self.cases.remove(&case);
                        return Ok(());
                    }
                }
                let opened = self
                    .reg
                    .open_request(patient, donor, "workup", &self.coordinator, today)
                    .await;
                match self.refused(opened) {
                    Some(r) => {
                        self.counts.workups += 1;
                        self.cases
                            .insert(case, (patient, donor, station, Some(r.value)));
                    }
                    None => {
                        self.cases.remove(&case);
                    }
                }
            }
            Event::Donation { case } => {
                let Some((patient, donor, station, Some(workup))) = self.cases.remove(&case) else {
                    return Ok(());
                };
                let donated = self
                    .reg
                    .record_donation(
                        donor,
                        Some(patient),
                        "PBSC",
                        &on,
                        Some(&station),
                        &self.case_manager,
                    )
                    .await;
                if self.refused(donated).is_some() {
                    self.counts.donations += 1;
                    let closed = self
                        .reg
                        .close_request(workup, "done", &self.coordinator)
                        .await;
                    self.refused(closed);
                    let care = [
                        NewCare {
                            donor_id: Some(donor),
                            kind: "visit".into(),
                            on_date: on.clone(),
                            note: Some("探望捐献者".into()),
                            ..Default::default()
                        },
                        NewCare {
                            donor_id: Some(donor),
                            kind: "honour".into(),
                            on_date: on.clone(),
                            title: Some("造血干细胞捐献荣誉证书".into()),
                            awarding_body: Some("红十字会".into()),
                            ..Default::default()
                        },
                        NewCare {
                            donor_id: Some(donor),
                            kind: "benefit".into(),
                            on_date: on.clone(),
                            title: Some("交通补贴".into()),
                            amount_fen: Some(50_000),
                            ..Default::default()
                        },
                    ];
                    for c in care {
                        let made = self.reg.record_care(&c, &self.case_manager).await;
                        if self.refused(made).is_some() {
                            self.counts.care += 1;
                        }
                    }
                }
            }
            Event::FollowUps => {
                let due = self.reg.followups_due(today, false).await?;
                for (id, _, _, due_on) in due {
                    let state = if self.rng.below(100) < 88 {
                        "done"
                    } else {
                        "missed"
                    };
                    let outcome = (state == "done").then_some("well");
                    let recorded = self
                        .reg
                        .record_followup(id, state, &due_on, outcome, None, &self.case_manager)
                        .await;
                    if self.refused(recorded).is_some() {
                        self.counts.followups += 1;
                    }
                }
            }
            Event::OrganRegistration { station, channel } => {
                let birth = self.birth(today, 18, 50);
                let (family_name, given_name) = self.name();
                let national_id = self.national_id(birth);
                let organs: Vec<String> = if self.rng.below(100) < 70 {
                    vec!["kidney".into(), "liver".into(), "heart".into()]
                } else {
                    vec![]
                };
                let tissues: Vec<String> = if self.rng.below(100) < 60 {
                    vec!["cornea".into()]
                } else {
                    vec![]
                };
                let whole_body = organs.is_empty() || self.rng.below(100) < 15;
                let new = NewOrganRegistration {
                    family_name,
                    given_name,
                    national_id,
                    birth_date: birth.to_string(),
                    organs,
                    tissues,
                    whole_body,
                    station: Some(station.clone()),
                    region: None,
                    ethnicity: Some(
                        if self.rng.below(100) < 90 {
                            "汉族"
                        } else {
                            "回族"
                        }
                        .into(),
                    ),
                    channel: channel.into(),
                    registered_on: Some(on.clone()),
                    campaign_id: if channel == "drive" {
                        self.campaigns.get(&(station.clone(), today)).copied()
                    } else {
                        None
                    },
                };
                let made = self
                    .reg
                    .register_organ_donation(&new, &self.station(&station))
                    .await;
                if self.refused(made).is_some() {
                    self.counts.organ_registrations += 1;
                }
            }
            Event::Revoke { station } => {
                // The station's oldest active registration is revoked.
                let oldest = self
                    .reg
                    .list_organ_registrations(
                        &self.station(&station),
                        None,
                        Some("active"),
                        &PageRequest {
                            cursor: None,
                            limit: Some(1),
                        },
                    )
                    .await?;
                if let Some(id) = oldest.items.first().map(|r| r.id) {
                    let done = self
                        .reg
                        .revoke_organ_donation(id, &self.station(&station))
                        .await;
                    self.refused(done);
                }
            }
            Event::OrganCase { station, kind } => {
                let died_on = format_day((today - 1) as u16);
                let recovered: BTreeMap<String, i64> = match kind {
                    "organ" => [("kidney", 2), ("liver", 1)]
                        .into_iter()
                        .chain((self.rng.below(100) < 40).then_some(("heart", 1)))
                        .chain((self.rng.below(100) < 50).then_some(("cornea", 2)))
                        .map(|(k, v)| (k.to_string(), v))
                        .collect(),
                    "cornea" => [("cornea".to_string(), 2)].into(),
                    _ => (self.rng.below(100) < 50)
                        .then(|| ("cornea".to_string(), 2))
                        .into_iter()
                        .collect(),
                };
                // One recipient per organ or cornea recovered.
                let recipients: i64 = recovered.values().sum();
                let case = NewOrganCase {
                    registration_id: None,
                    kind: kind.into(),
                    died_on: died_on.clone(),
                    family_consent: FamilyConsent {
                        relations: vec!["spouse".into(), "adult_children".into()],
                        in_writing: true,
                        consented_on: died_on,
                        note: None,
                    },
                    witnesses: vec![format!(
                        "{}{}",
                        pick(&mut self.rng, &FAMILY),
                        "红十字会见证员"
                    )],
                    opo: pick(&mut self.rng, &OPOS).to_string(),
                    station: Some(station.clone()),
                    region: None,
                    completion: Some(CaseCompletion {
                        completed_on: on.clone(),
                        recovered,
                        recipients_helped: recipients,
                    }),
                };
                let made = self.reg.record_organ_case(&case, &self.case_manager).await;
                if let Some(id) = self.refused(made) {
                    self.counts.organ_cases += 1;
                    let care = NewCare {
                        organ_case_id: Some(id),
                        for_family: true,
                        kind: "condolence".into(),
                        on_date: on.clone(),
                        note: Some("慰问捐献者家属".into()),
                        ..Default::default()
                    };
                    let aid = NewCare {
                        organ_case_id: Some(id),
                        for_family: true,
                        kind: "aid".into(),
                        on_date: on,
                        amount_fen: Some(200_000 + 100_000 * self.rng.below(4) as i64),
                        fund: Some("人道救助基金".into()),
                        ..Default::default()
                    };
                    for c in [care, aid] {
                        let made = self.reg.record_care(&c, &self.case_manager).await;
                        if self.refused(made).is_some() {
                            self.counts.care += 1;
                        }
                    }
                }
            }
            Event::Qingming => {
                // Every completed case's family is remembered at 清明.
                let mut cases = Vec::new();
                let mut page = PageRequest {
                    cursor: None,
                    limit: Some(MAX_PAGE),
                };
                loop {
                    let found = self
                        .reg
                        .list_organ_cases(
                            &self.case_manager,
                            &OrganCaseFilter {
                                state: Some("completed".into()),
                                ..Default::default()
                            },
                            &page,
                        )
                        .await?;
                    cases.extend(
                        found
                            .items
                            .iter()
                            .filter(|c| c.completed_on.as_deref().is_some_and(|d| d < on.as_str()))
                            .map(|c| c.id),
                    );
                    match found.next_cursor {
                        Some(next) => page.cursor = Some(next),
                        None => break,
                    }
                }
                for id in cases {
                    let c = NewCare {
                        organ_case_id: Some(id),
                        for_family: true,
                        kind: "memorial".into(),
                        on_date: on.clone(),
                        memorial_park: Some("红十字纪念园".into()),
                        plot: Some(format!("A-{id:03}")),
                        commemoration: Some("清明".into()),
                        ..Default::default()
                    };
                    let made = self.reg.record_care(&c, &self.case_manager).await;
                    if self.refused(made).is_some() {
                        self.counts.care += 1;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Make `plan`'s activity in `reg`, whose clock must be manual (it is moved day by day and
/// left at `now`).
pub async fn make_activity(
    reg: &Registry,
    synth: &Synth,
    activity: &ActivityPlan,
    now: jiff::Timestamp,
) -> Result<ActivityCounts> {
    let zone = TimeZone::get(reg.config.clock.zone_name()).context("time zone")?;
    let today = day_of(now.to_zoned(zone.clone()).date());
    let first = day_of(date(
        (matching::model::civil_from_days(today).0 - activity.years + 1) as i16,
        1,
        1,
    ));
    let stations = reg.station_codes().await?;
    anyhow::ensure!(
        !stations.is_empty(),
        "the registry has no stations: add some first (boai db add-station)"
    );
    let mut rng = Rng::new(activity.seed);
    let events = plan(&stations, first, today, activity, &mut rng);
    let enrolments = events
        .iter()
        .filter(|(_, e)| matches!(e, Event::Enrol { .. }))
        .count();
    let mut maker = Maker {
        reg,
        synth,
        people: synth.donors(enrolments, activity.seed),
        rng,
        counts: ActivityCounts::default(),
        donors: stations.iter().map(|s| (s.clone(), Vec::new())).collect(),
        campaigns: BTreeMap::new(),
        cases: BTreeMap::new(),
        next_person: 0,
        coordinator: Actor::new("synth:coordinator", "coordinator"),
        case_manager: Actor::new("synth:case-manager", "case_manager"),
    };
    let bar = indicatif::ProgressBar::new(events.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} days' events ({eta})")
            .expect("template"),
    );
    for (day, event) in events {
        // Each day's work happens at 10:00 local time.
        let at = date_of(day)
            .at(10, 0, 0, 0)
            .to_zoned(zone.clone())
            .context("local time")?
            .timestamp();
        reg.config.clock.set(at.min(now));
        maker.run(day, event).await?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    reg.config.clock.set(now);
    Ok(maker.counts)
}
