//! Shared test support: a fresh database per test on either backend, an in-process
//! app, and small request helpers.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sqlx::Connection;
use tower::ServiceExt;
use vellum::config::{Config, Secret};
use vellum::state::AppState;
use vellum::store::Store;

pub const TEST_SECRET: &str = "test-secret-that-is-at-least-32-bytes-long";

/// The Redis the cluster tests use: `VELLUM_TEST_REDIS`, default the local one.
pub fn redis_url() -> String {
    std::env::var("VELLUM_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server tests use; each test gets its own database on it.
pub fn pg_admin_url() -> String {
    std::env::var("VELLUM_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// One test's database. Dropped databases are removed; ones a crashed run left
/// behind are swept by the next run (their name carries the dead process's id).
pub struct TestDb {
    pub config: Config,
    pg_name: Option<String>,
    _dir: tempfile::TempDir,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl TestDb {
    pub async fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::defaults();
        config.server.data_dir = dir.path().to_path_buf();
        // SQLite keeps its automatic pool size, so the suites run with what ships;
        // PostgreSQL's is kept small, since every test opens its own pool to one server.
        if let Backend::Postgres = backend {
            config.database.max_connections = 5;
        }
        config.auth.jwt_secret = Secret::new(TEST_SECRET);
        // The bundled plugins start disabled anyway; tests of plugins turn them on.
        config.plugins.bundled = false;
        let mut pg_name = None;
        if let Backend::Postgres = backend {
            let name = format!(
                "vellum_test_{}_{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            );
            let mut admin = sqlx::PgConnection::connect(&format!("{}/postgres", pg_admin_url()))
                .await
                .expect("PostgreSQL must be running for the postgres tests (see README)");
            sweep_stale(&mut admin).await;
            sqlx::query(&format!("create database {name}"))
                .execute(&mut admin)
                .await
                .expect("create test database");
            config.database.url = Secret::new(format!("{}/{name}", pg_admin_url()));
            pg_name = Some(name);
        }
        Self {
            config,
            pg_name,
            _dir: dir,
        }
    }

    pub async fn store(&self) -> Store {
        let store = Store::connect(&self.config.database, &self.config.server.data_dir)
            .await
            .expect("connect");
        store.migrate().await.expect("migrate");
        store
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            // Drop runs inside the test's runtime; use a plain thread with its own.
            let url = format!("{}/postgres", pg_admin_url());
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    if let Ok(mut c) = sqlx::PgConnection::connect(&url).await {
                        let _ = sqlx::query(&format!("drop database if exists {name} with (force)"))
                            .execute(&mut c)
                            .await;
                    }
                });
            })
            .join();
        }
    }
}

async fn sweep_stale(admin: &mut sqlx::PgConnection) {
    static SWEPT: std::sync::Once = std::sync::Once::new();
    let mut first = false;
    SWEPT.call_once(|| first = true);
    if !first {
        return;
    }
    let names: Vec<String> = sqlx::query_scalar("select datname from pg_database where datname like 'vellum_test_%'")
        .fetch_all(&mut *admin)
        .await
        .unwrap_or_default();
    for name in names {
        let pid = name.split('_').nth(2).and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|p| !std::path::Path::new(&format!("/proc/{p}")).exists()) {
            let _ = sqlx::query(&format!("drop database if exists {name} with (force)"))
                .execute(&mut *admin)
                .await;
        }
    }
}

/// Instantiates each named generic test once per backend:
/// `both_backends!(my_test)` runs `my_test(Backend::Sqlite)` and `my_test(Backend::Postgres)`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name($crate::common::Backend::Sqlite).await }) *
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name($crate::common::Backend::Postgres).await }) *
        }
    };
}

/// The whole app in-process, on a fresh database.
pub struct TestApp {
    pub state: AppState,
    pub router: Router,
    pub config: Config,
    /// `None` on a second node of the same database ([`TestApp::second_node`]).
    _db: Option<TestDb>,
}

impl TestApp {
    pub async fn new(backend: Backend) -> Self {
        Self::with_config(backend, |_| {}).await
    }

    pub async fn with_config(backend: Backend, adjust: impl FnOnce(&mut Config)) -> Self {
        let db = TestDb::new(backend).await;
        let mut config = db.config.clone();
        adjust(&mut config);
        let state = vellum::app::build_state(config.clone()).await.expect("build state");
        let router = vellum::app::router(state.clone());
        Self {
            state,
            router,
            config,
            _db: Some(db),
        }
    }

    /// The app on a database the test set up itself (its own PostgreSQL server, an
    /// SQLite file in a place of its choosing): `config` names it.
    pub async fn on(config: Config) -> Self {
        let state = vellum::app::build_state(config.clone()).await.expect("build state");
        TestApp {
            router: vellum::app::router(state.clone()),
            state,
            config,
            _db: None,
        }
    }

    /// Another node on the same database, with its own data directory.
    pub async fn second_node(&self, data_dir: &std::path::Path) -> TestApp {
        self.second_node_with(data_dir, |_| {}).await
    }

    /// [`TestApp::second_node`] with settings of its own.
    pub async fn second_node_with(&self, data_dir: &std::path::Path, adjust: impl FnOnce(&mut Config)) -> TestApp {
        let mut config = self.config.clone();
        config.server.data_dir = data_dir.to_path_buf();
        adjust(&mut config);
        Self::on(config).await
    }

    /// Stops the server gracefully (rooms flush and snapshot) and starts a new one
    /// on the same database.
    pub async fn restart(&mut self) {
        self.state.collab.shutdown().await;
        self.state.search.shutdown().await;
        self.state.store.close().await;
        self.state = vellum::app::build_state(self.config.clone())
            .await
            .expect("rebuild state");
        self.router = vellum::app::router(self.state.clone());
    }

    pub async fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let body = body.map(|b| b.to_string());
        self.raw(method, path, token, body.as_deref()).await
    }

    /// A request with a literal body (for malformed input).
    pub async fn raw(&self, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        (status, value)
    }

    /// Runs a GraphQL operation; returns the whole response (`data` and `errors`).
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let (_, v) = self
            .request(
                "POST",
                "/graphql",
                token,
                Some(json!({ "query": query, "variables": variables })),
            )
            .await;
        v
    }

    /// Registers a user over REST and returns (token, user id).
    pub async fn register(&self, email: &str, name: &str) -> (String, String) {
        let (status, v) = self
            .request(
                "POST",
                "/api/auth/register",
                None,
                Some(json!({ "email": email, "password": "correct horse", "displayName": name })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "register {email}: {v}");
        (
            v["token"].as_str().unwrap().to_string(),
            v["user"]["id"].as_str().unwrap().to_string(),
        )
    }

    pub async fn create_doc(&self, token: &str, title: &str) -> Value {
        let (status, v) = self
            .request("POST", "/api/documents", Some(token), Some(json!({ "title": title })))
            .await;
        assert_eq!(status, StatusCode::CREATED, "create {title}: {v}");
        v
    }
}

/// A user with `role`, signed in: returns the session token.
pub async fn user_with_role(app: &TestApp, email: &str, role: vellum::auth::Role) -> String {
    let input = vellum::auth::RegisterInput {
        email: email.into(),
        password: "correct horse".into(),
        display_name: email.split('@').next().unwrap().into(),
    };
    vellum::auth::create_user(&app.state.store, input, Some(role))
        .await
        .unwrap();
    let (status, v) = app
        .request(
            "POST",
            "/api/auth/login",
            None,
            Some(json!({ "email": email, "password": "correct horse" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v["token"].as_str().unwrap().to_string()
}

/// Replaces a document's body with Markdown over REST.
pub async fn set_markdown(app: &TestApp, token: &str, doc: &str, md: &str) {
    let (status, v) = app
        .request(
            "PUT",
            &format!("/api/documents/{doc}/body"),
            Some(token),
            Some(json!({ "markdown": md })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
}

/// The `extensions.code` of the first GraphQL error, if any.
pub fn gql_code(v: &Value) -> Option<&str> {
    v["errors"][0]["extensions"]["code"].as_str()
}

/// The inputs kept for a fuzz target: its seeds (fuzz/corpus/TARGET) and the inputs that
/// once failed (fuzz/regressions/TARGET), for the tests that replay them.
pub fn fuzz_inputs(target: &str) -> Vec<Vec<u8>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut out = Vec::new();
    for dir in ["corpus", "regressions"] {
        if let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) {
            out.extend(entries.flatten().map(|e| std::fs::read(e.path()).unwrap()));
        }
    }
    out
}
