//! `login_attempts.outcome` and `captcha_nonce`: an attempt is recorded
//! before it is judged ("pending") and then marked with what came of it, so
//! limits hold when many requests arrive at once; a captcha challenge can be
//! used by one attempt only (the unique nonce).

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261123_000008_create_login_attempts::LoginAttempts;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AttemptOutcome {
    Outcome,
    CaptchaNonce,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Rows from before this change were all failures (nothing else was kept).
        manager
            .alter_table(
                Table::alter()
                    .table(LoginAttempts::Table)
                    .add_column(string_len(AttemptOutcome::Outcome, 16).default("failed"))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(LoginAttempts::Table)
                    .add_column(string_len_null(AttemptOutcome::CaptchaNonce, 64))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("login_attempts_captcha_nonce_idx")
                    .table(LoginAttempts::Table)
                    .col(AttemptOutcome::CaptchaNonce)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("login_attempts_captcha_nonce_idx")
                    .table(LoginAttempts::Table)
                    .to_owned(),
            )
            .await?;
        for column in [AttemptOutcome::CaptchaNonce, AttemptOutcome::Outcome] {
            manager
                .alter_table(
                    Table::alter()
                        .table(LoginAttempts::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
