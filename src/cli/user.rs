//! `gatehouse user create`: an account made by the operator, staff or not,
//! with a password piped in or none (they log in with an invitation code).

use std::fmt;

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
    let txn = crate::db::write_transaction(&state.db).await?;
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
            &users::audit_subject(&user),
            "created as staff with `gatehouse user create --staff`",
            chrono::Utc::now(),
        )
        .await?;
    }
    txn.commit().await?;
    Ok(user)
}

/// `gatehouse user list`.
#[derive(clap::Args)]
pub struct UserListArgs {
    /// Only staff members.
    #[arg(long, conflicts_with = "members")]
    pub staff: bool,
    /// Only members who are not staff.
    #[arg(long)]
    pub members: bool,
    /// Only deactivated accounts (`--inactive` works too).
    #[arg(long = "deactivated", alias = "inactive", conflicts_with = "active")]
    pub inactive: bool,
    /// Only active accounts.
    #[arg(long)]
    pub active: bool,
    /// Only accounts with part of this in their username, e-mail or name.
    #[arg(long)]
    pub search: Option<String>,
    /// The site's domain, when there are several sites.
    #[arg(long)]
    pub domain: Option<String>,
}

/// The members `user list` prints: one tab-separated line each (id,
/// username, e-mail, role, status, login, last login), after a header.
pub struct Listed {
    pub users: Vec<User>,
    /// The zone last logins are shown in.
    pub zone: crate::dates::Zone,
}

impl fmt::Display for Listed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "id\tusername\temail\trole\tstatus\tlogin\tlast_login")?;
        for user in &self.users {
            write!(
                f,
                "\n{}\t{}\t{}\t{}\t{}\t{}\t{}",
                user.id,
                user.username,
                user.email,
                if user.is_staff { "staff" } else { "member" },
                if user.is_active {
                    "active"
                } else {
                    "deactivated"
                },
                if user.password_hash.is_some() {
                    "password"
                } else {
                    "code"
                },
                user.last_login_at.map_or_else(
                    || "never".to_owned(),
                    |at| self.zone.format(at, crate::dates::DateStyle::Stamp)
                ),
            )?;
        }
        Ok(())
    }
}

pub async fn list(
    settings: Settings,
    args: UserListArgs,
    terminal: &Terminal,
) -> anyhow::Result<Listed> {
    let (state, _) = AppState::init(settings).await?;
    let site = pick_site(&state, args.domain.as_deref(), terminal).await?;
    let pick = |yes: bool, no: bool| match (yes, no) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    };
    let filter = users::MemberFilter {
        search: args.search.unwrap_or_default(),
        staff: pick(args.staff, args.members),
        active: pick(args.active, args.inactive),
        has_password: None,
    };
    let found = users::list(site.id, &filter).all(&state.db).await?;
    Ok(Listed {
        users: found,
        zone: state.zone(),
    })
}

/// `gatehouse user deactivate|reactivate`: the member to change.
#[derive(clap::Args)]
pub struct UserTargetArgs {
    /// The member: username, e-mail address or #id.
    pub user: String,
    /// The site's domain, when there are several sites.
    #[arg(long)]
    pub domain: Option<String>,
}

/// `gatehouse user set-staff`.
#[derive(clap::Args)]
pub struct SetStaffArgs {
    #[command(flatten)]
    pub target: UserTargetArgs,
    /// Take staff rights away instead of giving them.
    #[arg(long)]
    pub off: bool,
}

/// What a change did, as the command says it.
pub struct RoleChanged(pub String);

impl fmt::Display for RoleChanged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Deactivates, reactivates, or gives or takes staff rights, with an audit
/// row naming the command line.
pub async fn change(
    settings: Settings,
    target: UserTargetArgs,
    change: users::RoleChange,
    terminal: &Terminal,
) -> anyhow::Result<RoleChanged> {
    let (state, _) = AppState::init(settings).await?;
    // A deactivated member's sessions must end on every serving instance
    // before the command says it is done.
    let instances = crate::web::session_feed::Instances::watch(&state.db).await?;
    let site = pick_site(&state, target.domain.as_deref(), terminal).await?;
    let user = users::find_named(&state.db, site.id, &target.user)
        .await?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no member '{}' on {} (give a username, an e-mail address or #id)",
                target.user,
                site.domain
            )
        })?;
    let done = crate::accounts::members::change(
        &state.db,
        site.id,
        &Actor::command_line(),
        user.id,
        change,
        "with `gatehouse user` on the command line",
    )
    .await
    .map_err(|err| anyhow::anyhow!("{err}"))?;
    let mut message = change.done(&done.user.username, done.changed);
    if done.sessions_ended > 0 {
        message.push_str(&format!(" {} session(s) ended.", done.sessions_ended));
    }
    if let Err(not_heard) = instances.wait_until_heard().await {
        message.push_str(&format!(
            " Warning: {not_heard}; they act on it within {} seconds.",
            state.settings.sessions.cache_seconds
        ));
    }
    Ok(RoleChanged(message))
}
