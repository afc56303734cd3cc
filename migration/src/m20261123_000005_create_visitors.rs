//! `visitors`: people known by a link, allowed into one scope for a while.
//! The public id and the link token are separate random UUIDs; only the
//! SHA-256 of the token is stored.

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
                    .table(Visitors::Table)
                    .if_not_exists()
                    .col(string_len(Visitors::Id, 36).primary_key())
                    .col(big_integer(Visitors::SiteId))
                    .col(string_len_uniq(Visitors::TokenHash, 64))
                    .col(string_len(Visitors::Scope, 100))
                    .col(string(Visitors::FirstName).default(""))
                    .col(string(Visitors::LastName).default(""))
                    .col(string(Visitors::Email))
                    .col(json_null(Visitors::Context))
                    .col(timestamp_with_time_zone(Visitors::CreatedAt))
                    .col(timestamp_with_time_zone(Visitors::ExpiresAt))
                    .col(boolean(Visitors::IsActive).default(true))
                    .col(big_integer(Visitors::SessionExpirySecs).default(0))
                    .col(big_integer_null(Visitors::CreatedBy))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_visitors_site")
                            .from(Visitors::Table, Visitors::SiteId)
                            .to(Sites::Table, Sites::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_visitors_created_by")
                            .from(Visitors::Table, Visitors::CreatedBy)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("visitors_site_created_idx")
                    .table(Visitors::Table)
                    .col(Visitors::SiteId)
                    .col(Visitors::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("visitors_expires_idx")
                    .table(Visitors::Table)
                    .col(Visitors::ExpiresAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Visitors::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
pub enum Visitors {
    Table,
    Id,
    SiteId,
    TokenHash,
    Scope,
    FirstName,
    LastName,
    Email,
    Context,
    CreatedAt,
    ExpiresAt,
    IsActive,
    SessionExpirySecs,
    CreatedBy,
}
