//! `visitor_logs`: one row per guarded visit and per link use. Paths and
//! referers are stored with the token removed; the session is identified by
//! a hash, so the log shows whether a link is used from several sessions.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261123_000005_create_visitors::Visitors;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(VisitorLogs::Table)
                    .if_not_exists()
                    .col(big_pk_auto(VisitorLogs::Id))
                    .col(string_len(VisitorLogs::VisitorId, 36))
                    .col(string_len(VisitorLogs::SessionHash, 64).default(""))
                    .col(string_len(VisitorLogs::HttpMethod, 10))
                    .col(text(VisitorLogs::RequestPath))
                    .col(integer(VisitorLogs::StatusCode))
                    .col(string_len(VisitorLogs::RemoteAddr, 64).default(""))
                    .col(text(VisitorLogs::UserAgent).default(""))
                    .col(text(VisitorLogs::Referer).default(""))
                    .col(timestamp_with_time_zone(VisitorLogs::Timestamp))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_visitor_logs_visitor")
                            .from(VisitorLogs::Table, VisitorLogs::VisitorId)
                            .to(Visitors::Table, Visitors::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("visitor_logs_visitor_time_idx")
                    .table(VisitorLogs::Table)
                    .col(VisitorLogs::VisitorId)
                    .col(VisitorLogs::Timestamp)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(VisitorLogs::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
pub enum VisitorLogs {
    Table,
    Id,
    VisitorId,
    SessionHash,
    HttpMethod,
    RequestPath,
    StatusCode,
    RemoteAddr,
    UserAgent,
    Referer,
    Timestamp,
}
