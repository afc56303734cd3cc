//! Members' own data and retention (issue 14):
//! - `users.deleted_at`: set when a member deletes their account; the row
//!   stays as a tombstone (its id is what the audit log and invitations
//!   still point at) with every personal field erased.
//! - `sessions.started_at`, `last_seen_at`, `user_agent`, `client_ip`: what
//!   the Sessions page shows (the browser family is read from the user
//!   agent; the address is stored already shortened to its network).
//! - `email_changes`: single-use links that confirm a new e-mail address
//!   (only the SHA-256 of the token is stored).
//! - `scheduled_jobs`: one row per job that `serve` runs on a schedule; an
//!   instance runs a job only after claiming it with one conditional UPDATE,
//!   so several instances on one database run it once per interval.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261123_000002_create_users::Users;
use crate::m20261123_000004_create_sessions::Sessions;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum UserDeletion {
    DeletedAt,
}

#[derive(DeriveIden)]
enum SessionClient {
    StartedAt,
    LastSeenAt,
    UserAgent,
    ClientIp,
}

#[derive(DeriveIden)]
pub enum EmailChanges {
    Table,
    Id,
    SiteId,
    UserId,
    NewEmail,
    TokenHash,
    CreatedAt,
    ExpiresAt,
    UsedAt,
}

#[derive(DeriveIden)]
pub enum ScheduledJobs {
    Table,
    Name,
    LastRunAt,
    LastRunBy,
    Runs,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .add_column(timestamp_with_time_zone_null(UserDeletion::DeletedAt))
                    .to_owned(),
            )
            .await?;
        // One column per statement: SQLite alters one at a time.
        for column in [
            timestamp_with_time_zone_null(SessionClient::StartedAt),
            timestamp_with_time_zone_null(SessionClient::LastSeenAt),
            string(SessionClient::UserAgent).default("").to_owned(),
            string(SessionClient::ClientIp).default("").to_owned(),
        ] {
            let mut column = column;
            manager
                .alter_table(
                    Table::alter()
                        .table(Sessions::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(EmailChanges::Table)
                    .if_not_exists()
                    .col(big_pk_auto(EmailChanges::Id))
                    .col(big_integer(EmailChanges::SiteId))
                    .col(big_integer(EmailChanges::UserId))
                    .col(string(EmailChanges::NewEmail))
                    .col(string_len_uniq(EmailChanges::TokenHash, 64))
                    .col(timestamp_with_time_zone(EmailChanges::CreatedAt))
                    .col(timestamp_with_time_zone(EmailChanges::ExpiresAt))
                    .col(timestamp_with_time_zone_null(EmailChanges::UsedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_email_changes_user")
                            .from(EmailChanges::Table, EmailChanges::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("email_changes_user_idx")
                    .table(EmailChanges::Table)
                    .col(EmailChanges::UserId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ScheduledJobs::Table)
                    .if_not_exists()
                    .col(string(ScheduledJobs::Name).primary_key())
                    .col(timestamp_with_time_zone(ScheduledJobs::LastRunAt))
                    .col(string(ScheduledJobs::LastRunBy).default(""))
                    .col(big_integer(ScheduledJobs::Runs).default(0))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ScheduledJobs::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(EmailChanges::Table).to_owned())
            .await?;
        for column in [
            SessionClient::ClientIp,
            SessionClient::UserAgent,
            SessionClient::LastSeenAt,
            SessionClient::StartedAt,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Sessions::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .drop_column(UserDeletion::DeletedAt)
                    .to_owned(),
            )
            .await
    }
}
