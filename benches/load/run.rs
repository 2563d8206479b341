//! The load driver: a fixed pool of workers pulling jobs from one shared queue, per-operation
//! latencies, and the server-side statement counters read around a phase.

use std::cell::RefCell;
use std::future::Future;
use std::time::{Duration, Instant};

use serde::Serialize;
use sqlx::MySqlPool;

/// What one phase measured.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Measured {
    pub ops: usize,
    pub seconds: f64,
    pub per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Failed operations (the first error is in `first_error`).
    pub errors: usize,
    pub first_error: Option<String>,
    /// Statements the server executed per operation (`Questions` delta), when measured.
    pub statements_per_op: Option<f64>,
    /// Commits per operation (`Com_commit` delta).
    pub commits_per_op: Option<f64>,
    /// Prepares per operation (`Com_stmt_prepare` delta): statements not in sqlx's cache.
    pub prepares_per_op: Option<f64>,
    /// CPU milliseconds per operation of each watched process (`service`, `mariadbd`, `client`).
    pub cpu_ms_per_op: std::collections::BTreeMap<String, f64>,
}

/// Processes whose CPU time each phase reports.
static WATCHED: std::sync::Mutex<Vec<(String, u32)>> = std::sync::Mutex::new(Vec::new());

/// Adds a process to the CPU accounting (replacing one of the same label).
pub fn watch(label: &str, pid: u32) {
    if let Ok(mut w) = WATCHED.lock() {
        w.retain(|(l, _)| l != label);
        w.push((label.to_owned(), pid));
    }
}

/// Finds the database server's pid by its command name (only when it runs on this machine).
pub fn find_db_server() -> Option<u32> {
    let dir = std::fs::read_dir("/proc").ok()?;
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if matches!(comm.trim(), "mariadbd" | "mysqld") {
            return Some(pid);
        }
    }
    None
}

/// utime + stime of `pid` in clock ticks (100 per second on Linux).
fn cpu_ticks(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn cpu_snapshot() -> Vec<(String, Option<u64>)> {
    let mut v: Vec<(String, Option<u64>)> = WATCHED
        .lock()
        .map(|w| w.iter().map(|(l, p)| (l.clone(), cpu_ticks(*p))).collect())
        .unwrap_or_default();
    v.push(("client".into(), cpu_ticks(std::process::id())));
    v
}

/// Runs `jobs` with `concurrency` workers; each job is one operation whose latency is recorded.
/// Returns the measurement and each job's output (None where it failed), in job order.
pub async fn run<J, T, F, Fut>(jobs: Vec<J>, concurrency: usize, f: F) -> (Measured, Vec<Option<T>>)
where
    F: Fn(J) -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let n = jobs.len();
    let queue = RefCell::new(jobs.into_iter().enumerate());
    let outputs: RefCell<Vec<Option<T>>> = RefCell::new((0..n).map(|_| None).collect());
    let latencies: RefCell<Vec<u64>> = RefCell::new(Vec::with_capacity(n));
    let errors: RefCell<(usize, Option<String>)> = RefCell::new((0, None));
    let started = Instant::now();
    let worker = || async {
        loop {
            // The borrow ends before the await: workers interleave only at awaits.
            let next = queue.borrow_mut().next();
            let Some((i, job)) = next else { break };
            let t0 = Instant::now();
            let out = f(job).await;
            let micros = u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX);
            latencies.borrow_mut().push(micros);
            match out {
                Ok(v) => outputs.borrow_mut()[i] = Some(v),
                Err(e) => {
                    let mut errs = errors.borrow_mut();
                    errs.0 += 1;
                    if errs.1.is_none() {
                        errs.1 = Some(e);
                    }
                }
            }
        }
    };
    futures_util::future::join_all((0..concurrency.max(1)).map(|_| worker())).await;
    let elapsed = started.elapsed();
    let (errors, first_error) = errors.into_inner();
    let m = summarize(latencies.into_inner(), elapsed, errors, first_error);
    (m, outputs.into_inner())
}

/// Latency percentiles and rate.
pub fn summarize(
    mut lat: Vec<u64>,
    elapsed: Duration,
    errors: usize,
    first_error: Option<String>,
) -> Measured {
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let idx = ((p * lat.len() as f64).ceil() as usize).clamp(1, lat.len()) - 1;
        lat[idx] as f64 / 1000.0
    };
    let seconds = elapsed.as_secs_f64();
    Measured {
        ops: lat.len(),
        seconds,
        per_sec: if seconds > 0.0 {
            lat.len() as f64 / seconds
        } else {
            0.0
        },
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        max_ms: lat.last().map_or(0.0, |v| *v as f64 / 1000.0),
        errors,
        first_error,
        ..Measured::default()
    }
}

/// Server-wide statement counters (`SHOW GLOBAL STATUS`), read before and after a phase.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counters {
    questions: u64,
    commits: u64,
    prepares: u64,
}

impl Counters {
    /// Reads the counters on a connection of `pool` (its own statements count too: about 1).
    pub async fn read(pool: &MySqlPool) -> Option<Self> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SHOW GLOBAL STATUS WHERE Variable_name IN ('Questions', 'Com_commit', 'Com_stmt_prepare')",
        )
        .fetch_all(pool)
        .await
        .ok()?;
        let mut c = Counters::default();
        for (k, v) in rows {
            let v: u64 = v.parse().unwrap_or(0);
            match k.as_str() {
                "Questions" => c.questions = v,
                "Com_commit" => c.commits = v,
                "Com_stmt_prepare" => c.prepares = v,
                _ => {}
            }
        }
        Some(c)
    }

    /// Fills the per-operation counts of `m` from `before` to `self`.
    pub fn apply(self, before: Option<Counters>, m: &mut Measured) {
        let Some(b) = before else { return };
        if m.ops == 0 {
            return;
        }
        let per = |a: u64, b: u64| Some(a.saturating_sub(b) as f64 / m.ops as f64);
        // The SHOW that read `self` is one statement; do not charge it to the phase.
        m.statements_per_op = per(self.questions.saturating_sub(1), b.questions);
        m.commits_per_op = per(self.commits, b.commits);
        m.prepares_per_op = per(self.prepares, b.prepares);
    }
}

/// Runs a phase with counters around it.
pub async fn measured<J, T, F, Fut>(
    status_pool: &MySqlPool,
    jobs: Vec<J>,
    concurrency: usize,
    f: F,
) -> (Measured, Vec<Option<T>>)
where
    F: Fn(J) -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let before = Counters::read(status_pool).await;
    let cpu_before = cpu_snapshot();
    let (mut m, out) = run(jobs, concurrency, f).await;
    let cpu_after = cpu_snapshot();
    if let Some(after) = Counters::read(status_pool).await {
        after.apply(before, &mut m);
    }
    for ((label, b), (_, a)) in cpu_before.into_iter().zip(cpu_after) {
        if let (Some(b), Some(a)) = (b, a)
            && m.ops > 0
        {
            // 100 ticks per second: one tick is 10 ms.
            m.cpu_ms_per_op
                .insert(label, a.saturating_sub(b) as f64 * 10.0 / m.ops as f64);
        }
    }
    (m, out)
}

/// A small deterministic PRNG (xorshift64*), so runs pick the same "random" users.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}
