//! Database schema for Gatehouse: one migration per file, applied in name order.
//! The app runs pending migrations at start (`gatehouse serve`) or on demand (`gatehouse migrate`).

pub use sea_orm_migration::prelude::*;

mod m20261123_000001_create_sites;
mod m20261123_000002_create_users;
mod m20261123_000003_create_invites;
mod m20261123_000004_create_sessions;
mod m20261123_000005_create_visitors;
mod m20261123_000006_create_visitor_logs;
mod m20261123_000007_add_session_visitor;
mod m20261123_000008_create_login_attempts;
mod m20261124_000001_create_mail_outbox;
mod m20261124_000002_create_audit_log;
mod m20261124_000003_create_password_resets;
mod m20261124_000004_create_reference_requests;
mod m20261201_000001_attempt_outcomes;
mod m20261201_000002_session_invite;
mod m20261201_000010_session_change_triggers;
mod m20261201_130001_dashboard_indexes;
mod m20261201_140001_member_data;
mod m20261201_150001_visitor_ended;
pub mod m20261201_160001_session_touch_quiet;
pub mod m20261201_170001_login_hot_path;

pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_create_sites::Migration),
            Box::new(m20261123_000002_create_users::Migration),
            Box::new(m20261123_000003_create_invites::Migration),
            Box::new(m20261123_000004_create_sessions::Migration),
            Box::new(m20261123_000005_create_visitors::Migration),
            Box::new(m20261123_000006_create_visitor_logs::Migration),
            Box::new(m20261123_000007_add_session_visitor::Migration),
            Box::new(m20261123_000008_create_login_attempts::Migration),
            Box::new(m20261124_000001_create_mail_outbox::Migration),
            Box::new(m20261124_000002_create_audit_log::Migration),
            Box::new(m20261124_000003_create_password_resets::Migration),
            Box::new(m20261124_000004_create_reference_requests::Migration),
            Box::new(m20261201_000001_attempt_outcomes::Migration),
            Box::new(m20261201_000002_session_invite::Migration),
            Box::new(m20261201_000010_session_change_triggers::Migration),
            Box::new(m20261201_140001_member_data::Migration),
            Box::new(m20261201_130001_dashboard_indexes::Migration),
            Box::new(m20261201_150001_visitor_ended::Migration),
            Box::new(m20261201_160001_session_touch_quiet::Migration),
            Box::new(m20261201_170001_login_hot_path::Migration),
        ]
    }
}
