//! `vellum-load`: many y-websocket clients in one process against any y-websocket server.
//!
//! Each run prints one JSON line on stdout and a human summary on stderr, and exits
//! non-zero if the clients of a document do not converge (or the run fails). See
//! `ARCHITECTURE.md` ("Load tool") and `BENCHMARKS.md`.

mod check;
mod client;
mod http;
mod scenarios;
mod stats;
mod trace;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};

#[derive(Parser)]
#[command(name = "vellum-load", version, about = "Load tool for y-websocket servers")]
struct Cli {
    #[command(flatten)]
    target: TargetArgs,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Args, Clone)]
pub struct TargetArgs {
    /// WebSocket base URL; a document's URL is `<url>/<document>` (the y-websocket
    /// provider's convention). Default with `--vellum`: its `/ws/doc`.
    #[arg(long, global = true)]
    pub url: Option<String>,
    /// Token sent as `?token=` (like the stock client's `params`).
    #[arg(long, global = true, env = "VELLUM_LOAD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A Vellum server's base URL (`http://127.0.0.1:8000`): sign in (register a fresh
    /// user, or log in with --email/--password) and create the documents through its API.
    #[arg(long, global = true)]
    pub vellum: Option<String>,
    /// With --vellum: log in as this user (with --password) instead of registering one.
    #[arg(long, global = true, requires = "password")]
    pub email: Option<String>,
    /// The password for --email.
    #[arg(long, global = true, env = "VELLUM_LOAD_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// The server's PID, for its memory (VmRSS) and CPU from /proc.
    #[arg(long, global = true)]
    pub server_pid: Option<u32>,
    /// A label for the server in the JSON output.
    #[arg(long, global = true, default_value = "server")]
    pub label: String,
    /// Folder holding the editing traces (default: ../shared/data, or $VELLUM_TRACES).
    #[arg(long, global = true)]
    pub traces: Option<PathBuf>,
    /// Connections opened at once.
    #[arg(long, global = true, default_value_t = 64)]
    pub connect_concurrency: usize,
    /// How long clients may take to receive everything once senders stop, in ms.
    #[arg(long, global = true, default_value_t = 15_000)]
    pub converge_timeout_ms: u64,
}

#[derive(Subcommand)]
enum Scenario {
    /// One document, C clients each inserting at R ops/s for D seconds: latency, throughput.
    Fanout(scenarios::FanoutArgs),
    /// N documents × K clients, each document loaded with a trace prefix: memory per document.
    ManyDocs(scenarios::ManyDocsArgs),
    /// N idle connections: connect time, memory per connection.
    Idle(scenarios::IdleArgs),
    /// A document holding the first P patches of automerge-paper: time to open it.
    ColdLoad(scenarios::ColdLoadArgs),
    /// K typists replaying seph-blog1 with its timing, readers on each document: max K.
    Trace(scenarios::TraceArgs),
}

/// Where to connect, and how to get documents.
pub struct Target {
    pub ws_base: String,
    pub token: Option<String>,
    pub vellum: Option<String>,
    pub args: TargetArgs,
}

impl Target {
    async fn new(args: TargetArgs) -> anyhow::Result<Self> {
        let ws_base = match (&args.url, &args.vellum) {
            (Some(u), _) => u.trim_end_matches('/').to_string(),
            (None, Some(v)) => format!("{}/ws/doc", v.trim_end_matches('/').replacen("http://", "ws://", 1)),
            (None, None) => anyhow::bail!("give --url ws://HOST:PORT/PATH or --vellum http://HOST:PORT"),
        };
        let token = match (&args.token, &args.vellum) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(v)) => {
                let login = args.email.as_deref().zip(args.password.as_deref());
                Some(http::token(v, login).await?)
            }
            (None, None) => None,
        };
        Ok(Self {
            ws_base,
            token,
            vellum: args.vellum.clone(),
            args,
        })
    }

    /// `n` fresh documents: created through Vellum's API, or fresh room names.
    pub async fn documents(&self, n: usize, title: &str) -> anyhow::Result<Vec<String>> {
        let mut out = Vec::with_capacity(n);
        let run = format!("{}-{:08x}", std::process::id(), rand::random::<u32>());
        for i in 0..n {
            out.push(match (&self.vellum, &self.token) {
                (Some(v), Some(t)) => http::create_document(v, t, &format!("{title} {i}")).await?,
                _ => format!("load-{run}-{title}-{i}"),
            });
        }
        Ok(out)
    }

    pub fn url(&self, doc: &str) -> String {
        match &self.token {
            Some(t) => format!("{}/{doc}?token={t}", self.ws_base),
            None => format!("{}/{doc}", self.ws_base),
        }
    }

    pub fn rss(&self) -> Option<u64> {
        self.args.server_pid.and_then(stats::rss_kib)
    }
}

/// What a scenario hands back: its JSON fields, a human summary, and a failure if any.
pub struct Outcome {
    pub json: Value,
    pub human: String,
    pub failure: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let (name, label) = (scenario_name(&cli.scenario), cli.target.label.clone());
    let result = rt.block_on(async move {
        let target = Target::new(cli.target).await?;
        match cli.scenario {
            Scenario::Fanout(a) => scenarios::fanout(&target, a).await,
            Scenario::ManyDocs(a) => scenarios::many_docs(&target, a).await,
            Scenario::Idle(a) => scenarios::idle(&target, a).await,
            Scenario::ColdLoad(a) => scenarios::cold_load(&target, a).await,
            Scenario::Trace(a) => scenarios::trace(&target, a).await,
        }
    });
    let mut line = json!({ "scenario": name, "server": label });
    let code = match result {
        Ok(o) => {
            if let Value::Object(m) = o.json {
                line.as_object_mut().unwrap().extend(m);
            }
            line["converged"] = json!(o.failure.is_none());
            eprintln!("{name} against {label}:\n{}", o.human);
            if let Some(f) = &o.failure {
                eprintln!("{f}");
                line["error"] = json!(f);
            }
            if o.failure.is_some() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("{name} against {label} failed: {e:#}");
            line["error"] = json!(format!("{e:#}"));
            ExitCode::from(2)
        }
    };
    println!("{line}");
    // Don't wait for lingering client tasks (closing thousands of sockets politely).
    rt.shutdown_background();
    code
}

fn scenario_name(s: &Scenario) -> &'static str {
    match s {
        Scenario::Fanout(_) => "fanout",
        Scenario::ManyDocs(_) => "many-docs",
        Scenario::Idle(_) => "idle",
        Scenario::ColdLoad(_) => "cold-load",
        Scenario::Trace(_) => "trace",
    }
}
