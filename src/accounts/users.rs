//! Queries on members. Usernames are matched case-insensitively (ASCII);
//! e-mails are stored normalised and matched exactly.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, Func};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DbBackend, DbErr,
    EntityTrait, ExprTrait, PaginatorTrait, QueryFilter, QueryOrder, QueryTrait, Select, SqlErr,
    Statement,
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
    let Some(candidates) = login_candidates(site_id, login) else {
        return Ok(None);
    };
    Ok(candidates.all(db).await?.into_iter().next())
}

/// The members `login` may name on a site, the one it names first (a
/// username match wins over an e-mail match); `None` for a blank name.
/// At most two rows (the unique indexes), so no LIMIT: a bound LIMIT makes
/// SQLite plan the statement again at every run.
pub fn login_candidates(site_id: i64, login: &str) -> Option<Select<users::Entity>> {
    let login = login.trim();
    if login.is_empty() {
        return None;
    }
    let lowered = login.to_ascii_lowercase();
    let username_matches =
        || Expr::expr(Func::lower(Expr::col(users::Column::Username))).eq(lowered.clone());
    Some(
        users::Entity::find()
            .filter(users::Column::SiteId.eq(site_id))
            .filter(
                Condition::any()
                    .add(username_matches())
                    .add(users::Column::Email.eq(lowered.clone())),
            )
            .order_by_desc(username_matches()),
    )
}

pub async fn record_login(
    db: &impl ConnectionTrait,
    user: User,
    now: DateTime<Utc>,
) -> Result<User, DbErr> {
    let (user, statement) = login_record(db.get_database_backend(), user, now);
    db.execute_raw(statement).await?;
    Ok(user)
}

/// `record_login` as a statement, for the caller to run together with
/// others (`db::execute_together`), and the member as it will then be.
pub fn login_record(backend: DbBackend, mut user: User, now: DateTime<Utc>) -> (User, Statement) {
    let statement = users::Entity::update_many()
        .col_expr(users::Column::LastLoginAt, Expr::value(Some(now)))
        .filter(users::Column::Id.eq(user.id))
        .build(backend);
    user.last_login_at = Some(now);
    (user, statement)
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
    // A clash here lost a race with a concurrent signup.
    taken_as(result, CreateUserError::UsernameTaken)
}

/// A write's result, with a unique-constraint clash reported as `taken`
/// (the checks before it raced another write).
fn taken_as(result: Result<User, DbErr>, taken: CreateUserError) -> Result<User, CreateUserError> {
    match result {
        Err(err) if matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            Err(taken)
        }
        other => Ok(other?),
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

/// A member of the site that has not deleted their account.
pub async fn find(db: &impl ConnectionTrait, site_id: i64, id: i64) -> Result<Option<User>, DbErr> {
    users::Entity::find_by_id(id)
        .filter(users::Column::SiteId.eq(site_id))
        .filter(users::Column::DeletedAt.is_null())
        .one(db)
        .await
}

/// The member a command names: `#<id>`, a username or an e-mail address.
pub async fn find_named(
    db: &impl ConnectionTrait,
    site_id: i64,
    name: &str,
) -> Result<Option<User>, DbErr> {
    let name = name.trim();
    if let Some(id) = name.strip_prefix('#').and_then(|id| id.parse().ok()) {
        return find(db, site_id, id).await;
    }
    Ok(find_for_login(db, site_id, name)
        .await?
        .filter(|user| user.deleted_at.is_none()))
}

/// What the members list shows: search and filters as typed.
#[derive(Debug, Default, Clone)]
pub struct MemberFilter {
    /// Part of a username, e-mail address or name.
    pub search: String,
    pub staff: Option<bool>,
    pub active: Option<bool>,
    /// `Some(true)`: has a password; `Some(false)`: logs in with codes only.
    pub has_password: Option<bool>,
}

/// A site's members (deleted accounts left out), newest first.
pub fn list(site_id: i64, filter: &MemberFilter) -> Select<users::Entity> {
    use sea_orm::QueryOrder;
    let mut query = users::Entity::find()
        .filter(users::Column::SiteId.eq(site_id))
        .filter(users::Column::DeletedAt.is_null());
    let search = filter.search.trim().to_lowercase();
    if !search.is_empty() {
        let pattern = format!("%{}%", escape_like(&search));
        let lower = |column: users::Column| Expr::expr(Func::lower(Expr::col(column)));
        let like =
            |column| lower(column).like(sea_orm::sea_query::LikeExpr::new(&pattern).escape('\\'));
        query = query.filter(
            Condition::any()
                .add(like(users::Column::Username))
                .add(like(users::Column::Email))
                .add(like(users::Column::FirstName))
                .add(like(users::Column::LastName)),
        );
    }
    if let Some(staff) = filter.staff {
        query = query.filter(users::Column::IsStaff.eq(staff));
    }
    if let Some(active) = filter.active {
        query = query.filter(users::Column::IsActive.eq(active));
    }
    match filter.has_password {
        Some(true) => query = query.filter(users::Column::PasswordHash.is_not_null()),
        Some(false) => query = query.filter(users::Column::PasswordHash.is_null()),
        None => {}
    }
    query
        .order_by_desc(users::Column::CreatedAt)
        .order_by_desc(users::Column::Id)
}

fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// A change staff (or the command line) make to a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleChange {
    Deactivate,
    Reactivate,
    MakeStaff,
    RemoveStaff,
}

#[derive(Debug, thiserror::Error)]
pub enum RoleChangeError {
    #[error("There is no such member.")]
    NotFound,
    #[error(
        "{0} is the only active staff member: make someone else staff first, so that somebody \
         can still manage the site."
    )]
    LastStaff(String),
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// Applies `change` unless it would leave the site without an active staff
/// member. The staff rows are written first (a no-op update): on PostgreSQL
/// that locks them, so two staff members removing each other at the same
/// moment are served one after the other; on SQLite it takes the write lock.
/// Pass a fresh transaction (this writes first); returns the member before
/// and after.
pub async fn change_role(
    txn: &impl ConnectionTrait,
    site_id: i64,
    user_id: i64,
    change: RoleChange,
) -> Result<(User, User), RoleChangeError> {
    users::Entity::update_many()
        .col_expr(users::Column::IsStaff, Expr::col(users::Column::IsStaff))
        .filter(users::Column::SiteId.eq(site_id))
        .filter(users::Column::IsStaff.eq(true))
        .filter(users::Column::IsActive.eq(true))
        .exec(txn)
        .await?;
    let user = find(txn, site_id, user_id)
        .await?
        .ok_or(RoleChangeError::NotFound)?;
    let takes_staff = matches!(change, RoleChange::Deactivate | RoleChange::RemoveStaff);
    if takes_staff && user.is_staff && user.is_active {
        let others = users::Entity::find()
            .filter(users::Column::SiteId.eq(site_id))
            .filter(users::Column::IsStaff.eq(true))
            .filter(users::Column::IsActive.eq(true))
            .filter(users::Column::Id.ne(user_id))
            .count(txn)
            .await?;
        if others == 0 {
            return Err(RoleChangeError::LastStaff(user.username));
        }
    }
    let mut active: users::ActiveModel = user.clone().into();
    match change {
        RoleChange::Deactivate => active.is_active = Set(false),
        RoleChange::Reactivate => active.is_active = Set(true),
        RoleChange::MakeStaff => active.is_staff = Set(true),
        RoleChange::RemoveStaff => active.is_staff = Set(false),
    }
    let changed = active.update(txn).await?;
    Ok((user, changed))
}

/// What a member may change about themselves on their profile.
pub struct ProfileUpdate {
    pub username: String,
    pub first_name: String,
    pub last_name: String,
    pub phone: String,
}

/// Saves a member's own profile; the username must stay unique.
pub async fn update_profile(
    db: &impl ConnectionTrait,
    user: User,
    update: ProfileUpdate,
) -> Result<User, CreateUserError> {
    if !update.username.eq_ignore_ascii_case(&user.username)
        && find_for_login(db, user.site_id, &update.username)
            .await?
            .is_some_and(|other| {
                other.id != user.id && other.username.eq_ignore_ascii_case(&update.username)
            })
    {
        return Err(CreateUserError::UsernameTaken);
    }
    let mut active: users::ActiveModel = user.into();
    active.username = Set(update.username);
    active.first_name = Set(update.first_name);
    active.last_name = Set(update.last_name);
    active.phone = Set(update.phone);
    taken_as(active.update(db).await, CreateUserError::UsernameTaken)
}

/// Gives a member a new e-mail address (confirmed by the caller). A
/// username that was the old address follows it, unless that name is taken.
pub async fn set_email(
    db: &impl ConnectionTrait,
    user: User,
    email: &EmailAddress,
) -> Result<User, CreateUserError> {
    if find_by_email(db, user.site_id, email.as_str())
        .await?
        .is_some_and(|other| other.id != user.id)
    {
        return Err(CreateUserError::EmailTaken);
    }
    let follows = user.username.eq_ignore_ascii_case(&user.email)
        && find_for_login(db, user.site_id, email.as_str())
            .await?
            .is_none_or(|other| other.id == user.id);
    let mut active: users::ActiveModel = user.into();
    active.email = Set(email.as_str().to_owned());
    if follows {
        active.username = Set(email.as_str().to_owned());
    }
    taken_as(active.update(db).await, CreateUserError::EmailTaken)
}

/// How audit rows about a member name them: the username and the id, so
/// that deleting the account can find every row about them whatever their
/// name was then.
pub fn audit_subject(user: &User) -> String {
    format!("{} (#{})", user.username, user.id)
}

/// Erases a member's personal fields and closes the account; the row stays
/// as a tombstone (`deleted-<id>`), so that what points at its id (audit
/// rows, invitations they sent) says nothing more than the id. False when
/// it was erased already.
pub async fn erase(
    db: &impl ConnectionTrait,
    user_id: i64,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let erased = users::Entity::update_many()
        .col_expr(
            users::Column::Username,
            Expr::value(format!("deleted-{user_id}")),
        )
        .col_expr(
            users::Column::Email,
            Expr::value(format!("deleted-{user_id}@deleted.invalid")),
        )
        .col_expr(users::Column::FirstName, Expr::value(""))
        .col_expr(users::Column::LastName, Expr::value(""))
        .col_expr(users::Column::Phone, Expr::value(""))
        .col_expr(
            users::Column::PasswordHash,
            Expr::value(Option::<String>::None),
        )
        .col_expr(users::Column::IsStaff, Expr::value(false))
        .col_expr(users::Column::IsActive, Expr::value(false))
        .col_expr(
            users::Column::LastLoginAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(users::Column::DeletedAt, Expr::value(Some(now)))
        .filter(users::Column::Id.eq(user_id))
        .filter(users::Column::DeletedAt.is_null())
        .exec(db)
        .await?;
    Ok(erased.rows_affected == 1)
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
