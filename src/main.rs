//! The `gatehouse` command: parses arguments, loads settings once, and calls
//! into the library. Errors go to stderr with a non-zero exit status.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use sea_orm::{EntityTrait, TransactionTrait};

use gatehouse::accounts::users::{self, CreateUserError, NewUser};
use gatehouse::audit::{self, Action, Actor};
use gatehouse::dates::{self, DateStyle};
use gatehouse::email_address::EmailAddress;
use gatehouse::entities::mail_outbox;
use gatehouse::invites;
use gatehouse::invites::import::{self, Outcome};
use gatehouse::invites::issue::{self, IfOpen, IssueError, Issued, Request};
use gatehouse::mail::{delivery::Delivery, worker};
use gatehouse::settings::{Secret, Settings};
use gatehouse::sites::{self, AddSiteError};
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
    /// Invite someone (or everyone in a CSV file): e-mail the code, or print it.
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
    /// Manage sites (communities served by this installation, picked by Host).
    #[command(subcommand)]
    Site(SiteCommand),
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
    #[arg(long, conflicts_with = "csv")]
    email: Option<String>,
    /// Their full name; the first word becomes the first name.
    #[arg(long, conflicts_with = "csv")]
    name: Option<String>,
    /// Their phone number.
    #[arg(long, conflicts_with = "csv")]
    phone: Option<String>,
    /// The site's domain, when there are several sites.
    #[arg(long)]
    domain: Option<String>,
    /// E-mail the invitation now (through the outbox) and wait for delivery;
    /// without a terminal this is the default only with --csv.
    #[arg(long, conflicts_with = "no_send")]
    send: bool,
    /// Do not e-mail anything; print the code as the last line
    /// (with --csv: one "email,code" line per invitation).
    #[arg(long)]
    no_send: bool,
    /// When the address already has an open invitation, revoke it and issue
    /// a fresh code (otherwise you are asked, or it is refused).
    #[arg(long)]
    replace: bool,
    /// Invite everyone in a CSV file with the columns email,name,phone
    /// (name and phone may be empty; a header row is skipped). Sends unless
    /// --no-send; bad rows are skipped and reported.
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
}

#[derive(Subcommand)]
enum SiteCommand {
    /// Add a site: requests whose Host is DOMAIN are served as this site,
    /// with its own members, codes and invitations.
    Add(SiteAddArgs),
    /// List the sites.
    List,
}

#[derive(Args)]
struct SiteAddArgs {
    /// Host name the site is reached at, e.g. club.example.org.
    #[arg(long)]
    domain: String,
    /// Name shown on its pages and in its mail.
    #[arg(long)]
    name: String,
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
    // Commands other than `serve` talk through their output; their log keeps
    // to warnings (RUST_LOG still wins), so a bulk import is not a log flood.
    let quiet = !matches!(cli.command, Command::Serve);
    init_logging(&settings, quiet);
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
        Command::Site(command) => runtime.block_on(site(settings, command)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("gatehouse: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(settings: &Settings, quiet: bool) {
    let filter = if quiet {
        "warn"
    } else {
        settings.log.filter.as_str()
    };
    let env = env_logger::Env::default().default_filter_or(filter);
    let logger = env_logger::Builder::from_env(env)
        .format_timestamp_millis()
        .build();
    let max_level = logger.filter();
    // Only fails when a logger is already set, which nothing here does.
    if log::set_boxed_logger(Box::new(WithoutDriverTrace(logger))).is_ok() {
        log::set_max_level(max_level);
    }
}

/// env_logger without sea-orm's driver traces: at `trace` its `connect`
/// span prints the connection options, the database URL's password
/// included (sea-orm 2.0.4), and nothing else there is worth that.
struct WithoutDriverTrace(env_logger::Logger);

impl log::Log for WithoutDriverTrace {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        let driver_trace = metadata.level() == log::Level::Trace
            && metadata.target().starts_with("sea_orm::driver");
        !driver_trace && self.0.enabled(metadata)
    }

    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            self.0.log(record);
        }
    }

    fn flush(&self) {
        self.0.flush();
    }
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
    if !state.mailer.delivers() {
        log::warn!(
            "mail.transport is \"log\": e-mail is logged, not delivered. Set \
             GATEHOUSE__MAIL__TRANSPORT=smtp and GATEHOUSE__MAIL__SMTP_URL to send invitations."
        );
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
) -> anyhow::Result<std::sync::Arc<sites::Site>> {
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

/// Asks a yes/no question; anything but y/yes is no.
fn confirm(question: &str) -> anyhow::Result<bool> {
    loop {
        let Some(answer) = prompt(question)? else {
            return Ok(false);
        };
        match answer.to_ascii_lowercase().as_str() {
            "y" | "yes" => return Ok(true),
            "" | "n" | "no" => return Ok(false),
            _ => println!("Answer y or n."),
        }
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

async fn invite(settings: Settings, args: InviteArgs) -> anyhow::Result<()> {
    let interactive = std::io::stdin().is_terminal();
    if let Some(path) = args.csv.clone() {
        return invite_csv(settings, args, &path, interactive).await;
    }
    let email = match args.email {
        Some(email) => email,
        None if interactive => loop {
            let Some(answer) = prompt("E-mail address of the person to invite: ")? else {
                anyhow::bail!("Missing parameter --email");
            };
            match EmailAddress::parse(&answer) {
                Ok(email) => break email.into_string(),
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
    let invitee = invites::check_invitee(&email, &name, &phone).map_err(|errors| {
        let problems: Vec<String> = errors
            .iter()
            .map(|(field, message)| format!("--{field}: {message}"))
            .collect();
        anyhow::anyhow!("{}", problems.join("; "))
    })?;
    let (state, _) = AppState::init(settings).await?;
    let site = pick_site(&state, args.domain.as_deref(), interactive).await?;
    let send_mail = if args.send {
        check_mail_delivers(&state)?;
        true
    } else if args.no_send || !interactive {
        false
    } else if !state.mailer.delivers() {
        println!("Mail delivery is off (mail.transport is \"log\"): the code is printed instead.");
        false
    } else {
        confirm("Send the invitation now? [y/N] ")?
    };
    let actor = Actor::command_line();
    let request = |if_open| Request {
        site: &site,
        email: invitee.email.clone(),
        name: invitee.name.clone(),
        phone: invitee.phone.clone(),
        actor: &actor,
        send_mail,
        if_open,
        replaces: None,
    };
    let if_open = if args.replace {
        IfOpen::Replace
    } else {
        IfOpen::Ask
    };
    let issued = match issue::issue(&state, request(if_open)).await {
        Err(IssueError::OpenInvite(open)) => {
            let ids: Vec<String> = open
                .iter()
                .map(|invite| format!("#{}", invite.id))
                .collect();
            let question = format!(
                "{} already has an open invitation ({}). Revoke it and issue a fresh code? [y/N] ",
                invitee.email,
                ids.join(", ")
            );
            if !interactive {
                anyhow::bail!(
                    "{} already has an open invitation ({}): use --replace to revoke it and \
                     issue a fresh code",
                    invitee.email,
                    ids.join(", ")
                );
            }
            if !confirm(&question)? {
                anyhow::bail!("Nothing was changed");
            }
            issue::issue(&state, request(IfOpen::Replace)).await?
        }
        other => other?,
    };
    if send_mail {
        report_delivery(&state, &issued).await
    } else {
        print_code(&state, &site, &issued);
        Ok(())
    }
}

fn print_code(state: &AppState, site: &sites::Site, issued: &Issued) {
    println!(
        "Invitation created for {} on {}. First use by {} at {}",
        issued.invite.email,
        site.domain,
        dates::format(issue::first_use_by(state, &issued.invite), DateStyle::Utc),
        issue::login_link(state, site, &issued.code)
    );
    println!("{}", issued.code.as_str());
}

/// Tries to deliver the invitation now, and says whether it went out or waits
/// in the outbox (for `serve` to deliver when the mail server is back).
async fn report_delivery(state: &AppState, issued: &Issued) -> anyhow::Result<()> {
    let Some(outbox_id) = issued.outbox_id else {
        return Ok(());
    };
    worker::deliver_due(&state.db, &state.mailer, Some(&[outbox_id])).await?;
    let row = mail_outbox::Entity::find_by_id(outbox_id)
        .one(&state.db)
        .await?;
    match row {
        Some(row) if Delivery::of(&row) == Delivery::Sent => {
            println!("Mail sent to {}.", issued.invite.email);
        }
        row => {
            let why = row.and_then(|row| row.last_error).unwrap_or_default();
            println!(
                "The invitation e-mail to {} is queued, not sent yet ({why}). `gatehouse serve` \
                 delivers it when the mail server answers; staff see it on /staff/mail.",
                issued.invite.email
            );
        }
    }
    Ok(())
}

async fn invite_csv(
    settings: Settings,
    args: InviteArgs,
    path: &std::path::Path,
    interactive: bool,
) -> anyhow::Result<()> {
    let input = std::fs::read(path)
        .map_err(|err| anyhow::anyhow!("could not read {}: {err}", path.display()))?;
    let rows = import::read(&input);
    let (state, _) = AppState::init(settings).await?;
    let site = pick_site(&state, args.domain.as_deref(), interactive).await?;
    let send_mail = !args.no_send;
    if send_mail {
        check_mail_delivers(&state)?;
    }
    let bar = progress_bar(rows.len() as u64, "Inviting");
    let if_open = if args.replace {
        IfOpen::Replace
    } else {
        IfOpen::Ask
    };
    let summary = import::import(
        &state,
        &site,
        &Actor::command_line(),
        rows,
        send_mail,
        if_open,
        |outcome| {
            match outcome {
                Outcome::Skipped { line, reason } => {
                    // `suspend` rather than `println`: indicatif's println
                    // drops the line when it decides not to draw (TERM=dumb).
                    let message = format!("line {line}: skipped: {reason}");
                    match &bar {
                        Some(bar) => bar.suspend(|| eprintln!("{message}")),
                        None => eprintln!("{message}"),
                    }
                }
                Outcome::Created { issued, .. } if !send_mail => {
                    let line = format!(
                        "{},{}",
                        issued.invite.email,
                        outcome.code().map_or("", |c| c.as_str())
                    );
                    match &bar {
                        Some(bar) => bar.suspend(|| println!("{line}")),
                        None => println!("{line}"),
                    }
                }
                Outcome::Created { .. } => {}
            }
            if let Some(bar) = &bar {
                bar.inc(1);
            }
        },
    )
    .await?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let mut sent = 0;
    let mut waiting = 0;
    if send_mail && !summary.outbox_ids.is_empty() {
        let bar = progress_bar(summary.outbox_ids.len() as u64, "Sending");
        loop {
            let done =
                worker::deliver_batch(&state.db, &state.mailer, Some(&summary.outbox_ids)).await?;
            if done.claimed == 0 {
                break;
            }
            sent += done.sent;
            if let Some(bar) = &bar {
                bar.inc(done.claimed as u64);
            }
        }
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        waiting = summary.outbox_ids.len() - sent;
    }
    let skipped = match summary.skipped {
        0 => "no rows skipped".to_owned(),
        1 => "1 row skipped".to_owned(),
        n => format!("{n} rows skipped"),
    };
    let mail = if !send_mail {
        "codes printed above, nothing e-mailed".to_owned()
    } else if waiting == 0 {
        format!("{sent} e-mailed")
    } else {
        format!(
            "{sent} e-mailed, {waiting} queued for `gatehouse serve` to deliver when the mail server answers"
        )
    };
    println!(
        "Created {} invitations on {} ({skipped}); {mail}.",
        summary.created, site.domain
    );
    Ok(())
}

/// A progress bar on stderr when it is a terminal.
fn progress_bar(length: u64, label: &'static str) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(length);
    let style =
        indicatif::ProgressStyle::with_template("{prefix:>9} [{bar:40}] {pos}/{len} ({eta} left)")
            .map(|style| style.progress_chars("=> "))
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_prefix(label);
    Some(bar)
}

async fn site(settings: Settings, command: SiteCommand) -> anyhow::Result<()> {
    let (state, _) = AppState::init(settings).await?;
    match command {
        SiteCommand::Add(args) => {
            let site = sites::add(&state.db, &args.domain, &args.name)
                .await
                .map_err(|err| match err {
                    AddSiteError::Db(err) => anyhow::anyhow!(err),
                    other => anyhow::anyhow!("{other}"),
                })?;
            println!(
                "Added site {} ({}), id {}. Requests for that host name are served as this site.",
                site.domain, site.name, site.id
            );
        }
        SiteCommand::List => {
            for site in state.sites.all().await.iter() {
                let default = if site.domain == state.sites.default_domain() {
                    " (default)"
                } else {
                    ""
                };
                println!("{}\t{}\t{}{default}", site.id, site.domain, site.name);
            }
        }
    }
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
    let txn = state.db.begin().await?;
    let user = users::create(
        &txn,
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
    if user.is_staff {
        audit::record(
            &txn,
            site.id,
            &Actor::command_line(),
            Action::UserMadeStaff,
            &user.username,
            "created as staff with `gatehouse user create --staff`",
            chrono::Utc::now(),
        )
        .await?;
    }
    txn.commit().await?;
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
        &format!("{}{path}", state.base_url_of(&site)),
        &state.settings.visitors.querystring_key,
        &token,
    );
    println!(
        "Visitor pass {} for {} (scope {}), valid until {}.",
        visitor.id,
        visitors::full_name(&visitor),
        visitor.scope,
        dates::format(visitor.expires_at, DateStyle::Utc)
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
    println!(
        "{verb} {} password reset link(s) expired over a day ago.",
        report.password_resets
    );
    let erase = if args.dry_run {
        "Would erase"
    } else {
        "Erased"
    };
    println!(
        "{erase} the referee's details from {} expired or cancelled reference request(s).",
        report.references_erased
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
