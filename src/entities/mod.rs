//! Plain sea-orm entities, one per table. Queries and rules live in the
//! capability modules (`accounts`, `invites`, ...), not here.

pub mod audit_log;
pub mod email_changes;
pub mod invites;
pub mod login_attempts;
pub mod mail_outbox;
pub mod password_resets;
pub mod reference_requests;
pub mod scheduled_jobs;
pub mod sessions;
pub mod sites;
pub mod users;
pub mod visitor_logs;
pub mod visitors;
