//! `sessions.invite_id` mirrors the invite a session was started with (like
//! `user_id`), so revoking the invite can find and end its sessions;
//! `sessions.invite_revoked` is set by that revocation and never written by
//! the session store, so a request in flight cannot undo it.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261123_000004_create_sessions::Sessions;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SessionInvite {
    InviteId,
    InviteRevoked,
}

const INDEX: &str = "idx_sessions_invite_id";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one at a time.
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .add_column(big_integer_null(SessionInvite::InviteId))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .add_column(boolean(SessionInvite::InviteRevoked).default(false))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(INDEX)
                    .table(Sessions::Table)
                    .col(SessionInvite::InviteId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name(INDEX).table(Sessions::Table).to_owned())
            .await?;
        for column in [SessionInvite::InviteRevoked, SessionInvite::InviteId] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Sessions::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
