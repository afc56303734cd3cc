//! `audit_log`: what staff (and the command line) did, and to whom: invites
//! sent, revoked and resent, members made staff. Rows are only ever added.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261123_000001_create_sites::Sites;
use crate::m20261123_000002_create_users::Users;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AuditLog::Table)
                    .if_not_exists()
                    .col(big_pk_auto(AuditLog::Id))
                    .col(big_integer(AuditLog::SiteId))
                    .col(big_integer_null(AuditLog::ActorId))
                    // Kept as text too: the account may be deleted later.
                    .col(string(AuditLog::Actor))
                    .col(string_len(AuditLog::Action, 40))
                    .col(string(AuditLog::Subject).default(""))
                    .col(text(AuditLog::Detail).default(""))
                    .col(timestamp_with_time_zone(AuditLog::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_audit_log_site")
                            .from(AuditLog::Table, AuditLog::SiteId)
                            .to(Sites::Table, Sites::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_audit_log_actor")
                            .from(AuditLog::Table, AuditLog::ActorId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("audit_log_site_idx")
                    .table(AuditLog::Table)
                    .col(AuditLog::SiteId)
                    .col(AuditLog::CreatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AuditLog::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
pub enum AuditLog {
    Table,
    Id,
    SiteId,
    ActorId,
    Actor,
    Action,
    Subject,
    Detail,
    CreatedAt,
}
