//! The binary's token and check commands, run as an administrator would.

use std::process::Command;

use crate::helpers::{TestApp, database_url};

fn phab_scim(app: &TestApp, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_phab-scim"))
        .args(args)
        .env("PHAB_SCIM_DATABASE_URL", database_url())
        .env("PHAB_SCIM_NAMESPACE", app.ns.as_str())
        .env("PHAB_SCIM_TEST_DATABASE_URL", "ignored by the service")
        .output()
        .expect("run phab-scim")
}

#[tokio::test]
async fn token_commands_and_check() {
    let app = TestApp::spawn().await;
    let out = phab_scim(&app, &["token", "create", "--label", "Okta"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let token = stdout.lines().last().unwrap().to_owned();
    assert!(
        phab_scim::token::parse(&token).is_some(),
        "the token is the last line: {stdout:?}"
    );
    let (id, _) = phab_scim::token::parse(&token).unwrap();
    // The CLI's token works against the running service, through the same bot.
    let r = app
        .client
        .get(format!("{}/Users", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let list = String::from_utf8(phab_scim(&app, &["token", "list"]).stdout).unwrap();
    assert!(list.contains("Okta") && list.contains("active"), "{list}");
    assert!(!list.contains(&token[10..]), "list never shows secrets");
    assert!(
        phab_scim(&app, &["token", "revoke", &id.to_string()])
            .status
            .success()
    );
    assert!(
        String::from_utf8(phab_scim(&app, &["token", "list"]).stdout)
            .unwrap()
            .contains("revoked")
    );
    assert!(
        !phab_scim(&app, &["token", "revoke", &id.to_string()])
            .status
            .success()
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM {user}.user WHERE userName = 'scim-bot'")
            .await,
        1,
        "the bot is reused"
    );

    let check = phab_scim(&app, &["check"]);
    let text = String::from_utf8_lossy(&check.stdout).into_owned();
    assert!(
        check.status.success() && text.contains("schema: compatible") && text.contains("phorge"),
        "{text}"
    );
    app.exec("DROP TABLE {user}.user_nametoken").await;
    let check = phab_scim(&app, &["check"]);
    let text = String::from_utf8_lossy(&check.stdout).into_owned();
    assert!(!check.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "missing table: {}_user.user_nametoken",
            app.ns.as_str()
        )),
        "{text}"
    );
    let status = String::from_utf8(phab_scim(&app, &["status", "--json"]).stdout).unwrap();
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["namespace"], app.ns.as_str());
    app.cleanup().await;
}

/// `check` with only `phabricator_root` set: the MySQL account and namespace come from the
/// checkout's local.json, through a password that needs percent-encoding, and the output says
/// where the settings came from without showing the password.
#[tokio::test]
async fn check_reads_the_database_settings_of_a_phabricator_checkout() {
    const PASS: &str = "p@ss:w/rd%#?& \"x\"";
    let app = TestApp::spawn().await;
    let opts =
        phab_scim::db::connect_options(&phab_scim::config::Secret::new(database_url())).unwrap();
    let user = format!("{}_pw", app.ns.as_str());
    for stmt in [
        format!("DROP USER IF EXISTS '{user}'@'%'"),
        format!(
            "CREATE USER '{user}'@'%' IDENTIFIED BY '{}'",
            PASS.replace('\'', "''")
        ),
        format!("GRANT ALL ON *.* TO '{user}'@'%'"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(stmt))
            .execute(&app.pool)
            .await
            .unwrap();
    }
    let root = std::env::temp_dir().join(format!("phab-scim-root-{}", app.ns.as_str()));
    std::fs::create_dir_all(root.join("conf/local")).unwrap();
    let local_json = root.join("conf/local/local.json");
    let host = match opts.get_host() {
        "localhost" => "127.0.0.1",
        h => h,
    };
    std::fs::write(
        &local_json,
        serde_json::json!({
            "mysql.host": host,
            "mysql.port": opts.get_port().to_string(),
            "mysql.user": user,
            "mysql.pass": PASS,
            "storage.default-namespace": app.ns.as_str(),
        })
        .to_string(),
    )
    .unwrap();
    let run = |namespace: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_phab-scim"));
        cmd.arg("check")
            .env_remove("PHAB_SCIM_DATABASE_URL")
            .env_remove("PHAB_SCIM_NAMESPACE")
            .env_remove("PHAB_SCIM_CONFIG")
            .env_remove("PHABRICATOR_ENV")
            .env("PHAB_SCIM_PHABRICATOR_ROOT", &root);
        if let Some(ns) = namespace {
            cmd.env("PHAB_SCIM_NAMESPACE", ns);
        }
        let out = cmd.output().expect("run phab-scim");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };

    let (ok, text) = run(None);
    let from = format!("(from {})", local_json.display());
    assert!(ok && text.contains("schema: compatible"), "{text}");
    assert!(
        text.contains(&format!(
            "database_url: mysql://{user}:<redacted>@{host}:{} {from}",
            opts.get_port()
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("namespace setting: {} {from}", app.ns.as_str())),
        "{text}"
    );
    assert!(!text.contains("p@ss") && !text.contains("p%40ss"), "{text}");

    // An explicit namespace wins over the checkout's (and this one has no tables).
    let (ok, text) = run(Some("phabscim_nowhere"));
    assert!(!ok, "{text}");
    assert!(
        text.contains("namespace setting: phabscim_nowhere (from explicit setting)"),
        "{text}"
    );

    sqlx::query(sqlx::AssertSqlSafe(format!("DROP USER '{user}'@'%'")))
        .execute(&app.pool)
        .await
        .unwrap();
    std::fs::remove_dir_all(&root).unwrap();
    app.cleanup().await;
}

/// Runs `phab-scim check` with `env` on top of the test database's settings; (status, stdout,
/// stderr).
fn check_with(app: &TestApp, env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_phab-scim"));
    cmd.arg("check")
        .env("PHAB_SCIM_DATABASE_URL", database_url())
        .env("PHAB_SCIM_NAMESPACE", app.ns.as_str())
        .env_remove("PHAB_SCIM_CONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run phab-scim");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A configuration file that is not there is an error, by flag or by variable: running on
/// defaults would serve another database without a word.
#[tokio::test]
async fn a_missing_configuration_file_is_refused() {
    let app = TestApp::spawn().await;
    let missing = std::env::temp_dir().join(format!("{}-none.toml", app.ns.as_str()));
    let missing = missing.to_string_lossy().into_owned();
    let out = Command::new(env!("CARGO_BIN_EXE_phab-scim"))
        .args(["--config", &missing, "check"])
        .env("PHAB_SCIM_DATABASE_URL", database_url())
        .env("PHAB_SCIM_NAMESPACE", app.ns.as_str())
        .output()
        .expect("run phab-scim");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("configuration file {missing} does not exist")),
        "{stderr}"
    );
    let (code, _, stderr) = check_with(&app, &[("PHAB_SCIM_CONFIG", &missing)]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("does not exist"), "{stderr}");
    app.cleanup().await;
}

/// A misspelled variable is named with the setting it was probably meant to be; log lines
/// written to a pipe carry no colour codes.
#[tokio::test]
async fn a_misspelled_variable_is_warned_about_in_plain_text() {
    let app = TestApp::spawn().await;
    let (code, stdout, stderr) = check_with(&app, &[("PHAB_SCIM_LISTN", "127.0.0.1:1")]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stderr.contains(
            "PHAB_SCIM_LISTN is not a setting and is ignored; did you mean PHAB_SCIM_LISTEN?"
        ),
        "{stderr}"
    );
    assert!(
        !stderr.contains('\u{1b}'),
        "no ANSI escapes in a pipe: {stderr:?}"
    );
    app.cleanup().await;
}

/// A namespace with no Phabricator databases is said to be absent, with the ones that exist,
/// not reported as a schema to upgrade.
#[tokio::test]
async fn check_names_an_absent_namespace_and_the_ones_present() {
    let app = TestApp::spawn().await;
    let absent = format!("{}_absent", app.ns.as_str());
    let (code, stdout, stderr) = check_with(&app, &[("PHAB_SCIM_NAMESPACE", &absent)]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!(
            "namespace: {absent} does not exist on this server"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(app.ns.as_str()),
        "lists what exists: {stdout}"
    );
    assert!(!stdout.contains("missing table"), "{stdout}");
    app.cleanup().await;
}

/// A server that refuses connections is named with its cause, once, at once (not "pool timed
/// out" after the pool's wait).
#[tokio::test]
async fn an_unreachable_database_is_named_with_its_cause_once() {
    let app = TestApp::spawn().await;
    // Port 1 (tcpmux) has no listener on a test machine: the connection is refused.
    let (code, stdout, stderr) = check_with(
        &app,
        &[("PHAB_SCIM_DATABASE_URL", "mysql://root:pw@127.0.0.1:1")],
    );
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains("MySQL at 127.0.0.1:1 cannot be reached"),
        "{stderr}"
    );
    assert_eq!(stderr.matches("connection refused").count(), 1, "{stderr}");
    assert!(!stderr.contains("pool timed out"), "{stderr}");
    assert!(!stderr.contains("pw@"), "never the password: {stderr}");
    app.cleanup().await;
}

/// `phab-scim check | head -1`: the reader leaving early ends the program quietly, as it ends
/// `cat`, not with a panic.
#[tokio::test]
async fn a_closed_pipe_ends_the_output_quietly() {
    let app = TestApp::spawn().await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_phab-scim"))
        .arg("check")
        .env("PHAB_SCIM_DATABASE_URL", database_url())
        .env("PHAB_SCIM_NAMESPACE", app.ns.as_str())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run phab-scim");
    // Closed before the program has connected to the database, so its first line meets it.
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait for phab-scim");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(141), "{stderr}");
    app.cleanup().await;
}

/// `check` reads the account's grants and names a missing one before a write fails: the
/// service's least-privilege account (the README's grants) is enough for serve and not for
/// migrate; without DELETE on sessions it is not enough, and check says which.
#[tokio::test]
async fn check_names_a_missing_grant() {
    let app = TestApp::spawn().await;
    let as_service = |app: &TestApp| {
        Command::new(env!("CARGO_BIN_EXE_phab-scim"))
            .arg("check")
            .env("PHAB_SCIM_DATABASE_URL", app.cfg.database_url.expose())
            .env("PHAB_SCIM_NAMESPACE", app.ns.as_str())
            .output()
            .expect("run phab-scim")
    };
    let out = as_service(&app);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("schema: compatible")
            && text.contains("grants: enough for serve")
            && text.contains("grants: not enough for migrate"),
        "{text}"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "REVOKE DELETE ON `{ns}_user`.`phabricator_session` FROM '{ns}'@'%'",
        ns = app.ns.as_str()
    )))
    .execute(&app.pool)
    .await
    .unwrap();
    let out = as_service(&app);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "missing grant: DELETE on {}_user.phabricator_session",
            app.ns.as_str()
        )) && text.contains("grants: NOT enough for serve"),
        "{text}"
    );
    assert!(
        !text.contains("IDENTIFIED"),
        "never a password hash: {text}"
    );
    app.cleanup().await;
}

/// `migrate` is a separate step: on a fresh namespace the serve account cannot apply the
/// patches, and an account with the README's grants for migrate can; then serve's account is
/// enough to start.
#[tokio::test]
async fn migrate_runs_as_the_migration_account() {
    use phab_scim::config::{Namespace, Secret};
    use phab_scim::db::{Db, grants, migrate};
    use sqlx::Connection;

    let root = Secret::new(database_url());
    let ns = crate::helpers::new_namespace();
    let mut conn =
        sqlx::MySqlConnection::connect_with(&phab_scim::db::connect_options(&root).unwrap())
            .await
            .unwrap();
    migrate::install_phabricator_fixture(&mut conn, &ns)
        .await
        .unwrap();
    let serve_url = crate::helpers::create_account(&mut conn, &ns, grants::SERVE).await;
    let migrate_ns = Namespace::parse(&format!("{}_m", ns.as_str())).unwrap();
    // The migration account is its own user (named after `migrate_ns`) on the same namespace.
    let migrate_url = crate::helpers::create_account_named(
        &mut conn,
        migrate_ns.as_str(),
        &ns,
        &[grants::SERVE, grants::MIGRATE].concat(),
    )
    .await;
    let serve = Db::connect(&serve_url, ns.clone(), 2).await.unwrap();
    let err = migrate::migrate(&serve).await.unwrap_err().to_string();
    assert!(err.contains("denied"), "{err}");
    let migrator = Db::connect(&migrate_url, ns.clone(), 2).await.unwrap();
    let report = migrate::migrate(&migrator).await.unwrap();
    assert_eq!(report.applied.len(), migrate::SCIM_PATCHES.len() + 1);
    assert!(
        grants::missing(&migrator, grants::MIGRATE)
            .await
            .unwrap()
            .is_empty()
    );
    // Nothing pending: the serve account's `migrate` (run by `serve` at start) passes.
    assert!(migrate::migrate(&serve).await.unwrap().applied.is_empty());
    serve.pool.close().await;
    migrator.pool.close().await;
    migrate::drop_namespace(&root, &ns).await.unwrap();
    crate::helpers::drop_account(&ns).await;
    crate::helpers::drop_account(&migrate_ns).await;
}
