//! `gatehouse invite`: one person (asking on a terminal for what is
//! missing) or everyone in a CSV file. Issuing is the invites capability's;
//! this adds the questions, delivering right away, and the report.

use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use sea_orm::EntityTrait;

use super::pick_site;
use super::terminal::{Progress, Terminal};
use crate::AppState;
use crate::audit::Actor;
use crate::email_address::EmailAddress;
use crate::entities::mail_outbox;
use crate::invites::import::{self, Outcome, Summary};
use crate::invites::issue::{self, IfOpen, IssueError, Issued, Request};
use crate::invites::{self, Invitee};
use crate::mail::delivery::Delivery as Outbox;
use crate::mail::worker;
use crate::settings::Settings;
use crate::web::sites::Site;

/// `gatehouse invite`: one person, or everyone in a CSV file.
#[derive(clap::Args)]
pub struct InviteArgs {
    /// E-mail address of the person invited (asked for on a terminal when missing).
    #[arg(long, conflicts_with = "csv")]
    pub email: Option<String>,
    /// Their full name; the first word becomes the first name.
    #[arg(long, conflicts_with = "csv")]
    pub name: Option<String>,
    /// Their phone number.
    #[arg(long, conflicts_with = "csv")]
    pub phone: Option<String>,
    /// The site's domain, when there are several sites.
    #[arg(long)]
    pub domain: Option<String>,
    /// E-mail the invitation now (through the outbox) and wait for delivery;
    /// without a terminal this is the default only with --csv.
    #[arg(long, conflicts_with = "no_send")]
    pub send: bool,
    /// Do not e-mail anything; print the code as the last line
    /// (with --csv: one "email,code" line per invitation).
    #[arg(long)]
    pub no_send: bool,
    /// When the address already has an open invitation, revoke it and issue
    /// a fresh code (otherwise you are asked, or it is refused).
    #[arg(long)]
    pub replace: bool,
    /// Invite everyone in a CSV file with the columns email,name,phone
    /// (name and phone may be empty; a header row is skipped). Sends unless
    /// --no-send; bad rows are skipped and reported.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
}

/// What became of one invitation.
pub enum Invited {
    /// Nothing e-mailed: the code, for the operator to hand over.
    Code(CodeShown),
    /// The invitation e-mail, delivered or waiting in the outbox.
    Mailed(Delivery),
}

/// The code and where to use it; shown once, never stored in the clear.
pub struct CodeShown {
    pub email: String,
    pub site_domain: String,
    pub first_use_by: DateTime<Utc>,
    /// The zone `first_use_by` is shown in.
    pub zone: crate::dates::Zone,
    pub login_link: String,
    pub code: invites::InviteCode,
}

/// How the invitation e-mail got on when delivered right away.
pub enum Delivery {
    Sent {
        email: String,
    },
    /// Left in the outbox for `serve`, with the mail server's last answer.
    Queued {
        email: String,
        why: String,
    },
}

impl fmt::Display for Invited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The code comes last, on its own line, for scripts.
            Self::Code(shown) => write!(
                f,
                "Invitation created for {} on {}. First use by {} at {}\n{}",
                shown.email,
                shown.site_domain,
                shown
                    .zone
                    .format(shown.first_use_by, crate::dates::DateStyle::Stamp),
                shown.login_link,
                shown.code.as_str()
            ),
            Self::Mailed(Delivery::Sent { email }) => write!(f, "Mail sent to {email}."),
            Self::Mailed(Delivery::Queued { email, why }) => write!(
                f,
                "The invitation e-mail to {email} is queued, not sent yet ({why}). `gatehouse \
                 serve` delivers it when the mail server answers; staff see it on /staff/mail."
            ),
        }
    }
}

/// Invites one person: asks for what is missing (on a terminal), issues the
/// code and either delivers the e-mail now or returns the code.
pub async fn invite(
    settings: Settings,
    args: InviteArgs,
    terminal: &Terminal,
) -> anyhow::Result<Invited> {
    let invitee = ask_invitee(&args, terminal)?;
    let (state, _) = AppState::init(settings).await?;
    let site = pick_site(&state, args.domain.as_deref(), terminal).await?;
    let send_mail = decide_sending(&state, &args, terminal)?;
    let issued = issue_asking(&state, &site, &invitee, send_mail, args.replace, terminal).await?;
    // An outbox row exists exactly when the e-mail was queued.
    Ok(match issued.outbox_id {
        Some(outbox_id) => Invited::Mailed(deliver_now(&state, &issued, outbox_id).await?),
        None => Invited::Code(CodeShown {
            email: issued.invite.email.clone(),
            site_domain: site.domain.clone(),
            first_use_by: issue::first_use_by(&state, &issued.invite),
            zone: state.zone(),
            login_link: issue::login_link(&state, &site, &issued.code),
            code: issued.code,
        }),
    })
}

/// E-mail, name and phone from the arguments or the terminal, checked.
fn ask_invitee(args: &InviteArgs, terminal: &Terminal) -> anyhow::Result<Invitee> {
    let email = ask_email(args.email.clone(), terminal)?;
    let name = ask_optional(args.name.clone(), "Their full name (optional): ", terminal)?;
    let phone = ask_optional(
        args.phone.clone(),
        "Their phone number (optional): ",
        terminal,
    )?;
    invites::check_invitee(&email, &name, &phone).map_err(|errors| {
        let problems: Vec<String> = errors
            .iter()
            .map(|(field, message)| format!("--{field}: {message}"))
            .collect();
        anyhow::anyhow!("{}", problems.join("; "))
    })
}

fn ask_email(given: Option<String>, terminal: &Terminal) -> anyhow::Result<String> {
    if let Some(email) = given {
        return Ok(email);
    }
    if !terminal.is_interactive() {
        anyhow::bail!("Missing parameter --email ({})", terminal.why_not_asked());
    }
    loop {
        let Some(answer) = terminal.ask("E-mail address of the person to invite: ")? else {
            anyhow::bail!("Missing parameter --email");
        };
        match EmailAddress::parse(&answer) {
            Ok(email) => return Ok(email.into_string()),
            Err(err) => terminal.say(&err.to_string()),
        }
    }
}

fn ask_optional(
    given: Option<String>,
    question: &str,
    terminal: &Terminal,
) -> anyhow::Result<String> {
    match given {
        Some(value) => Ok(value),
        None if terminal.is_interactive() => Ok(terminal.ask(question)?.unwrap_or_default()),
        None => Ok(String::new()),
    }
}

/// `--send`, `--no-send`, or (on a terminal) the operator's answer.
fn decide_sending(
    state: &AppState,
    args: &InviteArgs,
    terminal: &Terminal,
) -> anyhow::Result<bool> {
    if args.send {
        check_mail_delivers(state)?;
        Ok(true)
    } else if args.no_send || !terminal.is_interactive() {
        Ok(false)
    } else if !state.mailer.delivers() {
        terminal
            .say("Mail delivery is off (mail.transport is \"log\"): the code is printed instead.");
        Ok(false)
    } else {
        terminal.confirm("Send the invitation now? [y/N] ")
    }
}

/// Refuses to "send" when mail goes only to the log.
fn check_mail_delivers(state: &AppState) -> anyhow::Result<()> {
    if state.mailer.delivers() {
        return Ok(());
    }
    anyhow::bail!(
        "mail.transport is \"log\", so no e-mail would be delivered: set \
         GATEHOUSE__MAIL__TRANSPORT=smtp and GATEHOUSE__MAIL__SMTP_URL (or transport \"file\"), \
         or use --no-send to print the code"
    )
}

fn if_open(replace: bool) -> IfOpen {
    if replace {
        IfOpen::Replace
    } else {
        IfOpen::Ask
    }
}

/// Issues the invitation; when the address has an open one, a terminal is
/// asked whether to replace it and a script is told about `--replace`.
async fn issue_asking(
    state: &AppState,
    site: &Site,
    invitee: &Invitee,
    send_mail: bool,
    replace: bool,
    terminal: &Terminal,
) -> anyhow::Result<Issued> {
    let actor = Actor::command_line();
    let request = |if_open| Request {
        site,
        email: invitee.email.clone(),
        name: invitee.name.clone(),
        phone: invitee.phone.clone(),
        actor: &actor,
        send_mail,
        if_open,
        replaces: None,
    };
    match issue::issue(state, request(if_open(replace))).await {
        Err(IssueError::OpenInvite(open)) => {
            let ids: Vec<String> = open
                .iter()
                .map(|invite| format!("#{}", invite.id))
                .collect();
            let ids = ids.join(", ");
            if !terminal.is_interactive() {
                anyhow::bail!(
                    "{} already has an open invitation ({ids}): use --replace to revoke it and \
                     issue a fresh code ({})",
                    invitee.email,
                    terminal.why_not_asked(),
                );
            }
            let question = format!(
                "{} already has an open invitation ({ids}). Revoke it and issue a fresh code? [y/N] ",
                invitee.email,
            );
            if !terminal.confirm(&question)? {
                anyhow::bail!("Nothing was changed");
            }
            Ok(issue::issue(state, request(IfOpen::Replace)).await?)
        }
        other => Ok(other?),
    }
}

/// Tries to deliver the invitation now; what the mail server does not take
/// waits in the outbox for `serve` to deliver when it is back.
async fn deliver_now(
    state: &AppState,
    issued: &Issued,
    outbox_id: i64,
) -> anyhow::Result<Delivery> {
    worker::deliver_due(&state.db, &state.mailer, Some(&[outbox_id])).await?;
    let row = mail_outbox::Entity::find_by_id(outbox_id)
        .one(&state.db)
        .await?;
    let email = issued.invite.email.clone();
    Ok(match row {
        Some(row) if Outbox::of(&row) == Outbox::Sent => Delivery::Sent { email },
        row => Delivery::Queued {
            email,
            why: row.and_then(|row| row.last_error).unwrap_or_default(),
        },
    })
}

/// The closing summary of a CSV import.
pub struct Imported {
    pub created: usize,
    pub skipped: usize,
    pub site_domain: String,
    pub send_mail: bool,
    pub sent: usize,
    /// Queued but not yet taken by the mail server.
    pub waiting: usize,
}

impl fmt::Display for Imported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let skipped = match self.skipped {
            0 => "no rows skipped".to_owned(),
            1 => "1 row skipped".to_owned(),
            n => format!("{n} rows skipped"),
        };
        let (sent, waiting) = (self.sent, self.waiting);
        let mail = if !self.send_mail {
            "codes printed above, nothing e-mailed".to_owned()
        } else if waiting == 0 {
            format!("{sent} e-mailed")
        } else {
            format!(
                "{sent} e-mailed, {waiting} queued for `gatehouse serve` to deliver when the mail server answers"
            )
        };
        write!(
            f,
            "Created {} invitations on {} ({skipped}); {mail}.",
            self.created, self.site_domain
        )
    }
}

/// `--csv`: invites every good row of the file at `path`, reporting each
/// skipped row (and, without sending, each code) as it goes, then delivers
/// the e-mails.
pub async fn invite_csv(
    settings: Settings,
    path: &Path,
    args: &InviteArgs,
    terminal: &Terminal,
) -> anyhow::Result<Imported> {
    let input = std::fs::read(path)
        .map_err(|err| anyhow::anyhow!("could not read {}: {err}", path.display()))?;
    let rows = import::read(&input);
    let (state, _) = AppState::init(settings).await?;
    let site = pick_site(&state, args.domain.as_deref(), terminal).await?;
    let send_mail = !args.no_send;
    if send_mail {
        check_mail_delivers(&state)?;
    }
    let summary = import_rows(&state, &site, rows, send_mail, if_open(args.replace)).await?;
    let (mut sent, mut waiting) = (0, 0);
    if send_mail && !summary.outbox_ids.is_empty() {
        sent = deliver_all(&state, &summary.outbox_ids).await?;
        waiting = summary.outbox_ids.len() - sent;
    }
    Ok(Imported {
        created: summary.created,
        skipped: summary.skipped,
        site_domain: site.domain.clone(),
        send_mail,
        sent,
        waiting,
    })
}

async fn import_rows(
    state: &AppState,
    site: &Site,
    rows: Vec<Result<import::Row, (u64, String)>>,
    send_mail: bool,
    if_open: IfOpen,
) -> Result<Summary, IssueError> {
    let progress = Progress::start(rows.len() as u64, "Inviting");
    let actor = Actor::command_line();
    let summary = import::import(state, site, &actor, rows, send_mail, if_open, |outcome| {
        match outcome {
            Outcome::Skipped { line, reason } => {
                progress.eprintln(&format!("line {line}: skipped: {reason}"));
            }
            Outcome::Created { issued, .. } if !send_mail => {
                let code = outcome.code().map_or("", |c| c.as_str());
                progress.println(&format!("{},{code}", issued.invite.email));
            }
            Outcome::Created { .. } => {}
        }
        progress.advance(1);
    })
    .await?;
    progress.finish();
    Ok(summary)
}

/// Delivers the queued e-mails batch by batch; returns how many went out.
async fn deliver_all(state: &AppState, outbox_ids: &[i64]) -> anyhow::Result<usize> {
    let progress = Progress::start(outbox_ids.len() as u64, "Sending");
    let mut sent = 0;
    loop {
        let done = worker::deliver_batch(&state.db, &state.mailer, Some(outbox_ids)).await?;
        if done.claimed == 0 {
            break;
        }
        sent += done.sent;
        progress.advance(done.claimed as u64);
    }
    progress.finish();
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::Imported;

    fn imported(skipped: usize, send_mail: bool, sent: usize, waiting: usize) -> String {
        Imported {
            created: 3,
            skipped,
            site_domain: "club.test".into(),
            send_mail,
            sent,
            waiting,
        }
        .to_string()
    }

    #[test]
    fn the_csv_summary_counts_skipped_rows_in_words() {
        assert_eq!(
            imported(0, true, 3, 0),
            "Created 3 invitations on club.test (no rows skipped); 3 e-mailed."
        );
        assert!(imported(1, true, 3, 0).contains("(1 row skipped)"));
        assert!(imported(2, true, 3, 0).contains("(2 rows skipped)"));
    }

    #[test]
    fn the_csv_summary_says_what_waits_for_serve_or_that_nothing_was_mailed() {
        assert!(imported(0, true, 1, 2).ends_with(
            "1 e-mailed, 2 queued for `gatehouse serve` to deliver when the mail server answers."
        ));
        assert!(imported(0, false, 0, 0).ends_with("codes printed above, nothing e-mailed."));
    }
}
