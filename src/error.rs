//! Errors that end a request. Capability modules have their own error enums
//! and convert into `AppError`; how each becomes an HTTP response (status,
//! headers, error page) is `web::error_pages`.

pub type AppResult<T> = Result<T, AppError>;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("not found")]
    NotFound,
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("bad request: {0}")]
    BadRequest(String),
    /// Anonymous on a members' page: send them to log in, then back.
    #[error("login required")]
    LoginRequired { next: String },
    #[error("CSRF check failed")]
    Csrf,
    #[error("request body too large")]
    PayloadTooLarge,
    /// Too many failed attempts: refused until the lock lifts.
    #[error("too many attempts")]
    TooManyAttempts {
        retry_after: chrono::Duration,
        /// The zone the time it lifts is shown in.
        zone: crate::dates::Zone,
    },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sea_orm::DbErr> for AppError {
    fn from(err: sea_orm::DbErr) -> Self {
        match err {
            sea_orm::DbErr::RecordNotFound(_) => Self::NotFound,
            other => Self::Internal(other.into()),
        }
    }
}

impl From<tera::Error> for AppError {
    fn from(err: tera::Error) -> Self {
        Self::Internal(anyhow::Error::new(err))
    }
}
