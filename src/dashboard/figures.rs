//! The staff index's four charts: the figures, read through each
//! capability's aggregate queries, turned into `charts::Chart`s.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::CHART_DAYS;
use super::charts::{Chart, Series, Table, day_bars, day_label, labelled_bars};
use crate::AppState;
use crate::db::day_number;
use crate::error::AppResult;
use crate::invites::manage;
use crate::mail::outbox;
use crate::references;
use crate::visitors::stats;

/// Scopes drawn one by one; the rest share one chart.
const MAX_SCOPES: usize = 4;

/// The four charts, over the last `CHART_DAYS` days.
/// Days run midnight to midnight in the site's zone, at its offset now (so
/// the day of a clock change is an hour off at one end).
pub async fn charts(state: &AppState, site_id: i64, now: DateTime<Utc>) -> AppResult<Vec<Chart>> {
    let zone = state.zone();
    let mut days = Days::ending(now, zone.offset_secs_at(now));
    days.zone = zone.name();
    let since = days.start();
    // Side by side: each reads its own table on its own connection.
    let (invitations, visits, funnel, mail) = tokio::try_join!(
        invitations(state, site_id, since, &days),
        visits(state, site_id, since, &days),
        funnel(state, site_id, since),
        mail(state, site_id, since),
    )?;
    Ok(vec![invitations, visits, funnel, mail])
}

/// The days the charts cover (`db::day_sql` numbers) and the offset
/// they were counted at.
struct Days {
    numbers: Vec<i64>,
    offset_secs: i32,
    /// The zone's name, for the tables' "Day" column.
    zone: &'static str,
}

impl Days {
    fn ending(now: DateTime<Utc>, offset_secs: i32) -> Self {
        let today = day_number(now, offset_secs);
        Self {
            numbers: (today - CHART_DAYS + 1..=today).collect(),
            offset_secs,
            zone: "UTC",
        }
    }

    /// Midnight at the start of the first day.
    fn start(&self) -> DateTime<Utc> {
        let first = self.numbers[0];
        DateTime::from_timestamp(first * 86_400 - i64::from(self.offset_secs), 0)
            .unwrap_or_default()
    }
}

/// `counts` (day, count), sparse, spread over `days`.
fn spread(days: &[i64], counts: &[(i64, i64)]) -> Vec<i64> {
    let by_day: BTreeMap<i64, i64> = counts.iter().copied().collect();
    days.iter()
        .map(|day| by_day.get(day).copied().unwrap_or(0))
        .collect()
}

fn day_table(first: &str, days: &[i64], series: &[Series], values: &[Vec<i64>]) -> Table {
    let mut head = vec![first.to_owned()];
    head.extend(series.iter().map(|one| one.name.clone()));
    let rows = days
        .iter()
        .enumerate()
        .map(|(d, day)| {
            let mut row = vec![day_label(*day)];
            row.extend(values.iter().map(|column| column[d].to_string()));
            row
        })
        .collect();
    Table { head, rows }
}

async fn invitations(
    state: &AppState,
    site_id: i64,
    since: DateTime<Utc>,
    days: &Days,
) -> AppResult<Chart> {
    let (made, used) = manage::per_day(&state.db, site_id, since, days.offset_secs).await?;
    let heading = format!("Day ({})", days.zone);
    let days = &days.numbers;
    let series = vec![
        Series {
            name: "Sent".into(),
            class: "bar-solid",
        },
        Series {
            name: "First used".into(),
            class: "bar-hatched",
        },
    ];
    let values = vec![spread(days, &made), spread(days, &used)];
    let (sent, first_used): (i64, i64) = (values[0].iter().sum(), values[1].iter().sum());
    Ok(Chart {
        id: "chart-invitations",
        title: "Invitations sent and first used, per day",
        summary: format!(
            "In the last {CHART_DAYS} days, {sent} invitation{} sent and {first_used} first used.",
            if sent == 1 { " was" } else { "s were" }
        ),
        svg: day_bars(days, &series, &values, 200.0),
        table: day_table(&heading, days, &series, &values),
        legend: series,
    })
}

async fn visits(
    state: &AppState,
    site_id: i64,
    since: DateTime<Utc>,
    days: &Days,
) -> AppResult<Chart> {
    let rows = stats::hits_per_day(&state.db, site_id, since, days.offset_secs).await?;
    let heading = format!("Day ({})", days.zone);
    let days = &days.numbers;
    let mut per_scope: BTreeMap<String, Vec<(i64, i64)>> = BTreeMap::new();
    for row in rows {
        per_scope
            .entry(row.scope)
            .or_default()
            .push((row.day, row.hits));
    }
    let mut scopes: Vec<(String, Vec<i64>)> = per_scope
        .into_iter()
        .map(|(scope, counts)| (scope, spread(days, &counts)))
        .collect();
    scopes.sort_by_key(|(_, values)| std::cmp::Reverse(values.iter().sum::<i64>()));
    let scope_count = scopes.len();
    if scopes.len() > MAX_SCOPES {
        let rest = scopes.split_off(MAX_SCOPES - 1);
        let mut other = vec![0; days.len()];
        for (_, values) in &rest {
            for (sum, value) in other.iter_mut().zip(values) {
                *sum += value;
            }
        }
        scopes.push((format!("{} other scopes", rest.len()), other));
    }
    let classes = ["bar-solid", "bar-hatched", "bar-dotted", "bar-outline"];
    let series: Vec<Series> = scopes
        .iter()
        .zip(classes)
        .map(|((scope, _), class)| Series {
            name: scope.clone(),
            class,
        })
        .collect();
    let values: Vec<Vec<i64>> = scopes.into_iter().map(|(_, values)| values).collect();
    let total: i64 = values.iter().flatten().sum();
    Ok(Chart {
        id: "chart-visits",
        title: "Visitor link visits per day, by scope",
        summary: if series.is_empty() {
            format!("No visitor link was used in the last {CHART_DAYS} days.")
        } else {
            format!(
                "In the last {CHART_DAYS} days, {total} visit{} through visitor links of {} scope{}.",
                if total == 1 { "" } else { "s" },
                scope_count,
                if scope_count == 1 { "" } else { "s" }
            )
        },
        svg: day_bars(days, &series, &values, 200.0),
        table: day_table(&heading, days, &series, &values),
        legend: series,
    })
}

fn count_table(head: [&str; 2], bars: &[(String, i64, &'static str)]) -> Table {
    Table {
        head: head.iter().map(|cell| (*cell).to_owned()).collect(),
        rows: bars
            .iter()
            .map(|(label, value, _)| vec![label.clone(), value.to_string()])
            .collect(),
    }
}

async fn funnel(state: &AppState, site_id: i64, since: DateTime<Utc>) -> AppResult<Chart> {
    let funnel = references::funnel_since(&state.db, site_id, since).await?;
    let bars = vec![
        ("Requested".to_owned(), funnel.requested, "bar-solid"),
        (
            "Opened by the referee".to_owned(),
            funnel.opened,
            "bar-solid",
        ),
        ("Completed".to_owned(), funnel.completed, "bar-solid"),
    ];
    Ok(Chart {
        id: "chart-references",
        title: "Reference requests: requested, opened, completed",
        summary: format!(
            "Of {} reference request{} made in the last {CHART_DAYS} days, {} {} opened and {} completed.",
            funnel.requested,
            if funnel.requested == 1 { "" } else { "s" },
            funnel.opened,
            if funnel.opened == 1 { "was" } else { "were" },
            funnel.completed
        ),
        svg: labelled_bars(&bars),
        table: count_table(["Step", "Requests"], &bars),
        legend: Vec::new(),
    })
}

async fn mail(state: &AppState, site_id: i64, since: DateTime<Utc>) -> AppResult<Chart> {
    let outcomes = outbox::outcomes_since(&state.db, site_id, since).await?;
    let bars = vec![
        (
            "Delivered at the first try".to_owned(),
            outcomes.delivered,
            "bar-solid",
        ),
        (
            "Delivered after retrying, or waiting to retry".to_owned(),
            outcomes.retried,
            "bar-hatched",
        ),
        ("Failed".to_owned(), outcomes.failed, "bar-dotted"),
    ];
    Ok(Chart {
        id: "chart-mail",
        title: "Mail: delivered, retried, failed",
        summary: format!(
            "Of the mail queued in the last {CHART_DAYS} days, {} delivered at once, {} needed retrying and {} failed.",
            outcomes.delivered, outcomes.retried, outcomes.failed
        ),
        svg: labelled_bars(&bars),
        table: count_table(["Outcome", "Messages"], &bars),
        legend: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    #[test]
    fn sparse_counts_fill_every_day() {
        assert_eq!(spread(&[10, 11, 12], &[(12, 4), (10, 1)]), vec![1, 0, 4]);
    }

    #[test]
    fn days_start_at_midnight_in_the_zone() {
        for offset_secs in [0, 3600, -5 * 3600] {
            let now = Utc::now();
            let days = Days::ending(now, offset_secs);
            let start = days.start();
            assert_eq!(days.numbers.len(), CHART_DAYS as usize);
            assert!(now - start < Duration::days(CHART_DAYS));
            assert!(now - start >= Duration::days(CHART_DAYS - 1));
            assert_eq!((start.timestamp() + i64::from(offset_secs)) % 86_400, 0);
        }
    }
}
