//! The `gatehouse` command: parses arguments, loads settings once, and calls
//! into the library. Errors go to stderr with a non-zero exit status.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use gatehouse::accounts::users::{self, CreateUserError, NewUser};
use gatehouse::email_address::EmailAddress;
use gatehouse::invites::{self, NewInvite};
use gatehouse::settings::{Secret, Settings};
use gatehouse::{AppState, Application, bootstrap, secrets};

#[derive(Parser)]
#[command(name = "gatehouse", version, about = "An invite-only community site.")]
#[command(
    after_help = "Settings: config/default.toml, then config/$GATEHOUSE_ENV.toml, then \
    GATEHOUSE__SECTION__KEY environment variables (e.g. GATEHOUSE__DATABASE__URL)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the web site in the foreground (creates and migrates the database first).
    Serve,
    /// Apply pending database migrations, then exit.
    Migrate,
    /// Print a new random secret key, for `secret_key` / GATEHOUSE__SECRET_KEY.
    Secret,
    /// Create an invitation code for someone; the code is printed as the last line.
    Invite(InviteArgs),
    /// Manage user accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage visitor passes (links that let someone into one scope).
    #[command(subcommand)]
    Visitor(VisitorCommand),
    /// Delete visitors expired longer than visitors.retention_days (with their
    /// visit logs) and expired sessions; prints what was removed.
    Purge(PurgeArgs),
}

#[derive(Subcommand)]
enum VisitorCommand {
    /// Create a visitor pass; the tokenised link is printed as the last line.
    Create(VisitorCreateArgs),
}

#[derive(Args)]
struct VisitorCreateArgs {
    /// What the link opens, e.g. "demo" (lower-case letters, digits, - and _).
    #[arg(long)]
    scope: String,
    /// The visitor's e-mail address.
    #[arg(long)]
    email: String,
    #[arg(long, default_value = "")]
    first_name: String,
    #[arg(long, default_value = "")]
    last_name: String,
    /// Days the link works (default: visitors.token_expiry_days).
    #[arg(long)]
    expires_in_days: Option<u32>,
    /// Seconds an anonymous visitor session lasts after the link is used;
    /// 0 = until the browser closes.
    #[arg(long, default_value_t = 0)]
    session_expiry: u32,
    /// Page the link opens (default: /visitors/demo for scope demo, else /).
    #[arg(long)]
    path: Option<String>,
    /// The site's domain, when there are several sites.
    #[arg(long)]
    domain: Option<String>,
}

#[derive(Args)]
struct PurgeArgs {
    /// Only count what would be deleted.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Args)]
struct InviteArgs {
    /// E-mail address of the person invited (asked for on a terminal when missing).
    #[arg(long)]
    email: Option<String>,
    /// Their full name; the first word becomes the first name.
    #[arg(long)]
    name: Option<String>,
    /// Their phone number.
    #[arg(long)]
    phone: Option<String>,
    /// The site's domain, when there are several sites.
    #[arg(long)]
    domain: Option<String>,
    /// Do not e-mail the code; just print it.
    #[arg(long)]
    no_send: bool,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user account.
    Create(UserCreateArgs),
}

#[derive(Args)]
struct UserCreateArgs {
    /// Login name: letters, digits and @ . + - _ (or an e-mail address).
    #[arg(long)]
    username: String,
    /// E-mail address (unique per site).
    #[arg(long)]
    email: String,
    #[arg(long, default_value = "")]
    first_name: String,
    #[arg(long, default_value = "")]
    last_name: String,
    /// Make the user a staff member.
    #[arg(long)]
    staff: bool,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    password_stdin: bool,
    /// The site's domain, when there are several sites.
    #[arg(long)]
    domain: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("gatehouse: {err}");
            return ExitCode::FAILURE;
        }
    };
    init_logging(&settings);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("gatehouse: could not start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Secret => {
            println!("{}", secrets::generate_secret());
            Ok(())
        }
        Command::Serve => actix_web::rt::System::new().block_on(serve(settings)),
        Command::Migrate => runtime.block_on(migrate(settings)),
        Command::Invite(args) => runtime.block_on(invite(settings, args)),
        Command::User(UserCommand::Create(args)) => runtime.block_on(create_user(settings, args)),
        Command::Visitor(VisitorCommand::Create(args)) => {
            runtime.block_on(create_visitor(settings, args))
        }
        Command::Purge(args) => runtime.block_on(purge(settings, args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("gatehouse: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(settings: &Settings) {
    let env = env_logger::Env::default().default_filter_or(settings.log.filter.clone());
    env_logger::Builder::from_env(env)
        .format_timestamp_millis()
        .init();
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = Application::build(settings).await?;
    let state = app.state();
    if let Some(staff) = bootstrap::staff_code_if_needed(&state).await? {
        println!();
        println!("No staff member exists yet for {}.", staff.site_domain);
        println!("Log in as the first staff member with this one-time invitation code:");
        println!();
        println!("    {}", staff.code.as_str());
        println!();
        println!("at {}", staff.login_url);
        println!("Then set a password on the Password page. (A new code is printed at every");
        println!("start until a staff member exists; only the newest one works.)");
        println!();
    }
    log::info!(
        "Gatehouse is listening on {} (port {}), public address {}.",
        state.settings.server.bind,
        app.port(),
        state.settings.server.base_url
    );
    app.run_until_stopped().await?;
    log::info!("Gatehouse stopped.");
    Ok(())
}

async fn migrate(settings: Settings) -> anyhow::Result<()> {
    let db = gatehouse::db::connect(&settings).await?;
    gatehouse::db::migrate(&db).await?;
    println!("Migrations are up to date.");
    Ok(())
}

/// Asks a question on the terminal; `None` at end of input.
fn prompt(question: &str) -> anyhow::Result<Option<String>> {
    print!("{question}");
    std::io::stdout().flush()?;
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line)? == 0 {
        return Ok(None);
    }
    Ok(Some(line.trim().to_owned()))
}

async fn pick_site(
    state: &AppState,
    domain: Option<&str>,
    interactive: bool,
) -> anyhow::Result<std::sync::Arc<gatehouse::sites::Site>> {
    let all = state.sites.all().await;
    let known = || {
        all.iter()
            .map(|site| site.domain.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(domain) = domain {
        return state.sites.by_domain(domain).await.ok_or_else(|| {
            anyhow::anyhow!(
                "A site with domain '{domain}' does not exist (known: {})",
                known()
            )
        });
    }
    if all.len() == 1 {
        return Ok(all[0].clone());
    }
    if !interactive {
        anyhow::bail!(
            "Missing parameter --domain: there are several sites ({})",
            known()
        );
    }
    for (index, site) in all.iter().enumerate() {
        println!("[{}] {} ({})", index + 1, site.domain, site.name);
    }
    loop {
        let Some(answer) = prompt("Select a site: ")? else {
            anyhow::bail!("No site selected");
        };
        if let Some(site) = answer
            .parse::<usize>()
            .ok()
            .and_then(|n| n.checked_sub(1))
            .and_then(|i| all.get(i))
        {
            return Ok(site.clone());
        }
        println!("Enter a number from 1 to {}.", all.len());
    }
}

async fn invite(settings: Settings, args: InviteArgs) -> anyhow::Result<()> {
    let interactive = std::io::stdin().is_terminal();
    let email = match args.email {
        Some(email) => {
            EmailAddress::parse(&email).map_err(|err| anyhow::anyhow!("--email: {err}"))?
        }
        None if interactive => loop {
            let Some(answer) = prompt("E-mail address of the person to invite: ")? else {
                anyhow::bail!("Missing parameter --email");
            };
            match EmailAddress::parse(&answer) {
                Ok(email) => break email,
                Err(err) => println!("{err}"),
            }
        },
        None => anyhow::bail!("Missing parameter --email (there is no terminal to ask on)"),
    };
    let name = match args.name {
        Some(name) => name,
        None if interactive => prompt("Their full name (optional): ")?.unwrap_or_default(),
        None => String::new(),
    };
    let phone = match args.phone {
        Some(phone) => phone,
        None if interactive => prompt("Their phone number (optional): ")?.unwrap_or_default(),
        None => String::new(),
    };
    if name.chars().count() > 150 || phone.chars().count() > 40 {
        anyhow::bail!("--name can be 150 characters at most and --phone 40");
    }
    let (state, _) = AppState::init(settings).await?;
    let site = pick_site(&state, args.domain.as_deref(), interactive).await?;
    let (invite, code) = invites::create(
        &state.db,
        &state.keys,
        site.id,
        state.settings.invites.code_length,
        NewInvite {
            email,
            name,
            phone,
            created_by: None,
            grants_staff: false,
        },
    )
    .await?;
    let window = state.settings.invites.usage_window_days;
    let first_use_by = invite.created_at + chrono::Duration::days(window.into());
    // Mail delivery is not built yet: the code is always printed.
    let _ = args.no_send;
    println!(
        "Invitation created for {} on {}. First use by {} at {}/accounts/login",
        invite.email,
        site.domain,
        first_use_by.format("%Y-%m-%d %H:%M UTC"),
        state.settings.base_url()
    );
    println!("{}", code.as_str());
    Ok(())
}

async fn create_user(settings: Settings, args: UserCreateArgs) -> anyhow::Result<()> {
    let username = users::validate_username(&args.username)
        .map_err(|err| anyhow::anyhow!("--username: {err}"))?;
    let email =
        EmailAddress::parse(&args.email).map_err(|err| anyhow::anyhow!("--email: {err}"))?;
    let password = if args.password_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        let password = Secret::new(line.trim_end_matches(['\r', '\n']));
        let errors = gatehouse::accounts::check_new_password(
            &password,
            &password,
            settings.passwords.min_length,
            &[&username, email.as_str()],
        );
        if let Some(problem) = errors.get("new_password") {
            anyhow::bail!("the password from standard input was refused: {problem}");
        }
        Some(password)
    } else {
        None
    };
    let interactive = std::io::stdin().is_terminal();
    let (state, _) = AppState::init(settings).await?;
    let site = pick_site(
        &state,
        args.domain.as_deref(),
        interactive && !args.password_stdin,
    )
    .await?;
    let password_hash = match &password {
        Some(password) => Some(state.hasher.hash(password).await?),
        None => None,
    };
    let user = users::create(
        &state.db,
        NewUser {
            site_id: site.id,
            username,
            email,
            first_name: args.first_name.trim().to_owned(),
            last_name: args.last_name.trim().to_owned(),
            password_hash,
            is_staff: args.staff,
        },
    )
    .await
    .map_err(|err| match err {
        CreateUserError::Db(err) => anyhow::anyhow!(err),
        other => anyhow::anyhow!("{other}"),
    })?;
    let role = if user.is_staff {
        "staff member"
    } else {
        "member"
    };
    println!(
        "Created {role} {} <{}> on {} (id {}).",
        user.username, user.email, site.domain, user.id
    );
    if password.is_none() {
        println!(
            "No password was set: they can log in with an invitation code sent to {}.",
            user.email
        );
    }
    Ok(())
}

async fn create_visitor(settings: Settings, args: VisitorCreateArgs) -> anyhow::Result<()> {
    use gatehouse::visitors::{self, NewVisitor, Scope, tokens};
    let scope = Scope::parse(&args.scope).map_err(|err| anyhow::anyhow!("--scope: {err}"))?;
    let email =
        EmailAddress::parse(&args.email).map_err(|err| anyhow::anyhow!("--email: {err}"))?;
    let path = args.path.unwrap_or_else(|| match scope.as_str() {
        "demo" => "/visitors/demo".to_owned(),
        _ => "/".to_owned(),
    });
    if gatehouse::auth::safe_next(Some(&path)).is_none() {
        anyhow::bail!("--path must be a path on this site, starting with /");
    }
    let days = args
        .expires_in_days
        .unwrap_or(settings.visitors.token_expiry_days);
    if days == 0 {
        anyhow::bail!("--expires-in-days must be at least 1");
    }
    let (state, _) = AppState::init(settings).await?;
    let site = pick_site(&state, args.domain.as_deref(), false).await?;
    let (visitor, token) = visitors::create(
        &state.db,
        NewVisitor {
            site_id: site.id,
            scope,
            first_name: args.first_name,
            last_name: args.last_name,
            email,
            context: None,
            valid_for: chrono::Duration::days(days.into()),
            session_expiry_secs: args.session_expiry.into(),
            created_by: None,
        },
    )
    .await?;
    let link = tokens::tokenise(
        &format!("{}{path}", state.settings.base_url()),
        &state.settings.visitors.querystring_key,
        &token,
    );
    println!(
        "Visitor pass {} for {} (scope {}), valid until {}.",
        visitor.id,
        visitors::full_name(&visitor),
        visitor.scope,
        visitor.expires_at.format("%Y-%m-%d %H:%M UTC")
    );
    println!("{link}");
    Ok(())
}

async fn purge(settings: Settings, args: PurgeArgs) -> anyhow::Result<()> {
    let db = gatehouse::db::connect(&settings).await?;
    gatehouse::db::migrate(&db).await?;
    let report = gatehouse::purge::purge(&db, &settings, args.dry_run).await?;
    let verb = if args.dry_run {
        "Would delete"
    } else {
        "Deleted"
    };
    println!(
        "{verb} {} visitor(s) expired over {} days ago, with {} visit log row(s).",
        report.visitors, settings.visitors.retention_days, report.visitor_logs
    );
    println!("{verb} {} expired session(s).", report.sessions);
    println!(
        "{verb} {} login attempt record(s) older than a day.",
        report.login_attempts
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn verify_cli() {
        super::Cli::command().debug_assert();
    }
}
