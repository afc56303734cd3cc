//! `sites`: one row per community served; the request's Host header picks the site.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Sites::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Sites::Id))
                    .col(string_uniq(Sites::Domain))
                    .col(string(Sites::Name))
                    .col(timestamp_with_time_zone(Sites::CreatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Sites::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
pub enum Sites {
    Table,
    Id,
    Domain,
    Name,
    CreatedAt,
}
