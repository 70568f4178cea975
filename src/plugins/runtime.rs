//! The sandbox: one wasmtime engine for every plugin, a component per plugin checked
//! against its manifest, and a fresh instance for every call.
//!
//! Invariants:
//! - Nothing runs before the component's real imports and exports are checked against
//!   the manifest: it exports every hook it subscribes to, and imports only WASI and the
//!   capabilities it requests.
//! - Every call gets a new `Store` and instance (nothing leaks between calls or
//!   documents), an instruction budget (fuel: a limit an author can reproduce), an
//!   epoch deadline (wall clock), a memory cap and a size cap on what it returns.
//! - WASI is linked with an empty context: no preopened directories, no environment or
//!   arguments, sockets denied, clocks frozen at zero; stdout and stderr go to the
//!   plugin's log.
//! - A capability the operator has not granted fails the call (a typed error), however
//!   the component got to call it.
//! - Calls are synchronous and run on blocking threads (`super::Plugins` does that),
//!   never on the async executor.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, InstancePre, Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::manifest::{Capability, Hook, Manifest, WIT_MAJOR, WIT_MINOR, WIT_PACKAGE};

pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        path: "sdk/wit",
        world: "plugin",
        imports: { default: trappable },
    });
}

use bindings::exports::vellum::plugin as hooks;
use bindings::vellum::plugin as caps;
pub use bindings::vellum::plugin::types::{
    Document as WitDocument, Hook as WitHook, HookContext as WitContext, Outcome as WitOutcome,
};

/// How often the engine's epoch advances: the resolution of call timeouts.
const EPOCH_TICK: Duration = Duration::from_millis(5);
/// Guest stack: deep recursion traps here, well before the host's stack is at risk.
const MAX_WASM_STACK: usize = 512 * 1024;
/// The most linear memory any plugin may be granted (the pool's slot size).
pub const MAX_MEMORY_MIB: u64 = 256;
/// What a plugin's log may hold per call; more is cut.
const MAX_LOG_BYTES: usize = 16 * 1024;

/// Limits of one call, after the host clamped the manifest's requests to its maxima.
#[derive(Debug, Clone, Copy)]
pub struct CallLimits {
    pub fuel: u64,
    pub timeout: Duration,
    pub memory_bytes: usize,
    pub max_output_bytes: usize,
}

/// Why a call did not produce a usable answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, async_graphql::Enum, serde::Serialize)]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    OutOfFuel,
    Timeout,
    MemoryLimit,
    Trap,
    InvalidOutput,
    CapabilityDenied,
    InputTooLarge,
    Busy,
}

impl FailureKind {
    pub fn name(self) -> &'static str {
        match self {
            FailureKind::OutOfFuel => "out-of-fuel",
            FailureKind::Timeout => "timeout",
            FailureKind::MemoryLimit => "memory-limit",
            FailureKind::Trap => "trap",
            FailureKind::InvalidOutput => "invalid-output",
            FailureKind::CapabilityDenied => "capability-denied",
            FailureKind::InputTooLarge => "input-too-large",
            FailureKind::Busy => "busy",
        }
    }
}

#[derive(Debug, Clone)]
pub struct CallFailure {
    pub kind: FailureKind,
    pub message: String,
}

impl CallFailure {
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

/// A capability call refused by the host: fails the call with `CapabilityDenied`.
#[derive(Debug)]
struct Denied(Capability);

impl std::fmt::Display for Denied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "capability `{}` is not granted to this plugin", self.0.name())
    }
}
impl std::error::Error for Denied {}

/// Memory beyond the cap: fails the call with `MemoryLimit`.
#[derive(Debug)]
struct OverMemory(usize);

impl std::fmt::Display for OverMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "linear memory would exceed the cap of {} MiB", self.0 >> 20)
    }
}
impl std::error::Error for OverMemory {}

/// What the host offers a call beyond the sandbox: state and lookups, behind the
/// capability checks of [`HostState`].
pub trait Services: Send + Sync {
    fn kv_get(&self, plugin: &str, key: &str) -> anyhow::Result<Option<Vec<u8>>>;
    /// `Ok(Err(why))` when the quota would be exceeded.
    fn kv_set(&self, plugin: &str, key: &str, value: &[u8], quota: u64) -> anyhow::Result<Result<(), String>>;
    fn kv_delete(&self, plugin: &str, key: &str) -> anyhow::Result<()>;
    /// A document the acting user may read, by id or slug.
    fn document(&self, id_or_slug: &str) -> anyhow::Result<Option<WitDocument>>;
}

/// One log line a plugin wrote.
#[derive(Debug, Clone)]
pub struct LogLine {
    pub level: &'static str,
    pub message: String,
}

/// The data of one call's store.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    memory_cap: usize,
    over_memory: bool,
    plugin: Arc<str>,
    granted: BTreeSet<Capability>,
    config: Arc<serde_json::Map<String, serde_json::Value>>,
    kv_quota: u64,
    services: Arc<dyn Services>,
    denied: Option<Capability>,
    logs: Vec<LogLine>,
    log_bytes: usize,
    stderr: wasmtime_wasi::p2::pipe::MemoryOutputPipe,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wasmtime::ResourceLimiter for HostState {
    fn memory_growing(&mut self, _current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.memory_cap {
            self.over_memory = true;
            return Err(wasmtime::Error::new(OverMemory(self.memory_cap)));
        }
        Ok(true)
    }
    fn table_growing(&mut self, _current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

impl HostState {
    fn require(&mut self, cap: Capability) -> wasmtime::Result<()> {
        if self.granted.contains(&cap) {
            Ok(())
        } else {
            self.denied = Some(cap);
            Err(wasmtime::Error::new(Denied(cap)))
        }
    }

    fn push_log(&mut self, level: &'static str, message: String) {
        if self.log_bytes >= MAX_LOG_BYTES {
            return;
        }
        let room = MAX_LOG_BYTES - self.log_bytes;
        let mut message = message;
        if message.len() > room {
            let mut cut = room;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        self.log_bytes += message.len();
        self.logs.push(LogLine { level, message });
    }
}

fn internal(e: anyhow::Error) -> wasmtime::Error {
    wasmtime::Error::msg(format!("host error: {e:#}"))
}

impl caps::types::Host for HostState {}

impl caps::log::Host for HostState {
    fn log(&mut self, level: caps::log::Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            caps::log::Level::Debug => "debug",
            caps::log::Level::Info => "info",
            caps::log::Level::Warn => "warn",
            caps::log::Level::Error => "error",
        };
        self.push_log(level, message);
        Ok(())
    }
}

impl caps::config::Host for HostState {
    fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        self.require(Capability::Config)?;
        Ok(self.config.get(&key).map(|v| v.to_string()))
    }
}

impl caps::kv::Host for HostState {
    fn get(&mut self, key: String) -> wasmtime::Result<Option<Vec<u8>>> {
        self.require(Capability::Kv)?;
        self.services.kv_get(&self.plugin, &key).map_err(internal)
    }
    fn set(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<Result<(), String>> {
        self.require(Capability::Kv)?;
        self.services
            .kv_set(&self.plugin, &key, &value, self.kv_quota)
            .map_err(internal)
    }
    fn delete(&mut self, key: String) -> wasmtime::Result<()> {
        self.require(Capability::Kv)?;
        self.services.kv_delete(&self.plugin, &key).map_err(internal)
    }
}

impl caps::content::Host for HostState {
    fn get_document(&mut self, id_or_slug: String) -> wasmtime::Result<Option<WitDocument>> {
        self.require(Capability::Content)?;
        self.services.document(&id_or_slug).map_err(internal)
    }
}

struct Frozen;
impl wasmtime_wasi::HostWallClock for Frozen {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}
impl wasmtime_wasi::HostMonotonicClock for Frozen {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

/// The engine every plugin shares, with its linker and its epoch ticker.
pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    pooling: bool,
}

static RUNTIME: OnceLock<Result<Arc<Runtime>, String>> = OnceLock::new();

impl Runtime {
    /// The process's runtime, made on first use (so a server without plugins never
    /// reserves the pool or starts the ticker).
    pub fn shared(max_concurrent: u32) -> Result<Arc<Runtime>, String> {
        RUNTIME
            .get_or_init(|| Runtime::new(max_concurrent).map(Arc::new).map_err(|e| format!("{e:#}")))
            .clone()
    }

    fn new(max_concurrent: u32) -> anyhow::Result<Runtime> {
        let base = |pool: Option<u32>| -> anyhow::Result<Engine> {
            let mut c = Config::new();
            c.wasm_component_model(true)
                .consume_fuel(true)
                .epoch_interruption(true)
                .max_wasm_stack(MAX_WASM_STACK)
                .parallel_compilation(true);
            if let Some(n) = pool {
                let mut p = PoolingAllocationConfig::default();
                p.total_component_instances(n)
                    .total_core_instances(n * 8)
                    .total_memories(n * 2)
                    .total_tables(n * 8)
                    .max_core_instances_per_component(64)
                    .max_memories_per_component(4)
                    .max_tables_per_component(32)
                    .max_memory_size((MAX_MEMORY_MIB as usize) << 20);
                c.allocation_strategy(InstanceAllocationStrategy::Pooling(p));
            }
            Engine::new(&c).map_err(|e| anyhow::anyhow!("{e:#}"))
        };
        // The pool reserves address space up front; where that is refused (a tight
        // `ulimit -v`), instances are allocated on demand instead.
        let pool_size = max_concurrent.clamp(4, 1000) * 2;
        let (engine, pooling) = match base(Some(pool_size)) {
            Ok(e) => (e, true),
            Err(e) => {
                tracing::warn!(error = %e, "plugins: the pooling allocator is unavailable; allocating on demand");
                (base(None)?, false)
            }
        };
        let mut linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(|e| anyhow::anyhow!("{e:#}"))?;
        bindings::vellum::plugin::types::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        caps::log::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        caps::config::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        caps::kv::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        caps::content::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let ticker = engine.weak();
        std::thread::Builder::new().name("plugin-epoch".into()).spawn(move || {
            while let Some(engine) = ticker.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })?;
        Ok(Runtime {
            engine,
            linker,
            pooling,
        })
    }

    pub fn pooling(&self) -> bool {
        self.pooling
    }

    /// Compiles a component, or loads it compiled from `cache_dir` (keyed by the
    /// component's sha256 and the engine's compatibility hash).
    pub fn compile(&self, wasm: &[u8], sha256: &str, cache_dir: Option<&Path>) -> anyhow::Result<Component> {
        let cached = cache_dir.map(|d| d.join(format!("{sha256}-{}.cwasm", self.engine_key())));
        if let Some(path) = &cached
            && path.exists()
        {
            // SAFETY: the file is one this host wrote (below) for this engine's
            // configuration, named by the hash of the component it came from.
            match unsafe { Component::deserialize_file(&self.engine, path) } {
                Ok(c) => return Ok(c),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "plugins: cached artifact unusable; recompiling")
                }
            }
        }
        let component =
            Component::new(&self.engine, wasm).map_err(|e| anyhow::anyhow!("not a valid component: {e:#}"))?;
        if let Some(path) = cached {
            let write = || -> anyhow::Result<()> {
                std::fs::create_dir_all(path.parent().unwrap())?;
                let tmp = path.with_extension("tmp");
                std::fs::write(&tmp, component.serialize().map_err(|e| anyhow::anyhow!("{e:#}"))?)?;
                std::fs::rename(&tmp, &path)?;
                Ok(())
            };
            if let Err(e) = write() {
                tracing::warn!(path = %path.display(), error = %e, "plugins: could not cache the compiled component");
            }
        }
        Ok(component)
    }

    fn engine_key(&self) -> String {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        format!("{:016x}", h.finish())
    }

    /// Checks `component` against `manifest` and prepares it for instantiation.
    pub fn prepare(&self, manifest: &Manifest, component: Component) -> Result<Prepared, String> {
        let ty = component.component_type();
        let mut exported = BTreeSet::new();
        for (name, _) in ty.exports(&self.engine) {
            if let Some(hook) = Hook::ALL.iter().find(|h| is_ours(name, h.name())) {
                exported.insert(*hook);
            }
        }
        for hook in &manifest.hooks {
            if !exported.contains(hook) {
                return Err(format!(
                    "the manifest subscribes to `{}`, which the component does not export \
                     (it exports: {})",
                    hook.name(),
                    list(exported.iter().map(|h| h.name()))
                ));
            }
        }
        for (name, _) in ty.imports(&self.engine) {
            if name.starts_with("wasi:") {
                let version_ok = name.rsplit_once('@').is_some_and(|(_, v)| v.starts_with("0.2."));
                if !version_ok {
                    return Err(format!("imports `{name}`: only WASI 0.2 is linked"));
                }
                continue;
            }
            let Some(iface) = ours(name) else {
                return Err(format!("imports `{name}`, which this host does not provide"));
            };
            match iface {
                "types" | "log" => {}
                other => match Capability::parse(other) {
                    Some(cap) if manifest.capabilities.contains(&cap) => {}
                    Some(cap) => {
                        return Err(format!(
                            "imports the `{}` capability without requesting it; add it to \
                             `capabilities` in plugin.toml",
                            cap.name()
                        ));
                    }
                    None => return Err(format!("imports `{name}`, which this host does not provide")),
                },
            }
        }
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| format!("cannot be linked: {e:#}"))?;
        let e = |e: wasmtime::Error| format!("bad exports: {e:#}");
        let has = |h: Hook| manifest.hooks.contains(&h);
        Ok(Prepared {
            before_save_version: has(Hook::BeforeSaveVersion)
                .then(|| hooks::before_save_version::GuestIndices::new(&pre))
                .transpose()
                .map_err(e)?,
            before_publish: has(Hook::BeforePublish)
                .then(|| hooks::before_publish::GuestIndices::new(&pre))
                .transpose()
                .map_err(e)?,
            after_publish: has(Hook::AfterPublish)
                .then(|| hooks::after_publish::GuestIndices::new(&pre))
                .transpose()
                .map_err(e)?,
            on_metadata_change: has(Hook::OnMetadataChange)
                .then(|| hooks::on_metadata_change::GuestIndices::new(&pre))
                .transpose()
                .map_err(e)?,
            render: has(Hook::Render)
                .then(|| hooks::render::GuestIndices::new(&pre))
                .transpose()
                .map_err(e)?,
            enrich: has(Hook::Enrich)
                .then(|| hooks::enrich::GuestIndices::new(&pre))
                .transpose()
                .map_err(e)?,
            pre,
        })
    }
}

fn list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let v: Vec<&str> = names.collect();
    if v.is_empty() { "nothing".into() } else { v.join(", ") }
}

/// `vellum:plugin/<iface>@0.<minor ≤ ours>.x` → `iface`.
fn ours(name: &str) -> Option<&str> {
    let rest = name.strip_prefix(WIT_PACKAGE)?.strip_prefix('/')?;
    let (iface, version) = rest.split_once('@')?;
    let mut parts = version.split('.').map(|p| p.parse::<u64>().ok());
    let (major, minor) = (parts.next()??, parts.next()??);
    (major == WIT_MAJOR && minor <= WIT_MINOR).then_some(iface)
}

fn is_ours(name: &str, iface: &str) -> bool {
    ours(name) == Some(iface)
}

/// A component ready to instantiate, with the export indices of its hooks.
pub struct Prepared {
    pre: InstancePre<HostState>,
    before_save_version: Option<hooks::before_save_version::GuestIndices>,
    before_publish: Option<hooks::before_publish::GuestIndices>,
    after_publish: Option<hooks::after_publish::GuestIndices>,
    on_metadata_change: Option<hooks::on_metadata_change::GuestIndices>,
    render: Option<hooks::render::GuestIndices>,
    enrich: Option<hooks::enrich::GuestIndices>,
}

/// What a hook is given.
pub enum Input {
    Outcome(WitContext, WitDocument),
    AfterPublish(WitContext, WitDocument),
    Render(WitContext, WitDocument, String),
    Enrich(WitContext, WitDocument),
}

/// What a hook answered.
#[derive(Debug)]
pub enum Output {
    Outcome(WitOutcome),
    Done(Result<(), String>),
    Render(Option<String>),
    Enrich(Result<String, String>),
}

/// Everything about one call but its input.
pub struct CallEnv {
    pub plugin: Arc<str>,
    pub granted: BTreeSet<Capability>,
    pub config: Arc<serde_json::Map<String, serde_json::Value>>,
    pub kv_quota: u64,
    pub services: Arc<dyn Services>,
    pub limits: CallLimits,
}

/// A call's answer, with what it cost.
pub struct Called {
    pub result: Result<Output, CallFailure>,
    pub fuel_used: u64,
    pub elapsed: Duration,
    pub logs: Vec<LogLine>,
}

impl Runtime {
    /// Runs one hook on a fresh instance. Blocks: call it on a blocking thread.
    pub fn call(&self, prepared: &Prepared, hook: Hook, input: Input, env: CallEnv) -> Called {
        let started = Instant::now();
        let stderr = wasmtime_wasi::p2::pipe::MemoryOutputPipe::new(MAX_LOG_BYTES);
        let wasi = WasiCtx::builder()
            .stdout(stderr.clone())
            .stderr(stderr.clone())
            .wall_clock(Frozen)
            .monotonic_clock(Frozen)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let state = HostState {
            wasi,
            table: ResourceTable::new(),
            memory_cap: env.limits.memory_bytes,
            over_memory: false,
            plugin: env.plugin.clone(),
            granted: env.granted,
            config: env.config,
            kv_quota: env.kv_quota,
            services: env.services,
            denied: None,
            logs: Vec::new(),
            log_bytes: 0,
            stderr,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| s as &mut dyn wasmtime::ResourceLimiter);
        let fuel = env.limits.fuel;
        let _ = store.set_fuel(fuel);
        let ticks = (env.limits.timeout.as_micros() / EPOCH_TICK.as_micros()).max(1) as u64;
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();

        let result = run(&mut store, prepared, hook, input);
        let fuel_used = fuel.saturating_sub(store.get_fuel().unwrap_or(0));
        let state = store.data_mut();
        let captured = state.stderr.contents();
        if !captured.is_empty() {
            let text = String::from_utf8_lossy(&captured).trim_end().to_string();
            state.push_log("stderr", text);
        }
        let result = match result {
            Ok(out) => check_size(out, env.limits.max_output_bytes),
            Err(e) => Err(classify(e, state, &env.limits)),
        };
        let logs = std::mem::take(&mut store.data_mut().logs);
        Called {
            result,
            fuel_used,
            elapsed: started.elapsed(),
            logs,
        }
    }
}

fn run(store: &mut Store<HostState>, p: &Prepared, hook: Hook, input: Input) -> wasmtime::Result<Output> {
    let missing = || wasmtime::Error::msg(format!("hook `{}` is not prepared", hook.name()));
    let instance = p.pre.instantiate(&mut *store)?;
    Ok(match (hook, input) {
        (Hook::BeforeSaveVersion, Input::Outcome(ctx, doc)) => {
            let g = p
                .before_save_version
                .as_ref()
                .ok_or_else(missing)?
                .load(&mut *store, &instance)?;
            Output::Outcome(g.call_before_save_version(&mut *store, &ctx, &doc)?)
        }
        (Hook::BeforePublish, Input::Outcome(ctx, doc)) => {
            let g = p
                .before_publish
                .as_ref()
                .ok_or_else(missing)?
                .load(&mut *store, &instance)?;
            Output::Outcome(g.call_before_publish(&mut *store, &ctx, &doc)?)
        }
        (Hook::OnMetadataChange, Input::Outcome(ctx, doc)) => {
            let g = p
                .on_metadata_change
                .as_ref()
                .ok_or_else(missing)?
                .load(&mut *store, &instance)?;
            Output::Outcome(g.call_on_metadata_change(&mut *store, &ctx, &doc)?)
        }
        (Hook::AfterPublish, Input::AfterPublish(ctx, doc)) => {
            let g = p
                .after_publish
                .as_ref()
                .ok_or_else(missing)?
                .load(&mut *store, &instance)?;
            Output::Done(g.call_after_publish(&mut *store, &ctx, &doc)?)
        }
        (Hook::Render, Input::Render(ctx, doc, html)) => {
            let g = p.render.as_ref().ok_or_else(missing)?.load(&mut *store, &instance)?;
            Output::Render(g.call_render(&mut *store, &ctx, &doc, &html)?)
        }
        (Hook::Enrich, Input::Enrich(ctx, doc)) => {
            let g = p.enrich.as_ref().ok_or_else(missing)?.load(&mut *store, &instance)?;
            Output::Enrich(g.call_enrich(&mut *store, &ctx, &doc)?)
        }
        _ => return Err(wasmtime::Error::msg("input does not fit the hook")),
    })
}

fn doc_bytes(d: &WitDocument) -> usize {
    d.id.len()
        + d.slug.len()
        + d.title.len()
        + d.status.len()
        + d.body_text.len()
        + d.body_html.len()
        + d.body_json.len()
        + d.fields_json.len()
}

/// The size of what a call gave back, against the cap.
fn check_size(out: Output, max: usize) -> Result<Output, CallFailure> {
    let size = match &out {
        Output::Outcome(WitOutcome::Modified(d)) => doc_bytes(d),
        Output::Outcome(WitOutcome::Reject(r)) => {
            r.code.len() + r.message.len() + r.field.as_ref().map_or(0, String::len)
        }
        Output::Outcome(WitOutcome::Unchanged) => 0,
        Output::Done(r) => r.as_ref().err().map_or(0, String::len),
        Output::Render(h) => h.as_ref().map_or(0, String::len),
        Output::Enrich(r) => match r {
            Ok(s) | Err(s) => s.len(),
        },
    };
    if size > max {
        return Err(CallFailure::new(
            FailureKind::InvalidOutput,
            format!("the output is {size} bytes, over the cap of {max}"),
        ));
    }
    Ok(out)
}

/// The input's size (checked against the cap before a call).
pub fn input_bytes(input: &Input) -> usize {
    match input {
        Input::Outcome(_, d) | Input::AfterPublish(_, d) | Input::Enrich(_, d) => doc_bytes(d),
        Input::Render(_, d, h) => doc_bytes(d) + h.len(),
    }
}

fn classify(e: wasmtime::Error, state: &HostState, limits: &CallLimits) -> CallFailure {
    if let Some(cap) = state.denied {
        return CallFailure::new(
            FailureKind::CapabilityDenied,
            format!("called the `{}` capability, which is not granted", cap.name()),
        );
    }
    if state.over_memory || e.downcast_ref::<OverMemory>().is_some() {
        return CallFailure::new(
            FailureKind::MemoryLimit,
            format!("ran out of memory (cap {} MiB)", limits.memory_bytes >> 20),
        );
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => CallFailure::new(
            FailureKind::OutOfFuel,
            format!("used its whole instruction budget ({} fuel)", limits.fuel),
        ),
        Some(Trap::Interrupt) => CallFailure::new(
            FailureKind::Timeout,
            format!("ran longer than {} ms", limits.timeout.as_millis()),
        ),
        Some(trap) => {
            let panic = state
                .logs
                .iter()
                .rev()
                .find(|l| l.message.contains("panicked"))
                .map(|l| format!(": {}", l.message.split_whitespace().collect::<Vec<_>>().join(" ")));
            CallFailure::new(
                FailureKind::Trap,
                format!("trapped ({trap}){}", panic.unwrap_or_default()),
            )
        }
        None if format!("{e:#}").contains("host error") => CallFailure::new(FailureKind::Trap, format!("{e:#}")),
        None => CallFailure::new(FailureKind::InvalidOutput, format!("{e:#}")),
    }
}

/// The sha256 of a component, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// A plugin directory's files: `plugin.toml` and `plugin.wasm`.
pub fn read_dir(dir: &Path) -> Result<(Manifest, Vec<u8>, PathBuf), String> {
    let toml_path = dir.join("plugin.toml");
    let text = std::fs::read_to_string(&toml_path).map_err(|e| format!("{}: {e}", toml_path.display()))?;
    let manifest = Manifest::parse(&text)?;
    let wasm_path = dir.join("plugin.wasm");
    let wasm = std::fs::read(&wasm_path).map_err(|e| format!("{}: {e}", wasm_path.display()))?;
    Ok((manifest, wasm, wasm_path))
}

/// Checks the manifest's sha256 against the component's bytes.
pub fn check_sha(manifest: &Manifest, wasm: &[u8]) -> Result<String, String> {
    let actual = sha256_hex(wasm);
    match &manifest.sha256 {
        Some(s) if s.eq_ignore_ascii_case(&actual) => Ok(actual),
        Some(s) => Err(format!(
            "plugin.wasm does not match the manifest's sha256 (manifest {s}, file {actual})"
        )),
        None => Err(format!(
            "plugin.toml has no sha256; add `sha256 = \"{actual}\"` once you trust this plugin.wasm"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_our_interfaces() {
        assert_eq!(ours("vellum:plugin/render@0.1.0"), Some("render"));
        assert_eq!(ours("vellum:plugin/kv@0.1.3"), Some("kv"));
        assert_eq!(
            ours("vellum:plugin/kv@0.2.0"),
            None,
            "a newer minor than the host serves"
        );
        assert_eq!(ours("vellum:plugin/kv@1.0.0"), None);
        assert_eq!(ours("vellum:plugin/kv"), None);
        assert_eq!(ours("other:plugin/kv@0.1.0"), None);
    }
}
