//! `users`: members and staff of a site. Usernames are ASCII and unique per
//! site case-insensitively (an index on `lower(username)`, which the login
//! query uses); e-mails are stored normalised (lower-case) and unique per site.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261123_000001_create_sites::Sites;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Users::Id))
                    .col(big_integer(Users::SiteId))
                    .col(string(Users::Username))
                    .col(string(Users::Email))
                    .col(string(Users::FirstName).default(""))
                    .col(string(Users::LastName).default(""))
                    .col(string(Users::Phone).default(""))
                    .col(text_null(Users::PasswordHash))
                    .col(boolean(Users::IsStaff).default(false))
                    .col(boolean(Users::IsActive).default(true))
                    .col(timestamp_with_time_zone(Users::CreatedAt))
                    .col(timestamp_with_time_zone_null(Users::LastLoginAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_users_site")
                            .from(Users::Table, Users::SiteId)
                            .to(Sites::Table, Sites::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        db.execute_unprepared(
            "CREATE UNIQUE INDEX users_site_username_key ON users (site_id, lower(username))",
        )
        .await?;
        db.execute_unprepared("CREATE UNIQUE INDEX users_site_email_key ON users (site_id, email)")
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Users::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
pub enum Users {
    Table,
    Id,
    SiteId,
    Username,
    Email,
    FirstName,
    LastName,
    Phone,
    PasswordHash,
    IsStaff,
    IsActive,
    CreatedAt,
    LastLoginAt,
}
