//! Bulk invitations from a CSV file (`gatehouse invite --csv FILE`): columns
//! email, name, phone (name and phone optional; a first row naming the
//! columns is skipped). Bad rows are skipped with a reason each, never
//! stopping the import; each good row is issued like a single invitation.

use std::collections::HashMap;

use super::issue::{self, IfOpen, IssueError, Issued, Request};
use super::{InviteCode, check_invitee};
use crate::AppState;
use crate::audit::Actor;
use crate::web::sites::Site;

/// One data row of the file, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Line number in the file, for reports.
    pub line: u64,
    pub email: String,
    pub name: String,
    pub phone: String,
}

/// Reads every row; a row the CSV parser cannot read is an `Err` for that
/// row only (reported and skipped by `import`).
pub fn read(input: &[u8]) -> Vec<Result<Row, (u64, String)>> {
    // The parser's own line numbers skip blank lines; count them ourselves
    // so reports point at the line a person sees in an editor.
    let line_at = |position: Option<&csv::Position>| {
        let byte = position.map_or(0, |position| position.byte());
        let mut byte = usize::try_from(byte).unwrap_or(usize::MAX).min(input.len());
        // A record's position can be the start of blank lines before it.
        while input.get(byte).is_some_and(|b| matches!(b, b'\r' | b'\n')) {
            byte += 1;
        }
        1 + input[..byte].iter().filter(|&&b| b == b'\n').count() as u64
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(input);
    let mut rows = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let record = match record {
            Ok(record) => record,
            Err(err) => {
                rows.push(Err((
                    line_at(err.position()),
                    format!("unreadable row: {err}"),
                )));
                continue;
            }
        };
        let line = line_at(record.position());
        let field = |i: usize| record.get(i).unwrap_or_default().to_owned();
        if index == 0 && field(0).eq_ignore_ascii_case("email") {
            continue;
        }
        if record.iter().all(str::is_empty) {
            continue;
        }
        if record.len() > 3 {
            rows.push(Err((
                line,
                format!("{} columns; expected email,name,phone", record.len()),
            )));
            continue;
        }
        rows.push(Ok(Row {
            line,
            email: field(0),
            name: field(1),
            phone: field(2),
        }));
    }
    rows
}

/// What became of one row.
pub enum Outcome {
    Created { line: u64, issued: Box<Issued> },
    Skipped { line: u64, reason: String },
}

impl Outcome {
    pub fn code(&self) -> Option<&InviteCode> {
        match self {
            Self::Created { issued, .. } => Some(&issued.code),
            Self::Skipped { .. } => None,
        }
    }
}

/// Counts for the closing summary.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub created: usize,
    pub skipped: usize,
    /// Outbox rows queued, to deliver or report on.
    pub outbox_ids: Vec<i64>,
}

/// Issues an invitation per good row, calling `report` after each row.
pub async fn import(
    state: &AppState,
    site: &Site,
    actor: &Actor,
    rows: Vec<Result<Row, (u64, String)>>,
    send_mail: bool,
    if_open: IfOpen,
    mut report: impl FnMut(&Outcome),
) -> Result<Summary, IssueError> {
    let mut summary = Summary::default();
    let mut seen: HashMap<String, u64> = HashMap::new();
    for row in rows {
        let outcome = match row {
            Err((line, reason)) => Outcome::Skipped { line, reason },
            Ok(row) => issue_row(state, site, actor, &row, send_mail, if_open, &mut seen).await?,
        };
        match &outcome {
            Outcome::Created { issued, .. } => {
                summary.created += 1;
                summary.outbox_ids.extend(issued.outbox_id);
            }
            Outcome::Skipped { .. } => summary.skipped += 1,
        }
        report(&outcome);
    }
    Ok(summary)
}

async fn issue_row(
    state: &AppState,
    site: &Site,
    actor: &Actor,
    row: &Row,
    send_mail: bool,
    if_open: IfOpen,
    seen: &mut HashMap<String, u64>,
) -> Result<Outcome, IssueError> {
    let skip = |reason: String| {
        Ok(Outcome::Skipped {
            line: row.line,
            reason,
        })
    };
    let invitee = match check_invitee(&row.email, &row.name, &row.phone) {
        Ok(invitee) => invitee,
        Err(errors) => {
            let reasons: Vec<String> = errors
                .iter()
                .map(|(field, message)| format!("{field}: {message}"))
                .collect();
            return skip(format!("{:?}: {}", row.email, reasons.join(" ")));
        }
    };
    if let Some(first) = seen.insert(invitee.email.as_str().to_owned(), row.line) {
        return skip(format!(
            "{} is also on line {first}; invited once",
            invitee.email
        ));
    }
    let email = invitee.email.to_string();
    let result = issue::issue(
        state,
        Request {
            site,
            email: invitee.email,
            name: invitee.name,
            phone: invitee.phone,
            actor,
            send_mail,
            if_open,
            replaces: None,
        },
    )
    .await;
    match result {
        Ok(issued) => Ok(Outcome::Created {
            line: row.line,
            issued: Box::new(issued),
        }),
        Err(IssueError::OpenInvite(_)) => skip(format!(
            "{email} already has an open invitation (--replace revokes it and sends a fresh code)"
        )),
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_read_with_an_optional_header_and_bad_rows_marked() {
        let input = "Email,Name,Phone\n\
                     fred@example.org,Fred Astaire,555-0100\n\
                     \n\
                     ginger@example.org\n\
                     a,b,c,d\n\
                     \"unclosed,x\n";
        let rows = read(input.as_bytes());
        assert_eq!(
            rows[0],
            Ok(Row {
                line: 2,
                email: "fred@example.org".into(),
                name: "Fred Astaire".into(),
                phone: "555-0100".into(),
            })
        );
        assert_eq!(
            rows[1].as_ref().map(|row| (row.line, row.name.as_str())),
            Ok((4, ""))
        );
        assert!(
            rows[2]
                .as_ref()
                .is_err_and(|(line, why)| *line == 5 && why.contains("4 columns"))
        );
        assert_eq!(rows.len(), 4, "{rows:?}");
    }
}
