//! Load benchmark of phab-scim (issue 7): drives the release binary over HTTP with a fixed
//! pool of workers and, with `--baseline`, the same phases as plain SQL straight to MariaDB.
//!
//! Run it through `scripts/bench`, which ensures MariaDB, builds the release binary, picks a
//! namespace and cleans up. Directly:
//!
//! ```text
//! cargo bench --bench load -- --namespace bench_x [--baseline] [--quick] [--users N] [--growth]
//! ```
//!
//! Nothing here asserts a duration: the output is a table and `target/bench/results.json`.
//! Every loop is bounded; the only peers are 127.0.0.1 (the service it starts, and MariaDB).

#[path = "load/baseline.rs"]
mod baseline;
#[path = "load/model.rs"]
mod model;
#[path = "load/run.rs"]
mod run;
#[path = "load/seed.rs"]
mod seed;
#[path = "load/service.rs"]
mod service;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use phab_scim::config::{Namespace, Secret};
use phab_scim::db::{Db, migrate};
use reqwest::Method;
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::MySqlPool;
use sqlx::mysql::MySqlPoolOptions;

use model::{add_members_body, deactivate_body, entra_group_body, entra_user_body, person};
use run::{Measured, Rng, measured};
use service::{Api, Service, filter_eq};

const USAGE: &str =
    "usage: load [--namespace NS] [--baseline] [--quick] [--users N] [--growth] [--no-extras]
            [--scales 10000,100000] [--concurrency 8] [--pool-size 16] [--perf PHASE]
            [--service-bin PATH] [--database-url URL] [--out FILE] [--pid-file FILE] [--keep]
  --baseline     also run the plain-SQL baseline and print each phase's ratio
  --quick        a tiny run for CI smoke use
  --growth       only the growth runs: create/lookup/list costs at each of --scales users
  --perf PHASE   perf record -g the service during PHASE (create, lookup, group_create,
                 member_add, list, deactivate); the data goes next to --out
  --cleanup      only drop the namespace's databases (NS_*) and exit";

#[derive(Debug, Clone)]
struct Args {
    namespace: String,
    baseline: bool,
    quick: bool,
    growth: bool,
    extras: bool,
    cleanup: bool,
    keep: bool,
    users: usize,
    lookups: usize,
    groups: usize,
    members_per_group: usize,
    batch: usize,
    list_passes: usize,
    concurrency: usize,
    pool_size: u32,
    big_patch: usize,
    big_group: usize,
    rss_users: usize,
    token_requests: usize,
    scales: Vec<usize>,
    perf: Option<String>,
    service_bin: PathBuf,
    database_url: String,
    out: PathBuf,
    pid_file: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` appends `--bench`; ignore it.
    let mut it = raw.into_iter().filter(|a| a != "--bench").peekable();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"));
    let mut a = Args {
        namespace: String::new(),
        baseline: false,
        quick: false,
        growth: false,
        extras: true,
        cleanup: false,
        keep: false,
        users: 0,
        lookups: 0,
        groups: 0,
        members_per_group: 0,
        batch: 50,
        list_passes: 0,
        concurrency: 8,
        pool_size: 16,
        big_patch: 0,
        big_group: 0,
        rss_users: 0,
        token_requests: 0,
        scales: Vec::new(),
        perf: None,
        service_bin: target.join("release").join("phab-scim"),
        database_url: std::env::var("PHAB_SCIM_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into()),
        out: target.join("bench").join("results.json"),
        pid_file: None,
    };
    let num = |v: Option<String>, flag: &str| -> Result<usize, String> {
        v.ok_or_else(|| format!("{flag} needs a value"))?
            .replace('_', "")
            .parse()
            .map_err(|_| format!("{flag}: not a number"))
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--namespace" => a.namespace = it.next().ok_or("--namespace needs a value")?,
            "--baseline" => a.baseline = true,
            "--quick" => a.quick = true,
            "--growth" => a.growth = true,
            "--no-extras" => a.extras = false,
            "--cleanup" => a.cleanup = true,
            "--keep" => a.keep = true,
            "--users" => a.users = num(it.next(), "--users")?,
            "--lookups" => a.lookups = num(it.next(), "--lookups")?,
            "--groups" => a.groups = num(it.next(), "--groups")?,
            "--members-per-group" => a.members_per_group = num(it.next(), "--members-per-group")?,
            "--batch" => a.batch = num(it.next(), "--batch")?.max(1),
            "--concurrency" => a.concurrency = num(it.next(), "--concurrency")?.max(1),
            "--pool-size" => {
                a.pool_size = u32::try_from(num(it.next(), "--pool-size")?.max(1)).unwrap_or(16)
            }
            "--scales" => {
                let v = it.next().ok_or("--scales needs a value")?;
                a.scales = v
                    .split(',')
                    .map(|s| num(Some(s.to_owned()), "--scales"))
                    .collect::<Result<_, _>>()?;
            }
            "--perf" => a.perf = Some(it.next().ok_or("--perf needs a phase")?),
            "--service-bin" => {
                a.service_bin = PathBuf::from(it.next().ok_or("--service-bin needs a value")?)
            }
            "--database-url" => a.database_url = it.next().ok_or("--database-url needs a value")?,
            "--out" => a.out = PathBuf::from(it.next().ok_or("--out needs a value")?),
            "--pid-file" => {
                a.pid_file = Some(PathBuf::from(it.next().ok_or("--pid-file needs a value")?))
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    let q = a.quick;
    let pick = |set: usize, full: usize, quick: usize| {
        if set > 0 {
            set
        } else if q {
            quick
        } else {
            full
        }
    };
    a.users = pick(a.users, 2000, 200);
    a.lookups = pick(a.lookups, a.users * 2, a.users * 2);
    a.groups = pick(a.groups, 20, 4);
    a.members_per_group = pick(a.members_per_group, 100, 50);
    a.list_passes = pick(a.list_passes, (100 / a.users.div_ceil(100)).clamp(1, 10), 2);
    a.big_patch = if q {
        100.min(a.users)
    } else {
        1000.min(a.users)
    };
    a.big_group = if q { 2_000 } else { 50_000 };
    a.rss_users = if q { 5_000 } else { 100_000 };
    a.token_requests = if q { 300 } else { 3_000 };
    if a.scales.is_empty() {
        a.scales = if q {
            vec![1_000, 3_000]
        } else {
            vec![10_000, 100_000]
        };
    }
    if a.namespace.is_empty() {
        a.namespace = format!(
            "bench_{:08x}_{}",
            phab_scim::db::now(),
            phab_scim::db::phabricator::random_chars(6)
        );
    }
    Ok(a)
}

/// Refuses any database that is not on this machine.
fn check_local(url: &str) -> Result<(), String> {
    let after = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let hostport = after.rsplit_once('@').map(|(_, h)| h).unwrap_or(after);
    let host = hostport.split(['/', '?']).next().unwrap_or("");
    let host = host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host);
    if matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
        Ok(())
    } else {
        Err(format!(
            "the bench only talks to a local database (127.0.0.1); got host {host:?}"
        ))
    }
}

/// One row of the table.
#[derive(Debug, Clone, Serialize)]
struct Row {
    key: &'static str,
    phase: String,
    service: Option<Measured>,
    baseline: Option<Measured>,
    /// service req/s ÷ baseline ops/s.
    ratio: Option<f64>,
    note: Option<String>,
}

#[derive(Debug, Default, Serialize)]
struct Report {
    config: Value,
    phases: Vec<Row>,
    extras: serde_json::Map<String, Value>,
    growth: Vec<Value>,
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(entry(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn entry(args: Args) -> Result<(), String> {
    check_local(&args.database_url)?;
    let url = Secret::new(args.database_url.clone());
    let ns = Namespace::parse(&args.namespace).map_err(|e| e.to_string())?;
    if args.cleanup {
        return migrate::drop_namespace(&url, &ns)
            .await
            .map_err(|e| e.to_string());
    }
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    // A signal ends the run here, so the service is stopped and the namespace dropped below.
    let result = tokio::select! {
        r = bench(&args, &url, &ns) => r,
        sig = stop_signal() => Err(format!("interrupted by {sig}")),
    };
    if args.keep {
        eprintln!("bench: keeping namespace {}_*", ns.as_str());
    } else if let Err(e) = migrate::drop_namespace(&url, &ns).await {
        eprintln!("bench: could not drop namespace {}_*: {e}", ns.as_str());
    }
    if let Some(p) = &args.pid_file {
        let _ = std::fs::remove_file(p);
    }
    result
}

async fn stop_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

fn sub_ns(ns: &Namespace, suffix: &str) -> Result<Namespace, String> {
    // `<ns>_<suffix>`: its databases match `<ns>\_%` too, so one drop removes everything.
    Namespace::parse(&format!("{}_{suffix}", ns.as_str())).map_err(|e| e.to_string())
}

async fn status_pool(url: &Secret) -> Result<MySqlPool, String> {
    let opts = phab_scim::db::connect_options(url).map_err(|e| e.to_string())?;
    MySqlPoolOptions::new()
        .max_connections(1)
        .connect_with(opts)
        .await
        .map_err(|e| format!("connect: {e}"))
}

fn log(msg: impl AsRef<str>) {
    eprintln!("bench: {}", msg.as_ref());
}

async fn bench(args: &Args, url: &Secret, ns: &Namespace) -> Result<(), String> {
    let started = Instant::now();
    let status = status_pool(url).await?;
    let version: String = sqlx::query_scalar("SELECT VERSION()")
        .fetch_one(&status)
        .await
        .map_err(|e| e.to_string())?;
    let load_before = loadavg();
    let mut report = Report {
        config: json!({
            "users": args.users, "lookups": args.lookups, "groups": args.groups,
            "members_per_group": args.members_per_group, "batch": args.batch, "list_passes": args.list_passes,
            "concurrency": args.concurrency, "service_pool_size": args.pool_size, "quick": args.quick,
            "server": version, "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        }),
        ..Report::default()
    };
    let dir = args.out.parent().map(Path::to_path_buf).unwrap_or_default();
    if let Some(pid) = run::find_db_server() {
        run::watch("mariadbd", pid);
    }

    if args.growth {
        growth(args, url, ns, &status, &dir, &mut report).await?;
    } else {
        let svc_ns = ns.clone();
        log(format!("namespace {} (MariaDB {version})", svc_ns.as_str()));
        let db = service::install_namespace(url, &svc_ns).await?;
        let mut svc = Service::start(
            &args.service_bin,
            url,
            &db,
            args.pool_size,
            dir.join("service.log"),
            args.pid_file.as_deref(),
        )
        .await?;
        log(format!("service pid {} on {}", svc.pid, svc.api.root));
        run::watch("service", svc.pid);
        let (rss0, _) = svc.rss_kib();
        report.extras.insert("rss_kib_at_start".into(), json!(rss0));
        // Cold start: the first requests find the token cache empty and verify argon2.
        let api = svc.api.clone();
        let api = &api;
        let (cold, _) = run::run(
            (0..args.concurrency).collect(),
            args.concurrency,
            |_| async move {
                api.scim(Method::GET, "/ServiceProviderConfig", None)
                    .await?
                    .expect(&[200], "/ServiceProviderConfig")
                    .map(|_| ())
            },
        )
        .await;
        fail_on_errors("cold start", &cold)?;
        let (rss1, hwm1) = svc.rss_kib();
        report.extras.insert(
            "cold_start".into(),
            json!({"concurrent_first_requests": cold.ops, "p50_ms": cold.p50_ms, "max_ms": cold.max_ms, "rss_kib_after": rss1, "hwm_kib_after": hwm1}),
        );
        let created = service_phases(args, &svc, &status, &dir, &mut report).await?;
        if args.extras {
            extras(args, &mut svc, &db, &status, &created, &mut report).await?;
        }
        if !svc.alive() {
            return Err(format!("the service died; log:\n{}", svc.log_tail(30)));
        }
        drop(svc);
        db.pool.close().await;
        if args.baseline {
            let bns = sub_ns(ns, "b")?;
            log(format!("baseline namespace {}", bns.as_str()));
            let bdb = service::install_namespace(url, &bns).await?;
            bdb.pool.close().await;
            let bdb = Db::connect(url, bns, u32::try_from(args.concurrency).unwrap_or(8))
                .await
                .map_err(|e| e.to_string())?;
            baseline_phases(args, &bdb, &status, &mut report).await?;
            bdb.pool.close().await;
        }
    }
    report.extras.insert(
        "total_seconds".into(),
        json!(started.elapsed().as_secs_f64()),
    );
    report.extras.insert(
        "loadavg_1min".into(),
        json!({"before": load_before, "after": loadavg()}),
    );
    print_report(args, &report);
    let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    std::fs::write(&args.out, text + "\n").map_err(|e| format!("{}: {e}", args.out.display()))?;
    println!("\nJSON: {}", args.out.display());
    Ok(())
}

/// `perf record -g` on the service for the duration of one phase, when asked.
struct Perf(Option<(std::process::Child, PathBuf)>);

impl Perf {
    async fn start(args: &Args, key: &str, pid: u32, dir: &Path) -> Self {
        if args.perf.as_deref() != Some(key) {
            return Self(None);
        }
        let out = dir.join(format!("perf-{key}.data"));
        let child = std::process::Command::new("perf")
            .args(["record", "-g", "-F", "999", "-p", &pid.to_string(), "-o"])
            .arg(&out)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        match child {
            Ok(c) => {
                tokio::time::sleep(Duration::from_millis(500)).await;
                log(format!("perf recording phase {key} into {}", out.display()));
                Self(Some((c, out)))
            }
            Err(e) => {
                log(format!("perf: {e}"));
                Self(None)
            }
        }
    }
    fn stop(mut self) {
        if let Some((mut c, out)) = self.0.take() {
            let _ = std::process::Command::new("kill")
                .args(["-INT", &c.id().to_string()])
                .status();
            let _ = c.wait();
            log(format!(
                "perf data: {} (perf report -i {} --no-children)",
                out.display(),
                out.display()
            ));
        }
    }
}

impl Drop for Perf {
    fn drop(&mut self) {
        if let Some((c, _)) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn row(key: &'static str, phase: impl Into<String>, m: Measured) -> Row {
    Row {
        key,
        phase: phase.into(),
        service: Some(m),
        baseline: None,
        ratio: None,
        note: None,
    }
}

fn skipped(key: &'static str, phase: impl Into<String>, why: &str) -> Row {
    Row {
        key,
        phase: phase.into(),
        service: None,
        baseline: None,
        ratio: None,
        note: Some(why.into()),
    }
}

fn fail_on_errors(what: &str, m: &Measured) -> Result<(), String> {
    if m.errors > 0 {
        return Err(format!(
            "{what}: {} of {} operations failed; first: {}",
            m.errors,
            m.ops,
            m.first_error.clone().unwrap_or_default()
        ));
    }
    Ok(())
}

/// The members of group `g`: `mpg` consecutive users (wrapping).
fn members_of(g: usize, mpg: usize, users: usize) -> Vec<usize> {
    (0..mpg).map(|k| (g * mpg + k) % users.max(1)).collect()
}

/// Member-add jobs, batch-major so concurrent PATCHes hit different groups.
fn member_jobs(groups: usize, mpg: usize, batch: usize, users: usize) -> Vec<(usize, Vec<usize>)> {
    let per: Vec<Vec<Vec<usize>>> = (0..groups)
        .map(|g| {
            members_of(g, mpg, users)
                .chunks(batch)
                .map(<[usize]>::to_vec)
                .collect()
        })
        .collect();
    let rounds = per.iter().map(Vec::len).max().unwrap_or(0);
    let mut jobs = Vec::new();
    for r in 0..rounds {
        for (g, batches) in per.iter().enumerate() {
            if let Some(b) = batches.get(r) {
                jobs.push((g, b.clone()));
            }
        }
    }
    jobs
}

fn lookup_indices(n: usize, users: usize, seed: u64) -> Vec<usize> {
    let mut rng = Rng::new(seed);
    (0..n).map(|_| rng.below(users)).collect()
}

fn deactivate_indices(users: usize) -> Vec<usize> {
    let mut all: Vec<usize> = (0..users).collect();
    Rng::new(0xdeac).shuffle(&mut all);
    all.truncate(users / 10);
    all
}

fn list_jobs(users: usize, passes: usize) -> Vec<usize> {
    let pages = users.div_ceil(100);
    (0..passes).flat_map(|_| 0..pages).collect()
}

const GROUPS_404: &str = "skipped: /Groups not available (404)";

async fn groups_available(api: &Api) -> Result<bool, String> {
    let r = api.scim(Method::GET, "/Groups?count=1", None).await?;
    match r.status {
        404 => Ok(false),
        200 => Ok(true),
        s => Err(format!("GET /Groups: unexpected HTTP {s}")),
    }
}

async fn create_users(
    api: &Api,
    status: &MySqlPool,
    prefix: &'static str,
    range: std::ops::Range<usize>,
    c: usize,
) -> (Measured, Vec<Option<String>>) {
    measured(status, range.collect(), c, |i| async move {
        let body = entra_user_body(&person(prefix, i));
        let r = api
            .scim(Method::POST, "/Users", Some(&body))
            .await?
            .expect(&[201], "POST /Users")?;
        r.json()?
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| "POST /Users: no id".to_owned())
    })
    .await
}

async fn lookups(
    api: &Api,
    status: &MySqlPool,
    people: Vec<(String, usize)>,
    c: usize,
) -> Measured {
    measured(status, people, c, |(prefix, i)| async move {
        let p = person(&prefix, i);
        let path = format!("/Users?filter={}", filter_eq("userName", &p.user_name));
        let r = api
            .scim(Method::GET, &path, None)
            .await?
            .expect(&[200], "GET /Users?filter")?;
        let total = r.json()?.get("totalResults").and_then(Value::as_u64);
        if total != Some(1) {
            return Err(format!("lookup of {}: totalResults {total:?}", p.user_name));
        }
        Ok(())
    })
    .await
    .0
}

async fn list_pages(
    api: &Api,
    status: &MySqlPool,
    starts: Vec<usize>,
    total: usize,
    c: usize,
) -> Measured {
    measured(status, starts, c, |start| async move {
        let path = format!("/Users?startIndex={}&count=100", start + 1);
        let r = api
            .scim(Method::GET, &path, None)
            .await?
            .expect(&[200], "GET /Users page")?;
        let v = r.json()?;
        let got = v
            .get("Resources")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        let want = 100.min(total.saturating_sub(start));
        if got != want {
            return Err(format!(
                "page at {}: {got} resources, expected {want}",
                start + 1
            ));
        }
        Ok(())
    })
    .await
    .0
}

async fn service_phases(
    args: &Args,
    svc: &Service,
    status: &MySqlPool,
    dir: &Path,
    report: &mut Report,
) -> Result<Vec<String>, String> {
    let api = &svc.api;
    let c = args.concurrency;
    let n = args.users;

    log(format!("create {n} users"));
    let perf = Perf::start(args, "create", svc.pid, dir).await;
    let (m, ids) = create_users(api, status, "c", 0..n, c).await;
    perf.stop();
    fail_on_errors("create users", &m)?;
    let ids: Vec<String> = ids.into_iter().map(Option::unwrap_or_default).collect();
    report
        .phases
        .push(row("create", format!("create {n} users"), m));

    log(format!("{} userName lookups", args.lookups));
    let people = lookup_indices(args.lookups, n, 42)
        .into_iter()
        .map(|i| ("c".to_owned(), i))
        .collect();
    let perf = Perf::start(args, "lookup", svc.pid, dir).await;
    let m = lookups(api, status, people, c).await;
    perf.stop();
    fail_on_errors("lookups", &m)?;
    report.phases.push(row(
        "lookup",
        format!("filter userName eq ({} random)", args.lookups),
        m,
    ));

    let has_groups = groups_available(api).await?;
    let group_label = format!("create {} groups", args.groups);
    let member_label = format!(
        "add members, batches of {} (~{}/group)",
        args.batch, args.members_per_group
    );
    if has_groups {
        log(group_label.clone());
        let perf = Perf::start(args, "group_create", svc.pid, dir).await;
        let (m, gids) = measured(status, (0..args.groups).collect(), c, |g| async move {
            let body = entra_group_body(&format!("Bench Group {g:02}"), g);
            let r = api
                .scim(Method::POST, "/Groups", Some(&body))
                .await?
                .expect(&[201], "POST /Groups")?;
            r.json()?
                .get("id")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| "POST /Groups: no id".to_owned())
        })
        .await;
        perf.stop();
        fail_on_errors("create groups", &m)?;
        report.phases.push(row("group_create", group_label, m));
        let gids: Vec<String> = gids.into_iter().map(Option::unwrap_or_default).collect();

        log(member_label.clone());
        let jobs = member_jobs(args.groups, args.members_per_group, args.batch, n);
        let (gids, ids_ref) = (&gids, &ids);
        let perf = Perf::start(args, "member_add", svc.pid, dir).await;
        let (m, _) = measured(status, jobs, c, |(g, members)| async move {
            let values: Vec<&str> = members.iter().map(|&i| ids_ref[i].as_str()).collect();
            let path = format!("/Groups/{}", gids[g]);
            api.scim(Method::PATCH, &path, Some(&add_members_body(&values)))
                .await?
                .expect(&[200, 204], "PATCH /Groups members")?;
            Ok(())
        })
        .await;
        perf.stop();
        fail_on_errors("add members", &m)?;
        report.phases.push(row("member_add", member_label, m));
    } else {
        log(GROUPS_404);
        report
            .phases
            .push(skipped("group_create", group_label, GROUPS_404));
        report
            .phases
            .push(skipped("member_add", member_label, GROUPS_404));
    }

    let jobs = list_jobs(n, args.list_passes);
    let label = format!("list all users, pages of 100 (x{})", args.list_passes);
    log(label.clone());
    let perf = Perf::start(args, "list", svc.pid, dir).await;
    let m = list_pages(
        api,
        status,
        jobs.into_iter().map(|p| p * 100).collect(),
        n,
        c,
    )
    .await;
    perf.stop();
    fail_on_errors("list", &m)?;
    report.phases.push(row("list", label, m));

    let which = deactivate_indices(n);
    let label = format!("deactivate 10% ({} users)", which.len());
    log(label.clone());
    let ids_ref = &ids;
    let perf = Perf::start(args, "deactivate", svc.pid, dir).await;
    let (m, _) = measured(status, which, c, |i| async move {
        let path = format!("/Users/{}", ids_ref[i]);
        let r = api
            .scim(Method::PATCH, &path, Some(&deactivate_body()))
            .await?
            .expect(&[200], "PATCH /Users active")?;
        if r.json()?.get("active") != Some(&Value::Bool(false)) {
            return Err("deactivate: response still active".into());
        }
        Ok(())
    })
    .await;
    perf.stop();
    fail_on_errors("deactivate", &m)?;
    report.phases.push(row("deactivate", label, m));
    Ok(ids)
}

async fn baseline_phases(
    args: &Args,
    db: &Db,
    status: &MySqlPool,
    report: &mut Report,
) -> Result<(), String> {
    let c = args.concurrency;
    let n = args.users;
    let actor = phab_scim::db::phabricator::new_phid("USER");
    let actor = actor.as_str();
    fn put(report: &mut Report, key: &str, m: Measured) {
        if let Some(r) = report.phases.iter_mut().find(|r| r.key == key) {
            r.ratio = r
                .service
                .as_ref()
                .map(|s| s.per_sec / m.per_sec.max(f64::MIN_POSITIVE));
            r.baseline = Some(m);
        }
    }

    log(format!("baseline: create {n} users"));
    let (m, phids) = measured(status, (0..n).collect(), c, |i| async move {
        let p = person("c", i);
        baseline::retrying(|| baseline::create_user(db, &p)).await
    })
    .await;
    fail_on_errors("baseline create", &m)?;
    put(report, "create", m);
    let phids: Vec<String> = phids.into_iter().map(Option::unwrap_or_default).collect();

    log("baseline: lookups");
    let (m, _) = measured(
        status,
        lookup_indices(args.lookups, n, 42),
        c,
        |i| async move { baseline::lookup_user(db, &person("c", i).user_name).await },
    )
    .await;
    fail_on_errors("baseline lookups", &m)?;
    put(report, "lookup", m);

    log("baseline: create groups");
    let (m, projects) = measured(status, (0..args.groups).collect(), c, |g| async move {
        let name = format!("Bench Group {g:02}");
        baseline::retrying(|| baseline::create_project(db, actor, &name)).await
    })
    .await;
    fail_on_errors("baseline groups", &m)?;
    put(report, "group_create", m);
    let projects: Vec<(String, u64)> = projects
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect();

    log("baseline: add members");
    let (projects, phids_ref) = (&projects, &phids);
    let (m, _) = measured(
        status,
        member_jobs(args.groups, args.members_per_group, args.batch, n),
        c,
        |(g, members)| async move {
            let ms: Vec<String> = members.iter().map(|&i| phids_ref[i].clone()).collect();
            let name = format!("Bench Group {g:02}");
            baseline::retrying(|| baseline::add_members(db, actor, &projects[g], &name, &ms)).await
        },
    )
    .await;
    fail_on_errors("baseline members", &m)?;
    put(report, "member_add", m);

    log("baseline: list pages");
    let (m, _) = measured(status, list_jobs(n, args.list_passes), c, |p| async move {
        let got = baseline::list_page(db, (p * 100) as u64, 100).await?;
        if got != 100.min(n - p * 100) {
            return Err(format!("baseline page {p}: {got} rows"));
        }
        Ok(())
    })
    .await;
    fail_on_errors("baseline list", &m)?;
    put(report, "list", m);

    log("baseline: deactivate");
    let (m, _) = measured(status, deactivate_indices(n), c, |i| async move {
        baseline::retrying(|| baseline::deactivate(db, actor, &phids_ref[i])).await
    })
    .await;
    fail_on_errors("baseline deactivate", &m)?;
    put(report, "deactivate", m);

    let tasks = baseline::count(db, &db.t.worker_activetask).await?;
    report
        .extras
        .insert("baseline_tasks_queued".into(), json!(tasks));
    Ok(())
}

async fn extras(
    args: &Args,
    svc: &mut Service,
    db: &Db,
    status: &MySqlPool,
    created: &[String],
    report: &mut Report,
) -> Result<(), String> {
    let api = svc.api.clone();
    let api = &api;
    let c = args.concurrency;

    // Token check on a cache hit: the same request path with and without the bearer check.
    log(format!(
        "token check: {} x /healthz vs /ServiceProviderConfig, one at a time",
        args.token_requests
    ));
    let (h, _) = run::run((0..args.token_requests).collect(), 1, |_| async move {
        api.healthz().await?.expect(&[200], "/healthz").map(|_| ())
    })
    .await;
    let (s, _) = run::run((0..args.token_requests).collect(), 1, |_| async move {
        api.scim(Method::GET, "/ServiceProviderConfig", None)
            .await?
            .expect(&[200], "/ServiceProviderConfig")
            .map(|_| ())
    })
    .await;
    fail_on_errors("healthz", &h)?;
    fail_on_errors("ServiceProviderConfig", &s)?;
    let mean = |m: &Measured| m.seconds * 1e6 / m.ops.max(1) as f64;
    report.extras.insert(
        "token_check".into(),
        json!({
            "requests": args.token_requests,
            "healthz_mean_us": mean(&h), "healthz_p50_us": h.p50_ms * 1000.0,
            "spc_mean_us": mean(&s), "spc_p50_us": s.p50_ms * 1000.0,
            "difference_mean_us": mean(&s) - mean(&h), "difference_p50_us": (s.p50_ms - h.p50_ms) * 1000.0,
        }),
    );

    let (rss, hwm) = svc.rss_kib();
    report.extras.insert(
        "rss_kib_after_phases".into(),
        json!({"rss": rss, "hwm": hwm, "users": created.len()}),
    );

    let has_groups = groups_available(api).await?;
    if has_groups {
        let n = args.big_patch;
        log(format!("one {n}-member PATCH (x3 groups)"));
        let mut times = Vec::new();
        for k in 0..3 {
            let body = entra_group_body(&format!("Bench Big {k}"), 1000 + k);
            let r = api
                .scim(Method::POST, "/Groups", Some(&body))
                .await?
                .expect(&[201], "POST /Groups")?;
            let gid = r
                .json()?
                .get("id")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or("no id")?;
            let values: Vec<&str> = created.iter().take(n).map(String::as_str).collect();
            let t0 = Instant::now();
            api.scim(
                Method::PATCH,
                &format!("/Groups/{gid}"),
                Some(&add_members_body(&values)),
            )
            .await?
            .expect(&[200, 204], "big PATCH")?;
            times.push(t0.elapsed().as_secs_f64() * 1000.0);
        }
        report
            .extras
            .insert("big_patch".into(), json!({"members": n, "ms": times}));
    } else {
        report.extras.insert("big_patch".into(), json!(GROUPS_404));
    }

    // Seed users by SQL up to the big group's size, then time GETs of a group holding them all.
    let t = db.t.clone();
    let big = args.big_group.max(created.len());
    let t0 = Instant::now();
    let mut seeded = seed::users(&db.pool, &t, "s", 0..big - created.len(), true).await?;
    log(format!(
        "seeded {} users by SQL in {:.1} s",
        seeded.len(),
        t0.elapsed().as_secs_f64()
    ));
    if has_groups {
        let body = entra_group_body("Bench Huge", 9999);
        let r = api
            .scim(Method::POST, "/Groups", Some(&body))
            .await?
            .expect(&[201], "POST /Groups")?;
        let gid = r
            .json()?
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or("no id")?;
        let all: Vec<String> = created.iter().chain(seeded.iter()).cloned().collect();
        seed::memberships(&db.pool, &t, &gid, &all).await?;
        log(format!("GET of a {}-member group (x3)", all.len()));
        let mut times = Vec::new();
        let mut members = 0;
        let mut bytes = 0;
        for _ in 0..3 {
            let t0 = Instant::now();
            let r = api
                .scim(Method::GET, &format!("/Groups/{gid}"), None)
                .await?
                .expect(&[200], "GET big group")?;
            times.push(t0.elapsed().as_secs_f64() * 1000.0);
            bytes = r.body.len();
            members = r
                .json()?
                .get("members")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
        }
        report.extras.insert("big_group_get".into(), json!({"members_seeded": all.len(), "members_returned": members, "bytes": bytes, "ms": times}));
    } else {
        report
            .extras
            .insert("big_group_get".into(), json!(GROUPS_404));
    }

    // RSS with the target number of users, after the service has read them.
    let have = created.len() + seeded.len();
    if args.rss_users > have {
        let t0 = Instant::now();
        let more = seed::users(
            &db.pool,
            &t,
            "s",
            seeded.len()..seeded.len() + (args.rss_users - have),
            true,
        )
        .await?;
        log(format!(
            "seeded {} more users by SQL in {:.1} s",
            more.len(),
            t0.elapsed().as_secs_f64()
        ));
        seeded.extend(more);
    }
    let total = created.len() + seeded.len();
    log(format!(
        "warming with {total} users: lookups and list pages"
    ));
    let mut rng = Rng::new(7);
    let picks: Vec<(String, usize)> = (0..2000)
        .map(|_| {
            let i = rng.below(total);
            if i < created.len() {
                ("c".to_owned(), i)
            } else {
                ("s".to_owned(), i - created.len())
            }
        })
        .collect();
    let look = lookups(api, status, picks, c).await;
    fail_on_errors("warm lookups", &look)?;
    // Deactivated users are still listed (disabled is not deprovisioned).
    let mut starts: Vec<usize> = (0..50).map(|k| k * (total / 50)).collect();
    Rng::new(8).shuffle(&mut starts);
    let list = list_pages(api, status, starts, total, c).await;
    fail_on_errors("warm list", &list)?;
    let (rss, hwm) = svc.rss_kib();
    report.extras.insert(
        "rss_at_scale".into(),
        json!({"users": total, "rss_kib": rss, "hwm_kib": hwm, "seeded_by_sql": seeded.len(), "lookups": look, "list_pages_spread": list}),
    );
    Ok(())
}

/// Growth: at each scale, seed users by SQL, then measure create, lookup and list.
async fn growth(
    args: &Args,
    url: &Secret,
    ns: &Namespace,
    status: &MySqlPool,
    dir: &Path,
    report: &mut Report,
) -> Result<(), String> {
    let c = args.concurrency;
    let gns = sub_ns(ns, "g")?;
    let db = service::install_namespace(url, &gns).await?;
    let svc = Service::start(
        &args.service_bin,
        url,
        &db,
        args.pool_size,
        dir.join("service-growth.log"),
        args.pid_file.as_deref(),
    )
    .await?;
    run::watch("service", svc.pid);
    let bdb = if args.baseline {
        let bns = sub_ns(ns, "gb")?;
        let d = service::install_namespace(url, &bns).await?;
        d.pool.close().await;
        Some(
            Db::connect(url, bns, u32::try_from(c).unwrap_or(8))
                .await
                .map_err(|e| e.to_string())?,
        )
    } else {
        None
    };
    let api = &svc.api;
    // Verify the token once (argon2) before measuring.
    api.scim(Method::GET, "/ServiceProviderConfig", None)
        .await?
        .expect(&[200], "warm-up")?;
    let create_n = if args.quick { 200 } else { 1000 };
    let mut seeded = 0usize;
    let mut created = 0usize;
    let mut seeded_phids: Vec<String> = Vec::new();
    let mut base_phids: Vec<String> = Vec::new();
    let deactivate_n = if args.quick { 30 } else { 100 };
    for (round, &scale) in args.scales.iter().enumerate() {
        let have = seeded + created;
        if scale > have {
            let t0 = Instant::now();
            seeded_phids.extend(
                seed::users(&db.pool, &db.t, "s", seeded..seeded + (scale - have), true).await?,
            );
            if let Some(b) = &bdb {
                base_phids.extend(
                    seed::users(&b.pool, &b.t, "s", seeded..seeded + (scale - have), false).await?,
                );
            }
            seeded += scale - have;
            log(format!(
                "growth: seeded to {scale} users in {:.1} s",
                t0.elapsed().as_secs_f64()
            ));
        }
        let total = seeded + created;
        let range = created..created + create_n;
        let (mc, _) = create_users(api, status, "g", range.clone(), c).await;
        fail_on_errors("growth create", &mc)?;
        let mut picks_rng = Rng::new(100 + round as u64);
        let picks: Vec<(String, usize)> = (0..2000)
            .map(|_| ("s".to_owned(), picks_rng.below(seeded)))
            .collect();
        let ml = lookups(api, status, picks.clone(), c).await;
        fail_on_errors("growth lookups", &ml)?;
        let after = total + create_n;
        let mut starts: Vec<usize> = (0..100).map(|k| k * (after / 100)).collect();
        Rng::new(200 + round as u64).shuffle(&mut starts);
        let mp = list_pages(api, status, starts.clone(), after, c).await;
        fail_on_errors("growth list", &mp)?;
        let first = list_pages(api, status, vec![0; 20], after, c).await;
        let last = list_pages(api, status, vec![(after - 1) / 100 * 100; 20], after, c).await;
        // Deactivate distinct seeded users (every scale picks a fresh stride of them).
        let picks_d: Vec<usize> = (0..deactivate_n)
            .map(|k| (k * 97 + round * 13 + 1) % seeded)
            .collect();
        let sp = &seeded_phids;
        let (md, _) = measured(status, picks_d.clone(), c, |i| async move {
            api.scim(
                Method::PATCH,
                &format!("/Users/{}", sp[i]),
                Some(&deactivate_body()),
            )
            .await?
            .expect(&[200], "PATCH /Users active")?;
            Ok(())
        })
        .await;
        fail_on_errors("growth deactivate", &md)?;
        let mut entry = json!({
            "users_before": total, "create": mc, "lookup": ml, "list_spread": mp,
            "list_first_page": first, "list_last_page": last, "deactivate": md,
        });
        if let Some(b) = &bdb {
            let (bc, _) = measured(status, range.clone().collect(), c, |i| async move {
                let p = person("g", i);
                baseline::retrying(|| baseline::create_user(b, &p)).await
            })
            .await;
            let (bl, _) = measured(status, picks, c, |(p, i)| async move {
                baseline::lookup_user(b, &person(&p, i).user_name).await
            })
            .await;
            let (bp, _) = measured(status, starts, c, |s| async move {
                baseline::list_page(b, s as u64, 100).await.map(|_| ())
            })
            .await;
            let actor = phab_scim::db::phabricator::new_phid("USER");
            let (actor, bph) = (&actor, &base_phids);
            let (bd, _) = measured(status, picks_d, c, |i| async move {
                baseline::retrying(|| baseline::deactivate(b, actor, &bph[i])).await
            })
            .await;
            entry["baseline"] =
                json!({"create": bc, "lookup": bl, "list_spread": bp, "deactivate": bd});
        }
        created += create_n;
        report.growth.push(entry);
    }
    if let Some(b) = bdb {
        b.pool.close().await;
    }
    drop(svc);
    db.pool.close().await;
    Ok(())
}

/// The 1-minute load average: other work on this machine makes the numbers noisy.
fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

fn fmt_opt(v: Option<f64>, prec: usize) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.prec$}"))
}

fn print_report(args: &Args, r: &Report) {
    println!();
    println!(
        "phab-scim load benchmark: {} users, concurrency {}, service pool {}{}",
        args.users,
        args.concurrency,
        args.pool_size,
        if args.quick { " (quick)" } else { "" }
    );
    if !r.phases.is_empty() {
        println!();
        println!(
            "{:<44} {:>6} {:>7} {:>8} {:>7} {:>7} {:>6} | {:>9} {:>7} {:>7} {:>6} {:>6}",
            "phase",
            "ops",
            "sec",
            "req/s",
            "p50 ms",
            "p99 ms",
            "stm/op",
            "base op/s",
            "b p50",
            "b p99",
            "b stm",
            "ratio"
        );
        println!("{}", "-".repeat(140));
        for row in &r.phases {
            match &row.service {
                Some(s) => {
                    let b = row.baseline.as_ref();
                    println!(
                        "{:<44} {:>6} {:>7.2} {:>8.1} {:>7.2} {:>7.2} {:>6} | {:>9} {:>7} {:>7} {:>6} {:>6}",
                        row.phase,
                        s.ops,
                        s.seconds,
                        s.per_sec,
                        s.p50_ms,
                        s.p99_ms,
                        fmt_opt(s.statements_per_op, 1),
                        fmt_opt(b.map(|b| b.per_sec), 1),
                        fmt_opt(b.map(|b| b.p50_ms), 2),
                        fmt_opt(b.map(|b| b.p99_ms), 2),
                        fmt_opt(b.and_then(|b| b.statements_per_op), 1),
                        fmt_opt(row.ratio, 2),
                    );
                }
                None => {
                    let note = row.note.as_deref().unwrap_or("skipped");
                    match &row.baseline {
                        Some(b) => println!(
                            "{:<44} {:<50} | {:>9.1} {:>7.2} {:>7.2} {:>6} {:>6}",
                            row.phase,
                            note,
                            b.per_sec,
                            b.p50_ms,
                            b.p99_ms,
                            fmt_opt(b.statements_per_op, 1),
                            "-"
                        ),
                        None => println!("{:<44} {note}", row.phase),
                    }
                }
            }
        }
    }
    if r.phases.iter().any(|p| {
        p.service
            .as_ref()
            .is_some_and(|s| !s.cpu_ms_per_op.is_empty())
    }) {
        println!();
        println!(
            "{:<44} {:>9} {:>9} {:>9} | {:>9} {:>9}   (CPU ms per operation, from /proc)",
            "phase", "service", "mariadbd", "client", "b mariadb", "b client"
        );
        let get = |m: Option<&Measured>, k: &str| {
            fmt_opt(m.and_then(|m| m.cpu_ms_per_op.get(k).copied()), 3)
        };
        for row in &r.phases {
            let (s, b) = (row.service.as_ref(), row.baseline.as_ref());
            println!(
                "{:<44} {:>9} {:>9} {:>9} | {:>9} {:>9}",
                row.phase,
                get(s, "service"),
                get(s, "mariadbd"),
                get(s, "client"),
                get(b, "mariadbd"),
                get(b, "client")
            );
        }
    }
    let ex = &r.extras;
    if let Some(v) = ex.get("cold_start") {
        println!();
        println!(
            "cold start: {} concurrent first requests (empty token cache): p50 {:.0} ms, max {:.0} ms; service peak RSS after them {:.1} MiB",
            v["concurrent_first_requests"],
            v["p50_ms"].as_f64().unwrap_or(0.0),
            v["max_ms"].as_f64().unwrap_or(0.0),
            v["hwm_kib_after"].as_f64().unwrap_or(0.0) / 1024.0
        );
    }
    if let Some(t) = ex.get("token_check") {
        println!(
            "token check on a cache hit: /ServiceProviderConfig {:.0} us vs /healthz {:.0} us per request (mean, one at a time): {:.0} us",
            t["spc_mean_us"].as_f64().unwrap_or(0.0),
            t["healthz_mean_us"].as_f64().unwrap_or(0.0),
            t["difference_mean_us"].as_f64().unwrap_or(0.0)
        );
    }
    match ex.get("big_patch") {
        Some(Value::String(s)) => println!("big PATCH: {s}"),
        Some(v) => println!(
            "one {}-member PATCH add: {} ms",
            v["members"],
            fmt_list(&v["ms"])
        ),
        None => {}
    }
    match ex.get("big_group_get") {
        Some(Value::String(s)) => println!("big group GET: {s}"),
        Some(v) => println!(
            "GET of a {}-member group: {} ms ({} members returned, {} bytes)",
            v["members_seeded"],
            fmt_list(&v["ms"]),
            v["members_returned"],
            v["bytes"]
        ),
        None => {}
    }
    if let Some(v) = ex.get("rss_kib_after_phases") {
        println!(
            "service RSS after the phases ({} users): {:.1} MiB",
            v["users"],
            v["rss"].as_f64().unwrap_or(0.0) / 1024.0
        );
    }
    if let Some(v) = ex.get("rss_at_scale") {
        println!(
            "service RSS with {} users ({} seeded by SQL), after 2000 lookups and 50 list pages: {:.1} MiB (peak {:.1} MiB)",
            v["users"],
            v["seeded_by_sql"],
            v["rss_kib"].as_f64().unwrap_or(0.0) / 1024.0,
            v["hwm_kib"].as_f64().unwrap_or(0.0) / 1024.0
        );
    }
    if !r.growth.is_empty() {
        println!();
        println!(
            "{:<10} {:>22} {:>22} {:>22} {:>22} {:>10} {:>10}",
            "users",
            "create req/s (p50)",
            "lookup req/s (p50)",
            "list req/s (p50)",
            "deactivate/s (p50)",
            "page 1 ms",
            "last ms"
        );
        for g in &r.growth {
            let cell = |k: &str| {
                format!(
                    "{:.0} ({:.1} ms)",
                    g[k]["per_sec"].as_f64().unwrap_or(0.0),
                    g[k]["p50_ms"].as_f64().unwrap_or(0.0)
                )
            };
            println!(
                "{:<10} {:>22} {:>22} {:>22} {:>22} {:>10.1} {:>10.1}",
                g["users_before"],
                cell("create"),
                cell("lookup"),
                cell("list_spread"),
                cell("deactivate"),
                g["list_first_page"]["p50_ms"].as_f64().unwrap_or(0.0),
                g["list_last_page"]["p50_ms"].as_f64().unwrap_or(0.0)
            );
            if let Some(b) = g.get("baseline") {
                let bc = |k: &str| {
                    format!(
                        "{:.0} ({:.1} ms)",
                        b[k]["per_sec"].as_f64().unwrap_or(0.0),
                        b[k]["p50_ms"].as_f64().unwrap_or(0.0)
                    )
                };
                println!(
                    "{:<10} {:>22} {:>22} {:>22} {:>22}",
                    "  baseline",
                    bc("create"),
                    bc("lookup"),
                    bc("list_spread"),
                    bc("deactivate")
                );
            }
        }
    }
    if let Some(t) = ex.get("total_seconds") {
        println!("\ntotal: {:.0} s", t.as_f64().unwrap_or(0.0));
    }
    if let Some(l) = ex.get("loadavg_1min") {
        let (b, a) = (
            l["before"].as_f64().unwrap_or(0.0),
            l["after"].as_f64().unwrap_or(0.0),
        );
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1) as f64;
        println!("load average (1 min): {b:.2} before, {a:.2} after");
        if b > cpus * 0.5 {
            println!("warning: the machine was busy before the run started; the numbers are noisy");
        }
    }
}

fn fmt_list(v: &Value) -> String {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|x| format!("{:.1}", x.as_f64().unwrap_or(0.0)))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}
