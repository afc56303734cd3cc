//! Plain sea-orm entities, one per table. Queries and rules live in the
//! capability modules (`accounts`, `invites`, ...), not here.

pub mod audit_log;
pub mod invites;
pub mod mail_outbox;
pub mod sessions;
pub mod sites;
pub mod users;
