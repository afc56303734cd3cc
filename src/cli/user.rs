//! `gatehouse user create`: an account made by the operator, staff or not,
//! with a password piped in or none (they log in with an invitation code).

use std::fmt;

use sea_orm::TransactionTrait;

use super::pick_site;
use super::terminal::Terminal;
use crate::AppState;
use crate::accounts::users::{self, CreateUserError, NewUser};
use crate::audit::{self, Action, Actor};
use crate::email_address::EmailAddress;
use crate::entities::users::Model as User;
use crate::settings::{Secret, Settings};

/// `gatehouse user create`.
#[derive(clap::Args)]
pub struct UserCreateArgs {
    /// Login name: letters, digits and @ . + - _ (or an e-mail address).
    #[arg(long)]
    pub username: String,
    /// E-mail address (unique per site).
    #[arg(long)]
    pub email: String,
    #[arg(long, default_value = "")]
    pub first_name: String,
    #[arg(long, default_value = "")]
    pub last_name: String,
    /// Make the user a staff member.
    #[arg(long)]
    pub staff: bool,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    pub password_stdin: bool,
    /// The site's domain, when there are several sites.
    #[arg(long)]
    pub domain: Option<String>,
}

/// An account just made.
pub struct Created {
    pub user: User,
    pub site_domain: String,
    pub has_password: bool,
}

impl fmt::Display for Created {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let user = &self.user;
        let role = if user.is_staff {
            "staff member"
        } else {
            "member"
        };
        write!(
            f,
            "Created {role} {} <{}> on {} (id {}).",
            user.username, user.email, self.site_domain, user.id
        )?;
        if !self.has_password {
            write!(
                f,
                "\nNo password was set: they can log in with an invitation code sent to {}.",
                user.email
            )?;
        }
        Ok(())
    }
}

/// Creates the account (and, for staff, its audit row) in one transaction.
pub async fn create(
    settings: Settings,
    args: UserCreateArgs,
    terminal: &Terminal,
) -> anyhow::Result<Created> {
    let username = users::validate_username(&args.username)
        .map_err(|err| anyhow::anyhow!("--username: {err}"))?;
    let email =
        EmailAddress::parse(&args.email).map_err(|err| anyhow::anyhow!("--email: {err}"))?;
    let password = if args.password_stdin {
        Some(password_from_stdin(
            &settings,
            terminal,
            &[&username, email.as_str()],
        )?)
    } else {
        None
    };
    let (state, _) = AppState::init(settings).await?;
    // Standard input carried the password: there is nobody to ask.
    let asking = if args.password_stdin {
        &Terminal::none()
    } else {
        terminal
    };
    let site = pick_site(&state, args.domain.as_deref(), asking).await?;
    let password_hash = match &password {
        Some(password) => Some(state.hasher.hash(password).await?),
        None => None,
    };
    let new = NewUser {
        site_id: site.id,
        username,
        email,
        first_name: args.first_name.trim().to_owned(),
        last_name: args.last_name.trim().to_owned(),
        password_hash,
        is_staff: args.staff,
    };
    let user = insert_and_audit(&state, new).await?;
    Ok(Created {
        user,
        site_domain: site.domain.clone(),
        has_password: password.is_some(),
    })
}

/// The first line of standard input, checked like a new password on the
/// Password page.
fn password_from_stdin(
    settings: &Settings,
    terminal: &Terminal,
    personal: &[&str],
) -> anyhow::Result<Secret> {
    let password = Secret::new(terminal.read_line()?);
    let errors = crate::accounts::check_new_password(
        &password,
        &password,
        settings.passwords.min_length,
        personal,
    );
    if let Some(problem) = errors.get("new_password") {
        anyhow::bail!("the password from standard input was refused: {problem}");
    }
    Ok(password)
}

async fn insert_and_audit(state: &AppState, new: NewUser) -> anyhow::Result<User> {
    let site_id = new.site_id;
    let txn = state.db.begin().await?;
    let user = users::create(&txn, new).await.map_err(|err| match err {
        CreateUserError::Db(err) => anyhow::anyhow!(err),
        other => anyhow::anyhow!("{other}"),
    })?;
    if user.is_staff {
        audit::record(
            &txn,
            site_id,
            &Actor::command_line(),
            Action::UserMadeStaff,
            &user.username,
            "created as staff with `gatehouse user create --staff`",
            chrono::Utc::now(),
        )
        .await?;
    }
    txn.commit().await?;
    Ok(user)
}
