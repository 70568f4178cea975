//! Percentiles, process memory and CPU: what a run reports besides its own counters.

use std::time::Instant;

use serde_json::{Value, json};

/// Latency samples in microseconds.
#[derive(Default)]
pub struct Latencies(pub Vec<u32>);

impl Latencies {
    pub fn extend(&mut self, other: Vec<u32>) {
        self.0.extend(other);
    }

    /// Nearest-rank percentiles in milliseconds: p50, p95, p99, max.
    pub fn summary(&mut self) -> Summary {
        self.0.sort_unstable();
        let v = &self.0;
        let at = |q: f64| -> f64 {
            if v.is_empty() {
                return f64::NAN;
            }
            let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
            v[rank - 1] as f64 / 1000.0
        };
        Summary {
            samples: v.len(),
            p50: at(0.50),
            p95: at(0.95),
            p99: at(0.99),
            max: v.last().map_or(f64::NAN, |m| *m as f64 / 1000.0),
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Summary {
    pub samples: usize,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl Summary {
    pub fn json(&self) -> Value {
        json!({
            "samples": self.samples,
            "p50_ms": round3(self.p50),
            "p95_ms": round3(self.p95),
            "p99_ms": round3(self.p99),
            "max_ms": round3(self.max),
        })
    }

    pub fn human(&self) -> String {
        format!(
            "p50 {:.2} / p95 {:.2} / p99 {:.2} / max {:.2} ms ({} samples)",
            self.p50, self.p95, self.p99, self.max, self.samples
        )
    }
}

pub fn round3(x: f64) -> Value {
    if x.is_finite() {
        json!((x * 1000.0).round() / 1000.0)
    } else {
        Value::Null
    }
}

/// Resident set size of a process in KiB (`VmRSS` in `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// CPU seconds (user + system) a process has used, from `/proc/<pid>/stat`.
pub fn proc_cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; fields after it start past the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some((utime + stime) / ticks)
}

/// This process's CPU seconds (user + system).
pub fn self_cpu_secs() -> f64 {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// CPU used by this process and (optionally) the server over a span of wall time.
pub struct CpuMeter {
    start: Instant,
    client: f64,
    server_pid: Option<u32>,
    server: Option<f64>,
}

impl CpuMeter {
    pub fn start(server_pid: Option<u32>) -> Self {
        Self {
            start: Instant::now(),
            client: self_cpu_secs(),
            server_pid,
            server: server_pid.and_then(proc_cpu_secs),
        }
    }

    /// `{wall_s, client_cpu_s, client_cores, server_cpu_s, server_cores}`.
    pub fn stop(&self) -> Value {
        let wall = self.start.elapsed().as_secs_f64();
        let client = self_cpu_secs() - self.client;
        let server = match (self.server_pid.and_then(proc_cpu_secs), self.server) {
            (Some(now), Some(then)) => Some(now - then),
            _ => None,
        };
        json!({
            "wall_s": round3(wall),
            "client_cpu_s": round3(client),
            "client_cores": round3(client / wall),
            "server_cpu_s": server.map(round3),
            "server_cores": server.map(|s| round3(s / wall)),
        })
    }
}

/// Server memory before/after, as a JSON object (nulls without `--server-pid`).
pub fn rss_json(before: Option<u64>, after: Option<u64>, per: Option<(&str, usize)>) -> Value {
    let mut v = json!({ "before_kib": before, "after_kib": after });
    if let (Some(b), Some(a), Some((name, n))) = (before, after, per)
        && n > 0
    {
        v[format!("per_{name}_kib")] = round3((a as f64 - b as f64) / n as f64);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let mut l = Latencies((1..=100).map(|x| x * 1000).collect());
        let s = l.summary();
        assert_eq!((s.p50, s.p95, s.p99, s.max), (50.0, 95.0, 99.0, 100.0));
        assert!(rss_kib(std::process::id()).unwrap() > 0);
        assert!(proc_cpu_secs(std::process::id()).is_some());
    }
}
