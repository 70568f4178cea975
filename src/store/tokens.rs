//! API tokens: only their SHA-256 is stored.

use uuid::Uuid;

use super::{Store, now, on_db};
use crate::auth::{ApiToken, TokenScope, User};

const TOKEN_COLUMNS: &str = "id, user_id, name, scope, created_at, last_used_at";

#[derive(sqlx::FromRow)]
struct TokenOwner {
    #[sqlx(flatten)]
    user: User,
    #[sqlx(try_from = "String")]
    scope: TokenScope,
}

impl Store {
    pub async fn create_api_token(
        &self,
        user_id: Uuid,
        name: &str,
        scope: TokenScope,
        token_hash: &str,
    ) -> anyhow::Result<ApiToken> {
        let sql = format!(
            "insert into api_tokens (id, user_id, name, token_hash, scope, created_at)
             values ($1, $2, $3, $4, $5, $6) returning {TOKEN_COLUMNS}"
        );
        Ok(on_db!(self, p => sqlx::query_as::<_, ApiToken>(&sql)
            .bind(Uuid::now_v7())
            .bind(user_id)
            .bind(name)
            .bind(token_hash)
            .bind(scope.as_str())
            .bind(now())
            .fetch_one(p)
            .await)?)
    }

    /// The user and scope of a live (not revoked) token, marking it used.
    pub async fn api_token_owner(&self, token_hash: &str) -> anyhow::Result<Option<(User, TokenScope)>> {
        let sql = "select u.id, u.email, u.display_name, u.role, u.created_at, t.scope
                   from api_tokens t join users u on u.id = t.user_id
                   where t.token_hash = $1 and t.revoked_at is null";
        let row = on_db!(self, p => sqlx::query_as::<_, TokenOwner>(sql)
            .bind(token_hash)
            .fetch_optional(p)
            .await)?;
        if row.is_some() {
            // At most one write a minute per token, not one per request.
            let sql = "update api_tokens set last_used_at = $1
                       where token_hash = $2 and (last_used_at is null or last_used_at < $3)";
            let now = now();
            on_db!(self, p => sqlx::query(sql)
                .bind(now)
                .bind(token_hash)
                .bind(now - chrono::Duration::minutes(1))
                .execute(p)
                .await
                .map(drop))?;
        }
        Ok(row.map(|r| (r.user, r.scope)))
    }

    pub async fn list_api_tokens(&self, user_id: Uuid) -> anyhow::Result<Vec<ApiToken>> {
        let sql = format!(
            "select {TOKEN_COLUMNS} from api_tokens
             where user_id = $1 and revoked_at is null order by id"
        );
        Ok(on_db!(self, p => sqlx::query_as::<_, ApiToken>(&sql).bind(user_id).fetch_all(p).await)?)
    }

    /// Revokes one of `user_id`'s tokens; false when there is no such live token.
    pub async fn revoke_api_token(&self, user_id: Uuid, token_id: Uuid) -> anyhow::Result<bool> {
        let sql = "update api_tokens set revoked_at = $1
                   where id = $2 and user_id = $3 and revoked_at is null";
        let done = on_db!(self, p => sqlx::query(sql)
            .bind(now())
            .bind(token_id)
            .bind(user_id)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(done == 1)
    }
}
