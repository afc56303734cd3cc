//! The staff index's charts, drawn as plain SVG shapes computed here and
//! written out by `templates/dashboard/chart.html`. Each chart also carries
//! its numbers as a table (for screen readers and for anyone who wants the
//! figures), and its series differ by pattern and label, never by colour
//! alone.
//!
//! Hand-drawn rather than a chart crate: the four charts are bars and
//! nothing else, the shapes must carry CSS classes and patterns (the CSP
//! allows no inline styles), and text must be real SVG text in the page's
//! font; a plotting crate would bring a font stack and a second drawing model
//! for about a hundred lines of arithmetic.

use chrono::{Days, NaiveDate};
use serde::Serialize;

/// Width of every chart's drawing, in SVG units; the page scales it.
const WIDTH: f64 = 640.0;
/// Left margin, for the value axis labels.
const LEFT: f64 = 56.0;
const TOP: f64 = 12.0;

/// One chart, ready for the template.
#[derive(Debug, Serialize)]
pub struct Chart {
    pub id: &'static str,
    pub title: &'static str,
    /// One sentence saying what the chart shows, in numbers.
    pub summary: String,
    pub svg: Svg,
    /// The series, as the legend shows them (empty for labelled bars).
    pub legend: Vec<Series>,
    pub table: Table,
}

#[derive(Debug, Clone, Serialize)]
pub struct Series {
    pub name: String,
    /// `bar-solid`, `bar-hatched` or `bar-dotted`: a fill that reads without colour.
    pub class: &'static str,
}

#[derive(Debug, Default, Serialize)]
pub struct Svg {
    pub width: f64,
    pub height: f64,
    pub rects: Vec<Rect>,
    pub texts: Vec<Text>,
    pub lines: Vec<Line>,
}

#[derive(Debug, Serialize)]
pub struct Rect {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
    pub class: &'static str,
}

#[derive(Debug, Serialize)]
pub struct Text {
    pub x: f64,
    pub y: f64,
    pub text: String,
    /// `start`, `middle` or `end`.
    pub anchor: &'static str,
}

#[derive(Debug, Serialize)]
pub struct Line {
    pub x1: f64,
    pub y1: f64,
    pub x2: f64,
    pub y2: f64,
}

#[derive(Debug, Default, Serialize)]
pub struct Table {
    pub head: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// The date of a day number (`db::day_number`).
pub fn date_of(day: i64) -> NaiveDate {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    u64::try_from(day)
        .ok()
        .and_then(|day| epoch.checked_add_days(Days::new(day)))
        .unwrap_or(epoch)
}

/// `3 Nov`: a day on an axis or in a table.
pub fn day_label(day: i64) -> String {
    date_of(day).format("%-d %b").to_string()
}

/// A round number at or above `max` (at least 1), for the top of an axis.
pub fn axis_top(max: i64) -> i64 {
    let max = max.max(1);
    let mut step = 1;
    while step * 10 < max {
        step *= 10;
    }
    [1, 2, 5, 10]
        .into_iter()
        .map(|m| m * step)
        .find(|top| *top >= max)
        .unwrap_or(max)
}

/// Bars per day for each series (values in `values[s][d]`), grouped side by
/// side, with a value axis and a date each week and on the last day.
pub fn day_bars(days: &[i64], series: &[Series], values: &[Vec<i64>], height: f64) -> Svg {
    let bottom = height - 22.0;
    let plot = bottom - TOP;
    let top_value = axis_top(values.iter().flatten().copied().max().unwrap_or(0));
    let mut svg = value_axis(height, bottom, top_value);
    let slot = (WIDTH - LEFT) / days.len().max(1) as f64;
    let bar = (slot * 0.8) / series.len().max(1) as f64;
    for (d, day) in days.iter().enumerate() {
        let x0 = LEFT + slot * d as f64 + slot * 0.1;
        for (s, one) in series.iter().enumerate() {
            let value = values.get(s).and_then(|v| v.get(d)).copied().unwrap_or(0);
            let h = plot * value as f64 / top_value as f64;
            svg.rects.push(Rect {
                x: round(x0 + bar * s as f64),
                y: round(bottom - h),
                w: round(bar),
                h: round(h),
                class: one.class,
            });
        }
        // A date every week and on the last day, never two side by side.
        let last = d + 1 == days.len();
        if last || (d % 7 == 0 && d + 4 < days.len()) {
            // The last date ends at the right edge instead of running past it.
            let (x, anchor) = if last {
                (WIDTH - 2.0, "end")
            } else {
                (round(x0 + slot * 0.4), "middle")
            };
            svg.texts.push(Text {
                x,
                y: height - 6.0,
                text: day_label(*day),
                anchor,
            });
        }
    }
    svg
}

/// The frame of a bar chart: base line, mid and top grid lines, and their values.
fn value_axis(height: f64, bottom: f64, top_value: i64) -> Svg {
    let mut svg = Svg {
        width: WIDTH,
        height,
        ..Svg::default()
    };
    for (fraction, value) in [(0.0, 0), (0.5, top_value / 2), (1.0, top_value)] {
        if fraction == 0.5 && top_value % 2 == 1 {
            continue;
        }
        let y = round(bottom - (bottom - TOP) * fraction);
        svg.lines.push(Line {
            x1: LEFT,
            y1: y,
            x2: WIDTH,
            y2: y,
        });
        svg.texts.push(Text {
            x: LEFT - 6.0,
            y: y + 4.0,
            text: value.to_string(),
            anchor: "end",
        });
    }
    svg
}

/// Horizontal bars, one per labelled value: the label above its bar and
/// the value at its end.
pub fn labelled_bars(bars: &[(String, i64, &'static str)]) -> Svg {
    let row = 44.0;
    let max = bars.iter().map(|bar| bar.1).max().unwrap_or(0).max(1);
    let room = WIDTH - 80.0;
    let mut svg = Svg {
        width: WIDTH,
        height: round(row * bars.len() as f64 + 4.0),
        ..Svg::default()
    };
    for (i, (label, value, class)) in bars.iter().enumerate() {
        let y = row * i as f64;
        let w = room * (*value as f64) / max as f64;
        svg.texts.push(Text {
            x: 0.0,
            y: y + 14.0,
            text: label.clone(),
            anchor: "start",
        });
        svg.rects.push(Rect {
            x: 0.0,
            y: y + 20.0,
            w: round(w.max(1.0)),
            h: 18.0,
            class,
        });
        svg.texts.push(Text {
            x: round(w.max(1.0) + 8.0),
            y: y + 34.0,
            text: value.to_string(),
            anchor: "start",
        });
    }
    svg
}

fn round(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_end_on_round_numbers() {
        assert_eq!(axis_top(0), 1);
        assert_eq!(axis_top(1), 1);
        assert_eq!(axis_top(3), 5);
        assert_eq!(axis_top(7), 10);
        assert_eq!(axis_top(11), 20);
        assert_eq!(axis_top(480), 500);
        assert_eq!(axis_top(501), 1000);
    }

    #[test]
    fn day_numbers_are_dates() {
        assert_eq!(
            date_of(0),
            NaiveDate::from_ymd_opt(1970, 1, 1).expect("a date")
        );
        assert_eq!(day_label(20_788), "1 Dec");
    }

    #[test]
    fn bars_grow_with_their_values_and_stay_inside_the_drawing() {
        let series = [Series {
            name: "Sent".into(),
            class: "bar-solid",
        }];
        let svg = day_bars(&[1, 2, 3], &series, &[vec![0, 5, 10]], 200.0);
        let heights: Vec<f64> = svg.rects.iter().map(|rect| rect.h).collect();
        assert_eq!(heights[0], 0.0);
        assert!(heights[1] < heights[2]);
        assert!(
            svg.rects
                .iter()
                .all(|rect| rect.y >= TOP && rect.x + rect.w <= WIDTH)
        );
        let month: Vec<i64> = (0..30).collect();
        let labels = day_bars(&month, &series, &[vec![1; 30]], 200.0).texts;
        let dates: Vec<f64> = labels
            .iter()
            .filter(|t| t.anchor == "middle")
            .map(|t| t.x)
            .collect();
        assert!(
            dates.windows(2).all(|pair| pair[1] - pair[0] > 60.0),
            "dates do not overlap: {dates:?}"
        );
        let bars = labelled_bars(&[("A".into(), 0, "bar-solid"), ("B".into(), 4, "bar-solid")]);
        assert_eq!(bars.rects.len(), 2);
        assert!(bars.texts.iter().any(|text| text.text == "4"));
    }
}
