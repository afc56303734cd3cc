//! The Django database, opened read-only (SQLite `mode=ro`; PostgreSQL
//! sessions with `default_transaction_read_only`), read table by table in
//! batches ordered by id. Every column is read as text (`CAST(… AS TEXT)`)
//! and parsed here, so that SQLite's loose typing and PostgreSQL's types
//! (uuid, jsonb, timestamptz) come out the same, and a bad value is a
//! reported row rather than a decoding error.

use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement,
};

/// Rows read per query.
const BATCH: usize = 5000;

/// The Django database.
pub struct Source {
    db: DatabaseConnection,
}

/// One row: the columns asked for, in order, as text (`None` for NULL).
pub struct SourceRow(Vec<Option<String>>);

impl SourceRow {
    pub fn get(&self, index: usize) -> Option<&str> {
        self.0.get(index).and_then(|value| value.as_deref())
    }

    /// The value, or "" for NULL.
    pub fn text(&self, index: usize) -> &str {
        self.get(index).unwrap_or_default()
    }
}

impl Source {
    /// Opens `url` (`sqlite://PATH` or `postgres://…`) read-only.
    pub async fn open(url: &str) -> Result<Self, String> {
        let url = url.trim();
        let sqlite = url.starts_with("sqlite:");
        if !sqlite && !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
            return Err("--database must be a sqlite://PATH or postgres://… URL".into());
        }
        // For SQLite, any `?mode=…` given is replaced: the file is only read.
        let url = match (sqlite, url.split_once('?')) {
            (true, Some((path, _))) => path.to_owned(),
            _ => url.to_owned(),
        };
        if sqlite {
            let path = url.trim_start_matches("sqlite:").trim_start_matches("//");
            if !std::path::Path::new(path).is_file() {
                return Err(format!("there is no SQLite database at {path}"));
            }
        }
        let mut options = ConnectOptions::new(url);
        options
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(10))
            .sqlx_logging(false);
        if sqlite {
            options.map_sqlx_sqlite_opts(|opts| opts.read_only(true));
        } else {
            options.map_sqlx_postgres_opts(|opts| {
                opts.options([("default_transaction_read_only", "on")])
            });
        }
        let db = Database::connect(options)
            .await
            .map_err(|err| format!("could not open the Django database: {err}"))?;
        Ok(Self { db })
    }

    fn backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    /// Whether the table exists (an app that was never installed has none).
    pub async fn has_table(&self, table: &str) -> Result<bool, String> {
        let sql = match self.backend() {
            DbBackend::Sqlite => {
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = $1"
            }
            _ => {
                "SELECT COUNT(*) FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_name = $1"
            }
        };
        let row = self
            .db
            .query_one_raw(Statement::from_sql_and_values(
                self.backend(),
                sql,
                [table.into()],
            ))
            .await
            .map_err(|err| format!("could not list the Django tables: {err}"))?;
        Ok(row
            .and_then(|row| row.try_get_by_index::<i64>(0).ok())
            .is_some_and(|count| count > 0))
    }

    pub async fn count(&self, table: &str) -> Result<u64, String> {
        let row = self
            .db
            .query_one_raw(Statement::from_string(
                self.backend(),
                format!("SELECT COUNT(*) FROM {table}"),
            ))
            .await
            .map_err(|err| format!("could not count {table}: {err}"))?;
        let count = row
            .and_then(|row| row.try_get_by_index::<i64>(0).ok())
            .unwrap_or_default();
        Ok(u64::try_from(count).unwrap_or_default())
    }

    /// Reads `table` in id order, `BATCH` rows at a time, handing each batch
    /// to `each`. Column 0 of every row is the id. `table` and `columns` are
    /// constants of this module's callers, never input.
    pub async fn read_all(
        &self,
        table: &str,
        columns: &[&str],
        mut each: impl FnMut(Vec<SourceRow>),
    ) -> Result<(), String> {
        let selected: Vec<String> = std::iter::once("id")
            .chain(columns.iter().copied())
            .map(|column| format!("CAST({column} AS TEXT)"))
            .collect();
        let mut after = i64::MIN;
        loop {
            let sql = format!(
                "SELECT {} FROM {table} WHERE id > {after} ORDER BY id LIMIT {BATCH}",
                selected.join(", ")
            );
            let rows = self
                .db
                .query_all_raw(Statement::from_string(self.backend(), sql))
                .await
                .map_err(|err| format!("could not read {table}: {err}"))?;
            let done = rows.len() < BATCH;
            let mut batch = Vec::with_capacity(rows.len());
            for row in rows {
                let values = (0..selected.len())
                    .map(|index| row.try_get_by_index::<Option<String>>(index).ok().flatten())
                    .collect::<Vec<_>>();
                let row = SourceRow(values);
                after = parse_int(row.text(0))
                    .ok_or_else(|| format!("{table} has a row whose id is not a number"))?;
                batch.push(row);
            }
            each(batch);
            if done {
                return Ok(());
            }
        }
    }
}

pub fn parse_int(value: &str) -> Option<i64> {
    value.trim().parse().ok()
}

/// Django booleans: 1/0 on SQLite, true/false on PostgreSQL.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "t" | "true" => Some(true),
        "0" | "f" | "false" => Some(false),
        _ => None,
    }
}

/// A Django datetime: `2024-05-01 12:30:00[.123456][+00[:00]]` (PostgreSQL's
/// text, or SQLite's, where a value without an offset is UTC as Django
/// stores it with `USE_TZ`), with a space or a `T`.
pub fn parse_datetime(value: &str) -> Option<DateTime<Utc>> {
    let value = value.trim().replacen('T', " ", 1);
    if let Ok(at) = DateTime::parse_from_str(&value, "%Y-%m-%d %H:%M:%S%.f%#z") {
        return Some(at.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(&value, "%Y-%m-%d %H:%M:%S%.f")
        .ok()
        .map(|at| at.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn django_datetimes_from_either_database_parse() {
        let expected = DateTime::parse_from_rfc3339("2024-05-01T12:30:00.5Z")
            .expect("valid")
            .with_timezone(&Utc);
        for text in [
            "2024-05-01 12:30:00.5",
            "2024-05-01 12:30:00.500000",
            "2024-05-01T12:30:00.5",
            "2024-05-01 12:30:00.5+00",
            "2024-05-01 12:30:00.5+00:00",
            "2024-05-01 14:30:00.5+02",
        ] {
            assert_eq!(parse_datetime(text), Some(expected), "{text}");
        }
        assert!(parse_datetime("2024-05-01 12:30:00").is_some());
        for bad in ["", "yesterday", "2024-13-01 00:00:00", "2024-05-01"] {
            assert_eq!(parse_datetime(bad), None, "{bad}");
        }
    }

    #[test]
    fn django_booleans_from_either_database_parse() {
        assert_eq!(parse_bool("1"), Some(true));
        assert_eq!(parse_bool("true"), Some(true));
        assert_eq!(parse_bool("0"), Some(false));
        assert_eq!(parse_bool("false"), Some(false));
        assert_eq!(parse_bool("yes please"), None);
    }
}
