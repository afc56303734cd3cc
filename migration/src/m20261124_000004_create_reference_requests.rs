//! `reference_requests`: a member asks someone without an account for a
//! reference; the referee answers through a visitor link. (Named
//! `reference_requests` rather than `references`, an SQL keyword.)

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261123_000001_create_sites::Sites;
use crate::m20261123_000002_create_users::Users;
use crate::m20261123_000005_create_visitors::Visitors;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ReferenceRequests::Table)
                    .if_not_exists()
                    .col(big_pk_auto(ReferenceRequests::Id))
                    .col(big_integer(ReferenceRequests::SiteId))
                    .col(big_integer(ReferenceRequests::RequesterId))
                    .col(string_len_null(ReferenceRequests::VisitorId, 36))
                    .col(string(ReferenceRequests::RefereeName))
                    .col(string(ReferenceRequests::RefereeEmail))
                    .col(text(ReferenceRequests::Message))
                    .col(string_len(ReferenceRequests::Status, 16))
                    .col(json_null(ReferenceRequests::Answers))
                    .col(timestamp_with_time_zone(ReferenceRequests::CreatedAt))
                    .col(timestamp_with_time_zone(ReferenceRequests::LinkExpiresAt))
                    .col(timestamp_with_time_zone_null(ReferenceRequests::OpenedAt))
                    .col(timestamp_with_time_zone_null(
                        ReferenceRequests::CompletedAt,
                    ))
                    .col(timestamp_with_time_zone_null(
                        ReferenceRequests::CancelledAt,
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_reference_requests_site")
                            .from(ReferenceRequests::Table, ReferenceRequests::SiteId)
                            .to(Sites::Table, Sites::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_reference_requests_requester")
                            .from(ReferenceRequests::Table, ReferenceRequests::RequesterId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_reference_requests_visitor")
                            .from(ReferenceRequests::Table, ReferenceRequests::VisitorId)
                            .to(Visitors::Table, Visitors::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("reference_requests_requester_idx")
                    .table(ReferenceRequests::Table)
                    .col(ReferenceRequests::RequesterId)
                    .col(ReferenceRequests::CreatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ReferenceRequests::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
pub enum ReferenceRequests {
    Table,
    Id,
    SiteId,
    RequesterId,
    VisitorId,
    RefereeName,
    RefereeEmail,
    Message,
    Status,
    Answers,
    CreatedAt,
    LinkExpiresAt,
    OpenedAt,
    CompletedAt,
    CancelledAt,
}
