//! The ops console in a real browser: Debian's `chromium`, headless, driven over
//! WebDriver (`chromium-driver`'s `chromedriver`) with fantoccini. A person signs
//! in with the admin token, finds a capped deletion in the `needs_review` queue,
//! approves it through the confirmation page, watches the job page follow the job
//! to `succeeded` by itself (htmx polling its live part) while the test plays the
//! Sell admin who deletes the seat, and signs out; signed in again, the session
//! runs out (on the app's clock) while a job page polls, and the browser lands on
//! the sign-in form.
//!
//! Screenshots (sign-in, overview, confirmation, job page, job list) are kept in
//! `$CARGO_TARGET_TMPDIR/console-*.png` (`target/tmp/` by default); `docs/` holds
//! a copy of the overview and the job page for the README.
//!
//! Under `CI=true` a missing browser or driver fails the test (`.ci/run` installs
//! them with apt-get); elsewhere the test says it skipped.

#[path = "api/helpers.rs"]
mod helpers;

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use fantoccini::{Client, ClientBuilder, Locator};
use helpers::*;
use offboard_testkit::sell;
use serde_json::json;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long a page may take to show what the test waits for. Generous: two
/// cores running a browser beside the build.
const PATIENCE: Duration = Duration::from_secs(30);

fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// The browser and its driver, or why the test cannot run here.
fn tools() -> Result<(PathBuf, PathBuf), String> {
    let pick = |var: &str, default: &str| {
        PathBuf::from(std::env::var(var).unwrap_or_else(|_| default.to_owned()))
    };
    let chromium = pick("OFFBOARD_TEST_CHROMIUM", CHROMIUM);
    let driver = pick("OFFBOARD_TEST_CHROMEDRIVER", CHROMEDRIVER);
    for p in [&chromium, &driver] {
        if !p.exists() {
            return Err(format!(
                "{} is missing (apt-get install chromium chromium-driver)",
                p.display()
            ));
        }
    }
    Ok((chromium, driver))
}

/// chromedriver on a free loopback port, killed when dropped.
struct Driver {
    child: tokio::process::Child,
    url: String,
}

impl Driver {
    async fn start(path: &Path) -> Driver {
        let port = offboard_testkit::free_port();
        let child = tokio::process::Command::new(path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Ok(r) = http.get(format!("{url}/status")).send().await
                && r.status().is_success()
            {
                break;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "chromedriver did not answer on {url}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Driver { child, url }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

async fn browser(driver: &Driver, chromium: &Path) -> Client {
    let caps = json!({
        "goog:chromeOptions": {
            "binary": chromium,
            // CI runs as root: Chromium's sandbox needs an unprivileged user.
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                "--disable-background-networking", "--window-size=1280,1000",
            ],
        }
    });
    let caps = caps.as_object().cloned().unwrap_or_default();
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session")
}

/// Waits until the page's text contains `text`; fails with the page's text.
async fn wait_for_text(c: &Client, text: &str) {
    let started = Instant::now();
    loop {
        let body = body_text(c).await;
        if body.contains(text) {
            return;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "the page never showed {text:?}; it shows:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn body_text(c: &Client) -> String {
    match c.find(Locator::Css("body")).await {
        Ok(body) => body.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// A button found the way a person finds it: by what it says.
fn button(label: &str) -> String {
    format!("//button[normalize-space()='{label}']")
}

async fn click(c: &Client, xpath: &str) {
    c.wait()
        .at_most(PATIENCE)
        .for_element(Locator::XPath(xpath))
        .await
        .unwrap_or_else(|e| panic!("no {xpath}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {xpath}: {e}"));
}

async fn screenshot(c: &Client, name: &str) -> PathBuf {
    let png = c.screenshot().await.expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "{name} is a PNG");
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, png).expect("write the screenshot");
    eprintln!("screenshot: {}", path.display());
    path
}

#[tokio::test]
async fn a_person_approves_a_capped_deletion_and_watches_it_finish() {
    let (chromium, driver_path) = match tools() {
        Ok(t) => t,
        Err(why) => {
            assert!(!under_ci(), "CI: the browser test cannot run: {why}");
            eprintln!("SKIPPED (not under CI): {why}");
            return;
        }
    };
    let started = Instant::now();
    // No deletion without approval; the job page refreshes every second. The
    // cookie stays Secure: Chromium treats http://127.0.0.1 as a secure context.
    let app = spawn_app_with(Options {
        extra_config: "[safety]\nmax_deletions_per_hour = 0\n[console]\nrefresh_secs = 1\n".into(),
        ..Options::default()
    })
    .await;
    let sam = app
        .accept(
            "msg_sam",
            &termination(
                "evt_sam",
                "sam.seller@example.com",
                "involuntary",
                false,
                false,
            ),
        )
        .await;
    // Something else for the overview to show: a seat waiting for the admin.
    let lee = app
        .accept(
            "msg_lee",
            &termination("evt_lee", "lee.hold@example.com", "voluntary", true, false),
        )
        .await;
    app.run_jobs().await;
    assert_eq!(app.job(&sam).await["state"], "needs_review");
    app.advance(chrono::Duration::minutes(42));

    let driver = Driver::start(&driver_path).await;
    let c = browser(&driver, &chromium).await;

    // Every console page sends a stranger to the sign-in form.
    c.goto(&format!("{}/console", app.addr)).await.unwrap();
    wait_for_text(&c, "Admin token").await;
    let label = c
        .find(Locator::XPath("//label[normalize-space()='Admin token']"))
        .await
        .expect("a labelled token field");
    let field_id = label.attr("for").await.unwrap().expect("label for=");
    let field = c.find(Locator::Id(&field_id)).await.unwrap();
    assert_eq!(
        field.attr("type").await.unwrap().as_deref(),
        Some("password")
    );
    field.send_keys("not the token").await.unwrap();
    click(&c, &button("Sign in")).await;
    wait_for_text(&c, "That is not the admin token").await;
    screenshot(&c, "console-sign-in.png").await;
    // By keyboard this time: the field has the focus, Enter submits.
    let focused = c.active_element().await.unwrap();
    assert_eq!(
        focused.attr("id").await.unwrap().as_deref(),
        Some(field_id.as_str())
    );
    focused
        .send_keys(&format!("{ADMIN_TOKEN}\u{E007}"))
        .await
        .unwrap();

    // The overview: the capped deletion waits in the review queue, with its reason.
    wait_for_text(&c, "Waiting for review (1)").await;
    let text = body_text(&c).await;
    assert!(text.contains("deletions cap reached"), "{text}");
    assert!(
        text.contains("Seats waiting for the CRM admin (1)"),
        "{text}"
    );
    assert!(text.contains("42 min"), "how long Lee's seat waits: {text}");
    screenshot(&c, "console-overview.png").await;

    click(
        &c,
        "//button[@aria-label='Approve the job of sam.seller@example.com']",
    )
    .await;
    wait_for_text(&c, "A deletion cannot be undone").await;
    screenshot(&c, "console-confirm.png").await;
    click(&c, &button("Yes, approve")).await;
    wait_for_text(&c, "You approved this job").await;
    let job = app.job(&sam).await;
    assert_eq!(job["state"], "queued", "{job:#}");
    let approved = audit(&job, "operator.approve").next().expect("audited");
    assert_eq!(approved["detail"]["via"], "console");

    // The worker asks the Sell admin to delete; the page follows without a reload.
    app.run_jobs().await;
    wait_for_text(&c, "asked of the CRM admin at").await;
    assert!(body_text(&c).await.contains("scheduled"));
    let tasks = sell::created_tasks(&app.sell()).await;
    assert!(
        tasks
            .iter()
            .any(|t| t.contains("DELETE") && t.contains("sam.seller@example.com")),
        "{tasks:?}"
    );
    app.sell().delete(11).await.unwrap();
    let job = app.run_job_until_settled(&sam, 10).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    wait_for_text(&c, "the CRM shows the change (verified)").await;
    let live = c.find(Locator::Id("live")).await.unwrap();
    assert!(live.text().await.unwrap().contains("succeeded"));
    assert_eq!(live.attr("hx-get").await.unwrap(), None, "polling stopped");
    screenshot(&c, "console-job.png").await;

    // The job list finds it by state.
    c.goto(&format!("{}/console/jobs?state=succeeded", app.addr))
        .await
        .unwrap();
    wait_for_text(&c, "sam.seller@example.com").await;
    screenshot(&c, "console-jobs.png").await;

    // Signing out ends it: the console is closed again.
    click(&c, &button("Sign out")).await;
    wait_for_text(&c, "You are signed out.").await;
    c.goto(&format!("{}/console/jobs/{sam}", app.addr))
        .await
        .unwrap();
    wait_for_text(&c, "Admin token").await;

    // A session that expires while a page polls: the next poll sends the whole
    // page to the sign-in form (HX-Redirect), not a fragment into the old page.
    let field = c.find(Locator::Id(&field_id)).await.unwrap();
    field
        .send_keys(&format!("{ADMIN_TOKEN}\u{E007}"))
        .await
        .unwrap();
    wait_for_text(&c, "Jobs per state").await;
    c.goto(&format!("{}/console/jobs/{lee}", app.addr))
        .await
        .unwrap();
    wait_for_text(&c, "refreshes by itself").await;
    app.advance(chrono::Duration::hours(9));
    wait_for_text(&c, "Your session expired. Sign in again.").await;
    let url = c.current_url().await.unwrap();
    assert_eq!(url.path(), "/console/sign-in", "{url}");

    c.close().await.unwrap();
    eprintln!("browser test: {:.1} s", started.elapsed().as_secs_f64());
}
