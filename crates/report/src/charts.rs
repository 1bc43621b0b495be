//! The report's charts as SVG (plotters' SVG backend: text stays text, so the viewer's
//! fonts render Chinese and English alike; no font files are read).

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::YearlyReport;

/// A chart: its title and its SVG document.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    pub id: &'static str,
    pub title: String,
    pub svg: String,
}

const WIDTH: u32 = 720;
const HEIGHT: u32 = 340;
const PALETTE: [RGBColor; 4] = [
    RGBColor(196, 30, 58),
    RGBColor(90, 90, 90),
    RGBColor(31, 119, 180),
    RGBColor(214, 140, 30),
];

/// One bar series: a name and a value per category.
struct Series<'a> {
    name: &'a str,
    values: Vec<i64>,
}

fn err<E: std::fmt::Debug>(e: E) -> String {
    format!("{e:?}")
}

/// Grouped bars: one group per category, one bar per series.
fn bar_chart(title: &str, categories: &[String], series: &[Series]) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let n = categories.len().max(1) as f64;
        let top = series
            .iter()
            .flat_map(|s| s.values.iter().copied())
            .max()
            .unwrap_or(0)
            .max(1) as f64
            * 1.15;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..n, 0f64..top)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(TRANSPARENT)
            .x_label_formatter(&|_| String::new())
            .y_label_formatter(&|v| format!("{v:.0}"))
            .draw()
            .map_err(err)?;
        let k = series.len().max(1) as f64;
        let width = 0.8 / k;
        for (j, s) in series.iter().enumerate() {
            let colour = PALETTE[j % PALETTE.len()];
            chart
                .draw_series(s.values.iter().enumerate().map(|(i, &v)| {
                    let x0 = i as f64 + 0.1 + j as f64 * width;
                    Rectangle::new([(x0, 0.0), (x0 + width, v as f64)], colour.filled())
                }))
                .map_err(err)?
                .label(s.name)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 10, y + 5)], colour.filled())
                });
            // The value above each bar.
            let style = TextStyle::from(("sans-serif", 11).into_font())
                .pos(Pos::new(HPos::Center, VPos::Bottom));
            for (i, &v) in s.values.iter().enumerate() {
                let x = i as f64 + 0.1 + (j as f64 + 0.5) * width;
                let (px, py) = chart.backend_coord(&(x, v as f64));
                root.draw(&Text::new(v.to_string(), (px, py - 2), style.clone()))
                    .map_err(err)?;
            }
        }
        let style =
            TextStyle::from(("sans-serif", 12).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
        for (i, label) in categories.iter().enumerate() {
            let (px, py) = chart.backend_coord(&(i as f64 + 0.5, 0.0));
            root.draw(&Text::new(label.clone(), (px, py + 6), style.clone()))
                .map_err(err)?;
        }
        if series.len() > 1 {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .border_style(BLACK)
                .background_style(WHITE.mix(0.85))
                .draw()
                .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// A line over the years.
fn line_chart(title: &str, years: &[i32], values: &[i64]) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let first = *years.first().unwrap_or(&2000);
        let last = *years.last().unwrap_or(&first);
        let top = values.iter().copied().max().unwrap_or(0).max(1) as f64 * 1.15;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(72)
            .build_cartesian_2d(first as f64 - 0.5..last as f64 + 0.5, 0f64..top)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(TRANSPARENT)
            .x_label_formatter(&|_| String::new())
            .y_label_formatter(&|v| format!("{v:.0}"))
            .draw()
            .map_err(err)?;
        let points: Vec<(f64, f64)> = years
            .iter()
            .zip(values)
            .map(|(&y, &v)| (y as f64, v as f64))
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), PALETTE[0].stroke_width(2)))
            .map_err(err)?;
        chart
            .draw_series(
                points
                    .iter()
                    .map(|&p| Circle::new(p, 4, PALETTE[0].filled())),
            )
            .map_err(err)?;
        let label = TextStyle::from(("sans-serif", 11).into_font())
            .pos(Pos::new(HPos::Center, VPos::Bottom));
        let axis =
            TextStyle::from(("sans-serif", 12).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
        for &(x, v) in &points {
            let (px, py) = chart.backend_coord(&(x, v));
            root.draw(&Text::new(format!("{v:.0}"), (px, py - 6), label.clone()))
                .map_err(err)?;
            let (px, py) = chart.backend_coord(&(x, 0.0));
            root.draw(&Text::new(format!("{x:.0}"), (px, py + 6), axis.clone()))
                .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// The four charts of a report: registry size over the years, samples against target per
/// station, donations per year, death-donation cases by type per year.
pub fn charts(r: &YearlyReport) -> Result<Vec<Chart>, String> {
    let years: Vec<i32> = r.history.iter().map(|p| p.year).collect();
    let year_labels: Vec<String> = years.iter().map(i32::to_string).collect();
    let stations: Vec<String> = r
        .samples_by_station
        .iter()
        .map(|s| s.station.clone())
        .collect();
    let kinds = ["organ", "body", "cornea"];
    Ok(vec![
        Chart {
            id: "registry-size",
            title: "Registry size at year end · 年末库容".into(),
            svg: line_chart(
                "Registry size at year end · 年末库容",
                &years,
                &r.history
                    .iter()
                    .map(|p| p.registry_size)
                    .collect::<Vec<_>>(),
            )?,
        },
        Chart {
            id: "samples-target",
            title: format!("Samples against target, {} · 血样采集与任务", r.scope.year),
            svg: bar_chart(
                &format!("Samples against target, {} · 血样采集与任务", r.scope.year),
                &stations,
                &[
                    Series {
                        name: "collected 采集",
                        values: r.samples_by_station.iter().map(|s| s.collected).collect(),
                    },
                    Series {
                        name: "target 任务",
                        values: r.samples_by_station.iter().map(|s| s.target).collect(),
                    },
                ],
            )?,
        },
        Chart {
            id: "donations",
            title: "Stem-cell donations per year · 造血干细胞捐献".into(),
            svg: bar_chart(
                "Stem-cell donations per year · 造血干细胞捐献",
                &year_labels,
                &[Series {
                    name: "donations",
                    values: r.history.iter().map(|p| p.donations).collect(),
                }],
            )?,
        },
        Chart {
            id: "death-donation-cases",
            title: "Death-donation cases by type · 器官、遗体、眼角膜捐献".into(),
            svg: bar_chart(
                "Death-donation cases by type · 器官、遗体、眼角膜捐献",
                &year_labels,
                &kinds
                    .iter()
                    .map(|k| Series {
                        name: k,
                        values: r
                            .history
                            .iter()
                            .map(|p| p.completed_cases.get(*k).copied().unwrap_or(0))
                            .collect(),
                    })
                    .collect::<Vec<_>>(),
            )?,
        },
    ])
}
