//! `mail_outbox`: every message the site sends, written in the same
//! transaction as what it announces and delivered by a background worker.
//! `body` holds the text and HTML parts sealed with a key derived from the
//! site secret (they carry codes and links), and is erased once delivered;
//! recipient, subject, timestamps and status stay for staff to see.
//! `next_attempt_at` doubles as the delivery lease: a worker that claims a row
//! pushes it into the future, so a crashed worker's rows come back later.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261123_000001_create_sites::Sites;
use crate::m20261123_000003_create_invites::Invites;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(MailOutbox::Table)
                    .if_not_exists()
                    .col(big_pk_auto(MailOutbox::Id))
                    .col(big_integer(MailOutbox::SiteId))
                    .col(big_integer_null(MailOutbox::InviteId))
                    .col(string(MailOutbox::Sender))
                    .col(string(MailOutbox::Recipient))
                    .col(string(MailOutbox::Subject))
                    .col(binary_null(MailOutbox::Body))
                    .col(string_len(MailOutbox::Status, 16))
                    .col(integer(MailOutbox::Attempts).default(0))
                    .col(timestamp_with_time_zone(MailOutbox::CreatedAt))
                    .col(timestamp_with_time_zone(MailOutbox::NextAttemptAt))
                    .col(timestamp_with_time_zone_null(MailOutbox::LastAttemptAt))
                    .col(timestamp_with_time_zone_null(MailOutbox::SentAt))
                    .col(text_null(MailOutbox::LastError))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_mail_outbox_site")
                            .from(MailOutbox::Table, MailOutbox::SiteId)
                            .to(Sites::Table, Sites::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_mail_outbox_invite")
                            .from(MailOutbox::Table, MailOutbox::InviteId)
                            .to(Invites::Table, Invites::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .to_owned(),
            )
            .await?;
        // The worker's query: due rows of one status, oldest first.
        manager
            .create_index(
                Index::create()
                    .name("mail_outbox_due_idx")
                    .table(MailOutbox::Table)
                    .col(MailOutbox::Status)
                    .col(MailOutbox::NextAttemptAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("mail_outbox_site_idx")
                    .table(MailOutbox::Table)
                    .col(MailOutbox::SiteId)
                    .col(MailOutbox::CreatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(MailOutbox::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
pub enum MailOutbox {
    Table,
    Id,
    SiteId,
    InviteId,
    Sender,
    Recipient,
    Subject,
    Body,
    Status,
    Attempts,
    CreatedAt,
    NextAttemptAt,
    LastAttemptAt,
    SentAt,
    LastError,
}
