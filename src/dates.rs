//! Times as people read them. Pages, mail, messages and the command line
//! all format a time here, so the styles sit side by side and each changes
//! in one place. Every time is UTC.

use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateStyle {
    /// `2026-11-23 16:05 UTC`: staff pages and the command line.
    Utc,
    /// `2026-11-23 16:05`: members' reference lists, the staff visitor list.
    Short,
    /// `2026-11-23 16:05:09`: a visitor's log.
    Seconds,
    /// `23 November 2026`: dates in mail.
    Day,
    /// `23 November 2026, 16:05 UTC`: until when a visitor's link works.
    DayAndTime,
    /// `16:05`: later today, in a message.
    Clock,
    /// `16:05:09.042`: in log lines.
    ClockMillis,
}

impl DateStyle {
    fn pattern(self) -> &'static str {
        match self {
            Self::Utc => "%Y-%m-%d %H:%M UTC",
            Self::Short => "%Y-%m-%d %H:%M",
            Self::Seconds => "%Y-%m-%d %H:%M:%S",
            Self::Day => "%-d %B %Y",
            Self::DayAndTime => "%-d %B %Y, %H:%M UTC",
            Self::Clock => "%H:%M",
            Self::ClockMillis => "%H:%M:%S%.3f",
        }
    }
}

pub fn format(at: DateTime<Utc>, style: DateStyle) -> String {
    at.format(style.pattern()).to_string()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn each_style_reads_as_documented() {
        let at = Utc
            .with_ymd_and_hms(2026, 11, 3, 16, 5, 9)
            .single()
            .expect("a valid time")
            + chrono::Duration::milliseconds(42);
        let shown = |style| format(at, style);
        assert_eq!(shown(DateStyle::Utc), "2026-11-03 16:05 UTC");
        assert_eq!(shown(DateStyle::Short), "2026-11-03 16:05");
        assert_eq!(shown(DateStyle::Seconds), "2026-11-03 16:05:09");
        assert_eq!(shown(DateStyle::Day), "3 November 2026");
        assert_eq!(shown(DateStyle::DayAndTime), "3 November 2026, 16:05 UTC");
        assert_eq!(shown(DateStyle::Clock), "16:05");
        assert_eq!(shown(DateStyle::ClockMillis), "16:05:09.042");
    }
}
