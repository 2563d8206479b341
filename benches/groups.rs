//! Group membership at scale, through the HTTP service against the local MariaDB
//! (`cargo bench --bench groups`; `PHAB_SCIM_TEST_DATABASE_URL` overrides the server).
//!
//! In a fresh namespace: 50,000 managed users (written by SQL, the setup is not measured),
//! then the time of a PATCH adding 1,000 members to a group (issue 3: one statement batch per
//! table), and of a GET of a 50,000-member group (streamed), with and without
//! `excludedAttributes=members`. Prints the numbers; the namespace is dropped at the end.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use phab_scim::app::Application;
use phab_scim::config::{Config, Namespace, Secret};
use phab_scim::db::migrate;
use phab_scim::provisioning::Provisioner;
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Connection, MySqlConnection};

const USERS: u32 = 50_000;
const ADD: usize = 1_000;
const RUNS: usize = 5;

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, usize) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/scim+json")
                .body(b.to_string());
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.expect("body");
        if status >= 300 {
            panic!("{path}: {status} {}", String::from_utf8_lossy(&bytes));
        }
        (status, bytes.len())
    }
}

fn ops(v: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": v})
}

fn members(ids: &[String]) -> Value {
    Value::Array(ids.iter().map(|u| json!({"value": u})).collect())
}

fn stats(mut d: Vec<Duration>) -> String {
    d.sort();
    let ms = |x: Duration| x.as_secs_f64() * 1000.0;
    format!(
        "min {:.1} ms, median {:.1} ms, max {:.1} ms ({} runs)",
        ms(d[0]),
        ms(d[d.len() / 2]),
        ms(d[d.len() - 1]),
        d.len()
    )
}

async fn exec(conn: &mut MySqlConnection, sql: String) {
    sqlx::raw_sql(AssertSqlSafe(sql.clone()))
        .execute(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let url = Secret::new(
        std::env::var("PHAB_SCIM_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into()),
    );
    let ns = Namespace::parse(&format!(
        "t_{:08x}_bench{}",
        phab_scim::db::now(),
        phab_scim::db::phabricator::random_chars(6)
    ))
    .unwrap();
    let mut conn = MySqlConnection::connect_with(&phab_scim::db::connect_options(&url).unwrap())
        .await
        .unwrap();
    migrate::install_phabricator_fixture(&mut conn, &ns)
        .await
        .unwrap();
    let cfg = Config {
        database_url: url.clone(),
        namespace: ns.clone(),
        listen: "127.0.0.1:0".parse().unwrap(),
        pool_size: 8,
        ..Config::default()
    };
    let app = Application::build(cfg.clone(), None).await.unwrap();
    let addr = app.addr();
    let db = app.state().prov.db.clone();
    let prov = Provisioner {
        db: db.clone(),
        cfg: Arc::new(cfg),
    };
    let bot = prov.ensure_bot("scim-bot").await.unwrap();
    let (_, token) = phab_scim::token::issue(&db, &bot, "bench", None)
        .await
        .unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_with_shutdown(async move {
        let _ = stop_rx.await;
    }));

    // Setup: 50,000 managed users, as SQL (user + scim_user rows).
    let t0 = Instant::now();
    let (udb, sdb) = (ns.db("user"), ns.db("scim"));
    exec(
        &mut conn,
        format!(
            "INSERT INTO {udb}.user (phid, userName, realName, dateCreated, dateModified, profileImagePHID, conduitCertificate, \
             isSystemAgent, isDisabled, isAdmin, isEmailVerified, isApproved, accountSecret, isEnrolledInMultiFactor, availabilityCache, \
             availabilityCacheTTL, isMailingList, defaultProfileImagePHID, defaultProfileImageVersion) \
             SELECT CONCAT('PHID-USER-bench', LPAD(seq, 15, '0')), CONCAT('bench', seq), CONCAT('Bench User ', seq), 1, 1, NULL, '', 0, 0, 0, 1, 1, '', 0, NULL, NULL, 0, NULL, NULL \
             FROM {udb}.seq_1_to_{USERS}"
        ),
    )
    .await;
    exec(
        &mut conn,
        format!(
            "INSERT INTO {sdb}.scim_user (userPHID, userName, externalID, attributes, version, isDeprovisioned, dateCreated, dateModified) \
             SELECT CONCAT('PHID-USER-bench', LPAD(seq, 15, '0')), CONCAT('bench.user.', seq, '@example.com'), NULL, '{{}}', 1, 0, 1, 1 \
             FROM {udb}.seq_1_to_{USERS}"
        ),
    )
    .await;
    let users: Vec<String> = (1..=USERS)
        .map(|i| format!("PHID-USER-bench{i:015}"))
        .collect();
    println!(
        "setup: {USERS} users by SQL in {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    let client = Client {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(300))
            .build()
            .unwrap(),
        base: format!("http://{addr}/scim/v2"),
        token,
    };
    let create = |name: String| {
        let client = &client;
        async move {
            let resp = client
                .http
                .post(format!("{}/Groups", client.base))
                .bearer_auth(&client.token)
                .header("content-type", "application/scim+json")
                .body(json!({"displayName": name}).to_string())
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status().as_u16(), 201);
            resp.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };

    // 1,000-member PATCH add: a fresh group per run, distinct users per run.
    let mut adds = Vec::new();
    let mut removes = Vec::new();
    for run in 0..RUNS {
        let gid = create(format!("Add bench {run}")).await;
        let slice = &users[run * ADD..(run + 1) * ADD];
        let body = ops(json!([{"op": "add", "path": "members", "value": members(slice)}]));
        let t = Instant::now();
        client
            .send(
                reqwest::Method::PATCH,
                &format!("/Groups/{gid}"),
                Some(&body),
            )
            .await;
        adds.push(t.elapsed());
        let body = ops(json!([{"op": "Remove", "path": "members", "value": members(slice)}]));
        let t = Instant::now();
        client
            .send(
                reqwest::Method::PATCH,
                &format!("/Groups/{gid}"),
                Some(&body),
            )
            .await;
        removes.push(t.elapsed());
    }
    println!("PATCH add {ADD} members:    {}", stats(adds));
    println!("PATCH remove {ADD} members: {}", stats(removes));

    // A 50,000-member group, filled by PATCHes of 5,000 (under the 2 MiB body limit).
    let big = create("Everyone".into()).await;
    let t = Instant::now();
    for chunk in users.chunks(5_000) {
        let body = ops(json!([{"op": "add", "path": "members", "value": members(chunk)}]));
        client
            .send(
                reqwest::Method::PATCH,
                &format!("/Groups/{big}"),
                Some(&body),
            )
            .await;
    }
    println!(
        "fill {USERS} members (10 PATCHes of 5,000): {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // One more member into the big group (what Entra does one user at a time).
    let mut one = Vec::new();
    for run in 0..RUNS {
        let gid_user = &users[(run * 7) % users.len()];
        let body =
            ops(json!([{"op": "Remove", "path": "members", "value": [{"value": gid_user}]}]));
        client
            .send(
                reqwest::Method::PATCH,
                &format!("/Groups/{big}"),
                Some(&body),
            )
            .await;
        let body = ops(json!([{"op": "Add", "path": "members", "value": [{"value": gid_user}]}]));
        let t = Instant::now();
        client
            .send(
                reqwest::Method::PATCH,
                &format!("/Groups/{big}"),
                Some(&body),
            )
            .await;
        one.push(t.elapsed());
    }
    println!(
        "PATCH add 1 member to the {USERS}-member group: {}",
        stats(one)
    );

    let mut gets = Vec::new();
    let mut size = 0;
    for _ in 0..RUNS {
        let t = Instant::now();
        let (_, len) = client
            .send(reqwest::Method::GET, &format!("/Groups/{big}"), None)
            .await;
        gets.push(t.elapsed());
        size = len;
    }
    println!(
        "GET {USERS}-member group:  {} ; body {:.1} MiB",
        stats(gets),
        size as f64 / (1024.0 * 1024.0)
    );
    let mut gets = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        client
            .send(
                reqwest::Method::GET,
                &format!("/Groups/{big}?excludedAttributes=members"),
                None,
            )
            .await;
        gets.push(t.elapsed());
    }
    println!("GET same, excludedAttributes=members: {}", stats(gets));

    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    db.pool.close().await;
    migrate::drop_namespace(&url, &ns).await.unwrap();
}
