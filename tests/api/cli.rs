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
    sqlx::query(sqlx::AssertSqlSafe(
        app.sql("DROP TABLE {user}.user_nametoken"),
    ))
    .execute(&app.pool)
    .await
    .unwrap();
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
