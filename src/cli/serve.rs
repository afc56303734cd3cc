//! `gatehouse serve` and `gatehouse migrate`: running the site, and
//! bringing its database up to date.

use std::fmt;

use crate::bootstrap::{self, StaffCode};
use crate::settings::Settings;
use crate::{Application, db};

/// A built site, not yet answering, with the first staff member's code
/// while the default site has none.
pub struct Started {
    pub app: Application,
    pub staff_code: Option<FirstStaffCode>,
}

/// Builds the site (creating and migrating the database) and, on a first
/// start, makes a one-time staff invitation code.
pub async fn start(settings: Settings) -> anyhow::Result<Started> {
    let app = Application::build(settings).await?;
    let staff_code = bootstrap::staff_code_if_needed(&app.state())
        .await?
        .map(FirstStaffCode);
    Ok(Started { app, staff_code })
}

/// Serves until stopped (SIGTERM or Ctrl-C).
pub async fn run(app: Application) -> anyhow::Result<()> {
    let state = app.state();
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

/// The code that lets the first staff member in; its `Display` is the
/// notice `serve` prints.
pub struct FirstStaffCode(pub StaffCode);

impl fmt::Display for FirstStaffCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let staff = &self.0;
        writeln!(f)?;
        writeln!(f, "No staff member exists yet for {}.", staff.site_domain)?;
        writeln!(
            f,
            "Log in as the first staff member with this one-time invitation code:"
        )?;
        writeln!(f)?;
        writeln!(f, "    {}", staff.code.as_str())?;
        writeln!(f)?;
        writeln!(f, "at {}", staff.login_url)?;
        writeln!(
            f,
            "Then set a password on the Password page. (A new code is printed at every"
        )?;
        // Ends in a line break: printed with `println!`, a blank line follows.
        writeln!(
            f,
            "start until a staff member exists; only the newest one works.)"
        )
    }
}

/// Applies pending migrations.
pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let db = db::connect(settings).await?;
    db::migrate(&db).await?;
    Ok(())
}
