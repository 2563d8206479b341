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
