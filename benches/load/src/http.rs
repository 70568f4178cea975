//! Just enough HTTP/1.1 to sign in to Vellum and create documents (`--vellum URL`):
//! one request per connection, `Connection: close`, JSON in and out.

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `http://host:port` → `host:port`.
fn authority(base: &str) -> anyhow::Result<&str> {
    let rest = base
        .strip_prefix("http://")
        .context("--vellum must be an http:// URL (https is not supported by this tool)")?;
    Ok(rest.trim_end_matches('/'))
}

pub async fn post_json(base: &str, path: &str, token: Option<&str>, body: &Value) -> anyhow::Result<(u16, Value)> {
    let host = authority(base)?;
    let body = body.to_string();
    let auth = token.map_or(String::new(), |t| format!("authorization: Bearer {t}\r\n"));
    let request = format!(
        "POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n{auth}content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut s = TcpStream::connect(host)
        .await
        .with_context(|| format!("connecting to {host}"))?;
    s.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").context("malformed HTTP response")?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("malformed HTTP status line")?;
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        bail!("chunked responses are not supported (POST {path})");
    }
    let value = if body.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(body).with_context(|| format!("POST {path}: body is not JSON: {body}"))?
    };
    Ok((status, value))
}

/// A session token: logs in with `email`/`password` if given, else registers a fresh user.
pub async fn token(base: &str, login: Option<(&str, &str)>) -> anyhow::Result<String> {
    let (path, body) = match login {
        Some((email, password)) => ("/api/auth/login", json!({ "email": email, "password": password })),
        None => {
            let email = format!("load-{}-{}@bench.local", std::process::id(), rand::random::<u32>());
            (
                "/api/auth/register",
                json!({ "email": email, "password": "vellum-load password", "displayName": "vellum-load" }),
            )
        }
    };
    let (status, v) = post_json(base, path, None, &body).await?;
    match v["token"].as_str() {
        Some(t) if status < 300 => Ok(t.to_string()),
        _ => bail!("{path} answered {status}: {v}"),
    }
}

pub async fn create_document(base: &str, token: &str, title: &str) -> anyhow::Result<String> {
    let (status, v) = post_json(base, "/api/documents", Some(token), &json!({ "title": title })).await?;
    match v["id"].as_str() {
        Some(id) if status < 300 => Ok(id.to_string()),
        _ => bail!("POST /api/documents answered {status}: {v}"),
    }
}
