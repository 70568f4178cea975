//! Plugins: content hooks as sandboxed WebAssembly components.
//!
//! - [`manifest`]: `plugin.toml`, checked on its own.
//! - [`runtime`]: the wasmtime engine, the check of a component against its manifest,
//!   a fresh instance per call with fuel, deadline and memory cap, typed failures.
//! - here: the registry (bundled plugins and the plugins directory, hot reload), the
//!   state an admin decides (in the database, so every node agrees), and the hook
//!   chains the rest of the server calls.
//!
//! Invariants:
//! - A plugin that fails to load is reported with why and skipped; the server runs.
//! - Hooks run in priority order (then by name); each sees what the previous one
//!   returned. Callers re-check what comes back (immutable fields, the sanitizer).
//! - `before-*` hooks fail closed unless the manifest says `failure = "open"`; `render`
//!   and `enrich` fail open; `after-publish` runs in the background with retries.
//! - A plugin that fails `failures_before_disable` times within a minute is disabled
//!   (in the database, with the reason) until an admin enables it again.
//! - Calls run on blocking threads, at most `max_concurrent_calls` at once.

pub mod local;
pub mod manifest;
pub mod runtime;
pub mod services;

mod bundled {
    include!(concat!(env!("OUT_DIR"), "/bundled_plugins.rs"));
}

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use tokio::sync::Semaphore;

use crate::auth::{Principal, Role};
use crate::config::PluginsConfig;
use crate::error::{Error, Result};
use crate::store::Store;

pub use manifest::{Capability, Failure, Hook, Manifest};
use runtime::{CallEnv, CallLimits, Input, Output, Prepared, Runtime, Services, WitContext, WitHook, WitOutcome};
pub use runtime::{CallFailure, FailureKind, WitDocument as Record};

/// Where a plugin came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Built into the binary (the example plugins).
    Bundled,
    /// `plugins.dir/<name>`.
    Dir(PathBuf),
}

/// A plugin whose component passed every check.
pub struct Loaded {
    pub manifest: Manifest,
    pub sha256: String,
    pub source: Source,
    pub loaded_at: chrono::DateTime<chrono::Utc>,
    prepared: Prepared,
}

/// A plugin that could not be loaded, and why.
#[derive(Debug, Clone)]
pub struct Problem {
    pub name: String,
    pub source: String,
    pub error: String,
}

/// An admin's decisions about one plugin.
#[derive(Debug, Clone)]
pub struct State {
    pub enabled: bool,
    pub config: Map<String, Value>,
    pub granted: BTreeSet<Capability>,
    pub disabled_reason: Option<String>,
}

/// Call statistics of one plugin, since this node started.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub calls: u64,
    pub rejections: u64,
    pub failures: u64,
    pub fuel_used: u64,
    /// Durations of the last calls, in µs.
    recent: VecDeque<u32>,
    recent_failures: VecDeque<Instant>,
    pub last_failure: Option<String>,
}

impl Stats {
    /// The `q` quantile of recent call durations, in µs.
    pub fn quantile_us(&self, q: f64) -> Option<u32> {
        if self.recent.is_empty() {
            return None;
        }
        let mut v: Vec<u32> = self.recent.iter().copied().collect();
        v.sort_unstable();
        let i = ((v.len() as f64 - 1.0) * q).round() as usize;
        Some(v[i])
    }
}

/// A refusal or failure of a hook chain, as callers report it.
#[derive(Debug, Clone)]
pub enum HookError {
    Rejected {
        plugin: String,
        code: String,
        message: String,
        field: Option<String>,
    },
    Failed {
        plugin: String,
        kind: FailureKind,
        message: String,
    },
}

impl From<HookError> for Error {
    fn from(e: HookError) -> Self {
        match e {
            HookError::Rejected {
                plugin,
                code,
                message,
                field,
            } => Error::PluginRejected {
                plugin,
                code,
                message,
                field,
            },
            HookError::Failed { plugin, kind, message } => Error::PluginFailed {
                plugin,
                kind: kind.name(),
                message,
            },
        }
    }
}

/// The caller's side of a hook call: who acts, and what the `content` and `kv`
/// capabilities reach.
#[derive(Clone)]
pub struct Caller {
    pub actor: Option<uuid::Uuid>,
    pub request_id: String,
    pub services: Arc<dyn Services>,
}

struct Inner {
    config: PluginsConfig,
    dir: PathBuf,
    cache_dir: PathBuf,
    store: Option<Store>,
    runtime: Option<Arc<Runtime>>,
    loaded: RwLock<Arc<Vec<Arc<Loaded>>>>,
    problems: RwLock<Vec<Problem>>,
    states: RwLock<(Option<Instant>, HashMap<String, State>)>,
    stats: Mutex<HashMap<String, Stats>>,
    calls: Arc<Semaphore>,
    /// Publishes whose `after-publish` calls are queued or running.
    after_publish: Arc<Semaphore>,
}

/// The registry. Cheap to clone.
#[derive(Clone)]
pub struct Plugins(Arc<Inner>);

/// How long the state read from the database is trusted before it is read again: how
/// long another node's admin change takes to reach this one.
const STATE_TTL: Duration = Duration::from_secs(2);
const RECENT_CALLS: usize = 1000;
/// Tries of one plugin's `after-publish` call for one publish (backoff 200 ms, 800 ms).
const AFTER_PUBLISH_ATTEMPTS: u32 = 3;

impl Plugins {
    /// No plugins at all (tests of other parts, `plugins.enabled = false`).
    pub fn none(config: &PluginsConfig) -> Plugins {
        Plugins(Arc::new(Inner {
            config: config.clone(),
            dir: PathBuf::new(),
            cache_dir: PathBuf::new(),
            store: None,
            runtime: None,
            loaded: RwLock::new(Arc::new(Vec::new())),
            problems: RwLock::new(Vec::new()),
            states: RwLock::new((None, HashMap::new())),
            stats: Mutex::new(HashMap::new()),
            calls: Arc::new(Semaphore::new(1)),
            after_publish: Arc::new(Semaphore::new(config.after_publish_queue.max(1))),
        }))
    }

    /// Loads the bundled plugins and the plugins directory. Problems are logged and
    /// kept for the admin; they never stop the server.
    pub async fn load(config: &PluginsConfig, data_dir: &Path, store: Option<Store>) -> Plugins {
        if !config.enabled {
            return Plugins::none(config);
        }
        let dir = if config.dir.as_os_str().is_empty() {
            data_dir.join("plugins")
        } else {
            config.dir.clone()
        };
        let cache_dir = if config.cache_dir.as_os_str().is_empty() {
            data_dir.join("plugin-cache")
        } else {
            config.cache_dir.clone()
        };
        let wanted = config.bundled && !bundled::BUNDLED.is_empty() || dir.is_dir();
        let runtime = if wanted {
            match Runtime::shared(config.max_concurrent_calls) {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::error!(error = %e, "plugins: the WebAssembly runtime could not start; no plugins run");
                    None
                }
            }
        } else {
            None
        };
        let plugins = Plugins(Arc::new(Inner {
            config: config.clone(),
            dir,
            cache_dir,
            store,
            runtime,
            loaded: RwLock::new(Arc::new(Vec::new())),
            problems: RwLock::new(Vec::new()),
            states: RwLock::new((None, HashMap::new())),
            stats: Mutex::new(HashMap::new()),
            calls: Arc::new(Semaphore::new(config.max_concurrent_calls.max(1) as usize)),
            after_publish: Arc::new(Semaphore::new(config.after_publish_queue.max(1))),
        }));
        plugins.reload().await;
        plugins
    }

    pub fn dir(&self) -> &Path {
        &self.0.dir
    }

    /// Reads every plugin again (bundled, then the directory) and swaps the new set in:
    /// calls in flight finish on the plugins they started with. A plugin whose new
    /// files fail to load keeps its previous version, and the failure is reported.
    pub async fn reload(&self) {
        let Some(rt) = self.0.runtime.clone() else { return };
        let previous = self.loaded();
        let (config, dir, cache) = (self.0.config.clone(), self.0.dir.clone(), self.0.cache_dir.clone());
        let prev = previous.clone();
        let scanned = tokio::task::spawn_blocking(move || scan(&rt, &config, &dir, &cache, &prev))
            .await
            .unwrap_or_else(|e| {
                (
                    Vec::new(),
                    vec![Problem {
                        name: "?".into(),
                        source: "?".into(),
                        error: e.to_string(),
                    }],
                )
            });
        let (mut loaded, problems) = scanned;
        loaded.sort_by(|a, b| (a.manifest.priority, &a.manifest.name).cmp(&(b.manifest.priority, &b.manifest.name)));
        for p in &problems {
            tracing::warn!(plugin = %p.name, source = %p.source, error = %p.error, "plugin not loaded");
        }
        for l in &loaded {
            let was = previous.iter().find(|p| p.manifest.name == l.manifest.name);
            if was.is_none_or(|w| w.sha256 != l.sha256) {
                tracing::info!(plugin = %l.manifest.name, version = %l.manifest.version,
                    hooks = ?l.manifest.hooks.iter().map(|h| h.name()).collect::<Vec<_>>(), "plugin loaded");
            }
        }
        *self.0.problems.write().unwrap() = problems;
        *self.0.loaded.write().unwrap() = Arc::new(loaded);
        self.seed_states().await;
    }

    pub fn loaded(&self) -> Arc<Vec<Arc<Loaded>>> {
        self.0.loaded.read().unwrap().clone()
    }

    pub fn problems(&self) -> Vec<Problem> {
        self.0.problems.read().unwrap().clone()
    }

    pub fn stats(&self, name: &str) -> Stats {
        self.0.stats.lock().unwrap().get(name).cloned().unwrap_or_default()
    }

    /// Creates the database rows of plugins seen for the first time: directory plugins
    /// start enabled with the grants of `plugins.grants`; bundled ones start disabled
    /// with what they request granted (they ship with Vellum).
    async fn seed_states(&self) {
        let Some(store) = &self.0.store else {
            let mut states = self.0.states.write().unwrap();
            for l in self.loaded().iter() {
                states
                    .1
                    .entry(l.manifest.name.clone())
                    .or_insert_with(|| self.default_state(l));
            }
            states.0 = Some(Instant::now());
            return;
        };
        for l in self.loaded().iter() {
            let s = self.default_state(l);
            if let Err(e) = store
                .insert_plugin_state(&l.manifest.name, s.enabled, "{}", &grants_json(&s.granted))
                .await
            {
                tracing::warn!(plugin = %l.manifest.name, error = ?e, "plugins: could not store the plugin's state");
            }
        }
        self.0.states.write().unwrap().0 = None;
        let _ = self.refresh_states(true).await;
    }

    fn default_state(&self, l: &Loaded) -> State {
        let granted: BTreeSet<Capability> = match &l.source {
            Source::Bundled => l.manifest.capabilities.iter().copied().collect(),
            Source::Dir(_) => self
                .0
                .config
                .grants
                .get(&l.manifest.name)
                .map(|g| g.iter().filter_map(|c| Capability::parse(c)).collect())
                .unwrap_or_default(),
        };
        State {
            enabled: matches!(l.source, Source::Dir(_)),
            config: Map::new(),
            granted,
            disabled_reason: None,
        }
    }

    /// The state of every plugin, read from the database when the cached copy is older
    /// than [`STATE_TTL`] (or `force`).
    async fn refresh_states(&self, force: bool) -> Result<()> {
        let Some(store) = &self.0.store else { return Ok(()) };
        {
            let s = self.0.states.read().unwrap();
            if !force && s.0.is_some_and(|t| t.elapsed() < STATE_TTL) {
                return Ok(());
            }
        }
        let rows = store.plugin_states().await?;
        let mut map = HashMap::new();
        for r in rows {
            let config = serde_json::from_str::<Map<String, Value>>(&r.config).unwrap_or_default();
            let granted = serde_json::from_str::<Vec<String>>(&r.granted)
                .unwrap_or_default()
                .iter()
                .filter_map(|c| Capability::parse(c))
                .collect();
            map.insert(
                r.name,
                State {
                    enabled: r.enabled,
                    config,
                    granted,
                    disabled_reason: r.disabled_reason,
                },
            );
        }
        *self.0.states.write().unwrap() = (Some(Instant::now()), map);
        Ok(())
    }

    pub async fn state(&self, name: &str) -> Option<State> {
        let _ = self.refresh_states(false).await;
        self.0.states.read().unwrap().1.get(name).cloned()
    }

    /// The enabled plugins subscribed to `hook`, in order, with their state.
    async fn chain(&self, hook: Hook) -> Vec<(Arc<Loaded>, State)> {
        let loaded = self.loaded();
        if !loaded.iter().any(|l| l.manifest.hooks.contains(&hook)) {
            return Vec::new();
        }
        if let Err(e) = self.refresh_states(false).await {
            tracing::warn!(error = ?e.public_message(), "plugins: could not read plugin state; using the last known");
        }
        let states = self.0.states.read().unwrap();
        loaded
            .iter()
            .filter(|l| l.manifest.hooks.contains(&hook))
            .filter_map(|l| {
                let s = states.1.get(&l.manifest.name)?;
                s.enabled.then(|| (l.clone(), s.clone()))
            })
            .collect()
    }

    /// Whether any enabled plugin subscribes to `hook` (callers skip building the
    /// record when none does).
    pub async fn wants(&self, hook: Hook) -> bool {
        !self.chain(hook).await.is_empty()
    }

    fn limits(&self, m: &Manifest) -> CallLimits {
        let c = &self.0.config;
        let mib = m
            .limits
            .memory_mib
            .unwrap_or(c.memory_mib)
            .min(c.memory_mib)
            .min(runtime::MAX_MEMORY_MIB);
        CallLimits {
            fuel: m.limits.fuel.unwrap_or(c.fuel).min(c.fuel),
            timeout: Duration::from_millis(m.limits.timeout_ms.unwrap_or(c.timeout_ms).min(c.timeout_ms)),
            memory_bytes: (mib as usize) << 20,
            max_output_bytes: c.max_output_bytes,
        }
    }

    /// One call of one plugin, on a blocking thread, with statistics.
    async fn call(
        &self,
        l: &Arc<Loaded>,
        state: &State,
        hook: Hook,
        input: Input,
        caller: &Caller,
    ) -> std::result::Result<Output, CallFailure> {
        let Some(rt) = self.0.runtime.clone() else {
            return Err(CallFailure::new(FailureKind::Trap, "the plugin runtime is not running"));
        };
        let limits = self.limits(&l.manifest);
        if runtime::input_bytes(&input) > self.0.config.max_input_bytes {
            let f = CallFailure::new(
                FailureKind::InputTooLarge,
                format!(
                    "the document is larger than plugins.max_input_bytes ({})",
                    self.0.config.max_input_bytes
                ),
            );
            self.record(&l.manifest.name, None, Err(&f)).await;
            return Err(f);
        }
        let permit = match tokio::time::timeout(limits.timeout, self.0.calls.clone().acquire_owned()).await {
            Ok(Ok(p)) => p,
            _ => {
                let f = CallFailure::new(FailureKind::Busy, "too many plugin calls at once; try again");
                self.record(&l.manifest.name, None, Err(&f)).await;
                return Err(f);
            }
        };
        let env = CallEnv {
            plugin: Arc::from(l.manifest.name.as_str()),
            granted: state
                .granted
                .intersection(&l.manifest.capabilities.iter().copied().collect())
                .copied()
                .collect(),
            config: Arc::new(l.manifest.effective_config(&state.config)),
            kv_quota: self.0.config.kv_quota_bytes,
            services: caller.services.clone(),
            limits,
        };
        let l2 = l.clone();
        let called = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            rt.call(&l2.prepared, hook, input, env)
        })
        .await;
        let called = match called {
            Ok(c) => c,
            Err(e) => {
                let f = CallFailure::new(FailureKind::Trap, format!("the call panicked in the host: {e}"));
                self.record(&l.manifest.name, None, Err(&f)).await;
                return Err(f);
            }
        };
        for line in &called.logs {
            let (plugin, msg) = (&l.manifest.name, &line.message);
            match line.level {
                "error" | "stderr" => tracing::warn!(plugin = %plugin, hook = hook.name(), "{msg}"),
                "warn" => tracing::warn!(plugin = %plugin, hook = hook.name(), "{msg}"),
                "info" => tracing::info!(plugin = %plugin, hook = hook.name(), "{msg}"),
                _ => tracing::debug!(plugin = %plugin, hook = hook.name(), "{msg}"),
            }
        }
        let rejected = matches!(&called.result, Ok(Output::Outcome(WitOutcome::Reject(_))));
        self.record(
            &l.manifest.name,
            Some((called.elapsed, called.fuel_used, rejected)),
            called.result.as_ref().map(|_| ()),
        )
        .await;
        called.result
    }

    async fn record(
        &self,
        name: &str,
        call: Option<(Duration, u64, bool)>,
        result: std::result::Result<(), &CallFailure>,
    ) {
        let disable = {
            let mut all = self.0.stats.lock().unwrap();
            let s = all.entry(name.to_string()).or_default();
            s.calls += 1;
            if let Some((elapsed, fuel, rejected)) = call {
                s.fuel_used += fuel;
                s.rejections += u64::from(rejected);
                if s.recent.len() == RECENT_CALLS {
                    s.recent.pop_front();
                }
                s.recent.push_back(elapsed.as_micros().min(u32::MAX as u128) as u32);
            }
            match result {
                Ok(()) => None,
                Err(f) if f.kind == FailureKind::Busy || f.kind == FailureKind::InputTooLarge => {
                    s.failures += 1;
                    None
                }
                Err(f) => {
                    s.failures += 1;
                    s.last_failure = Some(format!("{}: {}", f.kind.name(), f.message));
                    let now = Instant::now();
                    s.recent_failures.push_back(now);
                    while s
                        .recent_failures
                        .front()
                        .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(60))
                    {
                        s.recent_failures.pop_front();
                    }
                    let limit = self.0.config.failures_before_disable;
                    (limit > 0 && s.recent_failures.len() >= limit as usize).then(|| {
                        s.recent_failures.clear();
                        format!(
                            "disabled after {limit} failures within a minute; the last: {}: {}",
                            f.kind.name(),
                            f.message
                        )
                    })
                }
            }
        };
        if let Some(reason) = disable {
            tracing::error!(plugin = %name, %reason, "plugin disabled");
            if let Err(e) = self
                .write_state(name, |s| {
                    s.enabled = false;
                    s.disabled_reason = Some(reason.clone());
                })
                .await
            {
                tracing::warn!(plugin = %name, error = ?e.public_message(), "plugins: could not store the disable");
            }
        }
    }

    /// Changes one plugin's state, in the database and here.
    async fn write_state(&self, name: &str, change: impl FnOnce(&mut State)) -> Result<State> {
        let _ = self.refresh_states(true).await;
        let mut state = {
            let states = self.0.states.read().unwrap();
            states.1.get(name).cloned()
        }
        .ok_or(Error::NotFound("plugin"))?;
        change(&mut state);
        if let Some(store) = &self.0.store {
            store
                .put_plugin_state(
                    name,
                    state.enabled,
                    &Value::Object(state.config.clone()).to_string(),
                    &grants_json(&state.granted),
                    state.disabled_reason.as_deref(),
                )
                .await?;
        }
        self.0.states.write().unwrap().1.insert(name.to_string(), state.clone());
        Ok(state)
    }

    fn find(&self, name: &str) -> Result<Arc<Loaded>> {
        self.loaded()
            .iter()
            .find(|l| l.manifest.name == name)
            .cloned()
            .ok_or(Error::NotFound("plugin"))
    }

    pub async fn set_enabled(&self, who: &Principal, name: &str, enabled: bool) -> Result<State> {
        require_admin(who)?;
        self.find(name)?;
        if enabled {
            self.0
                .stats
                .lock()
                .unwrap()
                .entry(name.to_string())
                .or_default()
                .recent_failures
                .clear();
        }
        self.write_state(name, |s| {
            s.enabled = enabled;
            s.disabled_reason = None;
        })
        .await
    }

    pub async fn set_config(&self, who: &Principal, name: &str, config: &Value) -> Result<State> {
        require_admin(who)?;
        let l = self.find(name)?;
        let config = l
            .manifest
            .validate_config(config)
            .map_err(|(field, message)| Error::validation(field, message))?;
        self.write_state(name, |s| s.config = config).await
    }

    pub async fn set_grants(&self, who: &Principal, name: &str, grants: &[Capability]) -> Result<State> {
        require_admin(who)?;
        let l = self.find(name)?;
        if let Some(c) = grants.iter().find(|c| !l.manifest.capabilities.contains(c)) {
            return Err(Error::validation(
                "capabilities",
                format!("`{}` is not requested by the plugin's manifest", c.name()),
            ));
        }
        self.write_state(name, |s| s.granted = grants.iter().copied().collect())
            .await
    }

    /// Runs the `before-save-version`, `before-publish` or `on-metadata-change` chain.
    /// `Ok(None)`: nothing changed; `Ok(Some(doc))`: the document as the chain left it.
    pub async fn run_outcome(
        &self,
        hook: Hook,
        caller: &Caller,
        doc: Record,
        previous: Option<Record>,
    ) -> std::result::Result<Option<Record>, HookError> {
        let chain = self.chain(hook).await;
        let mut current = doc;
        let mut changed = false;
        for (l, state) in chain {
            let ctx = context(hook, caller, previous.clone());
            let input = Input::Outcome(ctx, current.clone());
            match self.call(&l, &state, hook, input, caller).await {
                Ok(Output::Outcome(WitOutcome::Unchanged)) => {}
                Ok(Output::Outcome(WitOutcome::Modified(d))) => {
                    if let Err(why) = check_modified(hook, &current, &d) {
                        self.fail(&l, hook, CallFailure::new(FailureKind::InvalidOutput, why))?;
                        continue;
                    }
                    changed = true;
                    current = d;
                }
                Ok(Output::Outcome(WitOutcome::Reject(r))) => {
                    return Err(HookError::Rejected {
                        plugin: l.manifest.name.clone(),
                        code: r.code,
                        message: r.message,
                        field: r.field,
                    });
                }
                Ok(_) => {}
                Err(f) => self.fail(&l, hook, f)?,
            }
        }
        Ok(changed.then_some(current))
    }

    /// A failure under the plugin's policy: closed → the error; open → logged.
    fn fail(&self, l: &Loaded, hook: Hook, f: CallFailure) -> std::result::Result<(), HookError> {
        match l.manifest.failure_for(hook) {
            Failure::Closed => Err(HookError::Failed {
                plugin: l.manifest.name.clone(),
                kind: f.kind,
                message: f.message,
            }),
            Failure::Open => {
                tracing::warn!(plugin = %l.manifest.name, hook = hook.name(), kind = f.kind.name(), message = %f.message, "plugin failed; skipped (failure = open)");
                Ok(())
            }
        }
    }

    /// Runs the `enrich` chain: each plugin's fields, keyed by its name.
    pub async fn run_enrich(&self, caller: &Caller, doc: &Record) -> Map<String, Value> {
        let mut fields = Map::new();
        for (l, state) in self.chain(Hook::Enrich).await {
            let input = Input::Enrich(context(Hook::Enrich, caller, None), doc.clone());
            match self.call(&l, &state, Hook::Enrich, input, caller).await {
                Ok(Output::Enrich(Ok(json))) => match serde_json::from_str::<Value>(&json) {
                    Ok(v @ Value::Object(_)) => {
                        fields.insert(l.manifest.name.clone(), v);
                    }
                    _ => {
                        tracing::warn!(plugin = %l.manifest.name, "enrich returned something other than a JSON object; ignored")
                    }
                },
                Ok(Output::Enrich(Err(why))) => tracing::warn!(plugin = %l.manifest.name, %why, "enrich refused"),
                Ok(_) => {}
                Err(f) => {
                    tracing::warn!(plugin = %l.manifest.name, kind = f.kind.name(), message = %f.message, "enrich failed; its fields are left out")
                }
            }
        }
        fields
    }

    /// Runs the `render` chain over delivered HTML. `None` when no plugin changed it.
    /// The caller sanitizes the result.
    pub async fn run_render(&self, caller: &Caller, doc: &Record, html: &str) -> Option<String> {
        let chain = self.chain(Hook::Render).await;
        let mut current: Option<String> = None;
        for (l, state) in chain {
            let now = current.clone().unwrap_or_else(|| html.to_string());
            let input = Input::Render(context(Hook::Render, caller, None), doc.clone(), now);
            match self.call(&l, &state, Hook::Render, input, caller).await {
                Ok(Output::Render(Some(h))) => current = Some(h),
                Ok(_) => {}
                Err(f) => {
                    tracing::warn!(plugin = %l.manifest.name, kind = f.kind.name(), message = %f.message, "render failed; its change is left out")
                }
            }
        }
        current
    }

    /// Runs `after-publish` in the background: each plugin up to 3 times, with backoff.
    /// At most `after_publish_queue` publishes wait for theirs at once; past that, a
    /// publish's calls are skipped (counted and logged), so a slow or failing plugin
    /// cannot pile up work without bound.
    pub fn after_publish(&self, caller: Caller, doc: Record) {
        let Ok(permit) = self.0.after_publish.clone().try_acquire_owned() else {
            crate::metrics::after_publish_dropped();
            tracing::warn!(document = %doc.id, "after-publish queue full; this publish's after-publish calls are skipped");
            return;
        };
        let this = self.clone();
        tokio::spawn(async move {
            let _permit = permit;
            for (l, state) in this.chain(Hook::AfterPublish).await {
                let name = &l.manifest.name;
                for attempt in 1..=AFTER_PUBLISH_ATTEMPTS {
                    let input = Input::AfterPublish(context(Hook::AfterPublish, &caller, None), doc.clone());
                    let failed = match this.call(&l, &state, Hook::AfterPublish, input, &caller).await {
                        Ok(Output::Done(Err(why))) => why,
                        Ok(_) => {
                            crate::metrics::after_publish(name, "ok");
                            break;
                        }
                        Err(f) => format!("{}: {}", f.kind.name(), f.message),
                    };
                    if attempt == AFTER_PUBLISH_ATTEMPTS {
                        tracing::warn!(plugin = %name, attempt, why = %failed, "after-publish failed; giving up");
                        crate::metrics::after_publish(name, "gave-up");
                        break;
                    }
                    tracing::warn!(plugin = %name, attempt, why = %failed, "after-publish failed; retrying");
                    crate::metrics::after_publish(name, "retried");
                    tokio::time::sleep(Duration::from_millis(200 * 4u64.pow(attempt - 1))).await;
                }
            }
        });
    }

    /// Runs one hook of a plugin outside the server (`vellum plugin run`).
    pub async fn run_one(
        &self,
        name: &str,
        hook: Hook,
        caller: &Caller,
        doc: Record,
        html: Option<String>,
    ) -> Result<(std::result::Result<Output, CallFailure>, Stats)> {
        let l = self.find(name)?;
        let state = self.state(name).await.unwrap_or_else(|| self.default_state(&l));
        let ctx = context(hook, caller, None);
        let input = match hook {
            Hook::Render => Input::Render(ctx, doc.clone(), html.unwrap_or_else(|| doc.body_html.clone())),
            Hook::Enrich => Input::Enrich(ctx, doc),
            Hook::AfterPublish => Input::AfterPublish(ctx, doc),
            _ => Input::Outcome(ctx, doc),
        };
        let out = self.call(&l, &state, hook, input, caller).await;
        Ok((out, self.stats(name)))
    }

    /// Grants everything a plugin requests and enables it, without a database (the
    /// local runner).
    pub fn trust_all(&self) {
        let mut states = self.0.states.write().unwrap();
        for l in self.loaded().iter() {
            states.1.insert(
                l.manifest.name.clone(),
                State {
                    enabled: true,
                    config: Map::new(),
                    granted: l.manifest.capabilities.iter().copied().collect(),
                    disabled_reason: None,
                },
            );
        }
    }

    /// Watches the plugins directory and reloads when its files change (debounced).
    pub fn watch(&self) {
        if !self.0.config.watch || self.0.runtime.is_none() {
            return;
        }
        let dir = self.0.dir.clone();
        if !dir.is_dir() {
            return;
        }
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if event.is_ok_and(|e| !e.kind.is_access()) {
                let _ = tx.send(());
            }
        });
        let mut watcher = match watcher {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "plugins: cannot watch the plugins directory; no hot reload");
                return;
            }
        };
        use notify::Watcher;
        if let Err(e) = watcher.watch(&dir, notify::RecursiveMode::Recursive) {
            tracing::warn!(error = %e, dir = %dir.display(), "plugins: cannot watch the plugins directory; no hot reload");
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let _watcher = watcher;
            while rx.recv().await.is_some() {
                // Let a copy finish: wait until the directory is quiet.
                loop {
                    match tokio::time::timeout(Duration::from_millis(250), rx.recv()).await {
                        Ok(Some(())) => continue,
                        Ok(None) => return,
                        Err(_) => break,
                    }
                }
                this.reload().await;
            }
        });
    }
}

/// What a hook may change: never the id or the version; the status only in
/// `on-metadata-change`; a body only as valid ProseMirror JSON (HTML is parsed, so
/// anything goes there). Title and slug are validated by the caller after the chain.
fn check_modified(hook: Hook, before: &Record, after: &Record) -> std::result::Result<(), String> {
    if after.id != before.id {
        return Err("changed the document's id".into());
    }
    if after.version != before.version {
        return Err("changed the version number".into());
    }
    if hook != Hook::OnMetadataChange && after.status != before.status {
        return Err(format!(
            "changed the status in `{}` (only on-metadata-change may)",
            hook.name()
        ));
    }
    if hook != Hook::OnMetadataChange && after.body_json != before.body_json {
        let json: Value = serde_json::from_str(&after.body_json).map_err(|e| format!("body-json is not JSON: {e}"))?;
        crate::content::parse_input(crate::content::BodyInput::Json(json))
            .map_err(|e| format!("body-json is not a valid document: {}: {}", e.path, e.message))?;
    }
    Ok(())
}

fn grants_json(g: &BTreeSet<Capability>) -> String {
    Value::from(g.iter().map(|c| c.name()).collect::<Vec<_>>()).to_string()
}

fn require_admin(who: &Principal) -> Result<()> {
    match who.user() {
        None => Err(Error::Unauthenticated),
        Some(u) if u.role == Role::Admin => Ok(()),
        Some(_) => Err(Error::forbidden("only admins manage plugins")),
    }
}

fn context(hook: Hook, caller: &Caller, previous: Option<Record>) -> WitContext {
    WitContext {
        hook: match hook {
            Hook::BeforeSaveVersion => WitHook::BeforeSaveVersion,
            Hook::BeforePublish => WitHook::BeforePublish,
            Hook::AfterPublish => WitHook::AfterPublish,
            Hook::OnMetadataChange => WitHook::OnMetadataChange,
            Hook::Render => WitHook::Render,
            Hook::Enrich => WitHook::Enrich,
        },
        actor: caller.actor.map(|u| u.to_string()),
        request_id: caller.request_id.clone(),
        previous,
    }
}

/// Loads every plugin: bundled first, then each folder of the plugins directory (a
/// folder's plugin replaces a bundled one of the same name). Unchanged plugins are
/// kept as they are.
fn scan(
    rt: &Runtime,
    config: &PluginsConfig,
    dir: &Path,
    cache: &Path,
    previous: &[Arc<Loaded>],
) -> (Vec<Arc<Loaded>>, Vec<Problem>) {
    let mut loaded: BTreeMap<String, Arc<Loaded>> = BTreeMap::new();
    let mut problems = Vec::new();
    let mut add = |source: Source, label: String, manifest: std::result::Result<Manifest, String>, wasm: &[u8]| {
        let result = manifest.and_then(|m| {
            let sha = match &source {
                Source::Bundled => runtime::sha256_hex(wasm),
                Source::Dir(_) => runtime::check_sha(&m, wasm)?,
            };
            if let Some(p) = previous
                .iter()
                .find(|p| p.sha256 == sha && p.manifest == m && p.source == source)
            {
                return Ok(p.clone());
            }
            let component = rt.compile(wasm, &sha, Some(cache)).map_err(|e| format!("{e:#}"))?;
            let prepared = rt.prepare(&m, component)?;
            Ok(Arc::new(Loaded {
                manifest: m,
                sha256: sha,
                source: source.clone(),
                loaded_at: chrono::Utc::now(),
                prepared,
            }))
        });
        match result {
            Ok(l) => {
                loaded.insert(l.manifest.name.clone(), l);
            }
            Err(error) => {
                let name = label.clone();
                // A broken new version keeps the old one running.
                if let Some(old) = previous.iter().find(|p| p.manifest.name == name && p.source == source) {
                    loaded.insert(name.clone(), old.clone());
                }
                problems.push(Problem {
                    name,
                    source: match &source {
                        Source::Bundled => "bundled".into(),
                        Source::Dir(d) => d.display().to_string(),
                    },
                    error,
                });
            }
        }
    };
    if config.bundled {
        for (name, toml, wasm) in bundled::BUNDLED {
            add(Source::Bundled, name.to_string(), Manifest::parse(toml), wasm);
        }
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        let mut dirs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
        dirs.sort();
        for d in dirs {
            let label = d
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            match runtime::read_dir(&d) {
                Ok((m, wasm, _)) => {
                    if m.name != label {
                        let why = format!(
                            "the folder is `{label}` but the manifest names `{}`; they must match",
                            m.name
                        );
                        add(Source::Dir(d.clone()), label, Err(why), &[]);
                        continue;
                    }
                    add(Source::Dir(d.clone()), label, Ok(m), &wasm)
                }
                Err(e) => add(Source::Dir(d.clone()), label, Err(e), &[]),
            }
        }
    }
    (loaded.into_values().collect(), problems)
}
