//! `plugin.toml`: what a plugin says it is, subscribes to, requests and needs.
//!
//! A manifest is checked on its own here (names, versions, limits, the config schema);
//! [`super::runtime`] then checks it against the component's real imports and exports.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The WIT package this host serves, and the minors of its major it accepts.
pub const WIT_PACKAGE: &str = "vellum:plugin";
pub const WIT_MAJOR: u64 = 0;
pub const WIT_MINOR: u64 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, async_graphql::Enum)]
#[serde(rename_all = "kebab-case")]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum Hook {
    BeforeSaveVersion,
    BeforePublish,
    AfterPublish,
    OnMetadataChange,
    Render,
    Enrich,
}

impl Hook {
    pub const ALL: [Hook; 6] = [
        Hook::BeforeSaveVersion,
        Hook::BeforePublish,
        Hook::AfterPublish,
        Hook::OnMetadataChange,
        Hook::Render,
        Hook::Enrich,
    ];

    /// The hook's WIT interface name (`before-save-version`).
    pub fn name(self) -> &'static str {
        match self {
            Hook::BeforeSaveVersion => "before-save-version",
            Hook::BeforePublish => "before-publish",
            Hook::AfterPublish => "after-publish",
            Hook::OnMetadataChange => "on-metadata-change",
            Hook::Render => "render",
            Hook::Enrich => "enrich",
        }
    }

    /// Whether a failure of this hook refuses the change (by default): hooks on the
    /// path of a write fail closed; rendering and background hooks fail open.
    pub fn fails_closed_by_default(self) -> bool {
        matches!(
            self,
            Hook::BeforeSaveVersion | Hook::BeforePublish | Hook::OnMetadataChange
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, async_graphql::Enum)]
#[serde(rename_all = "kebab-case")]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum Capability {
    Config,
    Kv,
    Content,
}

impl Capability {
    pub fn name(self) -> &'static str {
        match self {
            Capability::Config => "config",
            Capability::Kv => "kv",
            Capability::Content => "content",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "config" => Some(Capability::Config),
            "kv" => Some(Capability::Kv),
            "content" => Some(Capability::Content),
            _ => None,
        }
    }
}

/// What happens to the change when a `before-*` hook fails (traps, runs out of fuel or
/// time, returns invalid output).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Failure {
    /// The change is refused with PLUGIN_FAILED.
    Closed,
    /// The plugin is skipped and the failure logged.
    Open,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Limits {
    /// Instructions per call (wasmtime fuel).
    pub fuel: Option<u64>,
    /// Wall-clock time per call.
    pub timeout_ms: Option<u64>,
    /// Linear memory.
    pub memory_mib: Option<u64>,
}

/// One setting of a plugin's config schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Setting {
    #[serde(rename = "type")]
    pub kind: SettingType,
    pub default: Option<Value>,
    pub description: Option<String>,
    pub minimum: Option<f64>,
    pub maximum: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SettingType {
    String,
    Integer,
    Number,
    Boolean,
    /// An array of strings.
    Array,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub description: String,
    /// The WIT minor the plugin was built against (`"0.1"`).
    pub api: String,
    pub hooks: Vec<Hook>,
    /// Lower runs first; ties by name.
    #[serde(default = "default_priority")]
    pub priority: i32,
    #[serde(default)]
    pub capabilities: Vec<Capability>,
    pub failure: Option<Failure>,
    /// The sha256 of `plugin.wasm`, hex.
    pub sha256: Option<String>,
    #[serde(default)]
    pub limits: Limits,
    /// The settings an admin may set, with their types and defaults.
    #[serde(default)]
    pub config: BTreeMap<String, Setting>,
}

fn default_priority() -> i32 {
    100
}

impl Manifest {
    pub fn parse(text: &str) -> Result<Manifest, String> {
        let m: Manifest = toml::from_str(text).map_err(|e| format!("plugin.toml: {}", e.message()))?;
        m.check()?;
        Ok(m)
    }

    fn check(&self) -> Result<(), String> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !self.name.starts_with('-');
        if !name_ok {
            return Err(format!(
                "plugin.toml: name `{}` must be 1-64 lower-case letters, digits and hyphens",
                self.name
            ));
        }
        if self.version.split('.').count() != 3 || self.version.split('.').any(|p| p.parse::<u64>().is_err()) {
            return Err(format!(
                "plugin.toml: version `{}` is not a semantic version (x.y.z)",
                self.version
            ));
        }
        let (major, minor) = self
            .api
            .split_once('.')
            .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)))
            .ok_or_else(|| format!("plugin.toml: api `{}` must be `major.minor`, e.g. \"0.1\"", self.api))?;
        if major != WIT_MAJOR || minor > WIT_MINOR {
            return Err(format!(
                "plugin.toml: api {major}.{minor} is not served by this Vellum ({WIT_PACKAGE}@{WIT_MAJOR}.{WIT_MINOR} and older minors)"
            ));
        }
        if self.hooks.is_empty() {
            return Err("plugin.toml: hooks is empty; name at least one hook".into());
        }
        for (key, s) in &self.config {
            if let Some(d) = &s.default {
                check_setting(key, s, d)?;
            }
        }
        Ok(())
    }

    /// The failure policy of one hook of this plugin.
    pub fn failure_for(&self, hook: Hook) -> Failure {
        self.failure.unwrap_or(if hook.fails_closed_by_default() {
            Failure::Closed
        } else {
            Failure::Open
        })
    }

    /// Settings as the plugin reads them: the schema's defaults, overridden by `set`.
    pub fn effective_config(&self, set: &serde_json::Map<String, Value>) -> serde_json::Map<String, Value> {
        let mut out = serde_json::Map::new();
        for (k, s) in &self.config {
            if let Some(d) = &s.default {
                out.insert(k.clone(), d.clone());
            }
        }
        for (k, v) in set {
            out.insert(k.clone(), v.clone());
        }
        out
    }

    /// Checks settings an admin gives against the schema: every key known, every value
    /// of its type and range.
    pub fn validate_config(&self, config: &Value) -> Result<serde_json::Map<String, Value>, (String, String)> {
        let Some(map) = config.as_object() else {
            return Err(("config".into(), "must be a JSON object".into()));
        };
        for (k, v) in map {
            let Some(s) = self.config.get(k) else {
                let known: Vec<&str> = self.config.keys().map(String::as_str).collect();
                return Err((
                    format!("config.{k}"),
                    format!("unknown setting (this plugin has: {})", known.join(", ")),
                ));
            };
            check_setting(k, s, v).map_err(|m| (format!("config.{k}"), m))?;
        }
        Ok(map.clone())
    }
}

fn check_setting(key: &str, s: &Setting, v: &Value) -> Result<(), String> {
    let ok = match s.kind {
        SettingType::String => v.is_string(),
        SettingType::Integer => v.is_i64() || v.is_u64(),
        SettingType::Number => v.is_number(),
        SettingType::Boolean => v.is_boolean(),
        SettingType::Array => v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
    };
    if !ok {
        let want = match s.kind {
            SettingType::String => "a string",
            SettingType::Integer => "an integer",
            SettingType::Number => "a number",
            SettingType::Boolean => "true or false",
            SettingType::Array => "an array of strings",
        };
        return Err(format!("`{key}` must be {want}"));
    }
    if let Some(n) = v.as_f64() {
        if s.minimum.is_some_and(|m| n < m) {
            return Err(format!("`{key}` must be at least {}", s.minimum.unwrap()));
        }
        if s.maximum.is_some_and(|m| n > m) {
            return Err(format!("`{key}` must be at most {}", s.maximum.unwrap()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"
        name = "word-count"
        version = "0.1.0"
        api = "0.1"
        hooks = ["enrich"]
        capabilities = ["config"]
        [config.wordsPerMinute]
        type = "integer"
        default = 200
        minimum = 1
    "#;

    #[test]
    fn parses_and_validates_settings() {
        let m = Manifest::parse(OK).unwrap();
        assert_eq!(m.hooks, vec![Hook::Enrich]);
        assert_eq!(m.priority, 100);
        assert_eq!(m.failure_for(Hook::Enrich), Failure::Open);
        assert!(m.validate_config(&serde_json::json!({"wordsPerMinute": 250})).is_ok());
        let (field, msg) = m
            .validate_config(&serde_json::json!({"wordsPerMinute": 0}))
            .unwrap_err();
        assert_eq!(field, "config.wordsPerMinute");
        assert!(msg.contains("at least 1"), "{msg}");
        assert!(m.validate_config(&serde_json::json!({"speed": 1})).is_err());
        assert!(
            m.validate_config(&serde_json::json!({"wordsPerMinute": "fast"}))
                .is_err()
        );
    }

    #[test]
    fn refuses_bad_manifests() {
        for (bad, why) in [
            (OK.replace("word-count", "Word Count"), "name"),
            (OK.replace("0.1.0", "1"), "version"),
            (OK.replace("\"0.1\"", "\"1.0\""), "api"),
            (OK.replace("[\"enrich\"]", "[]"), "hooks"),
            (OK.replace("\"enrich\"", "\"on-save\""), "unknown variant"),
            (OK.replace("default = 200", "default = \"x\""), "integer"),
            (format!("{OK}\nsurprise = 1"), "unknown field"),
        ] {
            let e = Manifest::parse(&bad).unwrap_err();
            assert!(e.contains(why), "{why}: {e}");
        }
    }
}
