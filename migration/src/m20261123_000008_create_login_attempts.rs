//! `login_attempts`: failed logins, per client address and per account, kept
//! in the database so limits hold across restarts and across instances.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(LoginAttempts::Table)
                    .if_not_exists()
                    .col(big_pk_auto(LoginAttempts::Id))
                    .col(big_integer(LoginAttempts::SiteId))
                    .col(string_len(LoginAttempts::Kind, 16))
                    .col(string_len(LoginAttempts::Ip, 64))
                    .col(string_len_null(LoginAttempts::Account, 254))
                    .col(timestamp_with_time_zone(LoginAttempts::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("login_attempts_ip_idx")
                    .table(LoginAttempts::Table)
                    .col(LoginAttempts::Ip)
                    .col(LoginAttempts::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("login_attempts_account_idx")
                    .table(LoginAttempts::Table)
                    .col(LoginAttempts::SiteId)
                    .col(LoginAttempts::Account)
                    .col(LoginAttempts::CreatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(LoginAttempts::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
pub enum LoginAttempts {
    Table,
    Id,
    SiteId,
    Kind,
    Ip,
    Account,
    CreatedAt,
}
