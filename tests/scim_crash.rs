//! "A SCIM user change and the event it makes are stored together or not at all",
//! tested with a real process: `offboard serve` is SIGKILLed in the middle of a
//! burst of concurrent Okta-style deactivations, restarted on the same store, and
//! then every user must be either inactive with exactly one offboarding job, or
//! still active with none — and every deactivation that was answered 200 must be
//! the former.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use offboard_core::store::{JobFilter, SharedStore};
use offboard_testkit::{
    config::ServeConfig,
    free_port,
    process::{self, Process},
};
use serde_json::{Value, json};

const TOKEN: &str = "scim-crash-token";
const USERS: usize = 240;
const KILL_AFTER: usize = 60;

async fn start(config: &std::path::Path, port: u16) -> Process {
    let mut server = Process::spawn(
        process::serve(env!("CARGO_BIN_EXE_offboard"), config).args(["--role", "receiver"]),
    );
    server
        .wait_ready(&format!("http://127.0.0.1:{port}"), Duration::from_secs(30))
        .await;
    server
}

fn deactivation() -> String {
    json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{ "op": "replace", "value": { "active": false } }],
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_between_user_change_and_event_stores_both_or_neither() {
    let secrets = tempfile::tempdir().expect("temp dir");
    let token_file = secrets.path().join("scim-token");
    std::fs::write(&token_file, TOKEN).expect("write token");
    let port = free_port();
    let dir = ServeConfig {
        port,
        store_url: None,
        crm_base_url: "http://127.0.0.1:9".into(),
        webhook_secret: "whsec_c2NpbS1jcmFzaC10ZXN0".into(),
        admin_token: "scim-crash-admin".into(),
        sell_token: "scim-crash-crm".into(),
        policy: "version = 1\n[defaults]\nfallback_owner = \"ops@example.com\"\n[[rules]]\nname = \"all\"\naction = \"deactivate\"\n".into(),
        store_extra: String::new(),
        crm_extra: String::new(),
        tail: format!(
            "[scim]\ntoken_env = \"\"\ntoken_file = \"{}\"\n",
            token_file.display()
        ),
    }
    .write();
    let base = format!("http://127.0.0.1:{port}/scim/v2");
    let mut server = start(&dir.config, port).await;
    let http = reqwest::Client::new();

    let mut users = Vec::with_capacity(USERS);
    for i in 0..USERS {
        let email = format!("leaver{i}@example.com");
        let resp = http
            .post(format!("{base}/Users"))
            .bearer_auth(TOKEN)
            .header("content-type", "application/scim+json")
            .body(
                json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": email,
                    "emails": [{ "primary": true, "value": email }],
                    "active": true,
                })
                .to_string(),
            )
            .send()
            .await
            .expect("create");
        assert_eq!(resp.status(), 201);
        let body: Value = resp.json().await.expect("json");
        users.push((body["id"].as_str().expect("id").to_owned(), email));
    }

    // 16 clients deactivate everyone, one user each at a time, until the kill.
    let answered = Arc::new(Mutex::new(Vec::<String>::new()));
    let queue = Arc::new(Mutex::new(users.clone()));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (answered, queue, base) = (answered.clone(), queue.clone(), base.clone());
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            loop {
                let Some((id, _)) = queue.lock().expect("lock").pop() else {
                    return;
                };
                let sent = http
                    .patch(format!("{base}/Users/{id}"))
                    .bearer_auth(TOKEN)
                    .header("content-type", "application/scim+json")
                    .body(deactivation())
                    .send()
                    .await;
                match sent {
                    Ok(resp) if resp.status() == 200 => answered.lock().expect("lock").push(id),
                    Ok(resp) => panic!("{id}: {}", resp.status()),
                    // The server died with this request in flight.
                    Err(_) => return,
                }
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while answered.lock().expect("lock").len() < KILL_AFTER {
        assert!(
            Instant::now() < deadline,
            "the deactivations did not get going"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    server.kill();
    for task in tasks {
        task.await.expect("a client task panicked");
    }
    let answered = answered.lock().expect("lock").clone();
    let mut server = start(&dir.config, port).await;

    let store: SharedStore = offboard_core::store::open(&dir.sqlite_url(), "full")
        .await
        .expect("open the store");
    let jobs = store
        .list_jobs(&JobFilter {
            limit: Some(1000),
            ..JobFilter::default()
        })
        .await
        .expect("list jobs");
    let mut jobs_per_email: HashMap<String, usize> = HashMap::new();
    for job in &jobs {
        assert_eq!(job.source, "scim");
        *jobs_per_email
            .entry(job.employee_email.clone())
            .or_default() += 1;
    }
    let mut inactive = 0;
    for (id, email) in &users {
        let user = store
            .scim_user(id)
            .await
            .expect("read user")
            .expect("no user is lost");
        let jobs = jobs_per_email.get(email).copied().unwrap_or(0);
        if user.active {
            assert_eq!(jobs, 0, "{email} is active but has a job");
            assert!(
                !answered.contains(id),
                "{email}: a 200 deactivation was lost"
            );
        } else {
            inactive += 1;
            assert_eq!(jobs, 1, "{email} is inactive with {jobs} jobs");
        }
    }
    assert!(inactive >= answered.len());
    assert!(
        inactive < USERS,
        "the kill came after every deactivation: nothing was tested"
    );
    eprintln!(
        "{} deactivations answered before SIGKILL, {inactive} stored, {} users untouched",
        answered.len(),
        USERS - inactive
    );
    server.kill();
}
