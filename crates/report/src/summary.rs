//! The summary paragraph, as branch reports state a year: every number in it is a field of
//! the report, so the paragraph and the JSON never disagree.

use crate::{YearlyReport, percent, yuan};

fn scope_zh(r: &YearlyReport) -> String {
    match (&r.scope.name, &r.scope.station, &r.scope.branch) {
        (Some(name), _, _) => name.clone(),
        (None, Some(s), _) => format!("{s}采集站"),
        (None, None, Some(b)) => format!("{b}分库"),
        _ => "全库".into(),
    }
}

fn scope_en(r: &YearlyReport) -> String {
    match (&r.scope.name, &r.scope.station, &r.scope.branch) {
        (Some(name), _, _) => name.clone(),
        (None, Some(s), _) => format!("station {s}"),
        (None, None, Some(b)) => format!("branch {b}"),
        _ => "the registry".into(),
    }
}

/// The year's last donation by a first-time donor (the donor the branch reports as its
/// n-th).
fn latest_first_donation(r: &YearlyReport) -> Option<&crate::DonationOrdinal> {
    r.donation_ordinals
        .iter()
        .filter(|d| !d.repeat)
        .max_by(|a, b| (&a.donated_on, a.donation_id).cmp(&(&b.donated_on, b.donation_id)))
}

fn case(r: &YearlyReport, kind: &str) -> i64 {
    r.completed_cases.get(kind).copied().unwrap_or(0)
}

/// 中文摘要。
pub fn summary_zh(r: &YearlyReport) -> String {
    let mut s = format!(
        "{}年，{}采集造血干细胞血样{}份，新增入库志愿者{}人，年末库容{}人；",
        r.scope.year,
        scope_zh(r),
        r.samples_collected,
        r.donors_listed_new,
        r.registry_size
    );
    s += &format!(
        "全年发起确认配型{}例、体检评估{}例，配型成功捐献造血干细胞{}例",
        r.ct_requests, r.workups, r.donations
    );
    if let Some(last) = latest_first_donation(r) {
        s += &format!(
            "（最新一例为{}分库第{}位捐献者）",
            last.branch, last.ordinal
        );
    }
    s += "。";
    s += &format!(
        "接受人体器官、遗体和眼角膜捐献志愿登记{}人（年末有效登记{}人），实现器官捐献{}例、遗体捐献{}例、眼角膜捐献{}例，捐献器官{}个、眼角膜{}枚，{}名患者受益。",
        r.organ_registrations.new,
        r.organ_registrations.in_force,
        case(r, "organ"),
        case(r, "body"),
        case(r, "cornea"),
        r.organs_recovered,
        r.corneas_recovered,
        r.recipients_helped
    );
    s += &format!(
        "走访慰问捐献者及家属{}次，发放救助金{}元（{}笔），表彰{}人次；开展宣传招募活动{}场。",
        r.care.visits,
        yuan(r.care.aid.amount_fen),
        r.care.aid.count,
        r.care.honours,
        r.campaigns.len()
    );
    s
}

/// The summary in English.
pub fn summary_en(r: &YearlyReport) -> String {
    let mut s = format!(
        "In {}, {} collected {} stem-cell donor samples and listed {} new volunteers; {} donors were on the registry at the end of the year. ",
        r.scope.year,
        scope_en(r),
        r.samples_collected,
        r.donors_listed_new,
        r.registry_size
    );
    s += &format!(
        "Coordinators requested {} confirmatory typings and {} workups, and {} stem-cell donations were made",
        r.ct_requests, r.workups, r.donations
    );
    if let Some(last) = latest_first_donation(r) {
        s += &format!(
            " (the latest by branch {}'s donor number {})",
            last.branch, last.ordinal
        );
    }
    s += &format!("; utilisation was {}. ", percent(r.utilisation));
    s += &format!(
        "{} people registered to donate organs, their body or corneas ({} registrations in force at year end); {} organ, {} body and {} cornea donations were completed, recovering {} organs and {} corneas for {} recipients. ",
        r.organ_registrations.new,
        r.organ_registrations.in_force,
        case(r, "organ"),
        case(r, "body"),
        case(r, "cornea"),
        r.organs_recovered,
        r.corneas_recovered,
        r.recipients_helped
    );
    s += &format!(
        "Staff made {} visits to donors and their families, gave CNY {} of hardship aid in {} grants and {} honours; {} campaigns were held.",
        r.care.visits,
        yuan(r.care.aid.amount_fen),
        r.care.aid.count,
        r.care.honours,
        r.campaigns.len()
    );
    s
}
