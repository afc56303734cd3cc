//! `sessions.visitor_id`: mirrors the session's visitor (like `user_id`), so
//! that loading a session brings its member and visitor rows in one query.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261123_000004_create_sessions::Sessions;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SessionVisitor {
    VisitorId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .add_column(string_len_null(SessionVisitor::VisitorId, 36))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .drop_column(SessionVisitor::VisitorId)
                    .to_owned(),
            )
            .await
    }
}
