//! Times as people read them. Pages, mail, messages and the command line
//! all format a time here, so the styles sit side by side and each changes
//! in one place. Times are stored in UTC and shown in the site's zone
//! (`server.time_zone`) with its abbreviation; only log lines stay in UTC.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateStyle {
    /// `2026-11-23 17:05 CET`: staff pages, members' lists, the command line.
    Stamp,
    /// `2026-11-23 17:05:09 CET`: a visitor's log.
    Seconds,
    /// `23 November 2026`: dates in mail.
    Day,
    /// `1 Dec`: a date in a sentence, within the year.
    DayShort,
    /// `23 November 2026, 17:05 CET`: until when a link works.
    DayAndTime,
    /// `17:05 CET`: later today, in a message.
    Clock,
}

impl DateStyle {
    fn pattern(self) -> &'static str {
        match self {
            Self::Stamp => "%Y-%m-%d %H:%M %Z",
            Self::Seconds => "%Y-%m-%d %H:%M:%S %Z",
            Self::Day => "%-d %B %Y",
            Self::DayShort => "%-d %b",
            Self::DayAndTime => "%-d %B %Y, %H:%M %Z",
            Self::Clock => "%H:%M %Z",
        }
    }
}

/// The zone dates are shown in: an IANA name such as `Europe/Berlin`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Zone(Tz);

impl Zone {
    pub const UTC: Zone = Zone(Tz::UTC);

    /// `at` as people read it, in this zone.
    pub fn format(self, at: DateTime<Utc>, style: DateStyle) -> String {
        at.with_timezone(&self.0)
            .format(style.pattern())
            .to_string()
    }

    /// The IANA name (`Europe/Berlin`).
    pub fn name(self) -> &'static str {
        self.0.name()
    }

    /// The year `at` falls in, in this zone.
    pub fn year_of(self, at: DateTime<Utc>) -> i32 {
        at.with_timezone(&self.0).year()
    }

    /// The zone's abbreviation at `at` (`CET`, `CEST`, `UTC`).
    pub fn abbreviation_at(self, at: DateTime<Utc>) -> String {
        at.with_timezone(&self.0).format("%Z").to_string()
    }

    /// Midnight in this zone on the first day of `at`'s month there.
    pub fn start_of_month(self, at: DateTime<Utc>) -> DateTime<Utc> {
        let local = at.with_timezone(&self.0).date_naive();
        let first = local.with_day(1).unwrap_or(local);
        // Midnight may not exist (a clock change at 00:00): the first moment after.
        (0..=2)
            .filter_map(|hour| first.and_hms_opt(hour, 0, 0))
            .find_map(|start| self.0.from_local_datetime(&start).earliest())
            .map_or(at, |start| start.with_timezone(&Utc))
    }

    /// Seconds east of UTC at `at` (3600 for Berlin in winter, 7200 in summer).
    pub fn offset_secs_at(self, at: DateTime<Utc>) -> i32 {
        at.with_timezone(&self.0).offset().fix().local_minus_utc()
    }
}

impl fmt::Debug for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Default for Zone {
    fn default() -> Self {
        Self::UTC
    }
}

impl FromStr for Zone {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        name.trim().parse::<Tz>().map(Zone).map_err(|_| {
            format!(
                "unknown time zone {name:?}: use an IANA name such as \"Europe/Berlin\", \
                 \"America/New_York\" or \"UTC\""
            )
        })
    }
}

impl<'de> Deserialize<'de> for Zone {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// `16:05:09.042` in UTC: the clock in log lines, whatever the site's zone.
pub fn log_clock(at: DateTime<Utc>) -> String {
    at.format("%H:%M:%S%.3f").to_string()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
            .single()
            .expect("a valid time")
    }

    #[test]
    fn each_style_reads_as_documented_in_utc() {
        let at = utc(2026, 11, 3, 16, 5, 9) + chrono::Duration::milliseconds(42);
        let shown = |style| Zone::UTC.format(at, style);
        assert_eq!(shown(DateStyle::Stamp), "2026-11-03 16:05 UTC");
        assert_eq!(shown(DateStyle::Seconds), "2026-11-03 16:05:09 UTC");
        assert_eq!(shown(DateStyle::Day), "3 November 2026");
        assert_eq!(shown(DateStyle::DayShort), "3 Nov");
        assert_eq!(shown(DateStyle::DayAndTime), "3 November 2026, 16:05 UTC");
        assert_eq!(shown(DateStyle::Clock), "16:05 UTC");
        assert_eq!(log_clock(at), "16:05:09.042");
    }

    #[test]
    fn berlin_shows_winter_and_summer_time_with_their_abbreviations() {
        let berlin: Zone = "Europe/Berlin".parse().expect("a known zone");
        let winter = utc(2026, 11, 23, 16, 5, 0);
        assert_eq!(
            berlin.format(winter, DateStyle::Stamp),
            "2026-11-23 17:05 CET"
        );
        assert_eq!(
            berlin.format(winter, DateStyle::DayAndTime),
            "23 November 2026, 17:05 CET"
        );
        let summer = utc(2026, 7, 1, 16, 5, 0);
        assert_eq!(
            berlin.format(summer, DateStyle::Stamp),
            "2026-07-01 18:05 CEST"
        );
        assert_eq!(berlin.offset_secs_at(winter), 3600);
        assert_eq!(berlin.offset_secs_at(summer), 7200);
    }

    #[test]
    fn the_day_follows_the_zone_across_midnight_and_the_dst_change() {
        let berlin: Zone = "Europe/Berlin".parse().expect("a known zone");
        // 23:30 UTC on 31 December is already New Year in Berlin.
        let late = utc(2026, 12, 31, 23, 30, 0);
        assert_eq!(berlin.format(late, DateStyle::Day), "1 January 2027");
        assert_eq!(Zone::UTC.format(late, DateStyle::Day), "31 December 2026");
        // Clocks go forward at 01:00 UTC on 29 March 2026: 01:59 CET, then 03:00 CEST.
        let before = utc(2026, 3, 29, 0, 59, 0);
        let after = utc(2026, 3, 29, 1, 0, 0);
        assert_eq!(berlin.format(before, DateStyle::Clock), "01:59 CET");
        assert_eq!(berlin.format(after, DateStyle::Clock), "03:00 CEST");
        let new_york: Zone = "America/New_York".parse().expect("a known zone");
        assert_eq!(
            new_york.format(after, DateStyle::Stamp),
            "2026-03-28 21:00 EDT"
        );
    }

    #[test]
    fn a_month_starts_at_local_midnight_on_its_first_day() {
        let berlin: Zone = "Europe/Berlin".parse().expect("a known zone");
        // 17 December, 15:04 UTC: the month began at 1 December 00:00 CET = 23:00 UTC.
        let now = utc(2026, 12, 17, 15, 4, 5);
        assert_eq!(berlin.start_of_month(now), utc(2026, 11, 30, 23, 0, 0));
        assert_eq!(Zone::UTC.start_of_month(now), utc(2026, 12, 1, 0, 0, 0));
        // 30 November, 23:30 UTC is already December in Berlin.
        let late = utc(2026, 11, 30, 23, 30, 0);
        assert_eq!(berlin.start_of_month(late), utc(2026, 11, 30, 23, 0, 0));
        // In summer time the month starts at 22:00 UTC the day before.
        assert_eq!(
            berlin.start_of_month(utc(2026, 7, 9, 12, 0, 0)),
            utc(2026, 6, 30, 22, 0, 0)
        );
        assert_eq!(berlin.abbreviation_at(late), "CET");
    }

    #[test]
    fn unknown_names_are_refused_with_examples() {
        let err = "Mars/Olympus_Mons".parse::<Zone>().expect_err("not a zone");
        assert!(err.contains("Mars/Olympus_Mons") && err.contains("Europe/Berlin"));
        assert_eq!(" UTC ".parse::<Zone>(), Ok(Zone::UTC));
    }
}
