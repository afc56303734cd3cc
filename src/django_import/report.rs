//! What an import did (or, with `--dry-run`, would do): per Django table, the
//! rows read, imported and skipped, with the reasons for skipping and the
//! ids of the first rows skipped for each.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// Row ids listed per reason; the rest are counted.
const IDS_SHOWN: usize = 10;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TableReport {
    pub table: &'static str,
    /// The table does not exist in the Django database.
    pub missing: bool,
    pub read: u64,
    pub imported: u64,
    /// Reason → (count, first ids).
    pub skipped: BTreeMap<String, (u64, Vec<i64>)>,
    /// Notes on imported rows (e.g. members who must reset their password):
    /// note → (count, first ids).
    pub notes: BTreeMap<String, (u64, Vec<i64>)>,
}

impl TableReport {
    pub fn new(table: &'static str) -> Self {
        Self {
            table,
            ..Self::default()
        }
    }

    pub fn skip(&mut self, id: i64, reason: impl Into<String>) {
        Self::count(&mut self.skipped, id, reason.into());
    }

    pub fn note(&mut self, id: i64, note: impl Into<String>) {
        Self::count(&mut self.notes, id, note.into());
    }

    fn count(map: &mut BTreeMap<String, (u64, Vec<i64>)>, id: i64, key: String) {
        let (count, ids) = map.entry(key).or_default();
        *count += 1;
        if ids.len() < IDS_SHOWN {
            ids.push(id);
        }
    }

    pub fn skipped_count(&self) -> u64 {
        self.skipped.values().map(|(count, _)| count).sum()
    }

    /// How many were skipped for this reason.
    pub fn skipped_for(&self, reason: &str) -> u64 {
        self.skipped.get(reason).map_or(0, |(count, _)| *count)
    }

    pub fn noted(&self, note: &str) -> u64 {
        self.notes.get(note).map_or(0, |(count, _)| *count)
    }
}

#[derive(Debug, Clone)]
pub struct Report {
    pub source: String,
    pub dry_run: bool,
    /// One line per Django site: how it was matched.
    pub sites: Vec<String>,
    pub tables: Vec<TableReport>,
    pub took: Duration,
}

impl Report {
    pub fn table(&self, name: &str) -> Option<&TableReport> {
        self.tables.iter().find(|table| table.table == name)
    }

    /// Rows imported, all tables together.
    pub fn imported(&self) -> u64 {
        self.tables.iter().map(|table| table.imported).sum()
    }
}

fn list(
    f: &mut fmt::Formatter<'_>,
    table: &str,
    entries: &BTreeMap<String, (u64, Vec<i64>)>,
) -> fmt::Result {
    for (reason, (count, ids)) in entries {
        let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
        let more = if *count > ids.len() as u64 {
            ", …"
        } else {
            ""
        };
        writeln!(
            f,
            "  {table}: {count} × {reason} (id {}{more})",
            ids.join(", ")
        )?;
    }
    Ok(())
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = if self.dry_run {
            " — dry run: nothing was written"
        } else {
            ""
        };
        writeln!(f, "Import from {}{mode}", self.source)?;
        for line in &self.sites {
            writeln!(f, "  {line}")?;
        }
        writeln!(
            f,
            "{:<24} {:>9} {:>9} {:>9}",
            "table", "read", "imported", "skipped"
        )?;
        for table in &self.tables {
            if table.missing {
                writeln!(f, "{:<24} (not in the Django database)", table.table)?;
            } else {
                writeln!(
                    f,
                    "{:<24} {:>9} {:>9} {:>9}",
                    table.table,
                    table.read,
                    table.imported,
                    table.skipped_count()
                )?;
            }
        }
        if self.tables.iter().any(|table| !table.skipped.is_empty()) {
            writeln!(f, "Skipped:")?;
            for table in &self.tables {
                list(f, table.table, &table.skipped)?;
            }
        }
        if self.tables.iter().any(|table| !table.notes.is_empty()) {
            writeln!(f, "Notes:")?;
            for table in &self.tables {
                list(f, table.table, &table.notes)?;
            }
        }
        let verb = if self.dry_run {
            "would be imported"
        } else {
            "imported"
        };
        write!(
            f,
            "{} rows {verb} in {:.1} s.",
            self.imported(),
            self.took.as_secs_f64()
        )
    }
}
