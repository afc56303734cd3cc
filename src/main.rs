//! The `gatehouse` command: parses arguments, loads settings once, calls the
//! command in `gatehouse::cli` and prints what it returns. Errors go to
//! stderr with a non-zero exit status.

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use gatehouse::accounts::users::RoleChange;
use gatehouse::cli::import::{self, DjangoImportArgs};
use gatehouse::cli::invite::{self, InviteArgs};
use gatehouse::cli::terminal::Terminal;
use gatehouse::cli::user::{self, SetStaffArgs, UserCreateArgs, UserListArgs, UserTargetArgs};
use gatehouse::cli::visitor::{self, VisitorCreateArgs};
use gatehouse::cli::{self, site};
use gatehouse::secrets;
use gatehouse::settings::Settings;

/// mimalloc rather than glibc's malloc: with the session cache full, the
/// guarded page served 1.4 to 2 times the requests per second (glibc spent
/// its time consolidating a fragmented heap). Built without transparent
/// huge pages, which added 26 MB of resident memory for nothing.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "gatehouse", version, about = "An invite-only community site.")]
#[command(
    after_help = "Settings: config/default.toml, then config/$GATEHOUSE_ENV.toml, then \
    GATEHOUSE__SECTION__KEY environment variables (e.g. GATEHOUSE__DATABASE__URL)."
)]
struct Cli {
    /// Never prompt: a value a command would ask for is an error naming the
    /// missing option instead (as Django's --noinput).
    #[arg(long, global = true, visible_alias = "noinput")]
    no_input: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the web site in the foreground (creates and migrates the database first).
    Serve,
    #[command(flatten)]
    Task(Task),
}

/// The commands that do one thing and exit (on a tokio runtime; `serve`
/// runs on actix's).
#[derive(Subcommand)]
enum Task {
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
    /// Delete what has outlived its retention (visitors and their logs,
    /// sessions, links, login attempts, sent mail rows, audit rows); prints
    /// what was removed, per table. `serve` also runs it on a schedule.
    Purge(PurgeArgs),
    /// Manage sites (communities served by this installation, picked by Host).
    #[command(subcommand)]
    Site(SiteCommand),
    /// Bring in the data of another application.
    #[command(subcommand)]
    Import(ImportCommand),
}

#[derive(Subcommand)]
enum ImportCommand {
    /// Members (with their password hashes), invitation codes, visitor links
    /// and visit logs from a mezzanine-invites / django-visitors database, in
    /// one transaction; rows already here are skipped. Prints a report.
    Django(DjangoImportArgs),
}

#[derive(Subcommand)]
enum VisitorCommand {
    /// Create a visitor pass; the tokenised link is printed as the last line.
    Create(VisitorCreateArgs),
}

#[derive(Args)]
struct PurgeArgs {
    /// Only count what would be deleted.
    #[arg(long)]
    dry_run: bool,
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
    /// List accounts, one tab-separated line each (id, username, e-mail,
    /// role, status, login, last login) after a header line.
    List(UserListArgs),
    /// Deactivate an account: its sessions end and it cannot log in.
    Deactivate(UserTargetArgs),
    /// Reactivate a deactivated account.
    Reactivate(UserTargetArgs),
    /// Make a member staff (or, with --off, take staff rights away; the
    /// last active staff member keeps them).
    SetStaff(SetStaffArgs),
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
    cli::logging::init(&settings, quiet);
    let terminal = if cli.no_input {
        Terminal::no_input()
    } else {
        Terminal::detect()
    };
    let result = match cli.command {
        Command::Serve => actix_web::rt::System::new().block_on(serve(settings)),
        Command::Task(task) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|err| anyhow::anyhow!("could not start the runtime: {err}"))
            .and_then(|runtime| runtime.block_on(run(settings, task, &terminal))),
    };
    cli::logging::flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("gatehouse: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let started = cli::serve::start(settings).await?;
    if let Some(staff_code) = started.staff_code {
        println!("{staff_code}");
    }
    cli::serve::run(started.app).await
}

async fn run(settings: Settings, task: Task, terminal: &Terminal) -> anyhow::Result<()> {
    match task {
        Task::Secret => println!("{}", secrets::generate_secret()),
        Task::Migrate => {
            cli::serve::migrate(&settings).await?;
            println!("Migrations are up to date.");
        }
        Task::Invite(args) => match args.csv.clone() {
            Some(path) => {
                let imported = invite::invite_csv(settings, &path, &args, terminal).await?;
                println!("{imported}");
            }
            None => println!("{}", invite::invite(settings, args, terminal).await?),
        },
        Task::User(UserCommand::Create(args)) => {
            println!("{}", user::create(settings, args, terminal).await?);
        }
        Task::Import(ImportCommand::Django(args)) => {
            println!("{}", import::django(settings, args).await?);
        }
        Task::User(UserCommand::List(args)) => {
            println!("{}", user::list(settings, args, terminal).await?);
        }
        Task::User(UserCommand::Deactivate(target)) => {
            let done = user::change(settings, target, RoleChange::Deactivate, terminal);
            println!("{}", done.await?);
        }
        Task::User(UserCommand::Reactivate(target)) => {
            let done = user::change(settings, target, RoleChange::Reactivate, terminal);
            println!("{}", done.await?);
        }
        Task::User(UserCommand::SetStaff(args)) => {
            let change = if args.off {
                RoleChange::RemoveStaff
            } else {
                RoleChange::MakeStaff
            };
            println!(
                "{}",
                user::change(settings, args.target, change, terminal).await?
            );
        }
        Task::Visitor(VisitorCommand::Create(args)) => {
            println!("{}", visitor::create(settings, args).await?);
        }
        Task::Purge(args) => {
            println!("{}", cli::purge::purge(&settings, args.dry_run).await?);
        }
        Task::Site(SiteCommand::Add(args)) => {
            println!("{}", site::add(settings, &args.domain, &args.name).await?);
        }
        Task::Site(SiteCommand::List) => {
            for listed in site::list(settings).await? {
                println!("{listed}");
            }
        }
    }
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
