//! Settings: `config/default.toml` (compiled in) → `--config FILE` → environment → flags.
//!
//! The structs have no serde defaults on purpose: the compiled-in default file must
//! name every field, so `config/default.toml` documents every setting or the build's
//! tests fail. `deny_unknown_fields` turns a typo in an operator's file into an error.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use toml::Value;

pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Used when dev mode is on and no secret is set. Refused outside dev mode.
pub const DEV_JWT_SECRET: &str = "vellum-development-secret-do-not-use-in-production";

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub bus: BusConfig,
    pub collab: CollabConfig,
    pub auth: AuthConfig,
    pub graphql: GraphqlConfig,
    pub content: ContentConfig,
    pub plugins: PluginsConfig,
    pub search: SearchConfig,
    pub log: LogConfig,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub host: String,
    pub port: u16,
    pub data_dir: PathBuf,
    pub dev: bool,
    pub max_body_bytes: usize,
    pub shutdown_grace_secs: u64,
    pub request_timeout_secs: u64,
    pub trim_memory_after_ms: u64,
    pub allowed_origins: Vec<String>,
    /// Settings the start-up self-check would refuse, accepted on purpose by name.
    pub allow_unsafe: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    pub url: Secret,
    pub max_connections: u32,
    pub sqlite_synchronous: SqliteSynchronous,
    pub sqlite_cache_kib: u32,
    pub sqlite_commit_cache_kib: u32,
    pub busy_timeout_ms: u64,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSynchronous {
    Full,
    Normal,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BusConfig {
    pub redis_url: Secret,
    pub drop_percent: u8,
    pub probe_secs: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CollabConfig {
    pub durability: Durability,
    pub max_message_bytes: usize,
    pub max_document_bytes: usize,
    pub max_connections_per_document: usize,
    pub max_connections: usize,
    pub outbound_queue: usize,
    pub max_pending_bytes: usize,
    pub snapshot_every_updates: u64,
    pub snapshot_every_bytes: u64,
    pub unload_grace_ms: u64,
    pub max_batch: usize,
    pub heartbeat_secs: u64,
    pub node_id: String,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Committed before anyone sees it.
    Strict,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub jwt_secret: Secret,
    pub jwt_previous_secret: Secret,
    pub jwt_previous_until: String,
    pub jwt_issuer: String,
    pub jwt_audience: String,
    pub token_ttl_secs: u64,
    pub allow_registration: bool,
    pub cookie_name: String,
    pub cookie_secure: bool,
    /// Failed logins in a row for one email before its logins are refused; 0: no limit.
    pub login_max_failures: u32,
    /// How long those logins are refused, in seconds.
    pub login_lockout_secs: u64,
    /// How often this node looks for access taken away on any node, in milliseconds.
    pub access_check_ms: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GraphqlConfig {
    /// Seconds a subscription socket has to send `connection_init`.
    pub init_timeout_secs: u64,
    pub max_depth: usize,
    pub max_complexity: usize,
    pub introspection: bool,
    pub max_connections: usize,
    /// Operations (subscriptions, and queries or mutations not yet answered) running at
    /// once on one subscription socket.
    pub max_operations_per_socket: usize,
    /// Milliseconds a query (not a mutation) may run before it is stopped with TIMEOUT.
    pub query_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ContentConfig {
    /// Whether callers without credentials may read published content.
    pub anonymous_read: bool,
    /// Most `documentChanged` content events per second per subscription.
    pub content_events_per_sec: u32,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PluginsConfig {
    pub enabled: bool,
    pub dir: PathBuf,
    pub bundled: bool,
    pub watch: bool,
    pub cache_dir: PathBuf,
    pub fuel: u64,
    pub timeout_ms: u64,
    pub memory_mib: u64,
    pub max_input_bytes: usize,
    pub max_output_bytes: usize,
    pub max_concurrent_calls: u32,
    pub kv_quota_bytes: u64,
    pub after_publish_queue: usize,
    pub failures_before_disable: u32,
    /// Capabilities granted to plugins of the plugins directory when first seen.
    pub grants: std::collections::BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SearchConfig {
    pub enabled: bool,
    pub dir: PathBuf,
    pub language: String,
    pub poll_ms: u64,
    pub batch: u32,
    pub live_delay_ms: u64,
    pub live_max_delay_ms: u64,
    pub live_sweep_secs: u64,
    pub gap_wait_secs: u64,
    pub writer_mib: usize,
    pub snippet_chars: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// A string that never shows up in logs, `Debug` output or `print-config`.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"[redacted]\"" })
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if self.0.is_empty() { "" } else { "[redacted]" })
    }
}

impl Config {
    /// The compiled-in defaults alone (what tests start from).
    pub fn defaults() -> Self {
        Self::from_value(DEFAULT_TOML.parse().expect("config/default.toml is valid TOML"))
            .expect("config/default.toml names every setting")
    }

    /// Defaults, then `file`, then the process environment.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let vars: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(file, &vars)
    }

    pub fn load_from(file: Option<&Path>, env: &[(String, String)]) -> anyhow::Result<Self> {
        let mut value: Value = DEFAULT_TOML.parse().context("config/default.toml")?;
        if let Some(path) = file {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("reading config file {}", path.display()))?;
            let overlay: Value = text
                .parse()
                .with_context(|| format!("parsing config file {}", path.display()))?;
            merge(&mut value, overlay);
        }
        for (key, raw) in env {
            if let Some(path) = env_key_path(key) {
                set_path(&mut value, &path, raw).with_context(|| format!("environment variable {key}"))?;
            }
        }
        Self::from_value(value)
    }

    fn from_value(value: Value) -> anyhow::Result<Self> {
        let config: Config = value.try_into().context("invalid configuration")?;
        config.validate()?;
        Ok(config)
    }

    /// The start-up self-check (`vellum serve` outside dev mode): each setting that would
    /// undo a protection, by the name `server.allow_unsafe` accepts it under, with what
    /// to do about it. Dev mode skips it.
    pub fn unsafe_settings(&self) -> Vec<(&'static str, String)> {
        let mut found = Vec::new();
        if self.graphql.introspection {
            found.push((
                "introspection",
                "graphql.introspection is on: anyone can list every field and argument. Set it to false \
                 (dev mode has it anyway)"
                    .to_string(),
            ));
        }
        let sqlite = self.database.url.is_empty() || self.database.url.expose().starts_with("sqlite:");
        if sqlite && self.database.sqlite_synchronous != SqliteSynchronous::Full {
            found.push((
                "sqlite-synchronous",
                "database.sqlite_synchronous is `normal`, weaker than collab.durability = \"strict\" promises: \
                 acknowledged edits can be lost when the machine loses power. Set it to \"full\""
                    .to_string(),
            ));
        }
        if self.bus.drop_percent > 0 {
            found.push((
                "drop-percent",
                format!(
                    "bus.drop_percent is {}: this node drops that share of other nodes' messages on purpose \
                     (a test switch). Set it to 0",
                    self.bus.drop_percent
                ),
            ));
        }
        if self.auth.access_check_ms == 0 {
            found.push((
                "access-checks",
                "auth.access_check_ms is 0: sockets and subscriptions keep access that was taken away. \
                 Set it to 1000"
                    .to_string(),
            ));
        }
        for origin in &self.server.allowed_origins {
            if let Err(why) = check_origin(origin) {
                found.push(("origins", format!("server.allowed_origins has `{origin}`: {why}")));
            }
        }
        found.retain(|(name, _)| !self.server.allow_unsafe.iter().any(|a| a == name));
        found
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.graphql.max_depth == 0 || self.graphql.max_complexity == 0 {
            bail!("graphql.max_depth and graphql.max_complexity must be positive");
        }
        if !(1..=100).contains(&self.content.content_events_per_sec) {
            bail!("content.content_events_per_sec must be between 1 and 100");
        }
        let a = &self.auth;
        if !a.jwt_previous_secret.is_empty() {
            chrono::DateTime::parse_from_rfc3339(&a.jwt_previous_until).map_err(|_| {
                anyhow::anyhow!(
                    "auth.jwt_previous_until must say until when the previous secret is accepted \
                     (RFC 3339, e.g. 2026-12-14T00:00:00Z), not `{}`",
                    a.jwt_previous_until
                )
            })?;
            if a.jwt_previous_secret.expose().len() < 32 {
                bail!("auth.jwt_previous_secret (JWT_PREVIOUS_SECRET) must be at least 32 bytes");
            }
        }
        if a.login_max_failures > 0 && !(1..=86_400).contains(&a.login_lockout_secs) {
            bail!("auth.login_lockout_secs must be between 1 and 86400 (unless auth.login_max_failures is 0)");
        }
        let c = &self.collab;
        if c.max_batch == 0 || c.outbound_queue == 0 || c.heartbeat_secs == 0 {
            bail!("collab.max_batch, collab.outbound_queue and collab.heartbeat_secs must be positive");
        }
        Ok(())
    }
}

/// An entry of `server.allowed_origins`: a scheme, a host and maybe a port, as browsers
/// send them in `Origin` (no path, no wildcard).
fn check_origin(origin: &str) -> Result<(), &'static str> {
    if origin == "*" || origin.contains('*') {
        return Err("there are no wildcards; name each origin (e.g. https://app.example.com)");
    }
    if origin == "null" {
        return Err("`null` is the origin of sandboxed frames and local files: any page can send it");
    }
    let Some((scheme, rest)) = origin.split_once("://") else {
        return Err("an origin is scheme://host[:port], e.g. https://app.example.com");
    };
    if !matches!(scheme, "http" | "https") || rest.is_empty() || rest.contains('/') || rest.ends_with(':') {
        return Err("an origin is scheme://host[:port] with no path, e.g. https://app.example.com");
    }
    Ok(())
}

/// Maps an environment variable to a settings path, or `None` if it is not ours.
fn env_key_path(key: &str) -> Option<Vec<String>> {
    let fixed = |a: &str, b: &str| Some(vec![a.to_string(), b.to_string()]);
    match key {
        "DATABASE_URL" => return fixed("database", "url"),
        "REDIS_URL" => return fixed("bus", "redis_url"),
        "JWT_SECRET" => return fixed("auth", "jwt_secret"),
        "JWT_PREVIOUS_SECRET" => return fixed("auth", "jwt_previous_secret"),
        "VELLUM_PORT" => return fixed("server", "port"),
        "VELLUM_HOST" => return fixed("server", "host"),
        "VELLUM_DATA_DIR" => return fixed("server", "data_dir"),
        "VELLUM_DEV" => return fixed("server", "dev"),
        _ => {}
    }
    let rest = key.strip_prefix("VELLUM_")?;
    let parts: Vec<String> = rest.split("__").map(|p| p.to_ascii_lowercase()).collect();
    (parts.len() == 2 && parts.iter().all(|p| !p.is_empty())).then_some(parts)
}

/// Environment values are strings; they are read as the type the default has,
/// so `VELLUM_DEV=1` is true, `VELLUM_SERVER__PORT=9000` a number and
/// `VELLUM_SERVER__ALLOW_UNSAFE=introspection,origins` a list.
fn parse_env_value(current: &Value, raw: &str) -> anyhow::Result<Value> {
    Ok(match current {
        Value::Boolean(_) => Value::Boolean(match raw.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => true,
            "0" | "false" | "no" | "off" | "" => false,
            _ => bail!("expected a boolean, got `{raw}`"),
        }),
        Value::Integer(_) => Value::Integer(
            raw.parse()
                .with_context(|| format!("expected an integer, got `{raw}`"))?,
        ),
        // A list (`server.allowed_origins`, `server.allow_unsafe`): comma-separated.
        Value::Array(_) => Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_string()))
                .collect(),
        ),
        _ => Value::String(raw.to_string()),
    })
}

fn set_path(root: &mut Value, path: &[String], raw: &str) -> anyhow::Result<()> {
    let Some(table) = root.get_mut(&path[0]).and_then(Value::as_table_mut) else {
        bail!("unknown settings section `{}`", path[0]);
    };
    let Some(current) = table.get(&path[1]) else {
        bail!("unknown setting `{}.{}`", path[0], path[1]);
    };
    let value = parse_env_value(current, raw)?;
    table.insert(path[1].clone(), value);
    Ok(())
}

fn merge(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Table(base), Value::Table(overlay)) => {
            for (k, v) in overlay {
                match base.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        base.insert(k, v);
                    }
                }
            }
        }
        (base, overlay) => *base = overlay,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_self_check_names_each_unsafe_setting_and_its_fix() {
        assert!(Config::defaults().unsafe_settings().is_empty(), "the defaults are safe");
        let mut c = Config::defaults();
        c.graphql.introspection = true;
        c.database.sqlite_synchronous = SqliteSynchronous::Normal;
        c.bus.drop_percent = 10;
        c.auth.access_check_ms = 0;
        c.server.allowed_origins = vec![
            "https://app.example.com".into(),
            "*".into(),
            "null".into(),
            "https://x.example.com/path".into(),
            "app.example.com".into(),
        ];
        let found = c.unsafe_settings();
        let names: Vec<_> = found.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "introspection",
                "sqlite-synchronous",
                "drop-percent",
                "access-checks",
                "origins",
                "origins",
                "origins",
                "origins"
            ]
        );
        assert!(found[0].1.contains("Set it to false"), "{}", found[0].1);
        assert!(found[1].1.contains("\"full\""), "{}", found[1].1);
        // Accepted on purpose, by name.
        c.server.allow_unsafe = vec!["introspection".into(), "origins".into()];
        let names: Vec<_> = c.unsafe_settings().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["sqlite-synchronous", "drop-percent", "access-checks"]);
        // PostgreSQL does not use the SQLite setting.
        c.database.url = Secret::new("postgres://db/vellum");
        assert!(!c.unsafe_settings().iter().any(|(n, _)| *n == "sqlite-synchronous"));
    }

    #[test]
    fn defaults_name_every_setting() {
        let c = Config::defaults();
        assert_eq!(c.server.port, 8000);
        assert!(c.database.url.is_empty(), "embedded SQLite by default");
        assert_eq!(c.database.sqlite_synchronous, SqliteSynchronous::Full);
        assert!(!c.server.dev);
    }

    #[test]
    fn layers_apply_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("prod.toml");
        std::fs::write(
            &file,
            "[server]\nport = 9000\nhost = \"127.0.0.1\"\n[log]\nformat = \"json\"\n",
        )
        .unwrap();
        let c = Config::load_from(
            Some(&file),
            &env(&[
                ("VELLUM_PORT", "9100"),
                ("VELLUM_DEV", "1"),
                ("DATABASE_URL", "postgres://localhost/v"),
                ("VELLUM_GRAPHQL__MAX_DEPTH", "7"),
                ("VELLUM_UNRELATED", "ignored"),
                ("PATH", "/bin"),
            ]),
        )
        .unwrap();
        assert_eq!(c.server.port, 9100, "environment beats the file");
        assert_eq!(c.server.host, "127.0.0.1", "the file beats the defaults");
        assert_eq!(c.log.format, LogFormat::Json);
        assert!(c.server.dev);
        assert_eq!(c.graphql.max_depth, 7);
        assert_eq!(c.database.url.expose(), "postgres://localhost/v");
        assert_eq!(format!("{:?}", c.database.url), "\"[redacted]\"");
    }

    #[test]
    fn mistakes_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("typo.toml");
        std::fs::write(&file, "[server]\nprot = 1\n").unwrap();
        assert!(Config::load_from(Some(&file), &[]).is_err(), "unknown key in a file");
        assert!(Config::load_from(None, &env(&[("VELLUM_SERVER__PROT", "1")])).is_err());
        assert!(Config::load_from(None, &env(&[("VELLUM_PORT", "eighty")])).is_err());
        assert!(Config::load_from(None, &env(&[("VELLUM_DEV", "maybe")])).is_err());
    }

    #[test]
    fn login_throttle_settings() {
        let c = Config::defaults();
        assert_eq!((c.auth.login_max_failures, c.auth.login_lockout_secs), (5, 300));
        let c = Config::load_from(
            None,
            &env(&[
                ("VELLUM_AUTH__LOGIN_MAX_FAILURES", "10"),
                ("VELLUM_AUTH__LOGIN_LOCKOUT_SECS", "60"),
            ]),
        )
        .unwrap();
        assert_eq!((c.auth.login_max_failures, c.auth.login_lockout_secs), (10, 60));
        let lockout = |secs: &str| Config::load_from(None, &env(&[("VELLUM_AUTH__LOGIN_LOCKOUT_SECS", secs)]));
        assert!(lockout("0").is_err(), "a lockout of nothing");
        assert!(lockout("86401").is_err(), "longer than a day");
        assert!(lockout("86400").is_ok());
        let off = [
            ("VELLUM_AUTH__LOGIN_MAX_FAILURES", "0"),
            ("VELLUM_AUTH__LOGIN_LOCKOUT_SECS", "0"),
        ];
        assert!(
            Config::load_from(None, &env(&off)).is_ok(),
            "off: the lockout is unused"
        );
        assert!(Config::load_from(None, &env(&[("VELLUM_AUTH__LOGIN_MAX_FAILURES", "-1")])).is_err());
    }
}
