//! Indexes for the staff index's figures (issue 13): each chart reads the
//! last 30 days of one table by site and time, and the visits chart reads
//! the visit log by time alone (it has no site column; the visitor has).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// (index, table, columns)
const INDEXES: [(&str, &str, &[&str]); 5] = [
    (
        "idx_visitor_logs_time_visitor",
        "visitor_logs",
        &["timestamp", "visitor_id"],
    ),
    (
        "idx_invites_site_created",
        "invites",
        &["site_id", "created_at"],
    ),
    (
        "idx_invites_site_first_used",
        "invites",
        &["site_id", "first_used_at"],
    ),
    (
        "idx_mail_outbox_site_created",
        "mail_outbox",
        &["site_id", "created_at"],
    ),
    (
        "idx_reference_requests_site_created",
        "reference_requests",
        &["site_id", "created_at"],
    ),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, table, columns) in INDEXES {
            let mut index = Index::create();
            index.name(name).table(Alias::new(table));
            for column in columns {
                index.col(Alias::new(*column));
            }
            manager.create_index(index.to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, table, _) in INDEXES {
            manager
                .drop_index(Index::drop().name(name).table(Alias::new(table)).to_owned())
                .await?;
        }
        Ok(())
    }
}
