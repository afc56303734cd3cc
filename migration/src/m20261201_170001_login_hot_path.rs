//! Two changes for the cost of a login (issue 12):
//!
//! - The attempt limits count only rows that are pending, failed or used, so
//!   their indexes lead with the outcome after the address or account: a
//!   count no longer walks every success from a busy address (one office
//!   behind one address, all morning) to skip them.
//! - Recording a login (`users.last_login_at`) no longer counts as a change
//!   to the member: no cached session shows it, yet each login evicted all
//!   of the member's cached sessions on every instance. The users trigger of
//!   `m20261201_000010` now fires on an UPDATE OF every other column (and on
//!   DELETE, as before). A column added later must be added here too: the
//!   session-cache tests compare this list with the table's columns.

use sea_orm_migration::prelude::*;

use crate::m20261201_160001_session_touch_quiet::replace_update_trigger;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Every column of `users` but `last_login_at`.
pub const USER_COLUMNS_WATCHED: &[&str] = &[
    "id",
    "site_id",
    "username",
    "email",
    "first_name",
    "last_name",
    "phone",
    "password_hash",
    "is_staff",
    "is_active",
    "created_at",
    "deleted_at",
];

/// (old index, new index, columns of the new one)
const INDEXES: [(&str, &str, &[&str]); 2] = [
    (
        "login_attempts_ip_idx",
        "login_attempts_ip_outcome_idx",
        &["ip", "outcome", "created_at"],
    ),
    (
        "login_attempts_account_idx",
        "login_attempts_account_outcome_idx",
        &["site_id", "account", "outcome", "created_at"],
    ),
];

/// The columns of the indexes being replaced.
const OLD_COLUMNS: [&[&str]; 2] = [&["ip", "created_at"], &["site_id", "account", "created_at"]];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (old, new, columns) in INDEXES {
            replace_index(manager, old, new, columns).await?;
        }
        replace_update_trigger(
            manager,
            "users",
            "u",
            &format!("UPDATE OF {}", USER_COLUMNS_WATCHED.join(", ")),
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for ((old, new, _), columns) in INDEXES.into_iter().zip(OLD_COLUMNS) {
            replace_index(manager, new, old, columns).await?;
        }
        replace_update_trigger(manager, "users", "u", "UPDATE").await
    }
}

async fn replace_index(
    manager: &SchemaManager<'_>,
    old: &str,
    new: &str,
    columns: &[&str],
) -> Result<(), DbErr> {
    manager
        .drop_index(
            Index::drop()
                .name(old)
                .table(Alias::new("login_attempts"))
                .to_owned(),
        )
        .await?;
    let mut index = Index::create();
    index.name(new).table(Alias::new("login_attempts"));
    for column in columns {
        index.col(Alias::new(*column));
    }
    manager.create_index(index.to_owned()).await
}
