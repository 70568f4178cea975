//! `vellum plugin list | check | run`: the plugin host outside the server, so an author
//! sees exactly what the server would decide (the same engine, checks and limits).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use serde_json::{Value, json};

use super::runtime::{self, Output, Runtime, Services, WitOutcome};
use super::{Caller, Hook, Loaded, Plugins, Record, Source};
use crate::config::Config;

/// `kv` in memory and no other documents: what a local run can offer.
#[derive(Default)]
struct LocalServices {
    kv: Mutex<HashMap<(String, String), Vec<u8>>>,
}

impl Services for LocalServices {
    fn kv_get(&self, plugin: &str, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        Ok(self.kv.lock().unwrap().get(&(plugin.into(), key.into())).cloned())
    }
    fn kv_set(&self, plugin: &str, key: &str, value: &[u8], quota: u64) -> anyhow::Result<Result<(), String>> {
        let mut kv = self.kv.lock().unwrap();
        let used: usize = kv
            .iter()
            .filter(|((p, k), _)| p == plugin && k != key)
            .map(|((_, k), v)| k.len() + v.len())
            .sum();
        let total = (used + key.len() + value.len()) as u64;
        if total > quota {
            return Ok(Err(format!(
                "the plugin's key/value quota of {quota} bytes would be exceeded ({total})"
            )));
        }
        kv.insert((plugin.into(), key.into()), value.to_vec());
        Ok(Ok(()))
    }
    fn kv_delete(&self, plugin: &str, key: &str) -> anyhow::Result<()> {
        self.kv.lock().unwrap().remove(&(plugin.into(), key.into()));
        Ok(())
    }
    fn document(&self, _id_or_slug: &str) -> anyhow::Result<Option<Record>> {
        Ok(None)
    }
}

/// In-memory `kv` and no documents: for running plugins outside a server (the local
/// runner, benchmarks).
pub fn services() -> Arc<dyn Services> {
    Arc::new(LocalServices::default())
}

/// A document given to `vellum plugin run --input`: every field optional.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct InputDoc {
    id: Option<String>,
    slug: Option<String>,
    title: Option<String>,
    status: Option<String>,
    version: Option<u32>,
    body_text: Option<String>,
    body_html: Option<String>,
    body_json: Option<Value>,
    fields: Option<Value>,
    /// For `render`: the HTML to transform (default: `bodyHtml`).
    html: Option<String>,
}

/// Loads one plugin folder as the server would, except that a missing sha256 is only
/// reported (an author's build changes it on every compile).
fn load_dir(config: &Config, dir: &Path) -> anyhow::Result<(Plugins, Arc<Loaded>, Option<String>)> {
    let rt = Runtime::shared(config.plugins.max_concurrent_calls).map_err(anyhow::Error::msg)?;
    let (manifest, wasm, _) = runtime::read_dir(dir).map_err(anyhow::Error::msg)?;
    let sha_note = runtime::check_sha(&manifest, &wasm).err();
    if manifest.sha256.is_some()
        && let Some(note) = &sha_note
    {
        anyhow::bail!("{note}");
    }
    let sha = runtime::sha256_hex(&wasm);
    let component = rt.compile(&wasm, &sha, None)?;
    let prepared = rt.prepare(&manifest, component).map_err(anyhow::Error::msg)?;
    let loaded = Arc::new(Loaded {
        manifest,
        sha256: sha,
        source: Source::Dir(dir.to_path_buf()),
        loaded_at: chrono::Utc::now(),
        prepared,
    });
    let mut cfg = config.plugins.clone();
    cfg.bundled = false;
    let plugins = Plugins::none(&cfg);
    let plugins = Plugins(Arc::new(super::Inner {
        runtime: Some(rt),
        calls: Arc::new(tokio::sync::Semaphore::new(cfg.max_concurrent_calls.max(1) as usize)),
        ..Arc::try_unwrap(plugins.0).unwrap_or_else(|_| unreachable!("just made"))
    }));
    *plugins.0.loaded.write().unwrap() = Arc::new(vec![loaded.clone()]);
    plugins.trust_all();
    Ok((plugins, loaded, sha_note))
}

/// `vellum plugin check DIR`.
pub fn check(config: &Config, dir: &Path) -> anyhow::Result<()> {
    let (_, l, sha_note) = load_dir(config, dir)?;
    let m = &l.manifest;
    println!("{} {}: ok", m.name, m.version);
    println!(
        "  hooks: {}",
        m.hooks.iter().map(|h| h.name()).collect::<Vec<_>>().join(", ")
    );
    let caps: Vec<&str> = m.capabilities.iter().map(|c| c.name()).collect();
    println!(
        "  capabilities requested: {}",
        if caps.is_empty() {
            "none".into()
        } else {
            caps.join(", ")
        }
    );
    println!("  sha256: {}", l.sha256);
    if let Some(note) = sha_note {
        println!("  note: {note}");
    }
    Ok(())
}

/// `vellum plugin list`: what the server would load from its settings.
pub async fn list(config: &Config) -> anyhow::Result<()> {
    let plugins = Plugins::load(&config.plugins, &config.server.data_dir, None).await;
    println!("plugins directory: {}", plugins.dir().display());
    for l in plugins.loaded().iter() {
        let m = &l.manifest;
        let source = match &l.source {
            Source::Bundled => "bundled".to_string(),
            Source::Dir(d) => d.display().to_string(),
        };
        println!(
            "{} {} [{}] hooks: {}; capabilities: {}",
            m.name,
            m.version,
            source,
            m.hooks.iter().map(|h| h.name()).collect::<Vec<_>>().join(", "),
            m.capabilities.iter().map(|c| c.name()).collect::<Vec<_>>().join(", ")
        );
    }
    for p in plugins.problems() {
        println!("{} [{}] NOT LOADED: {}", p.name, p.source, p.error);
    }
    Ok(())
}

/// `vellum plugin run DIR --hook H --input doc.json`: one call, its outcome, fuel and time.
pub async fn run(config: &Config, dir: &Path, hook: Hook, input: &Path, settings: Option<&str>) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(input).map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?;
    let doc: InputDoc = serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?;
    let (plugins, l, _) = load_dir(config, dir)?;
    if let Some(s) = settings {
        let v: Value = serde_json::from_str(s).map_err(|e| anyhow::anyhow!("--config: {e}"))?;
        let set = l
            .manifest
            .validate_config(&v)
            .map_err(|(f, m)| anyhow::anyhow!("--config: {f}: {m}"))?;
        plugins
            .0
            .states
            .write()
            .unwrap()
            .1
            .get_mut(&l.manifest.name)
            .expect("trusted")
            .config = set;
    }
    if !l.manifest.hooks.contains(&hook) {
        anyhow::bail!("the manifest does not subscribe to `{}`", hook.name());
    }
    let record = Record {
        id: doc.id.unwrap_or_else(|| uuid::Uuid::nil().to_string()),
        slug: doc.slug.unwrap_or_default(),
        title: doc.title.unwrap_or_default(),
        status: doc.status.unwrap_or_else(|| "draft".into()),
        version: doc.version,
        body_text: doc.body_text.unwrap_or_default(),
        body_html: doc.body_html.unwrap_or_default(),
        body_json: doc
            .body_json
            .map(|v| v.to_string())
            .unwrap_or_else(|| r#"{"type":"doc"}"#.into()),
        fields_json: doc.fields.map(|v| v.to_string()).unwrap_or_else(|| "{}".into()),
    };
    let caller = Caller {
        actor: None,
        request_id: "local".into(),
        services: Arc::new(LocalServices::default()),
    };
    let started = std::time::Instant::now();
    let (out, stats) = plugins
        .run_one(&l.manifest.name, hook, &caller, record, doc.html)
        .await
        .map_err(|e| anyhow::anyhow!(e.public_message()))?;
    let outcome = match out {
        Ok(Output::Outcome(WitOutcome::Unchanged)) => json!({ "unchanged": true }),
        Ok(Output::Outcome(WitOutcome::Modified(d))) => json!({ "modified": {
            "id": d.id, "slug": d.slug, "title": d.title, "status": d.status, "version": d.version,
            "bodyText": d.body_text, "bodyHtml": d.body_html, "bodyJson": d.body_json, "fields": d.fields_json } }),
        Ok(Output::Outcome(WitOutcome::Reject(r))) => {
            json!({ "rejected": { "code": r.code, "message": r.message, "field": r.field } })
        }
        Ok(Output::Done(r)) => json!({ "done": r.err() }),
        Ok(Output::Render(h)) => json!({ "html": h }),
        Ok(Output::Enrich(r)) => match r {
            Ok(f) => json!({ "fields": serde_json::from_str::<Value>(&f).unwrap_or(Value::String(f)) }),
            Err(e) => json!({ "refused": e }),
        },
        Err(f) => json!({ "failed": { "kind": f.kind.name(), "message": f.message } }),
    };
    let report = json!({
        "plugin": l.manifest.name,
        "hook": hook.name(),
        "outcome": outcome,
        "fuelUsed": stats.fuel_used,
        "elapsedMs": started.elapsed().as_secs_f64() * 1000.0,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
