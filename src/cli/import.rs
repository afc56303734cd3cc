//! `gatehouse import django`: moving in from a Django site (see
//! `django_import`), with a progress bar per table on a terminal.

use std::sync::Mutex;

use super::terminal::Progress;
use crate::AppState;
use crate::django_import::{self, Observer, Options, Report};
use crate::settings::Settings;

/// `gatehouse import django`.
#[derive(clap::Args)]
pub struct DjangoImportArgs {
    /// The Django database, in the form of database.url:
    /// sqlite:///srv/old/db.sqlite3 or postgres://user:pass@host/db. Only read.
    #[arg(long)]
    pub database: String,
    /// Read and check everything and print the report, writing nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Which site here an old site (django_site id) becomes, when they are
    /// not matched by domain or one to one: OLD_ID=DOMAIN (a domain that is
    /// not a site here yet is created). Repeat for several.
    #[arg(long, value_name = "OLD_ID=DOMAIN", num_args = 1.., value_parser = django_import::parse_site_map_entry)]
    pub site_map: Vec<(i64, String)>,
}

/// A bar per table, on standard error when it is a terminal.
struct Bars(Mutex<Option<Progress>>);

impl Observer for Bars {
    fn start(&self, table: &'static str, rows: u64) {
        if let Ok(mut bar) = self.0.lock() {
            if let Some(old) = bar.take() {
                old.finish();
            }
            *bar = Some(Progress::start(rows, table));
        }
    }

    fn advance(&self, rows: u64) {
        if let Ok(bar) = self.0.lock()
            && let Some(bar) = bar.as_ref()
        {
            bar.advance(rows);
        }
    }

    fn finish(&self) {
        if let Ok(mut bar) = self.0.lock()
            && let Some(bar) = bar.take()
        {
            bar.finish();
        }
    }
}

pub async fn django(settings: Settings, args: DjangoImportArgs) -> anyhow::Result<Report> {
    let (state, _) = AppState::init(settings).await?;
    let options = Options {
        database: args.database,
        dry_run: args.dry_run,
        site_map: args.site_map,
    };
    let bars = Bars(Mutex::new(None));
    let report = django_import::import(&state, &options, &bars).await;
    bars.finish();
    Ok(report?)
}
