//! Plugin state kept in the database: an admin's decisions (enabled, settings,
//! grants) and each plugin's key/value store.

use chrono::{DateTime, Utc};

use super::{Store, now, on_db};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PluginStateRow {
    pub name: String,
    pub enabled: bool,
    pub config: String,
    pub granted: String,
    pub disabled_reason: Option<String>,
    pub updated_at: DateTime<Utc>,
}

impl Store {
    pub async fn plugin_states(&self) -> anyhow::Result<Vec<PluginStateRow>> {
        let sql = "select name, enabled, config, granted, disabled_reason, updated_at from plugins";
        Ok(on_db!(self, p => sqlx::query_as::<_, PluginStateRow>(sql).fetch_all(p).await)?)
    }

    /// Writes a plugin's state, creating its row when it has none.
    pub async fn put_plugin_state(
        &self,
        name: &str,
        enabled: bool,
        config: &str,
        granted: &str,
        disabled_reason: Option<&str>,
    ) -> anyhow::Result<()> {
        let sql = "insert into plugins (name, enabled, config, granted, disabled_reason, updated_at)
                   values ($1, $2, $3, $4, $5, $6)
                   on conflict (name) do update set enabled = excluded.enabled, config = excluded.config,
                       granted = excluded.granted, disabled_reason = excluded.disabled_reason,
                       updated_at = excluded.updated_at";
        on_db!(self, p => sqlx::query(sql)
            .bind(name)
            .bind(enabled)
            .bind(config)
            .bind(granted)
            .bind(disabled_reason)
            .bind(now())
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Creates a plugin's row only if it has none (the first node to see it decides
    /// the defaults); false when one existed.
    pub async fn insert_plugin_state(
        &self,
        name: &str,
        enabled: bool,
        config: &str,
        granted: &str,
    ) -> anyhow::Result<bool> {
        let sql = "insert into plugins (name, enabled, config, granted, disabled_reason, updated_at)
                   values ($1, $2, $3, $4, null, $5) on conflict (name) do nothing";
        let done = on_db!(self, p => sqlx::query(sql)
            .bind(name)
            .bind(enabled)
            .bind(config)
            .bind(granted)
            .bind(now())
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(done == 1)
    }

    pub async fn plugin_kv_get(&self, plugin: &str, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let sql = "select value from plugin_state where plugin = $1 and key = $2";
        Ok(on_db!(self, p => sqlx::query_scalar::<_, Vec<u8>>(sql)
            .bind(plugin)
            .bind(key)
            .fetch_optional(p)
            .await)?)
    }

    /// Sets a key unless the plugin's keys and values would then exceed `quota` bytes.
    pub async fn plugin_kv_set(
        &self,
        plugin: &str,
        key: &str,
        value: &[u8],
        quota: u64,
    ) -> anyhow::Result<Result<(), String>> {
        let used_sql = "select coalesce(sum(length(key) + length(value)), 0) from plugin_state
                        where plugin = $1 and key <> $2";
        let used: i64 = on_db!(self, p => sqlx::query_scalar::<_, i64>(used_sql)
            .bind(plugin)
            .bind(key)
            .fetch_one(p)
            .await)?;
        let total = used as u64 + key.len() as u64 + value.len() as u64;
        if total > quota {
            return Ok(Err(format!(
                "the plugin's key/value quota of {quota} bytes would be exceeded ({total})"
            )));
        }
        let sql = "insert into plugin_state (plugin, key, value, updated_at) values ($1, $2, $3, $4)
                   on conflict (plugin, key) do update set value = excluded.value, updated_at = excluded.updated_at";
        on_db!(self, p => sqlx::query(sql).bind(plugin).bind(key).bind(value).bind(now()).execute(p).await.map(|_| ()))?;
        Ok(Ok(()))
    }

    pub async fn plugin_kv_delete(&self, plugin: &str, key: &str) -> anyhow::Result<()> {
        let sql = "delete from plugin_state where plugin = $1 and key = $2";
        on_db!(self, p => sqlx::query(sql).bind(plugin).bind(key).execute(p).await.map(|_| ()))?;
        Ok(())
    }

    /// The fields plugins computed for a version.
    pub async fn set_version_fields(&self, version_id: i64, fields: &str) -> anyhow::Result<()> {
        let sql = "update document_versions set fields = $1 where id = $2";
        on_db!(self, p => sqlx::query(sql).bind(fields).bind(version_id).execute(p).await.map(|_| ()))?;
        Ok(())
    }

    /// The fields of a document's newest version.
    pub async fn latest_version_fields(&self, document_id: uuid::Uuid) -> anyhow::Result<Option<String>> {
        let sql = "select fields from document_versions where document_id = $1 order by number desc limit 1";
        Ok(on_db!(self, p => sqlx::query_scalar::<_, String>(sql)
            .bind(document_id)
            .fetch_optional(p)
            .await)?)
    }
}
