//! Why and when a visitor link stopped working (issue 13, §3.7), so the
//! person who opens a dead link is told exactly: `visitors.ended_reason`
//! (`reference_sent`, `replaced`, `withdrawn`, `deactivated`; NULL while the
//! link works, and for links ended before this column existed) and
//! `visitors.ended_at`. An expired link needs neither: its `expires_at` says.
//!
//! The session-change triggers of `m20261201_000010` fire on any UPDATE of a
//! visitors row, so setting these columns evicts cached sessions as before.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261123_000005_create_visitors::Visitors;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum VisitorEnded {
    EndedReason,
    EndedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one at a time.
        for column in [
            string_len_null(VisitorEnded::EndedReason, 16),
            timestamp_with_time_zone_null(VisitorEnded::EndedAt),
        ] {
            let mut column = column;
            manager
                .alter_table(
                    Table::alter()
                        .table(Visitors::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [VisitorEnded::EndedAt, VisitorEnded::EndedReason] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Visitors::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
