//! The command line (docs/design.md#configuration-and-commands): serve, migrate, check, token,
//! status, demo.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sqlx::Connection;

use crate::app::Application;
use crate::config::{Config, Namespace};
use crate::db::{Db, check, migrate, now, sidecar};
use crate::provisioning::Provisioner;

/// SCIM 2.0 provisioning for Phabricator and Phorge.
#[derive(Debug, Parser)]
#[command(name = "phab-scim", version, about)]
pub struct Cli {
    /// TOML configuration file (overridden by PHAB_SCIM_* variables).
    #[arg(long, global = true, env = "PHAB_SCIM_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log as JSON lines.
    #[arg(long, global = true)]
    pub json_logs: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve /scim/v2 (applies pending <ns>_scim patches first).
    Serve,
    /// Apply pending <ns>_scim patches and exit.
    Migrate,
    /// Check connectivity and that the namespace has every table and column phab-scim needs.
    Check,
    /// Manage SCIM tokens.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Print the data of the status page.
    Status {
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Begin a staged rollout: copy the tables SCIM writes and start an empty plan; then serve
    /// with mode = "staged" (README.md, First rollout). Needs the migrate account's grants.
    Stage {
        /// Forget the plan of an earlier staged rollout and start over.
        #[arg(long)]
        discard: bool,
    },
    /// Apply the staged plan to Phabricator, in order, each operation in its own transaction;
    /// run again to go on after a failure or an interruption.
    Apply,
    /// Build a demo namespace (Phabricator's tables), issue a token and serve.
    Demo {
        /// Demo namespace.
        #[arg(long, default_value = "phabscimdemo")]
        namespace: String,
        /// Drop and rebuild the namespace first.
        #[arg(long)]
        reset: bool,
    },
}

/// Token subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenAction {
    /// Issue a token for the bot (created when missing); the token is the last line of stdout.
    Create {
        #[arg(long, default_value = "IdP")]
        label: String,
        /// Username of the bot account the token speaks for.
        #[arg(long, default_value = "scim-bot")]
        bot: String,
        /// Expire after this many days.
        #[arg(long)]
        expires_days: Option<u32>,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token by id.
    Revoke { id: u32 },
}

/// `println!` that returns the write error instead of panicking: `phab-scim check | head -2`
/// closes the pipe early, which is the reader's choice, not a failure to report.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

/// The exit status of a program the shell saw killed by SIGPIPE (128 + 13), which is what
/// `cat` or `grep` report when their reader goes away.
const BROKEN_PIPE_STATUS: u8 = 141;

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::telemetry::init(cli.json_logs);
    // The configuration comes first: it says how many threads the runtime gets.
    let result = (|| -> anyhow::Result<ExitCode> {
        let cfg = Config::load(cli.config.as_deref())?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cfg.worker_threads())
            .enable_all()
            .build()?;
        runtime.block_on(run(cli, cfg))
    })();
    match result {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::from(BROKEN_PIPE_STATUS),
        Err(e) => {
            eprintln!("phab-scim: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The reader of standard output went away (`| head`): nothing to say, nobody to say it to.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

async fn provisioner(cfg: Config) -> anyhow::Result<Provisioner> {
    // A pool per master when the databases are on several (writes then commit by XA).
    let db = Db::connect_config(&cfg, 4, crate::db::Timeouts::default()).await?;
    Ok(Provisioner {
        db,
        cfg: Arc::new(cfg),
    })
}

async fn run(cli: Cli, cfg: Config) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve => {
            let metrics = crate::telemetry::init_metrics();
            Application::build(cfg, metrics)
                .await?
                .run_until_stopped()
                .await?;
        }
        Command::Migrate => {
            let p = provisioner(cfg).await?;
            let report = migrate::migrate(&p.db).await?;
            outln!("applied {} patch(es)", report.applied.len())?;
            for k in report.applied {
                outln!("  {k}")?;
            }
        }
        Command::Check => return check_cmd(cfg).await,
        Command::Token { action } => token_cmd(cfg, action).await?,
        Command::Status { json } => status_cmd(cfg, json).await?,
        Command::Stage { discard } => stage_cmd(cfg, discard).await?,
        Command::Apply => return apply_cmd(cfg).await,
        Command::Demo { namespace, reset } => demo_cmd(cfg, &namespace, reset).await?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn stage_cmd(cfg: Config, discard: bool) -> anyhow::Result<()> {
    let p = provisioner(cfg).await?;
    let report = p.begin_stage(discard).await?;
    for (table, rows) in &report.copied {
        outln!("copied {rows} row(s) of {table}")?;
    }
    outln!(
        "staged rollout begun: serve with mode = \"staged\"; the IdP's writes become the plan on the Plan page (/scim/plan/); then `phab-scim apply`"
    )?;
    Ok(())
}

async fn apply_cmd(cfg: Config) -> anyhow::Result<ExitCode> {
    let p = provisioner(cfg).await?;
    let report = p
        .apply_plan(|op, result| {
            let outcome = match result {
                Ok(()) => "applied".to_owned(),
                Err(e) => format!("refused: {}", e.reason().unwrap_or("database error")),
            };
            // Progress only; a closed pipe is noticed by the summary below.
            let _ = outln!("{} {} {}: {outcome}", op.id, op.operation, op.object_phid);
        })
        .await?;
    if report.already > 0 {
        outln!(
            "{} operation(s) were applied by an earlier run",
            report.already
        )?;
    }
    outln!("{} operation(s) applied", report.applied)?;
    if let Some((id, why)) = report.failed {
        outln!(
            "stopped at operation {id}: {why}\nfix the cause (or change the setting it names) and run `phab-scim apply` again"
        )?;
        return Ok(ExitCode::FAILURE);
    }
    if let Some(why) = report.copies_left {
        outln!(
            "the staged copies could not be dropped ({why}); drop <namespace>_scimstage with an account that may"
        )?;
    }
    outln!(
        "the plan is applied: the service now writes Phabricator directly; set mode = \"live\""
    )?;
    Ok(ExitCode::SUCCESS)
}

async fn check_cmd(cfg: Config) -> anyhow::Result<ExitCode> {
    // Where the database settings came from, first: it explains a failure to connect.
    let sources = &cfg.database_sources;
    outln!(
        "database_url: {} (from {})",
        crate::config::phabricator::redacted_url(&cfg.database_url),
        sources.database_url
    )?;
    outln!(
        "namespace setting: {} (from {})",
        cfg.namespace.as_str(),
        sources.namespace
    )?;
    if let Some(cluster) = &sources.cluster {
        outln!("{cluster}")?;
    }
    if let Some(warning) = &sources.warning {
        outln!("warning: {warning}")?;
    }
    let routing = cfg.routing();
    if let Some(routing) = &sources.routing {
        // The host's own routing (config::cluster): where each database is read and written.
        outln!("routing (database -> master):")?;
        for line in routing.table() {
            outln!("  {line}")?;
        }
    }
    if routing.one_master().is_some() {
        let p = provisioner(cfg).await?;
        p.db.ping().await.context("connecting to MySQL")?;
        outln!("database: reachable")?;
        return Ok(if check_master(&p.db, p.cfg.mode, |_| true).await? {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    // Partitioned: each master is checked for the databases it holds; a write spanning them
    // commits by XA (db::xa).
    let mut ok = true;
    for (index, master) in routing.masters.iter().enumerate() {
        let here = routing.databases_on(index);
        outln!("master {} ({}):", master.key, here.join(", "))?;
        let db = match Db::connect(&master.url, cfg.namespace.clone(), 1).await {
            Ok(db) => db,
            Err(e) => {
                ok = false;
                outln!("database: NOT reachable: {e}")?;
                continue;
            }
        };
        if let Err(e) = db.ping().await {
            ok = false;
            outln!("database: NOT reachable: {e}")?;
            continue;
        }
        outln!("database: reachable")?;
        ok &= check_master(&db, cfg.mode, |app| here.contains(&app)).await?;
        if let Some(want) = &routing.state {
            ok &= check_partition_state(&db, want).await?;
        }
    }
    if ok {
        outln!("masters: each has the schema and grants of the databases it holds")?;
    }
    outln!(
        "writes across masters: XA, decided in {}_scimxa on {} (created by migrate)",
        cfg.namespace.as_str(),
        routing.master_of("scim").key
    )?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Whether the master recorded the same `cluster.databases` as local.json's (passwords left
/// out): Phorge's setup check (`PhabricatorDatabaseSetupCheck`) stops the host when a
/// master's record differs, or is missing, until `bin/storage partition` writes it. Prints
/// what it finds; an account that may not read the record is a note, not a failure.
async fn check_partition_state(db: &Db, want: &serde_json::Value) -> anyhow::Result<bool> {
    let found = match check::partition_state(db).await {
        Ok(found) => found,
        Err(e) => {
            outln!("partition state: not read ({e}); Phorge's setup check compares it")?;
            return Ok(true);
        }
    };
    let same = match found
        .as_deref()
        .map(serde_json::from_str::<serde_json::Value>)
    {
        None => {
            outln!(
                "partition state: none recorded on this master; Phorge stops at its setup \
                 check until `bin/storage partition` records cluster.databases"
            )?;
            return Ok(false);
        }
        Some(Ok(v)) => v == *want,
        Some(Err(_)) => false,
    };
    if same {
        outln!("partition state: as in local.json")?;
    } else {
        outln!(
            "partition state: differs from local.json's cluster.databases; run \
             `bin/storage partition` (Phorge stops at its setup check until then)"
        )?;
    }
    Ok(same)
}

/// The checks of one master, for the databases `here` accepts (all of them on a single
/// server): the namespace, the schema, the grants `serve` and `migrate` need. Prints what it
/// finds; `true` when `serve` could run on it.
async fn check_master(
    db: &Db,
    mode: crate::config::RolloutMode,
    here: impl Fn(&str) -> bool + Copy,
) -> anyhow::Result<bool> {
    let namespaces = check::namespaces(db).await?;
    if !namespaces.iter().any(|n| n == db.ns.as_str()) {
        let known = if namespaces.is_empty() {
            "none".to_owned()
        } else {
            namespaces.join(", ")
        };
        outln!(
            "namespace: {ns} does not exist on this server (no database {ns}_meta_data); \
             Phabricator namespaces here: {known}",
            ns = db.ns.as_str(),
        )?;
        return Ok(false);
    }
    let report = check::check_databases(db, here).await?;
    outln!("namespace: {} ({} schema)", db.ns.as_str(), report.flavour)?;
    let mut ok = true;
    for (title, items) in [
        ("missing table", &report.missing_tables),
        ("missing column", &report.missing_columns),
        ("different type", &report.different_types),
    ] {
        for i in items {
            ok = false;
            outln!("{title}: {i}")?;
        }
    }
    if ok {
        outln!("schema: compatible")?;
    }
    // Before a write fails: every privilege `serve` needs (README.md, *The database account*).
    let only_here = |needs: &[crate::db::grants::Need]| -> Vec<crate::db::grants::Need> {
        needs.iter().filter(|n| here(n.app)).copied().collect()
    };
    let needs = match mode {
        crate::config::RolloutMode::Live => only_here(crate::db::grants::SERVE),
        crate::config::RolloutMode::Staged => {
            only_here(&[crate::db::grants::SERVE, crate::db::grants::STAGED].concat())
        }
    };
    let missing = crate::db::grants::missing(db, &needs).await?;
    for m in &missing {
        outln!("missing grant: {m}")?;
    }
    if missing.is_empty() {
        outln!("grants: enough for serve")?;
    } else {
        outln!(
            "grants: NOT enough for serve (README.md, \"The database account\", has the GRANT statements)"
        )?;
    }
    // `migrate` needs more; a least-privilege serve account lacking it is the expected setup.
    let for_migrate =
        crate::db::grants::missing(db, &only_here(crate::db::grants::MIGRATE)).await?;
    if for_migrate.is_empty() {
        outln!("grants: enough for migrate")?;
    } else {
        outln!(
            "grants: not enough for migrate (lacks {}); apply patches with an account that has them, or bin/storage upgrade",
            for_migrate.join(", ")
        )?;
    }
    if !ok {
        outln!(
            "schema: NOT compatible ({})",
            upgrade_advice(&report, &db.ns)
        )?;
    }
    Ok(ok && missing.is_empty())
}

/// What to run for what is missing: Phabricator's own tables come from `bin/storage upgrade`;
/// `<ns>_scim` alone from either `phab-scim migrate` or `bin/storage upgrade` with the
/// extension loaded (both apply the same patches, phabricator-ext/README.md).
fn upgrade_advice(report: &check::Report, ns: &Namespace) -> &'static str {
    let scim = format!("{}_scim.", ns.as_str());
    let only_scim = report
        .missing_tables
        .iter()
        .chain(&report.missing_columns)
        .chain(&report.different_types)
        .all(|name| name.starts_with(&scim));
    if only_scim {
        "run `phab-scim migrate`, or `bin/storage upgrade` with the extension loaded"
    } else {
        "run `bin/storage upgrade` in Phabricator; with the extension loaded it also applies \
         phab-scim's patches"
    }
}

async fn token_cmd(cfg: Config, action: TokenAction) -> anyhow::Result<()> {
    let p = provisioner(cfg).await?;
    migrate::migrate(&p.db).await?;
    match action {
        TokenAction::Create {
            label,
            bot,
            expires_days,
        } => {
            let bot_phid = p
                .ensure_bot(&bot)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let expires = expires_days.map(|d| now().saturating_add(d.saturating_mul(86_400)));
            let (id, token) = crate::token::issue(&p.db, &bot_phid, &label, expires).await?;
            eprintln!("token {id} issued for @{bot} ({bot_phid}); it is shown once:");
            outln!("{token}")?;
        }
        TokenAction::List => {
            let mut conn = p.db.pool.acquire().await?;
            for t in
                sidecar::list_tokens(&mut crate::db::Conns::of(&p.db, &mut conn), &p.db.t).await?
            {
                let state = if t.date_revoked.is_some() {
                    "revoked"
                } else if t.date_expires.is_some_and(|e| e <= now()) {
                    "expired"
                } else {
                    "active"
                };
                outln!(
                    "{}\t{}\t{}\t{state}\tcreated {}\tlast used {}",
                    t.id,
                    t.label,
                    t.bot_phid,
                    crate::scim::resource::datetime(t.date_created),
                    t.date_last_used
                        .map(crate::scim::resource::datetime)
                        .unwrap_or_else(|| "never".into())
                )?;
            }
        }
        TokenAction::Revoke { id } => {
            let mut conn = p.db.pool.acquire().await?;
            if sidecar::revoke_token(&mut crate::db::Conns::of(&p.db, &mut conn), &p.db.t, id)
                .await?
            {
                outln!("token {id} revoked")?;
            } else {
                anyhow::bail!("no active token {id}");
            }
        }
    }
    Ok(())
}

async fn status_cmd(cfg: Config, json: bool) -> anyhow::Result<()> {
    let guard = crate::db::status::GuardSettings::of(&cfg);
    let mode = cfg.mode;
    let p = provisioner(cfg).await?;
    let mut s = crate::db::status::load(&p.db, guard).await?;
    s.mode = mode;
    if json {
        outln!("{}", serde_json::to_string_pretty(&s)?)?;
    } else {
        outln!("{s}")?;
    }
    Ok(())
}

async fn demo_cmd(mut cfg: Config, namespace: &str, reset: bool) -> anyhow::Result<()> {
    let ns = Namespace::parse(namespace)?;
    let url = cfg.one_master_url()?.clone();
    if reset {
        migrate::drop_namespace(&url, &ns).await?;
    }
    let mut conn = sqlx::MySqlConnection::connect_with(&crate::db::connect_options(&url)?).await?;
    migrate::install_phabricator_fixture(&mut conn, &ns).await?;
    drop(conn);
    cfg.namespace = ns;
    if cfg.placeholder_email_domain.is_none() {
        cfg.placeholder_email_domain = Some("example.invalid".into());
    }
    let p = provisioner(cfg.clone()).await?;
    migrate::migrate(&p.db).await?;
    let bot = p
        .ensure_bot("scim-bot")
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let (_, token) = crate::token::issue(&p.db, &bot, "demo", None).await?;
    let app = Application::build(cfg, crate::telemetry::init_metrics()).await?;
    let base = format!("http://{}/scim/v2", app.addr());
    outln!("phab-scim demo on namespace {namespace}")?;
    outln!("SCIM URL: {base}")?;
    outln!("Token:    {token}")?;
    outln!()?;
    outln!("Try:")?;
    outln!(
        "  curl -s -X POST {base}/Users -H 'Authorization: Bearer {token}' -H 'Content-Type: application/scim+json' \\\n    -d '{{\"schemas\":[\"urn:ietf:params:scim:schemas:core:2.0:User\"],\"userName\":\"jane.doe@example.com\",\"displayName\":\"Jane Doe\",\"emails\":[{{\"value\":\"jane.doe@example.com\",\"primary\":true}}]}}'"
    )?;
    outln!(
        "  curl -s '{base}/Users?filter=userName%20eq%20%22jane.doe@example.com%22' -H 'Authorization: Bearer {token}'"
    )?;
    app.run_until_stopped().await
}
