//! The real `vellum` binary: start, serve, refuse bad settings, shut down on SIGTERM.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

use common::{Backend, TestDb};

struct Server {
    child: Child,
    addr: String,
    /// The log up to the `listening` line.
    log: Vec<String>,
    /// Reads the rest of the log (so the server never blocks on a full pipe), and
    /// returns it once the server exits.
    rest: Option<std::thread::JoinHandle<Vec<String>>>,
}

/// A test that fails part-way does not leave its server running.
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `vellum serve --port 0` and waits for its `listening` line.
fn start(env: &[(&str, &str)], data_dir: &std::path::Path) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vellum"));
    cmd.args(["serve", "--host", "127.0.0.1", "--port", "0", "--data-dir"])
        .arg(data_dir);
    start_command(cmd, env)
}

/// Runs `cmd` (a `vellum serve` with a free port) and waits for its `listening` line.
fn start_command(mut cmd: Command, env: &[(&str, &str)]) -> Server {
    cmd.env_remove("DATABASE_URL")
        .env_remove("JWT_SECRET")
        .env_remove("VELLUM_DEV")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn vellum");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        log.push(line.clone());
        if let Some(rest) = line.split("listening addr=").nth(1) {
            let addr = rest.split_whitespace().next().unwrap().to_string();
            let rest = std::thread::spawn(move || lines.map_while(Result::ok).collect());
            return Server {
                child,
                addr,
                log,
                rest: Some(rest),
            };
        }
    }
    let _ = child.kill();
    let status = child.wait();
    panic!("vellum exited before listening ({status:?}): {log:#?}");
}

fn get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, out.split("\r\n\r\n").nth(1).unwrap_or("").to_string())
}

/// Stops the server with SIGTERM, checks it exits 0, and returns its whole log.
fn sigterm_and_wait(mut server: Server) -> Vec<String> {
    Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    let status = server.child.wait().unwrap();
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
    let mut log = std::mem::take(&mut server.log);
    log.extend(server.rest.take().unwrap().join().unwrap());
    log
}

#[test]
fn serves_with_embedded_sqlite_and_a_generated_secret() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&[], dir.path());
    assert!(
        server.log.iter().any(|l| l.contains("backend=Sqlite")),
        "{:#?}",
        server.log
    );
    assert_eq!(get(&server.addr, "/healthz"), (200, "{\"status\":\"ok\"}".into()));
    assert_eq!(get(&server.addr, "/readyz").0, 200);
    assert_eq!(get(&server.addr, "/graphql").0, 405, "GraphiQL only in dev mode");
    let secret = std::fs::read_to_string(dir.path().join("jwt_secret")).unwrap();
    assert!(secret.len() >= 32);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("jwt_secret"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the secret file is private");
    }
    assert!(dir.path().join("vellum.db").exists());
    sigterm_and_wait(server);
    // A restart keeps the same secret.
    let server = start(&[], dir.path());
    assert_eq!(std::fs::read_to_string(dir.path().join("jwt_secret")).unwrap(), secret);
    sigterm_and_wait(server);
}

#[tokio::test]
async fn serves_with_postgres_from_database_url() {
    let db = TestDb::new(Backend::Postgres).await;
    let url = db.config.database.url.expose().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vellum"))
        .args(["serve", "--port", "0", "--data-dir"])
        .arg(dir.path())
        .env("DATABASE_URL", &url)
        .env_remove("JWT_SECRET")
        .env_remove("VELLUM_DEV")
        .output()
        .unwrap();
    assert!(!out.status.success(), "PostgreSQL without JWT_SECRET is refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("JWT_SECRET"));
    let server = start(
        &[("DATABASE_URL", &url), ("JWT_SECRET", common::TEST_SECRET)],
        dir.path(),
    );
    assert!(
        server.log.iter().any(|l| l.contains("backend=Postgres")),
        "{:#?}",
        server.log
    );
    assert_eq!(get(&server.addr, "/readyz").0, 200);
    assert!(!dir.path().join("vellum.db").exists(), "no SQLite file with PostgreSQL");
    sigterm_and_wait(server);
}

/// Status, headers and body of a POST with a JSON body.
fn post_json(addr: &str, path: &str, body: &str) -> (u16, String, String) {
    post_json_on(TcpStream::connect(addr).unwrap(), path, body)
}

/// `post_json` on a connection already open.
fn post_json_on(mut s: TcpStream, path: &str, body: &str) -> (u16, String, String) {
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split_whitespace().nth(1).unwrap().parse().unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    (status, head.to_ascii_lowercase(), body.to_string())
}

/// A memory figure of a process in KiB (`VmRSS`, `VmHWM`, … in `/proc/<pid>/status`).
#[cfg(target_os = "linux")]
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find_map(|l| l.strip_prefix(field)).unwrap();
    line.trim_start_matches(':')
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap()
}

/// Resident memory of a process in KiB.
#[cfg(target_os = "linux")]
fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS")
}

/// Every login hashes with argon2 in 19 MiB of memory. glibc's malloc used to keep each
/// such block in the hashing thread's arena after the first (see src/main.rs): 12 logins
/// grew the server by about 230 MB. Now they leave at most a few MB behind.
#[cfg(target_os = "linux")]
#[test]
fn logins_give_their_hashing_memory_back() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&[], dir.path());
    let user = r#"{"email":"mem@example.com","password":"long enough password","displayName":"M"}"#;
    let (status, _, body) = post_json(&server.addr, "/api/auth/register", user);
    assert_eq!(status, 201, "{body}");
    let login = r#"{"email":"mem@example.com","password":"long enough password"}"#;
    assert_eq!(post_json(&server.addr, "/api/auth/login", login).0, 200);
    let pid = server.child.id();
    let before = rss_kib(pid);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..3 {
                    let (status, _, body) = post_json(&server.addr, "/api/auth/login", login);
                    assert_eq!(status, 200, "{body}");
                }
            });
        }
    });
    let grown = rss_kib(pid).saturating_sub(before);
    assert!(
        grown < 40 * 1024,
        "12 logins grew the server's memory by {grown} KiB (from {before} KiB)"
    );
    sigterm_and_wait(server);
}

/// Anyone can ask for a password hash (a login with any email), and each takes 19 MiB:
/// 200 logins at once used to run 200 hashes, 3.8 GB. Now one hash runs per core, 32
/// per core wait, and the rest are refused at once with BUSY.
#[cfg(target_os = "linux")]
#[test]
fn a_login_flood_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    // The flood is one email's wrong password: with the login throttle on, all but the
    // first few would be refused RATE_LIMITED before reaching the hash gate this tests.
    let server = start(&[("VELLUM_AUTH__LOGIN_MAX_FAILURES", "0")], dir.path());
    let user = r#"{"email":"flood@example.com","password":"long enough password","displayName":"F"}"#;
    assert_eq!(post_json(&server.addr, "/api/auth/register", user).0, 201);
    let pid = server.child.id();
    // The peak resident memory so far.
    let hwm = || status_kib(pid, "VmHWM");
    let before = rss_kib(pid).max(hwm());
    let cores = std::thread::available_parallelism().unwrap().get() as u64;
    // More than the gate admits, all at once: every connection is open before any sends.
    let flood = cores * 33 + 50;
    let wrong = r#"{"email":"flood@example.com","password":"not the password"}"#;
    let ready = std::sync::Barrier::new(flood as usize);
    let answers: Vec<(u16, String, String)> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..flood)
            .map(|_| {
                s.spawn(|| {
                    let conn = TcpStream::connect(&server.addr).unwrap();
                    ready.wait();
                    post_json_on(conn, "/api/auth/login", wrong)
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let refused = answers.iter().filter(|(status, ..)| *status == 503).count();
    for (status, head, body) in &answers {
        match status {
            401 => assert!(body.contains("UNAUTHENTICATED"), "{body}"),
            503 => {
                assert!(body.contains(r#""code":"BUSY""#), "{body}");
                assert!(head.contains("\r\nretry-after: 1"), "{head}");
            }
            _ => panic!("a login answered {status}: {body}"),
        }
    }
    assert!(refused > 0, "{flood} logins at once, none refused");
    assert!(refused < answers.len(), "all {flood} logins refused");
    let peak = hwm().saturating_sub(before);
    assert!(
        peak < (cores + 3) * 20 * 1024,
        "{flood} logins at once took {peak} KiB more at the peak ({cores} cores)"
    );
    // Once the flood has passed, the right password signs in.
    let right = r#"{"email":"flood@example.com","password":"long enough password"}"#;
    assert_eq!(post_json(&server.addr, "/api/auth/login", right).0, 200);
    sigterm_and_wait(server);
}

/// Started as systemd starts a service, with a soft limit of open files far below the
/// hard one, the server raises its own to the hard limit (each connection takes a file),
/// and warns when even that leaves no room for `collab.max_connections`.
#[cfg(target_os = "linux")]
#[test]
fn raises_its_open_files_limit() {
    let open_files = |pid: &str| -> (u64, u64) {
        let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
        let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
        let mut n = line.split_whitespace().skip(3).map(|v| v.parse().unwrap_or(u64::MAX));
        (n.next().unwrap(), n.next().unwrap())
    };
    let (_, hard) = open_files("self");
    assert!(hard > 1024, "this test needs a hard limit over 1024, not {hard}");
    let mut cases = vec![("100".to_string(), false)];
    if hard != u64::MAX {
        cases.push(((hard + 1).to_string(), true));
    }
    for (max_connections, warned) in &cases {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(r#"ulimit -Sn 512 && exec "$0" serve --host 127.0.0.1 --port 0 --data-dir "$1""#)
            .arg(env!("CARGO_BIN_EXE_vellum"))
            .arg(dir.path());
        let server = start_command(cmd, &[("VELLUM_COLLAB__MAX_CONNECTIONS", max_connections.as_str())]);
        assert_eq!(open_files(&server.child.id().to_string()), (hard, hard));
        let warning = server.log.iter().any(|l| l.contains("open files limit"));
        assert_eq!(warning, *warned, "{:#?}", server.log);
        sigterm_and_wait(server);
    }
}

/// The WebSocket endpoint takes its token in the query (`?token=`, as browsers cannot
/// set headers on a WebSocket); with debug logs on, the request log used to print it.
#[test]
fn tokens_in_urls_stay_out_of_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&[("RUST_LOG", "debug")], dir.path());
    let user = r#"{"email":"log@example.com","password":"long enough password","displayName":"L"}"#;
    let (status, _, body) = post_json(&server.addr, "/api/auth/register", user);
    assert_eq!(status, 201, "{body}");
    let token = body.split(r#""token":""#).nth(1).unwrap().split('"').next().unwrap();
    let document = uuid::Uuid::now_v7();
    let (status, _) = get(&server.addr, &format!("/ws/doc/{document}?token={token}&x=1"));
    assert!(status >= 400, "a GET without an upgrade is refused, got {status}");
    let log = sigterm_and_wait(server);
    let requests: Vec<_> = log.iter().filter(|l| l.contains(&document.to_string())).collect();
    assert!(
        requests.iter().any(|l| l.contains("token=[redacted]&x=1")),
        "{requests:#?}"
    );
    assert!(!log.iter().any(|l| l.contains(token)), "{log:#?}");
}

/// One SQLite database serves one process (`Store::lock_for_serving`): a second server
/// on it stops with a clear error, commands such as `vellum user create` still work
/// beside the running one, and a server that died leaves no lock behind.
#[test]
fn a_second_server_on_one_sqlite_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(&[], dir.path());
    let out = Command::new(env!("CARGO_BIN_EXE_vellum"))
        .args(["serve", "--host", "127.0.0.1", "--port", "0", "--data-dir"])
        .arg(dir.path())
        .env_remove("DATABASE_URL")
        .env_remove("JWT_SECRET")
        .env_remove("VELLUM_DEV")
        .output()
        .unwrap();
    assert!(!out.status.success(), "a second server started");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("another Vellum server is using the SQLite database"),
        "{err}"
    );
    user_create(dir.path(), &["--email", "a@example.com", "--name", "A"]);
    assert_eq!(get(&server.addr, "/readyz").0, 200);
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let server = start(&[], dir.path());
    sigterm_and_wait(server);
}

#[test]
fn refuses_weak_secrets_outside_dev_mode() {
    let dir = tempfile::tempdir().unwrap();
    for secret in ["short", vellum::config::DEV_JWT_SECRET] {
        let out = Command::new(env!("CARGO_BIN_EXE_vellum"))
            .args(["serve", "--port", "0", "--data-dir"])
            .arg(dir.path())
            .env("JWT_SECRET", secret)
            .env_remove("VELLUM_DEV")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{secret} must be refused");
        assert!(String::from_utf8_lossy(&out.stderr).contains("JWT_SECRET must be at least 32 bytes"));
    }
    // Dev mode relaxes it.
    let server = start(&[("JWT_SECRET", "short"), ("VELLUM_DEV", "1")], dir.path());
    assert_eq!(get(&server.addr, "/graphql").0, 200, "GraphiQL in dev mode");
    sigterm_and_wait(server);
}

#[test]
fn print_config_redacts_secrets_and_reports_bad_settings() {
    let out = Command::new(env!("CARGO_BIN_EXE_vellum"))
        .arg("print-config")
        .env("JWT_SECRET", "a-very-secret-value-that-is-long-enough")
        .env("DATABASE_URL", "postgres://u:hunter2@db/vellum")
        .env("VELLUM_SERVER__PORT", "9123")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains("port = 9123"), "{text}");
    assert!(!text.contains("hunter2") && !text.contains("a-very-secret"), "{text}");
    assert!(text.contains("[redacted]"));

    let out = Command::new(env!("CARGO_BIN_EXE_vellum"))
        .arg("print-config")
        .env("VELLUM_SERVER__PROT", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("server.prot"));
}

/// Runs `vellum user create <args>` on the SQLite database in `data_dir`, the password
/// on stdin, and checks it succeeds.
fn user_create(data_dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_vellum"))
        .args(["user", "create"])
        .args(args)
        .env("VELLUM_DATA_DIR", data_dir)
        .env_remove("DATABASE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(b"long enough password\n")?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out
}

#[test]
fn user_create_makes_an_admin() {
    let dir = tempfile::tempdir().unwrap();
    let out = user_create(
        dir.path(),
        &["--email", "Root@Example.com", "--name", "Root", "--admin"],
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("root@example.com"));
    assert!(String::from_utf8_lossy(&out.stdout).contains("as admin"));
}

/// `vellum reindex` rebuilds the index of a data directory while a server uses it: the
/// server keeps answering, and the rebuilt index holds the versions the database has.
#[test]
fn reindex_rebuilds_while_the_server_runs() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&[], dir.path());
    let (status, _, body) = post_json(
        &server.addr,
        "/api/auth/register",
        r#"{"email":"a@example.com","password":"correct horse","displayName":"A"}"#,
    );
    assert_eq!(status, 201, "{body}");
    let out = Command::new(env!("CARGO_BIN_EXE_vellum"))
        .args(["reindex", "--data-dir"])
        .arg(dir.path())
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("rebuilt the search index index-"), "{stdout}");
    assert!(stdout.contains("0 versions"), "{stdout}");
    let current = std::fs::read_to_string(dir.path().join("search/CURRENT")).unwrap();
    assert!(stdout.contains(current.trim()), "CURRENT names the new index: {stdout}");
    let (status, body) = get(&server.addr, "/api/search?q=anything");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"totalCount\":0"), "{body}");
    sigterm_and_wait(server);
}

/// Outside dev mode the server refuses settings that undo a protection, naming each and
/// its fix; naming one in `server.allow_unsafe` accepts it on purpose.
#[test]
fn unsafe_settings_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vellum"))
        .args(["serve", "--host", "127.0.0.1", "--port", "0", "--data-dir"])
        .arg(dir.path())
        .env_remove("VELLUM_DEV")
        .env_remove("DATABASE_URL")
        .env("VELLUM_GRAPHQL__INTROSPECTION", "true")
        .env("VELLUM_DATABASE__SQLITE_SYNCHRONOUS", "normal")
        .env("VELLUM_SERVER__ALLOWED_ORIGINS", "https://app.example.com,*")
        .output()
        .unwrap();
    assert!(!out.status.success(), "started with unsafe settings");
    let err = String::from_utf8_lossy(&out.stderr);
    for said in [
        "refusing to start: 3 setting(s)",
        "graphql.introspection is on",
        "[introspection]",
        "database.sqlite_synchronous",
        "Set it to \"full\"",
        "server.allowed_origins has `*`",
        "server.allow_unsafe",
    ] {
        assert!(err.contains(said), "`{said}` missing from: {err}");
    }
    // Accepted by name, the same settings start (and introspection is then on).
    let server = start(
        &[
            ("VELLUM_GRAPHQL__INTROSPECTION", "true"),
            ("VELLUM_SERVER__ALLOW_UNSAFE", "introspection"),
        ],
        dir.path(),
    );
    let (status, _, body) = post_json(
        &server.addr,
        "/graphql",
        r#"{"query":"{ __schema { queryType { name } } }"}"#,
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"Query\""), "{body}");
    sigterm_and_wait(server);
}
