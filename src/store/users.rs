//! Users.

use uuid::Uuid;

use super::{Store, is_unique_violation, now, on_db};
use crate::auth::{Role, User};

const USER_COLUMNS: &str = "id, email, display_name, role, created_at";

/// Every connect to a document reads its user with this (warmed on new PostgreSQL
/// connections: `super::warm_up`).
pub(super) fn user_by_id_sql() -> String {
    format!("select {USER_COLUMNS} from users where id = $1")
}

/// A user row plus its password hash, for login only.
#[derive(sqlx::FromRow)]
struct Credentials {
    #[sqlx(flatten)]
    user: User,
    password_hash: String,
}

impl Store {
    /// Inserts a user. `role: None` means "admin if this is the first user, else
    /// `default_role`", decided in the same statement that inserts. Returns
    /// `Ok(None)` when the email is taken.
    pub async fn create_user(
        &self,
        email: &str,
        display_name: &str,
        password_hash: &str,
        role: Option<Role>,
        default_role: Role,
    ) -> anyhow::Result<Option<User>> {
        let sql = format!(
            "insert into users (id, email, display_name, password_hash, role, created_at)
             values ($1, $2, $3, $4,
                     coalesce($5, case when exists (select 1 from users) then $6 else 'admin' end),
                     $7)
             returning {USER_COLUMNS}"
        );
        let id = Uuid::now_v7();
        let role = role.map(Role::as_str);
        let result = on_db!(self, p => sqlx::query_as::<_, User>(&sql)
            .bind(id)
            .bind(email)
            .bind(display_name)
            .bind(password_hash)
            .bind(role)
            .bind(default_role.as_str())
            .bind(now())
            .fetch_one(p)
            .await);
        match result {
            Ok(user) => Ok(Some(user)),
            Err(e) if is_unique_violation(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn user_by_id(&self, id: Uuid) -> anyhow::Result<Option<User>> {
        let sql = user_by_id_sql();
        Ok(on_db!(self, p => sqlx::query_as::<_, User>(&sql).bind(id).fetch_optional(p).await)?)
    }

    pub async fn user_by_email(&self, email: &str) -> anyhow::Result<Option<User>> {
        let sql = format!("select {USER_COLUMNS} from users where email = $1");
        Ok(on_db!(self, p => sqlx::query_as::<_, User>(&sql).bind(email).fetch_optional(p).await)?)
    }

    /// The user with this email and their password hash.
    pub async fn credentials(&self, email: &str) -> anyhow::Result<Option<(User, String)>> {
        let sql = format!("select {USER_COLUMNS}, password_hash from users where email = $1");
        let row = on_db!(self, p => sqlx::query_as::<_, Credentials>(&sql)
            .bind(email)
            .fetch_optional(p)
            .await)?;
        Ok(row.map(|c| (c.user, c.password_hash)))
    }

    pub async fn count_users(&self) -> anyhow::Result<i64> {
        Ok(
            on_db!(self, p => sqlx::query_scalar::<_, i64>("select count(*) from users")
            .fetch_one(p)
            .await)?,
        )
    }
}
