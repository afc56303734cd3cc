//! Queries on members. Usernames are matched case-insensitively (ASCII);
//! e-mails are stored normalised and matched exactly.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, Func};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DbErr,
    EntityTrait, ExprTrait, PaginatorTrait, QueryFilter, QuerySelect, SqlErr,
};

use crate::email_address::EmailAddress;
use crate::entities::invites;
use crate::entities::users::{self, Model as User};
use crate::invites::split_name;

fn normalised_email(email: &str) -> String {
    email.trim().to_ascii_lowercase()
}

/// How many active members a site has, staff included.
pub async fn count_active(db: &impl ConnectionTrait, site_id: i64) -> Result<u64, DbErr> {
    users::Entity::find()
        .filter(users::Column::SiteId.eq(site_id))
        .filter(users::Column::IsActive.eq(true))
        .count(db)
        .await
}

pub async fn find_by_email(
    db: &impl ConnectionTrait,
    site_id: i64,
    email: &str,
) -> Result<Option<User>, DbErr> {
    users::Entity::find()
        .filter(users::Column::SiteId.eq(site_id))
        .filter(users::Column::Email.eq(normalised_email(email)))
        .one(db)
        .await
}

/// The member a login form names, by username or e-mail (a username match wins).
pub async fn find_for_login(
    db: &impl ConnectionTrait,
    site_id: i64,
    login: &str,
) -> Result<Option<User>, DbErr> {
    let login = login.trim();
    if login.is_empty() {
        return Ok(None);
    }
    let lowered = login.to_ascii_lowercase();
    let mut found = users::Entity::find()
        .filter(users::Column::SiteId.eq(site_id))
        .filter(
            Condition::any()
                .add(
                    Expr::expr(Func::lower(Expr::col(users::Column::Username))).eq(lowered.clone()),
                )
                .add(users::Column::Email.eq(lowered.clone())),
        )
        .limit(2)
        .all(db)
        .await?;
    let by_username = found
        .iter()
        .position(|user| user.username.eq_ignore_ascii_case(&lowered));
    Ok(match by_username {
        Some(index) => Some(found.swap_remove(index)),
        None => found.pop(),
    })
}

pub async fn record_login(
    db: &impl ConnectionTrait,
    user: User,
    now: DateTime<Utc>,
) -> Result<User, DbErr> {
    let mut active: users::ActiveModel = user.into();
    active.last_login_at = Set(Some(now));
    active.update(db).await
}

pub async fn set_password_hash(
    db: &impl ConnectionTrait,
    user_id: i64,
    hash: String,
) -> Result<(), DbErr> {
    users::Entity::update_many()
        .col_expr(users::Column::PasswordHash, Expr::value(Some(hash)))
        .filter(users::Column::Id.eq(user_id))
        .exec(db)
        .await?;
    Ok(())
}

pub async fn count_staff(db: &impl ConnectionTrait, site_id: i64) -> Result<u64, DbErr> {
    users::Entity::find()
        .filter(users::Column::SiteId.eq(site_id))
        .filter(users::Column::IsStaff.eq(true))
        .filter(users::Column::IsActive.eq(true))
        .count(db)
        .await
}

/// Usernames: 1–150 ASCII letters, digits and `@ . + - _`, or an e-mail address.
pub fn validate_username(input: &str) -> Result<String, &'static str> {
    let username = input.trim();
    if username.is_empty() {
        return Err("Enter a username.");
    }
    if username.len() > 150 {
        return Err("A username can be 150 characters at most.");
    }
    let plain = username
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "@.+-_".contains(c));
    if plain || EmailAddress::parse(username).is_ok() {
        Ok(username.to_owned())
    } else {
        Err("Use only letters, digits and @ . + - _ in a username.")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    #[error("That username is already taken on this site.")]
    UsernameTaken,
    #[error("An account with that e-mail address already exists on this site.")]
    EmailTaken,
    #[error(transparent)]
    Db(#[from] DbErr),
}

pub struct NewUser {
    pub site_id: i64,
    pub username: String,
    pub email: EmailAddress,
    pub first_name: String,
    pub last_name: String,
    pub password_hash: Option<String>,
    pub is_staff: bool,
}

pub async fn create(db: &impl ConnectionTrait, new: NewUser) -> Result<User, CreateUserError> {
    if find_for_login(db, new.site_id, &new.username)
        .await?
        .is_some_and(|user| user.username.eq_ignore_ascii_case(&new.username))
    {
        return Err(CreateUserError::UsernameTaken);
    }
    if find_by_email(db, new.site_id, new.email.as_str())
        .await?
        .is_some()
    {
        return Err(CreateUserError::EmailTaken);
    }
    let result = Row {
        site_id: new.site_id,
        username: new.username,
        email: new.email.into_string(),
        first_name: new.first_name,
        last_name: new.last_name,
        phone: String::new(),
        password_hash: new.password_hash,
        is_staff: new.is_staff,
    }
    .insert(db)
    .await;
    match result {
        Ok(user) => Ok(user),
        // Lost a race with a concurrent signup.
        Err(err) if matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            Err(CreateUserError::UsernameTaken)
        }
        Err(err) => Err(err.into()),
    }
}

/// The member an invite's first use makes: named as the invite, with its
/// e-mail address as username, staff when the invite grants it.
pub async fn create_for_invite(
    db: &impl ConnectionTrait,
    invite: &invites::Model,
) -> Result<User, DbErr> {
    let (first_name, last_name) = split_name(&invite.name);
    Row {
        site_id: invite.site_id,
        username: invite.email.clone(),
        email: invite.email.clone(),
        first_name,
        last_name,
        phone: invite.phone.clone(),
        password_hash: None,
        is_staff: invite.grants_staff,
    }
    .insert(db)
    .await
}

/// A member's row as inserted: `create` and `create_for_invite` are the
/// only ways in, and this is the one place members are inserted.
struct Row {
    site_id: i64,
    username: String,
    email: String,
    first_name: String,
    last_name: String,
    phone: String,
    password_hash: Option<String>,
    is_staff: bool,
}

impl Row {
    async fn insert(self, db: &impl ConnectionTrait) -> Result<User, DbErr> {
        users::ActiveModel {
            site_id: Set(self.site_id),
            username: Set(self.username),
            email: Set(self.email),
            first_name: Set(self.first_name),
            last_name: Set(self.last_name),
            phone: Set(self.phone),
            password_hash: Set(self.password_hash),
            is_staff: Set(self.is_staff),
            is_active: Set(true),
            created_at: Set(Utc::now()),
            last_login_at: Set(None),
            ..Default::default()
        }
        .insert(db)
        .await
    }
}

/// A member brought in by `gatehouse import django`, with what the old site
/// knew: dates, flags and the password hash as it was (see `django_hashes`).
#[derive(Debug, Clone)]
pub struct ImportedUser {
    pub site_id: i64,
    pub username: String,
    pub email: EmailAddress,
    pub first_name: String,
    pub last_name: String,
    pub password_hash: Option<String>,
    pub is_staff: bool,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
}

/// Inserts imported members in batches, in the caller's transaction. The
/// caller has checked that no username or e-mail is taken.
pub async fn insert_imported(
    db: &impl ConnectionTrait,
    members: Vec<ImportedUser>,
) -> Result<(), DbErr> {
    const BATCH: usize = 500;
    let mut rows = members.into_iter().map(|member| users::ActiveModel {
        site_id: Set(member.site_id),
        username: Set(member.username),
        email: Set(member.email.into_string()),
        first_name: Set(member.first_name),
        last_name: Set(member.last_name),
        phone: Set(String::new()),
        password_hash: Set(member.password_hash),
        is_staff: Set(member.is_staff),
        is_active: Set(member.is_active),
        created_at: Set(member.created_at),
        last_login_at: Set(member.last_login_at),
        ..Default::default()
    });
    loop {
        let batch: Vec<_> = rows.by_ref().take(BATCH).collect();
        if batch.is_empty() {
            return Ok(());
        }
        users::Entity::insert_many(batch).exec(db).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::validate_username;

    #[test]
    fn usernames_are_plain_ascii_or_an_email() {
        assert_eq!(validate_username(" fred_1 ").as_deref(), Ok("fred_1"));
        assert!(validate_username("fred@example.org").is_ok());
        assert!(validate_username("").is_err());
        assert!(validate_username("fred astaire").is_err());
        assert!(validate_username("<script>").is_err());
        assert!(validate_username(&"a".repeat(151)).is_err());
    }
}
