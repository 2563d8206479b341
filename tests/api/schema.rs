//! Migrations and the compatibility check.

use phab_scim::db::{check, migrate};

use crate::helpers::TestApp;

#[tokio::test]
async fn migrate_records_phabricator_patch_keys_once() {
    let app = TestApp::spawn().await;
    let keys = app
        .rows("SELECT patch FROM {meta_data}.patch_status ORDER BY patch")
        .await;
    let keys: Vec<&str> = keys.iter().map(|k| k["patch"].as_str().unwrap()).collect();
    assert_eq!(keys[0], "phabscim:20261128.scim.01.user.sql");
    assert!(keys.contains(&"phabscim:db.scim"));
    assert_eq!(keys.len(), migrate::SCIM_PATCHES.len() + 1);
    // A second run (another replica) applies nothing.
    assert!(migrate::migrate(&app.db).await.unwrap().applied.is_empty());
    app.cleanup().await;
}

#[tokio::test]
async fn check_lists_what_a_namespace_lacks() {
    let app = TestApp::spawn().await;
    let r = check::check(&app.db).await.unwrap();
    assert!(
        r.missing_tables.is_empty() && r.missing_columns.is_empty() && r.different_types.is_empty(),
        "{r:?}"
    );
    assert_eq!(r.flavour, "phorge");
    app.exec("ALTER TABLE {user}.user_email DROP COLUMN verificationCode")
        .await;
    app.exec("DROP TABLE {worker}.lisk_counter").await;
    app.exec("ALTER TABLE {conduit}.conduit_token DROP COLUMN tokenName")
        .await;
    let r = check::check(&app.db).await.unwrap();
    assert_eq!(
        r.missing_columns,
        vec![format!(
            "{}_user.user_email.verificationCode",
            app.ns.as_str()
        )]
    );
    assert_eq!(
        r.missing_tables,
        vec![format!("{}_worker.lisk_counter", app.ns.as_str())]
    );
    assert_eq!(
        r.flavour, "phabricator",
        "final Phabricator has no tokenName and is compatible"
    );
    let ready = app
        .client
        .get(format!("{}/readyz", app.base.trim_end_matches("/scim/v2")))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    app.cleanup().await;
}
