//! `invites`: invitation codes. Only an HMAC of the normalised code is stored
//! (`code_hmac`), never the code itself, so a database dump reveals no code.
//! `grants_staff` marks the one-time code `serve` prints while a site has no staff.

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
                    .table(Invites::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Invites::Id))
                    .col(big_integer(Invites::SiteId))
                    .col(string(Invites::CodeHmac))
                    .col(string(Invites::Email))
                    .col(string(Invites::Name).default(""))
                    .col(string(Invites::Phone).default(""))
                    .col(boolean(Invites::GrantsStaff).default(false))
                    .col(big_integer_null(Invites::CreatedBy))
                    .col(timestamp_with_time_zone(Invites::CreatedAt))
                    .col(timestamp_with_time_zone_null(Invites::SentAt))
                    .col(timestamp_with_time_zone_null(Invites::FirstUsedAt))
                    .col(big_integer_null(Invites::UserId))
                    .col(timestamp_with_time_zone_null(Invites::RevokedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_invites_site")
                            .from(Invites::Table, Invites::SiteId)
                            .to(Sites::Table, Sites::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_invites_created_by")
                            .from(Invites::Table, Invites::CreatedBy)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_invites_user")
                            .from(Invites::Table, Invites::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("invites_site_code_key")
                    .table(Invites::Table)
                    .col(Invites::SiteId)
                    .col(Invites::CodeHmac)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared("CREATE INDEX invites_site_email_idx ON invites (site_id, email)")
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Invites::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
pub enum Invites {
    Table,
    Id,
    SiteId,
    CodeHmac,
    Email,
    Name,
    Phone,
    GrantsStaff,
    CreatedBy,
    CreatedAt,
    SentAt,
    FirstUsedAt,
    UserId,
    RevokedAt,
}
