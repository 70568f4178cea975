//! The `vellum` command line.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use crate::auth::{self, Role};
use crate::config::Config;
use crate::store::Store;
use crate::{app, telemetry};

#[derive(Parser)]
#[command(name = "vellum", version, about = "Collaborative headless CMS")]
struct Cli {
    /// A settings file layered over config/default.toml.
    #[arg(long, global = true, env = "VELLUM_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve(ServeArgs),
    /// Apply database migrations and exit.
    Migrate,
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Print the effective settings (secrets redacted).
    PrintConfig,
    /// Rebuild the search index from the database, with a progress bar. A server running
    /// on this data directory keeps answering from its index until the new one is
    /// complete, then switches to it.
    Reindex {
        /// The data directory whose index to rebuild (default: server.data_dir).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Check every document's stored state (snapshot and updates) and list the damaged
    /// ones, which the server keeps closed; with --repair, set the damaged pieces aside
    /// (kept in the set_aside_rows table) so the documents open again. Exits 1 while a
    /// damaged document remains.
    Doctor {
        /// Set damaged pieces aside. On SQLite, stop the server first.
        #[arg(long)]
        repair: bool,
        /// Only this document.
        #[arg(long)]
        document: Option<uuid::Uuid>,
    },
    /// Plugins: list what would load, check a plugin folder, run one hook locally.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// The plugins the server would load (bundled and from plugins.dir), and the ones
    /// it would refuse, with why.
    List,
    /// Check a plugin folder (plugin.toml + plugin.wasm) as the server does at load.
    Check { dir: PathBuf },
    /// Run one hook of a plugin folder on a document; prints the outcome, fuel and time.
    Run {
        dir: PathBuf,
        /// before-save-version, before-publish, after-publish, on-metadata-change, render, enrich
        #[arg(long)]
        hook: String,
        /// A JSON document: {"title", "slug", "status", "bodyText", "bodyHtml", "bodyJson", "fields", "html"}.
        #[arg(long)]
        input: PathBuf,
        /// The plugin's settings, as JSON.
        #[arg(long)]
        config: Option<String>,
    },
}

#[derive(clap::Args, Default)]
struct ServeArgs {
    #[arg(long)]
    host: Option<String>,
    /// 0 picks a free port.
    #[arg(long)]
    port: Option<u16>,
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Development mode (GraphiQL, relaxed secret check).
    #[arg(long)]
    dev: bool,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user. The password is read from VELLUM_USER_PASSWORD or the first line of stdin.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        #[arg(long, value_enum, default_value = "author")]
        role: CliRole,
        /// Shorthand for --role admin.
        #[arg(long)]
        admin: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum CliRole {
    Admin,
    Editor,
    Author,
    Viewer,
}

impl From<CliRole> for Role {
    fn from(r: CliRole) -> Self {
        match r {
            CliRole::Admin => Role::Admin,
            CliRole::Editor => Role::Editor,
            CliRole::Author => Role::Author,
            CliRole::Viewer => Role::Viewer,
        }
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vellum: {e:#}");
            return ExitCode::from(2);
        }
    };
    let command = cli.command.unwrap_or(Command::Serve(ServeArgs::default()));
    if let Command::Serve(args) = &command {
        apply_serve_args(&mut config, args);
    }
    telemetry::init(&config.log);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vellum: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(command, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("vellum: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn apply_serve_args(config: &mut Config, args: &ServeArgs) {
    if let Some(h) = &args.host {
        config.server.host = h.clone();
    }
    if let Some(p) = args.port {
        config.server.port = p;
    }
    if let Some(d) = &args.data_dir {
        config.server.data_dir = d.clone();
    }
    config.server.dev |= args.dev;
}

async fn run(command: Command, mut config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve(_) => serve(config).await,
        Command::Migrate => {
            let store = Store::connect(&config.database, &config.server.data_dir).await?;
            store.migrate().await?;
            println!("migrations applied");
            Ok(())
        }
        Command::User {
            command:
                UserCommand::Create {
                    email,
                    name,
                    role,
                    admin,
                },
        } => {
            let store = Store::connect(&config.database, &config.server.data_dir).await?;
            store.migrate().await?;
            let password = match std::env::var("VELLUM_USER_PASSWORD") {
                Ok(p) => p,
                Err(_) => {
                    eprintln!("password (one line on stdin):");
                    let mut line = String::new();
                    std::io::stdin()
                        .lock()
                        .read_line(&mut line)
                        .context("reading the password")?;
                    line.trim_end_matches(['\r', '\n']).to_string()
                }
            };
            let role = if admin { Role::Admin } else { role.into() };
            let input = auth::RegisterInput {
                email,
                password,
                display_name: name,
            };
            let user = auth::create_user(&store, input, Some(role))
                .await
                .map_err(|e| anyhow::anyhow!(e.public_message()))?;
            println!("created {} ({}) as {}", user.email, user.id, user.role.as_str());
            Ok(())
        }
        Command::Reindex { data_dir } => {
            if let Some(d) = data_dir {
                config.server.data_dir = d;
            }
            reindex(&config).await
        }
        Command::Doctor { repair, document } => doctor(&config, repair, document).await,
        Command::PrintConfig => {
            print!("{}", toml::to_string_pretty(&config)?);
            Ok(())
        }
        Command::Plugin { command } => match command {
            PluginCommand::List => crate::plugins::local::list(&config).await,
            PluginCommand::Check { dir } => crate::plugins::local::check(&config, &dir),
            PluginCommand::Run {
                dir,
                hook,
                input,
                config: settings,
            } => {
                let hook = crate::plugins::Hook::ALL
                    .into_iter()
                    .find(|h| h.name() == hook)
                    .ok_or_else(|| anyhow::anyhow!("--hook {hook}: not a hook (before-save-version, before-publish, after-publish, on-metadata-change, render, enrich)"))?;
                crate::plugins::local::run(&config, &dir, hook, &input, settings.as_deref()).await
            }
        },
    }
}

async fn doctor(config: &Config, repair: bool, document: Option<uuid::Uuid>) -> anyhow::Result<()> {
    use crate::collab::doctor;
    use indicatif::{ProgressBar, ProgressStyle};
    let store = Store::connect(&config.database, &config.server.data_dir).await?;
    store.migrate().await?;
    if repair {
        // Two writers on one SQLite database would clash (`Store::lock_for_serving`).
        store
            .lock_for_serving()
            .context("--repair changes the database: stop the server that uses it first")?;
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{spinner} checking [{bar:40}] {pos}/{len} documents ({eta} left)")?
            .progress_chars("=> "),
    );
    let b = bar.clone();
    let report = doctor::examine(&store, document, repair, move |done, total| {
        b.set_length(total as u64);
        b.set_position(done as u64);
    })
    .await;
    bar.finish_and_clear();
    let report = report?;
    store.close().await;
    for f in &report.findings {
        println!("{}  {}: {}", f.document_id, doctor::describe(f.piece), f.problem);
        if let Some(done) = &f.repaired {
            println!("    repaired: {done}");
        }
    }
    let damaged: std::collections::BTreeSet<_> = report.findings.iter().map(|f| f.document_id).collect();
    println!(
        "checked {} document(s): {} damaged, {} still damaged{}",
        report.documents,
        damaged.len(),
        report.still_damaged.len(),
        if repair && !damaged.is_empty() {
            "; the pieces set aside are kept in set_aside_rows"
        } else {
            ""
        }
    );
    if !report.still_damaged.is_empty() {
        anyhow::bail!(
            "{} damaged document(s) stay closed{}",
            report.still_damaged.len(),
            if repair {
                ""
            } else {
                "; `vellum doctor --repair` sets the damaged pieces aside"
            }
        );
    }
    Ok(())
}

async fn reindex(config: &Config) -> anyhow::Result<()> {
    use indicatif::{ProgressBar, ProgressStyle};
    if !config.search.enabled {
        anyhow::bail!("search is turned off (search.enabled = false): there is no index to rebuild");
    }
    let store = Store::connect(&config.database, &config.server.data_dir).await?;
    store.migrate().await?;
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} indexing [{bar:40}] {pos}/{len} versions and drafts ({per_sec}, {eta} left)",
        )?
        .progress_chars("=> "),
    );
    let started = std::time::Instant::now();
    let b = bar.clone();
    let rebuilt = crate::search::rebuild(&store, &config.search, &config.server.data_dir, move |done, total| {
        b.set_length(total);
        b.set_position(done);
    })
    .await;
    bar.finish_and_clear();
    let rebuilt = rebuilt?;
    store.close().await;
    println!(
        "rebuilt the search index {} in {:.1} s: {} versions, {} live drafts, {:.1} MB; a running server switches to it within a second",
        rebuilt.index,
        started.elapsed().as_secs_f64(),
        rebuilt.versions,
        rebuilt.live_drafts,
        rebuilt.size_bytes as f64 / 1e6
    );
    Ok(())
}

async fn serve(config: Config) -> anyhow::Result<()> {
    if config.server.dev {
        tracing::warn!("development mode: GraphiQL and introspection are on, the JWT secret check is relaxed");
    } else {
        let found = config.unsafe_settings();
        if !found.is_empty() {
            let list: Vec<String> = found.iter().map(|(name, why)| format!("  - {why} [{name}]")).collect();
            anyhow::bail!(
                "refusing to start: {} setting(s) would undo a protection:\n{}\nFix them, run in dev mode \
                 (VELLUM_DEV=1) if this is not production, or accept one on purpose by its name in \
                 server.allow_unsafe (env VELLUM_SERVER__ALLOW_UNSAFE=introspection,origins)",
                found.len(),
                list.join("\n")
            );
        }
    }
    tracing::debug!(?config, "settings");
    raise_open_files_limit(config.collab.max_connections);
    let shutdown = app::shutdown_signal();
    let addr = format!("{}:{}", config.server.host, config.server.port);
    let state = app::build_state(config).await?;
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr()?;
    tracing::info!(addr = %local, backend = ?state.store.backend(), "listening");
    app::serve(listener, state, shutdown).await
}

/// Every connection takes a file descriptor, and the soft limit on them is often 1,024
/// (systemd's default for services) while the hard limit, which a process may raise its
/// own soft limit to, is far higher: with the soft one, the server stopped accepting at
/// about a thousand connections. Raise it to the hard limit, as Go's runtime does, and
/// warn if even that leaves no room for `collab.max_connections`.
#[cfg(unix)]
fn raise_open_files_limit(max_connections: usize) {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::debug!(error = %e, "could not raise the open files limit");
        }
    }
    // Room beyond the WebSockets: database connections, HTTP requests, files.
    let wanted = max_connections as u64 + 256;
    if let Some(now) = getrlimit(Resource::Nofile).current
        && now < wanted
    {
        tracing::warn!(
            limit = now,
            collab.max_connections = max_connections,
            "the open files limit is below collab.max_connections + 256: connections past it will be refused; raise it (ulimit -n, LimitNOFILE) or lower collab.max_connections"
        );
    }
}

#[cfg(not(unix))]
fn raise_open_files_limit(_max_connections: usize) {}
