//! A report as JSON, CSV (`key,value` rows: every figure by its JSON path), Markdown, or a
//! standalone HTML page with the summary, the tables and the charts inline.

use std::fmt::Write as _;

use serde_json::Value;

use crate::{YearlyReport, charts, percent, yuan};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
    Md,
    Html,
}

impl Format {
    pub fn from_code(code: &str) -> Option<Format> {
        match code {
            "json" => Some(Format::Json),
            "csv" => Some(Format::Csv),
            "md" | "markdown" => Some(Format::Md),
            "html" => Some(Format::Html),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("chart: {0}")]
    Chart(String),
    #[error("csv: {0}")]
    Csv(#[from] csv::Error),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}

pub fn render(r: &YearlyReport, format: Format) -> Result<String, RenderError> {
    match format {
        Format::Json => Ok(serde_json::to_string_pretty(r)? + "\n"),
        Format::Csv => csv_rows(r),
        Format::Md => Ok(markdown(r)),
        Format::Html => html(r),
    }
}

/// Every leaf of the JSON form, by its path (`samples_by_station[0].collected`).
fn leaves(path: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                leaves(&p, v, out);
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                leaves(&format!("{path}[{i}]"), v, out);
            }
        }
        Value::Null => out.push((path.into(), String::new())),
        Value::String(s) => out.push((path.into(), s.clone())),
        other => out.push((path.into(), other.to_string())),
    }
}

fn csv_rows(r: &YearlyReport) -> Result<String, RenderError> {
    let mut rows = Vec::new();
    leaves("", &serde_json::to_value(r)?, &mut rows);
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["key", "value"])?;
    for (k, v) in rows {
        w.write_record([k, v])?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| RenderError::Csv(e.into_error().into()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The figures as (label, value) rows, grouped in sections: shared by Markdown and HTML.
fn sections(r: &YearlyReport) -> Vec<(&'static str, Vec<(String, String)>)> {
    let n = |v: i64| v.to_string();
    let case = |k: &str| r.completed_cases.get(k).copied().unwrap_or(0);
    let mut ages: Vec<(String, String)> = r
        .registry_size_by_age_band
        .iter()
        .map(|(b, v)| (format!("registry size, age {b}"), n(*v)))
        .collect();
    ages.extend(
        r.registry_size_by_branch
            .iter()
            .map(|b| (format!("registry size, branch {}", b.branch), n(b.size))),
    );
    let mut stem = vec![
        (
            "samples collected · 采集血样".into(),
            n(r.samples_collected),
        ),
        (
            "donors listed, new · 新增入库".into(),
            n(r.donors_listed_new),
        ),
        (
            "registry size at year end · 年末库容".into(),
            n(r.registry_size),
        ),
        (
            "utilisation · 利用率".into(),
            format!(
                "{} ({} donors)",
                percent(r.utilisation),
                r.utilisation_donors
            ),
        ),
        (
            "confirmatory typing requests · 确认配型".into(),
            n(r.ct_requests),
        ),
        ("workups · 体检".into(), n(r.workups)),
        ("donations · 捐献".into(), n(r.donations)),
        (
            "follow-up completion · 随访完成率".into(),
            format!(
                "{} (done {}, missed {}, overdue {}, pending {})",
                percent(r.follow_up.completion),
                r.follow_up.done,
                r.follow_up.missed,
                r.follow_up.overdue,
                r.follow_up.pending
            ),
        ),
        (
            "reachability · 联系成功率".into(),
            format!(
                "{} ({} of {} donors; {} made TU/UC)",
                percent(r.reachability.rate),
                r.reachability.donors_reached,
                r.reachability.donors_contacted,
                r.reachability.made_unreachable
            ),
        ),
    ];
    stem.extend(ages);
    let stations = r
        .samples_by_station
        .iter()
        .map(|s| {
            (
                format!("{} {} ({})", s.station, s.name, s.branch),
                format!("{} / target {}", s.collected, s.target),
            )
        })
        .collect();
    let donations = r
        .donation_ordinals
        .iter()
        .map(|d| {
            (
                format!("{} {} donor {}", d.donated_on, d.product, d.donor_id),
                format!(
                    "branch {} donor no. {}{}",
                    d.branch,
                    d.ordinal,
                    if d.repeat { " (repeat)" } else { "" }
                ),
            )
        })
        .collect();
    let organ = vec![
        (
            "registrations, new · 新增登记".into(),
            n(r.organ_registrations.new),
        ),
        (
            "registrations in force · 有效登记".into(),
            n(r.organ_registrations.in_force),
        ),
        ("organ donations · 器官捐献".into(), n(case("organ"))),
        ("body donations · 遗体捐献".into(), n(case("body"))),
        ("cornea donations · 眼角膜捐献".into(), n(case("cornea"))),
        ("organs recovered · 捐献器官".into(), n(r.organs_recovered)),
        ("corneas recovered · 眼角膜".into(), n(r.corneas_recovered)),
        (
            "recipients helped · 受益患者".into(),
            n(r.recipients_helped),
        ),
    ];
    let care = vec![
        ("visits and condolences · 走访慰问".into(), n(r.care.visits)),
        (
            "families visited · 慰问家庭".into(),
            n(r.care.families_visited),
        ),
        (
            "hardship aid · 救助".into(),
            format!(
                "CNY {} in {} grants",
                yuan(r.care.aid.amount_fen),
                r.care.aid.count
            ),
        ),
        ("benefits · 其他关怀".into(), n(r.care.benefits)),
        ("honours · 表彰".into(), n(r.care.honours)),
        ("memorial entries · 纪念".into(), n(r.care.memorials)),
    ];
    let campaigns = r
        .campaigns
        .iter()
        .map(|c| {
            (
                format!("{} {} ({}, {})", c.held_on, c.name, c.kind, c.station),
                format!(
                    "{} enrolments, {} samples, {} registrations",
                    c.enrolments, c.samples, c.organ_registrations
                ),
            )
        })
        .collect();
    vec![
        ("Stem-cell donors · 造血干细胞", stem),
        ("Samples by station · 各站采集", stations),
        ("Donations · 捐献", donations),
        (
            "Organ, body and cornea donation · 器官、遗体、眼角膜捐献",
            organ,
        ),
        ("Care · 人道关怀", care),
        ("Campaigns · 宣传招募", campaigns),
    ]
}

fn title(r: &YearlyReport) -> String {
    let scope = match (&r.scope.station, &r.scope.branch) {
        (Some(s), _) => format!(" · station {s}"),
        (None, Some(b)) => format!(" · branch {b}"),
        _ => String::new(),
    };
    format!("Boai yearly report {}{scope}", r.scope.year)
}

fn markdown(r: &YearlyReport) -> String {
    let mut s = format!(
        "# {}\n\nGenerated {}.\n\n{}\n\n{}\n",
        title(r),
        r.generated_on,
        r.summary.zh,
        r.summary.en
    );
    for (heading, rows) in sections(r) {
        let _ = write!(s, "\n## {heading}\n\n| figure | value |\n|---|---|\n");
        for (k, v) in rows {
            let _ = writeln!(
                s,
                "| {} | {} |",
                k.replace('|', "\\|"),
                v.replace('|', "\\|")
            );
        }
    }
    s
}

fn escape(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn html(r: &YearlyReport) -> Result<String, RenderError> {
    let charts = charts(r).map_err(RenderError::Chart)?;
    let mut s = String::new();
    let _ = write!(
        s,
        "<!doctype html>\n<html lang=\"zh-CN\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>\n\
         body {{ font-family: system-ui, 'Noto Sans CJK SC', 'PingFang SC', sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; }}\n\
         h1 {{ color: #c41e3a; }} table {{ border-collapse: collapse; width: 100%; margin-bottom: 1.5rem; }}\n\
         td, th {{ border-bottom: 1px solid #ddd; padding: .3rem .5rem; text-align: left; }} td.v {{ text-align: right; font-variant-numeric: tabular-nums; }}\n\
         .summary {{ background: #fbf3f4; border-left: 4px solid #c41e3a; padding: .5rem 1rem; }} figure {{ margin: 1rem 0; }} figure svg {{ max-width: 100%; height: auto; }}\n\
         </style>\n</head>\n<body>\n<h1>{}</h1>\n<p>Generated {}.</p>\n<div class=\"summary\">\n<p lang=\"zh-CN\" id=\"summary-zh\">{}</p>\n<p lang=\"en\" id=\"summary-en\">{}</p>\n</div>\n",
        escape(&title(r)),
        escape(&title(r)),
        escape(&r.generated_on),
        escape(&r.summary.zh),
        escape(&r.summary.en)
    );
    s += "<h2>Charts · 图表</h2>\n";
    for c in &charts {
        let svg = c.svg.trim_start_matches(|ch| ch != '<');
        let svg = svg
            .strip_prefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>")
            .unwrap_or(svg);
        let _ = write!(
            s,
            "<figure id=\"{}\">\n{}\n<figcaption>{}</figcaption>\n</figure>\n",
            c.id,
            svg.trim(),
            escape(&c.title)
        );
    }
    for (heading, rows) in sections(r) {
        let _ = write!(s, "<h2>{}</h2>\n<table>\n", escape(heading));
        for (k, v) in rows {
            let _ = writeln!(
                s,
                "<tr><td>{}</td><td class=\"v\">{}</td></tr>",
                escape(&k),
                escape(&v)
            );
        }
        s += "</table>\n";
    }
    s += "</body>\n</html>\n";
    Ok(s)
}
