//! One `JobStore` conformance suite, run against every store.
//!
//! Each test below is an `async fn(SharedStore)` that knows nothing of the backend;
//! `conformance!` instantiates it once per store: `sqlite::*` on a temp file and
//! `postgres::*` in a fresh schema of the database `OFFBOARD_TEST_POSTGRES_URL` names
//! (so parallel tests and concurrent CI runs never collide). Without that variable
//! the PostgreSQL half prints `skipped: OFFBOARD_TEST_POSTGRES_URL not set` and
//! passes on a developer's machine, and fails under CI (`offboard_testkit::postgres_url`).
//!
//! The suite is the definition of "the same semantics" in DESIGN.md §8: a behaviour
//! one store has and the other lacks shows up here as a test failing on one side.
//!
//! Time is a [`ManualClock`] the store reads "now" from, starting at [`T0`]: a lease
//! expires, or a `created_at` moves on, because a test advances the clock, never
//! because it slept. The sleeps left wait for another task to get somewhere (a
//! listener to be up, a claim to block on a lock), not for time to pass.

use std::{
    collections::{BTreeSet, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};

use offboard_core::{
    domain::{Clock, JobKind, JobState, ManualClock, OffboardingEvent},
    store::{
        Channel, Claimed, DeliveryRetry, IngestOutcome, JobFilter, Lease, NewEvent,
        NewNotification, NotificationState, Outcome, Reservation, ScimUser, ScimUserQuery,
        ScimUserValues, ScimWrite, ScimWriteOutcome, SharedStore, StoreError, Via,
    },
};
use serde_json::json;

const LEASE: Duration = Duration::from_secs(30);

/// Where every test's clock starts (and the `run_at` of [`new_event`]'s events, so
/// they are due at once): a fixed instant, so no test depends on the wall clock.
fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(1_767_603_600_000).expect("a valid instant")
}

/// A store on `clock` at `url`.
async fn open_at(url: &str, clock: &ManualClock) -> SharedStore {
    offboard_core::store::open_with_clock(url, "full", true, clock.shared())
        .await
        .expect("open store")
}

// ---------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------

/// A store under test and whatever must outlive it.
struct Harness {
    store: SharedStore,
    /// The clock the store reads "now" from.
    clock: ManualClock,
    /// Where the store is, to reach its rows behind its back.
    url: String,
    _dir: Option<tempfile::TempDir>,
    /// (admin URL, schema) to drop after a passing PostgreSQL test.
    pg: Option<(String, String)>,
}

impl Harness {
    async fn sqlite(migrated: bool) -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/offboard.db", dir.path().display());
        let clock = ManualClock::new(t0());
        let store = open_at(&url, &clock).await;
        if migrated {
            store.migrate().await.expect("migrate sqlite");
        }
        Harness {
            store,
            clock,
            url,
            _dir: Some(dir),
            pg: None,
        }
    }

    /// `None` (after saying so) when no PostgreSQL is configured.
    async fn postgres(migrated: bool) -> Option<Harness> {
        let base = offboard_testkit::postgres_url()?;
        let schema = new_schema(&base).await;
        let url = schema_url(&base, &schema);
        let clock = ManualClock::new(t0());
        let store = open_at(&url, &clock).await;
        if migrated {
            store.migrate().await.expect("migrate postgres");
        }
        Some(Harness {
            store,
            clock,
            url,
            _dir: None,
            pg: Some((base, schema)),
        })
    }

    /// Drops the test's schema. Only reached when the test passed: a failing test
    /// leaves its schema behind to look at.
    async fn cleanup(self) {
        let Harness { store, pg, .. } = self;
        drop(store);
        if let Some((base, schema)) = pg {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&base)
                .await
                .expect("connect postgres");
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE"
            )))
            .execute(&mut conn)
            .await
            .expect("drop schema");
        }
    }
}

/// Creates an empty schema with a unique name.
async fn new_schema(base: &str) -> String {
    use sqlx::Connection;
    let schema = format!("offboard_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(base)
        .await
        .expect("connect postgres");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut conn)
        .await
        .expect("create schema");
    schema
}

/// The URL of `base` with every session confined to `schema`.
fn schema_url(base: &str, schema: &str) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}

/// Instantiates each test once per store.
macro_rules! conformance {
    (migrated: [$($name:ident),* $(,)?], unmigrated: [$($raw:ident),* $(,)?] $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let h = super::Harness::sqlite(true).await;
                    super::$name(h.store.clone(), h.clock.clone()).await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $raw() {
                    let h = super::Harness::sqlite(false).await;
                    super::$raw(h.store.clone(), h.clock.clone()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(h) = super::Harness::postgres(true).await else { return };
                    super::$name(h.store.clone(), h.clock.clone()).await;
                    h.cleanup().await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $raw() {
                    let Some(h) = super::Harness::postgres(false).await else { return };
                    super::$raw(h.store.clone(), h.clock.clone()).await;
                    h.cleanup().await;
                }
            )*
        }
    };
}

conformance! {
    migrated: [
        ingest_accepts_then_reports_duplicates,
        ingest_conflict_stores_nothing,
        claim_takes_a_lease_and_increments_attempt,
        claim_respects_run_at,
        one_running_job_per_employee,
        heartbeat_extends_the_lease,
        heartbeat_with_a_stale_lease_is_lease_lost,
        finish_of_an_older_attempt_is_rejected,
        expired_leases_are_requeued,
        retry_counts_failures_until_max_attempts,
        scheduled_and_released_outcomes,
        set_plan_and_checkpoints_are_fenced,
        audit_appends_in_order,
        get_job_returns_the_whole_story,
        list_jobs_filters_and_pages,
        jobs_for_filters_by_state_newest_first,
        operator_actions_follow_state_rules,
        operator_cancel_of_a_running_job_fences_the_worker,
        cancel_pending_for_spares_the_running_job,
        enqueue_follow_up_is_idempotent_and_fenced,
        reserve_seat_action_enforces_caps,
        concurrent_reservations_never_overshoot_a_cap,
        concurrent_claims_never_share_a_job,
        count_by_state_and_queue_lag,
        seats_pending_counts_requested_unverified_seat_changes,
        wait_for_work_returns_by_max,
        scim_users_round_trip_with_versions,
        scim_user_names_are_unique_without_case,
        scim_users_list_filters_and_pages,
        scim_change_and_its_event_are_one_transaction,
        notifications_are_written_with_their_cause,
        notification_delivery_is_leased_retried_and_given_up,
    ],
    unmigrated: [ready_fails_before_migrate],
}

// ---------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------

fn event(id: &str, email: &str, ty: &str) -> OffboardingEvent {
    OffboardingEvent::from_json(
        &json!({
            "id": id,
            "type": ty,
            "employee": { "email": email, "name": "Test Person" },
            "termination": { "kind": "voluntary", "rehire_eligible": true },
        }),
        None,
    )
    .expect("valid event")
}

fn new_event(id: &str, email: &str) -> NewEvent {
    NewEvent {
        source: "hr".to_owned(),
        event: event(id, email, "employee.terminated"),
        body_sha256: format!("sha-of-{id}"),
        run_at: t0(),
        max_attempts: 3,
    }
}

/// Ingests one event that must be accepted; returns its job id.
async fn ingest(store: &SharedStore, ev: NewEvent) -> String {
    match store.ingest(vec![ev]).await.expect("ingest").as_slice() {
        [IngestOutcome::Accepted { job_id, .. }] => job_id.clone(),
        other => panic!("expected one accepted event, got {other:?}"),
    }
}

/// Claims exactly one job.
async fn claim_one(store: &SharedStore, owner: &str, lease: Duration) -> Claimed {
    let mut claimed = store.claim(owner, 10, lease).await.expect("claim");
    assert_eq!(claimed.len(), 1, "expected exactly one claimable job");
    claimed.remove(0)
}

async fn state_of(store: &SharedStore, id: &str) -> JobState {
    store
        .get_job(id)
        .await
        .expect("get_job")
        .expect("job exists")
        .job
        .state
}

fn assert_lease_lost<T: std::fmt::Debug>(r: Result<T, StoreError>, what: &str) {
    match r {
        Err(StoreError::LeaseLost(_)) => {}
        other => panic!("{what}: expected LeaseLost, got {other:?}"),
    }
}

fn assert_wrong_state<T: std::fmt::Debug>(r: Result<T, StoreError>, what: &str) {
    match r {
        Err(StoreError::WrongState { .. }) => {}
        other => panic!("{what}: expected WrongState, got {other:?}"),
    }
}

/// Claims with a lease that ends at once, then moves the clock past its end.
async fn claim_expired(store: &SharedStore, clock: &ManualClock, owner: &str) -> Claimed {
    let c = claim_one(store, owner, Duration::ZERO).await;
    clock.advance(chrono::Duration::milliseconds(1));
    c
}

fn close_to(t: DateTime<Utc>, expected: DateTime<Utc>, what: &str) {
    let diff = (t - expected).num_milliseconds().abs();
    assert!(
        diff < 5_000,
        "{what}: {t} is {diff} ms away from {expected}"
    );
}

// ---------------------------------------------------------------------------------
// The suite
// ---------------------------------------------------------------------------------

async fn ready_fails_before_migrate(store: SharedStore, _clock: ManualClock) {
    assert!(store.ready().await.is_err(), "ready() before migrate");
    store.migrate().await.expect("migrate");
    store.ready().await.expect("ready() after migrate");
    store.migrate().await.expect("migrate twice is a no-op");
    store.ready().await.expect("still ready");
}

async fn ingest_accepts_then_reports_duplicates(store: SharedStore, _clock: ManualClock) {
    let job_id = ingest(&store, new_event("evt-1", "jane@example.com")).await;
    let again = store
        .ingest(vec![new_event("evt-1", "jane@example.com")])
        .await
        .expect("ingest again");
    assert_eq!(
        again,
        vec![IngestOutcome::Duplicate {
            event_id: "evt-1".into(),
            job_id: job_id.clone()
        }]
    );
    // The dedupe key is (source, id): another source may reuse the id.
    let mut other_source = new_event("evt-1", "jane@example.com");
    other_source.source = "other-hr".into();
    let other_job = ingest(&store, other_source).await;
    assert_ne!(other_job, job_id);

    let jobs = store.list_jobs(&JobFilter::default()).await.expect("list");
    assert_eq!(jobs.len(), 2, "a duplicate creates no job");
    let job = store.get_job(&job_id).await.expect("get").expect("job");
    assert_eq!(job.job.state, JobState::Queued);
    assert_eq!(job.job.kind, JobKind::Offboard);
    assert_eq!(job.job.attempt, 0);
    assert_eq!(job.job.max_attempts, 3);
    assert_eq!(job.job.source, "hr");
    assert_eq!(job.job.event_id, "evt-1");
    assert_eq!(job.job.employee_email, "jane@example.com");

    // A reversal event makes a `reverse` job.
    let mut rehire = new_event("evt-2", "jane@example.com");
    rehire.event = event("evt-2", "jane@example.com", "employee.rehired");
    let rehire_job = ingest(&store, rehire).await;
    let rehire_job = store.get_job(&rehire_job).await.expect("get").expect("job");
    assert_eq!(rehire_job.job.kind, JobKind::Reverse);
}

async fn ingest_conflict_stores_nothing(store: SharedStore, _clock: ManualClock) {
    ingest(&store, new_event("evt-1", "jane@example.com")).await;
    let mut reused = new_event("evt-1", "jane@example.com");
    reused.body_sha256 = "another-body".into();
    // One request carrying a new event and a conflicting one.
    let out = store
        .ingest(vec![new_event("evt-2", "john@example.com"), reused])
        .await
        .expect("ingest");
    assert!(
        matches!(out.as_slice(), [_, IngestOutcome::Conflict { event_id }] if event_id == "evt-1"),
        "{out:?}"
    );
    let jobs = store.list_jobs(&JobFilter::default()).await.expect("list");
    assert_eq!(jobs.len(), 1, "the conflicting request stored nothing");
    // evt-2 was not stored, so it is new now.
    ingest(&store, new_event("evt-2", "john@example.com")).await;
    // The original is untouched: the same body is still a duplicate.
    let dup = store
        .ingest(vec![new_event("evt-1", "jane@example.com")])
        .await
        .expect("ingest");
    assert!(
        matches!(dup.as_slice(), [IngestOutcome::Duplicate { .. }]),
        "{dup:?}"
    );
}

async fn claim_takes_a_lease_and_increments_attempt(store: SharedStore, clock: ManualClock) {
    let job_id = ingest(&store, new_event("evt-1", "jane@example.com")).await;
    let before = clock.now();
    let c = claim_one(&store, "worker-a", LEASE).await;
    assert_eq!(c.job.id, job_id);
    assert_eq!(c.job.state, JobState::Running);
    assert_eq!(c.job.attempt, 1);
    assert_eq!(c.job.lease_owner.as_deref(), Some("worker-a"));
    assert_eq!(
        c.lease,
        Lease {
            job_id: job_id.clone(),
            owner: "worker-a".into(),
            attempt: 1
        }
    );
    let expires = c.job.lease_expires_at.expect("lease expiry");
    close_to(expires, before + LEASE, "lease expiry");
    assert_eq!(c.job.event.employee.email.as_str(), "jane@example.com");

    assert!(
        store
            .claim("worker-b", 10, LEASE)
            .await
            .expect("claim")
            .is_empty(),
        "a leased job is not claimable"
    );
    assert_eq!(state_of(&store, &job_id).await, JobState::Running);
    assert!(
        store
            .claim("worker-a", 0, LEASE)
            .await
            .expect("claim 0")
            .is_empty()
    );
}

async fn claim_respects_run_at(store: SharedStore, clock: ManualClock) {
    let mut later = new_event("evt-later", "jane@example.com");
    later.run_at = clock.now() + chrono::Duration::hours(1);
    ingest(&store, later).await;
    assert!(
        store.claim("w", 10, LEASE).await.expect("claim").is_empty(),
        "a job due in an hour is not claimable"
    );
    assert_eq!(store.oldest_runnable_age().await.expect("lag"), None);

    let mut due = new_event("evt-due", "john@example.com");
    due.run_at = clock.now() - chrono::Duration::seconds(5);
    let due_id = ingest(&store, due).await;
    let lag = store
        .oldest_runnable_age()
        .await
        .expect("lag")
        .expect("some lag");
    assert!(lag >= Duration::from_secs(4), "{lag:?}");
    let c = claim_one(&store, "w", LEASE).await;
    assert_eq!(c.job.id, due_id);
}

async fn one_running_job_per_employee(store: SharedStore, _clock: ManualClock) {
    let first = ingest(&store, new_event("evt-1", "jane@example.com")).await;
    let second = ingest(&store, new_event("evt-2", "jane@example.com")).await;
    let other = ingest(&store, new_event("evt-3", "john@example.com")).await;

    let claimed = store.claim("w", 10, LEASE).await.expect("claim");
    let ids: BTreeSet<_> = claimed.iter().map(|c| c.job.id.clone()).collect();
    assert_eq!(
        ids,
        BTreeSet::from([first.clone(), other.clone()]),
        "one job per employee, the earliest first"
    );
    assert!(
        store
            .claim("w2", 10, LEASE)
            .await
            .expect("claim")
            .is_empty(),
        "jane already has a running job"
    );
    let jane = claimed
        .iter()
        .find(|c| c.job.id == first)
        .expect("first claimed");
    store
        .finish(&jane.lease, Outcome::Succeeded)
        .await
        .expect("finish");
    let next = claim_one(&store, "w2", LEASE).await;
    assert_eq!(next.job.id, second);
}

async fn heartbeat_extends_the_lease(store: SharedStore, clock: ManualClock) {
    ingest(&store, new_event("evt-1", "jane@example.com")).await;
    let c = claim_one(&store, "w", Duration::from_secs(2)).await;
    store
        .heartbeat(&c.lease, Duration::from_secs(3600))
        .await
        .expect("heartbeat");
    let job = store
        .get_job(&c.job.id)
        .await
        .expect("get")
        .expect("job")
        .job;
    close_to(
        job.lease_expires_at.expect("expiry"),
        clock.now() + chrono::Duration::hours(1),
        "extended lease",
    );
    assert_eq!(job.attempt, 1, "a heartbeat is not an attempt");
    assert_eq!(job.state, JobState::Running);
}

async fn heartbeat_with_a_stale_lease_is_lease_lost(store: SharedStore, _clock: ManualClock) {
    ingest(&store, new_event("evt-1", "jane@example.com")).await;
    let c = claim_one(&store, "w", LEASE).await;
    let wrong_owner = Lease {
        owner: "impostor".into(),
        ..c.lease.clone()
    };
    assert_lease_lost(store.heartbeat(&wrong_owner, LEASE).await, "wrong owner");
    let wrong_attempt = Lease {
        attempt: 2,
        ..c.lease.clone()
    };
    assert_lease_lost(
        store.heartbeat(&wrong_attempt, LEASE).await,
        "wrong attempt",
    );
    let unknown = Lease {
        job_id: "no-such-job".into(),
        ..c.lease.clone()
    };
    assert_lease_lost(store.heartbeat(&unknown, LEASE).await, "unknown job");
    store
        .finish(&c.lease, Outcome::Succeeded)
        .await
        .expect("finish");
    assert_lease_lost(store.heartbeat(&c.lease, LEASE).await, "after finish");
    assert_lease_lost(
        store.finish(&c.lease, Outcome::Succeeded).await,
        "finish twice",
    );
}

async fn finish_of_an_older_attempt_is_rejected(store: SharedStore, clock: ManualClock) {
    let job_id = ingest(&store, new_event("evt-1", "jane@example.com")).await;
    let old = claim_expired(&store, &clock, "worker-a").await;
    assert_eq!(store.requeue_expired().await.expect("requeue"), 1);
    let new = claim_one(&store, "worker-b", LEASE).await;
    assert_eq!(new.job.id, job_id);
    assert_eq!(new.lease.attempt, 2);

    assert_lease_lost(
        store
            .finish(
                &old.lease,
                Outcome::Failed {
                    error: "stale".into(),
                },
            )
            .await,
        "the expired attempt's finish",
    );
    // Even an old attempt under the same owner name is fenced by the attempt number.
    let same_owner_old_attempt = Lease {
        owner: "worker-b".into(),
        ..old.lease.clone()
    };
    assert_lease_lost(
        store
            .finish(&same_owner_old_attempt, Outcome::Succeeded)
            .await,
        "old attempt, current owner",
    );
    assert_eq!(state_of(&store, &job_id).await, JobState::Running);
    store
        .finish(&new.lease, Outcome::Succeeded)
        .await
        .expect("current attempt finishes");
    let detail = store.get_job(&job_id).await.expect("get").expect("job");
    assert_eq!(detail.job.state, JobState::Succeeded);
    assert_eq!(detail.job.last_error, None);
    assert_eq!(detail.job.lease_owner, None);
    assert!(
        detail.audit.iter().any(|a| a.kind == "lease.expired"),
        "{:?}",
        detail.audit
    );
}

async fn expired_leases_are_requeued(store: SharedStore, clock: ManualClock) {
    let expiring = ingest(&store, new_event("evt-1", "jane@example.com")).await;
    let c = claim_expired(&store, &clock, "w").await;
    assert_eq!(c.job.id, expiring);
    let healthy = ingest(&store, new_event("evt-2", "john@example.com")).await;
    claim_one(&store, "w", LEASE).await;

    assert_eq!(store.requeue_expired().await.expect("requeue"), 1);
    assert_eq!(store.requeue_expired().await.expect("requeue"), 0);
    let job = store
        .get_job(&expiring)
        .await
        .expect("get")
        .expect("job")
        .job;
    assert_eq!(job.state, JobState::Queued);
    assert_eq!(job.lease_owner, None);
    assert_eq!(job.lease_expires_at, None);
    assert_eq!(job.failures, 0, "an expired lease is not a failure");
    assert_eq!(state_of(&store, &healthy).await, JobState::Running);
    // Runnable again at once.
    let again = claim_one(&store, "w2", LEASE).await;
    assert_eq!(again.job.id, expiring);
    assert_eq!(again.job.attempt, 2);
}

async fn retry_counts_failures_until_max_attempts(store: SharedStore, clock: ManualClock) {
    let job_id = ingest(&store, new_event("evt-1", "jane@example.com")).await;
    for n in 1..=2u32 {
        let c = claim_one(&store, "w", LEASE).await;
        store
            .finish(
                &c.lease,
                Outcome::Retry {
                    run_at: clock.now() - chrono::Duration::seconds(1),
                    error: format!("boom {n}"),
                },
            )
            .await
            .expect("finish retry");
        let job = store.get_job(&job_id).await.expect("get").expect("job").job;
        assert_eq!(job.state, JobState::Scheduled);
        assert_eq!(job.failures, n);
        assert_eq!(
            job.last_error.as_deref(),
            Some(format!("boom {n}").as_str())
        );
        assert_eq!(job.lease_owner, None);
    }
    let c = claim_one(&store, "w", LEASE).await;
    assert_eq!(c.job.attempt, 3);
    store
        .finish(
            &c.lease,
            Outcome::Retry {
                run_at: clock.now(),
                error: "boom 3".into(),
            },
        )
        .await
        .expect("finish retry");
    let job = store.get_job(&job_id).await.expect("get").expect("job").job;
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.failures, 3);
    let err = job.last_error.expect("last error");
    assert!(
        err.contains("gave up after 3 attempts") && err.contains("boom 3"),
        "{err}"
    );
    assert!(store.claim("w", 10, LEASE).await.expect("claim").is_empty());

    // A retry's run_at is honoured.
    let later = ingest(&store, new_event("evt-2", "john@example.com")).await;
    let c = claim_one(&store, "w", LEASE).await;
    let at = clock.now() + chrono::Duration::minutes(10);
    store
        .finish(
            &c.lease,
            Outcome::Retry {
                run_at: at,
                error: "later".into(),
            },
        )
        .await
        .expect("finish");
    let job = store.get_job(&later).await.expect("get").expect("job").job;
    assert_eq!(job.run_at.timestamp_millis(), at.timestamp_millis());
    assert!(store.claim("w", 10, LEASE).await.expect("claim").is_empty());
}

async fn scheduled_and_released_outcomes(store: SharedStore, clock: ManualClock) {
    let job_id = ingest(&store, new_event("evt-1", "jane@example.com")).await;
    let c = claim_one(&store, "w", LEASE).await;
    store
        .finish(
            &c.lease,
            Outcome::Retry {
                run_at: clock.now(),
                error: "flaky".into(),
            },
        )
        .await
        .expect("retry");
    // Scheduled is waiting, not failing: it resets the consecutive failures.
    let c = claim_one(&store, "w", LEASE).await;
    let at = clock.now() + chrono::Duration::hours(2);
    store
        .finish(
            &c.lease,
            Outcome::Scheduled {
                run_at: at,
                reason: "effective date".into(),
            },
        )
        .await
        .expect("schedule");
    let job = store.get_job(&job_id).await.expect("get").expect("job").job;
    assert_eq!(job.state, JobState::Scheduled);
    assert_eq!(job.failures, 0);
    assert_eq!(job.run_at.timestamp_millis(), at.timestamp_millis());
    assert!(store.claim("w", 10, LEASE).await.expect("claim").is_empty());

    // Released: back to the queue now, runnable by anyone.
    let other = ingest(&store, new_event("evt-2", "john@example.com")).await;
    let c = claim_one(&store, "w", LEASE).await;
    assert_eq!(c.job.id, other);
    store
        .finish(&c.lease, Outcome::Released)
        .await
        .expect("release");
    assert_eq!(state_of(&store, &other).await, JobState::Queued);
    let again = claim_one(&store, "w2", LEASE).await;
    assert_eq!(again.job.id, other);
    assert_eq!(again.job.attempt, 2);

    // The other terminal outcomes.
    for (outcome, state) in [
        (
            Outcome::NeedsReview {
                reason: "guard".into(),
            },
            JobState::NeedsReview,
        ),
        (
            Outcome::Failed {
                // A NUL from a CRM error body must not make the write fail.
                error: "permanent \0 failure".into(),
            },
            JobState::Failed,
        ),
        (
            Outcome::Cancelled {
                reason: "rehired".into(),
            },
            JobState::Cancelled,
        ),
    ] {
        let id = ingest(
            &store,
            new_event(&format!("evt-{state}"), &format!("{state}@example.com")),
        )
        .await;
        let c = claim_one(&store, "w3", LEASE).await;
        assert_eq!(c.job.id, id);
        store.finish(&c.lease, outcome).await.expect("finish");
        let job = store.get_job(&id).await.expect("get").expect("job").job;
        assert_eq!(job.state, state);
        assert!(job.last_error.is_some(), "{state} keeps its reason");
    }
}

async fn set_plan_and_checkpoints_are_fenced(store: SharedStore, clock: ManualClock) {
    let job_id = ingest(&store, new_event("evt-1", "jane@example.com")).await;
    let old = claim_expired(&store, &clock, "worker-a").await;
    let plan = json!({ "rule": "leavers", "action": "deactivate" });
    store
        .set_plan(&old.lease, "deactivate", &plan)
        .await
        .expect("set_plan");
    store
        .put_checkpoint(&old.lease, "reassign.leads", &json!({ "moved": 3 }))
        .await
        .expect("checkpoint");
    store
        .put_checkpoint(&old.lease, "reassign.leads", &json!({ "moved": 5 }))
        .await
        .expect("checkpoint overwrite");

    store.requeue_expired().await.expect("requeue");
    let new = claim_one(&store, "worker-b", LEASE).await;
    assert_eq!(
        new.job.plan,
        Some(plan.clone()),
        "the plan survives a requeue"
    );
    assert_eq!(new.job.action.as_deref(), Some("deactivate"));

    assert_lease_lost(
        store.set_plan(&old.lease, "delete", &json!({})).await,
        "stale set_plan",
    );
    assert_lease_lost(
        store
            .put_checkpoint(&old.lease, "reassign.leads", &json!({ "moved": 0 }))
            .await,
        "stale checkpoint",
    );
    store
        .put_checkpoint(&new.lease, "reassign.deals", &json!([1, 2]))
        .await
        .expect("current checkpoint");
    let detail = store.get_job(&job_id).await.expect("get").expect("job");
    assert_eq!(detail.job.action.as_deref(), Some("deactivate"));
    assert_eq!(detail.job.plan, Some(plan));
    assert_eq!(
        detail.checkpoints.get("reassign.leads"),
        Some(&json!({ "moved": 5 }))
    );
    assert_eq!(
        detail.checkpoints.get("reassign.deals"),
        Some(&json!([1, 2]))
    );
    assert_eq!(detail.checkpoints.len(), 2);
}

async fn audit_appends_in_order(store: SharedStore, clock: ManualClock) {
    let job_id = ingest(&store, new_event("evt-1", "jane@example.com")).await;
    let c = claim_expired(&store, &clock, "w").await;
    store
        .audit(
            &job_id,
            &[
                ("decision".into(), json!({ "rule": "r1" })),
                ("crm.call".into(), json!({ "n": 1 })),
            ],
        )
        .await
        .expect("audit");
    store.audit(&job_id, &[]).await.expect("empty audit");
    store.requeue_expired().await.expect("requeue");
    // Not fenced: a late worker's history is still history.
    store
        .audit(
            &c.lease.job_id,
            &[
                (
                    "crm.call".into(),
                    json!({ "n": 2, "note": "nul \u{0} and ünïcode" }),
                ),
                ("reassign.moved".into(), json!({ "n": 3 })),
            ],
        )
        .await
        .expect("late audit");
    let detail = store.get_job(&job_id).await.expect("get").expect("job");
    let kinds: Vec<_> = detail.audit.iter().map(|a| a.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "decision",
            "crm.call",
            "lease.expired",
            "crm.call",
            "reassign.moved"
        ]
    );
    assert_eq!(detail.audit[0].detail, json!({ "rule": "r1" }));
    assert_eq!(
        detail.audit[3].detail,
        json!({ "n": 2, "note": "nul \u{0} and ünïcode" })
    );
    assert!(
        detail.audit.windows(2).all(|w| w[0].at <= w[1].at),
        "audit times never go back"
    );
    close_to(detail.audit[0].at, clock.now(), "audit time");
}

async fn get_job_returns_the_whole_story(store: SharedStore, clock: ManualClock) {
    assert!(store.get_job("no-such-job").await.expect("get").is_none());
    let mut ev = new_event("evt-1", "jane@example.com");
    ev.event = OffboardingEvent::from_json(
        &json!({
            "id": "evt-1",
            "type": "employee.terminated",
            "occurred_at": "2026-12-01T10:00:00Z",
            "employee": {
                "id": "E1001", "email": "jane@example.com", "name": "Jane \u{0} Doe",
                "department": "Sales", "country": "US", "manager_email": "boss@example.com"
            },
            "termination": {
                "effective_at": "2026-12-15T17:00:00Z", "kind": "layoff",
                "rehire_eligible": false, "reason": "Restructuring"
            },
            "legal_hold": true
        }),
        None,
    )
    .expect("event");
    let expected_event = ev.event.clone();
    let job_id = ingest(&store, ev).await;
    let c = claim_one(&store, "w", LEASE).await;
    store
        .set_plan(&c.lease, "review", &json!({ "why": "legal hold" }))
        .await
        .expect("plan");
    store
        .put_checkpoint(&c.lease, "user", &json!({ "id": 42 }))
        .await
        .expect("checkpoint");
    store
        .audit(
            &job_id,
            &[("decision".into(), json!({ "action": "review" }))],
        )
        .await
        .expect("audit");
    let detail = store.get_job(&job_id).await.expect("get").expect("job");
    assert_eq!(detail.job.event, expected_event, "the event round-trips");
    assert_eq!(detail.job.id, job_id);
    assert_eq!(detail.job.state, JobState::Running);
    assert_eq!(detail.job.attempt, 1);
    assert_eq!(detail.job.plan, Some(json!({ "why": "legal hold" })));
    assert_eq!(detail.checkpoints.get("user"), Some(&json!({ "id": 42 })));
    assert_eq!(detail.audit.len(), 1);
    assert_eq!(detail.audit[0].detail, json!({ "action": "review" }));
    assert!(!detail.job.approved);
    assert_eq!(detail.job.parent_id, None);
    assert!(detail.job.created_at <= detail.job.updated_at);
    close_to(detail.job.created_at, clock.now(), "created_at");
}

async fn list_jobs_filters_and_pages(store: SharedStore, clock: ManualClock) {
    let mut ids = Vec::new();
    for i in 0..5 {
        let email = if i % 2 == 0 {
            "jane@example.com"
        } else {
            "john@example.com"
        };
        ids.push(ingest(&store, new_event(&format!("evt-{i}"), email)).await);
        // Distinct creation milliseconds keep `created_at` filters unambiguous.
        clock.advance(chrono::Duration::milliseconds(3));
    }
    let claimed = store.claim("w", 1, LEASE).await.expect("claim");
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].job.id, ids[0], "the oldest runnable job first");

    let all = store.list_jobs(&JobFilter::default()).await.expect("list");
    let listed: Vec<_> = all.iter().map(|j| j.id.clone()).collect();
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(listed, newest_first, "newest first");

    let running = store
        .list_jobs(&JobFilter {
            state: Some(JobState::Running),
            ..Default::default()
        })
        .await
        .expect("list running");
    assert_eq!(running.len(), 1);
    assert_eq!(running[0].id, ids[0]);

    let jane = store
        .list_jobs(&JobFilter {
            employee: Some("jane@example.com".into()),
            ..Default::default()
        })
        .await
        .expect("list jane");
    assert_eq!(jane.len(), 3);
    assert!(jane.iter().all(|j| j.employee_email == "jane@example.com"));

    let jane_queued = store
        .list_jobs(&JobFilter {
            employee: Some("jane@example.com".into()),
            state: Some(JobState::Queued),
            ..Default::default()
        })
        .await
        .expect("list jane queued");
    assert_eq!(jane_queued.len(), 2);

    let future = store
        .list_jobs(&JobFilter {
            since: Some(clock.now() + chrono::Duration::minutes(5)),
            ..Default::default()
        })
        .await
        .expect("list since");
    assert!(future.is_empty());
    let past = store
        .list_jobs(&JobFilter {
            since: Some(clock.now() - chrono::Duration::minutes(5)),
            ..Default::default()
        })
        .await
        .expect("list since");
    assert_eq!(past.len(), 5);

    // Page through with the cursor: every job once, in order.
    let mut paged = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .list_jobs(&JobFilter {
                limit: Some(2),
                before: before.clone(),
                ..Default::default()
            })
            .await
            .expect("page");
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        before = Some(last.id.clone());
        paged.extend(page.into_iter().map(|j| j.id));
    }
    assert_eq!(paged, newest_first);
}

async fn jobs_for_filters_by_state_newest_first(store: SharedStore, _clock: ManualClock) {
    let a = ingest(&store, new_event("evt-1", "jane@example.com")).await;
    let b = ingest(&store, new_event("evt-2", "jane@example.com")).await;
    ingest(&store, new_event("evt-3", "john@example.com")).await;
    let claimed = store.claim("w", 10, LEASE).await.expect("claim");
    assert!(
        claimed.iter().any(|c| c.job.id == a),
        "jane's first job runs"
    );
    let jobs = store
        .jobs_for(
            "jane@example.com",
            &[JobState::Queued, JobState::Running, JobState::Scheduled],
        )
        .await
        .expect("jobs_for");
    let ids: Vec<_> = jobs.iter().map(|j| j.id.clone()).collect();
    assert_eq!(ids, [b.clone(), a.clone()], "newest first");
    let queued = store
        .jobs_for("jane@example.com", &[JobState::Queued])
        .await
        .expect("jobs_for");
    let queued: Vec<_> = queued.iter().map(|j| j.id.clone()).collect();
    assert_eq!(queued, [b]);
    assert!(
        store
            .jobs_for("jane@example.com", &[JobState::Failed])
            .await
            .expect("jobs_for")
            .is_empty()
    );
    assert!(
        store
            .jobs_for("nobody@example.com", &JobState::ALL)
            .await
            .expect("jobs_for")
            .is_empty()
    );
}

async fn operator_actions_follow_state_rules(store: SharedStore, clock: ManualClock) {
    assert!(matches!(
        store.retry("no-such-job", Via::Api).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.cancel("no-such-job", "x", Via::Cli).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.approve("no-such-job", Via::Api).await,
        Err(StoreError::NotFound(_))
    ));

    // queued: cancel yes; retry and approve no.
    let q = ingest(&store, new_event("evt-q", "q@example.com")).await;
    assert_wrong_state(store.retry(&q, Via::Api).await, "retry queued");
    assert_wrong_state(store.approve(&q, Via::Api).await, "approve queued");
    let job = store
        .cancel(&q, "cancelled by operator (test)", Via::Console)
        .await
        .expect("cancel queued");
    assert_eq!(job.state, JobState::Cancelled);
    assert_eq!(
        job.last_error.as_deref(),
        Some("cancelled by operator (test)"),
        "the operator's reason is kept"
    );
    assert_wrong_state(
        store.cancel(&q, "again", Via::Cli).await,
        "cancel cancelled",
    );
    assert_wrong_state(store.approve(&q, Via::Api).await, "approve cancelled");
    // cancelled → retry → queued.
    let job = store.retry(&q, Via::Cli).await.expect("retry cancelled");
    assert_eq!(job.state, JobState::Queued);
    assert_eq!(job.last_error, None);
    let detail = store.get_job(&q).await.expect("get").expect("job");
    let ops: Vec<_> = detail.audit.iter().map(|a| a.kind.as_str()).collect();
    assert_eq!(ops, ["operator.cancel", "operator.retry"]);
    assert_eq!(detail.audit[0].detail["from"], "queued");
    assert_eq!(
        detail.audit[0].detail["reason"],
        "cancelled by operator (test)"
    );
    // Where each action came from is in its entry: one argument, both backends.
    assert_eq!(detail.audit[0].detail["via"], "console");
    assert_eq!(detail.audit[1].detail["via"], "cli");

    // needs_review → approve → queued + approved.
    let c = claim_one(&store, "w", LEASE).await;
    assert_eq!(c.job.id, q);
    store
        .finish(
            &c.lease,
            Outcome::NeedsReview {
                reason: "cap".into(),
            },
        )
        .await
        .expect("needs review");
    let job = store.approve(&q, Via::Api).await.expect("approve");
    assert_eq!(job.state, JobState::Queued);
    assert!(job.approved);
    let c = claim_one(&store, "w", LEASE).await;
    assert!(c.job.approved, "approval survives the claim");

    // failed → retry resets failures.
    store
        .finish(
            &c.lease,
            Outcome::Retry {
                run_at: clock.now(),
                error: "e1".into(),
            },
        )
        .await
        .expect("retry outcome");
    let c = claim_one(&store, "w", LEASE).await;
    store
        .finish(
            &c.lease,
            Outcome::Failed {
                error: "permanent".into(),
            },
        )
        .await
        .expect("failed");
    let failed = store.get_job(&q).await.expect("get").expect("job").job;
    assert_eq!((failed.state, failed.failures), (JobState::Failed, 1));
    let job = store.retry(&q, Via::Api).await.expect("retry failed");
    assert_eq!((job.state, job.failures), (JobState::Queued, 0));
    assert_eq!(job.last_error, None);

    // succeeded: nothing applies.
    let c = claim_one(&store, "w", LEASE).await;
    store
        .finish(&c.lease, Outcome::Succeeded)
        .await
        .expect("succeed");
    assert_wrong_state(store.retry(&q, Via::Api).await, "retry succeeded");
    assert_wrong_state(store.cancel(&q, "x", Via::Cli).await, "cancel succeeded");
    assert_wrong_state(store.approve(&q, Via::Api).await, "approve succeeded");

    // needs_review can be retried and cancelled too.
    let r = ingest(&store, new_event("evt-r", "r@example.com")).await;
    let c = claim_one(&store, "w", LEASE).await;
    store
        .finish(
            &c.lease,
            Outcome::NeedsReview {
                reason: "guard".into(),
            },
        )
        .await
        .expect("review");
    assert_eq!(
        store.retry(&r, Via::Api).await.expect("retry review").state,
        JobState::Queued
    );
    let c = claim_one(&store, "w", LEASE).await;
    store
        .finish(
            &c.lease,
            Outcome::NeedsReview {
                reason: "guard".into(),
            },
        )
        .await
        .expect("review");
    assert_eq!(
        store
            .cancel(&r, "no", Via::Cli)
            .await
            .expect("cancel review")
            .state,
        JobState::Cancelled
    );
}

async fn operator_cancel_of_a_running_job_fences_the_worker(
    store: SharedStore,
    _clock: ManualClock,
) {
    let job_id = ingest(&store, new_event("evt-1", "jane@example.com")).await;
    let c = claim_one(&store, "w", LEASE).await;
    let job = store
        .cancel(&job_id, "stop", Via::Cli)
        .await
        .expect("cancel running");
    assert_eq!(job.state, JobState::Cancelled);
    assert_eq!(job.lease_owner, None);
    assert_lease_lost(store.heartbeat(&c.lease, LEASE).await, "heartbeat");
    assert_lease_lost(
        store.put_checkpoint(&c.lease, "k", &json!(1)).await,
        "checkpoint",
    );
    assert_lease_lost(store.finish(&c.lease, Outcome::Succeeded).await, "finish");
    assert_eq!(state_of(&store, &job_id).await, JobState::Cancelled);
    // The employee is free again.
    let next = ingest(&store, new_event("evt-2", "jane@example.com")).await;
    assert_eq!(claim_one(&store, "w", LEASE).await.job.id, next);
}

async fn cancel_pending_for_spares_the_running_job(store: SharedStore, clock: ManualClock) {
    let running = ingest(&store, new_event("evt-1", "jane@example.com")).await;
    let queued = ingest(&store, new_event("evt-2", "jane@example.com")).await;
    let mut later = new_event("evt-3", "jane@example.com");
    later.run_at = clock.now() + chrono::Duration::days(1);
    let later = ingest(&store, later).await;
    let someone_else = ingest(&store, new_event("evt-4", "john@example.com")).await;
    let claimed = store.claim("w", 10, LEASE).await.expect("claim");
    assert_eq!(claimed.len(), 2, "jane's first job and john's");
    assert!(claimed.iter().any(|c| c.job.id == running));

    let mut cancelled = store
        .cancel_pending_for("jane@example.com", &running, "employee rehired")
        .await
        .expect("cancel_pending_for");
    cancelled.sort();
    let mut expected = vec![queued.clone(), later.clone()];
    expected.sort();
    assert_eq!(cancelled, expected);

    assert_eq!(state_of(&store, &running).await, JobState::Running);
    assert_eq!(state_of(&store, &someone_else).await, JobState::Running);
    let detail = store.get_job(&queued).await.expect("get").expect("job");
    assert_eq!(detail.job.state, JobState::Cancelled);
    assert_eq!(detail.job.last_error.as_deref(), Some("employee rehired"));
    let entry = detail
        .audit
        .iter()
        .find(|a| a.kind == "job.cancelled")
        .expect("cancel audited");
    assert_eq!(entry.detail["by_job"], running.as_str());
    assert_eq!(entry.detail["reason"], "employee rehired");

    // Nothing left to cancel; terminal jobs are never touched.
    assert!(
        store
            .cancel_pending_for("jane@example.com", &running, "again")
            .await
            .expect("again")
            .is_empty()
    );
}

async fn enqueue_follow_up_is_idempotent_and_fenced(store: SharedStore, clock: ManualClock) {
    let parent = ingest(&store, new_event("evt-1", "jane@example.com")).await;
    let c = claim_one(&store, "w", LEASE).await;
    let at = clock.now() + chrono::Duration::days(90);
    let first = store
        .enqueue_follow_up(&c.lease, JobKind::DeleteAfterRetention, at)
        .await
        .expect("follow-up");
    let second = store
        .enqueue_follow_up(&c.lease, JobKind::DeleteAfterRetention, at)
        .await
        .expect("follow-up again");
    assert_eq!(first, second, "idempotent per parent and kind");
    let follow = store.get_job(&first).await.expect("get").expect("job").job;
    assert_eq!(follow.kind, JobKind::DeleteAfterRetention);
    assert_eq!(follow.state, JobState::Scheduled);
    assert_eq!(follow.parent_id.as_deref(), Some(parent.as_str()));
    assert_eq!(follow.employee_email, "jane@example.com");
    assert_eq!(follow.event_id, "evt-1");
    assert_eq!(follow.max_attempts, 3);
    assert_eq!(follow.run_at.timestamp_millis(), at.timestamp_millis());

    // A duplicate of the parent's event still names the parent's job, not the follow-up.
    let dup = store
        .ingest(vec![new_event("evt-1", "jane@example.com")])
        .await
        .expect("ingest");
    assert_eq!(
        dup,
        vec![IngestOutcome::Duplicate {
            event_id: "evt-1".into(),
            job_id: parent.clone()
        }]
    );

    store
        .finish(&c.lease, Outcome::Succeeded)
        .await
        .expect("finish");
    assert_lease_lost(
        store
            .enqueue_follow_up(&c.lease, JobKind::DeleteAfterRetention, at)
            .await,
        "follow-up after finish",
    );
    assert!(
        store.claim("w", 10, LEASE).await.expect("claim").is_empty(),
        "the follow-up waits for its time"
    );
}

/// Ingests and claims `n` jobs for distinct employees.
async fn claimed_jobs(store: &SharedStore, n: usize) -> Vec<Claimed> {
    for i in 0..n {
        ingest(
            store,
            new_event(&format!("evt-{i}"), &format!("rep{i}@example.com")),
        )
        .await;
    }
    let claimed = store.claim("w", n, LEASE).await.expect("claim");
    assert_eq!(claimed.len(), n);
    claimed
}

async fn reserve_seat_action_enforces_caps(store: SharedStore, clock: ManualClock) {
    let jobs = claimed_jobs(&store, 6).await;
    let hour_ago = clock.now() - chrono::Duration::hours(1);
    let reserve = |i: usize, action: &'static str, max_same: Option<u32>, max_all: Option<u32>| {
        let store = store.clone();
        let lease = jobs[i].lease.clone();
        async move {
            store
                .reserve_seat_action(&lease, action, hour_ago, max_same, max_all)
                .await
                .expect("reserve")
        }
    };
    assert_eq!(
        reserve(0, "delete", Some(2), Some(10)).await,
        Reservation::Granted
    );
    assert_eq!(
        reserve(1, "delete", Some(2), Some(10)).await,
        Reservation::Granted
    );
    assert_eq!(
        reserve(2, "delete", Some(2), Some(10)).await,
        Reservation::OverCap {
            cap: "deletions",
            count: 2,
            max: 2
        }
    );
    // A job that holds a reservation keeps it, even over the cap.
    assert_eq!(
        reserve(0, "delete", Some(2), Some(10)).await,
        Reservation::Granted
    );
    assert_eq!(
        reserve(0, "delete", Some(0), Some(0)).await,
        Reservation::Granted
    );
    // Deactivations don't count against the deletion cap, but count as offboardings.
    assert_eq!(
        reserve(3, "deactivate", None, Some(3)).await,
        Reservation::Granted
    );
    assert_eq!(
        reserve(4, "deactivate", None, Some(3)).await,
        Reservation::OverCap {
            cap: "offboardings",
            count: 3,
            max: 3
        }
    );
    // No caps: granted.
    assert_eq!(
        reserve(4, "deactivate", None, None).await,
        Reservation::Granted
    );
    // Only reservations since `since` count.
    let later = clock.now() + chrono::Duration::minutes(1);
    assert_eq!(
        store
            .reserve_seat_action(&jobs[2].lease, "delete", later, Some(1), Some(1))
            .await
            .expect("reserve"),
        Reservation::Granted
    );
    // Fenced.
    store
        .finish(&jobs[5].lease, Outcome::Succeeded)
        .await
        .expect("finish");
    assert_lease_lost(
        store
            .reserve_seat_action(&jobs[5].lease, "delete", hour_ago, None, None)
            .await,
        "reserve after finish",
    );
}

async fn concurrent_reservations_never_overshoot_a_cap(store: SharedStore, clock: ManualClock) {
    let jobs = claimed_jobs(&store, 8).await;
    let since = clock.now() - chrono::Duration::hours(1);
    let mut tasks = tokio::task::JoinSet::new();
    for c in jobs {
        let store = store.clone();
        tasks.spawn(async move {
            store
                .reserve_seat_action(&c.lease, "delete", since, Some(3), Some(100))
                .await
                .expect("reserve")
        });
    }
    let mut granted = 0;
    while let Some(r) = tasks.join_next().await {
        match r.expect("task") {
            Reservation::Granted => granted += 1,
            Reservation::OverCap { cap, max, .. } => assert_eq!((cap, max), ("deletions", 3)),
        }
    }
    assert_eq!(granted, 3, "exactly the cap, never more");
}

async fn concurrent_claims_never_share_a_job(store: SharedStore, _clock: ManualClock) {
    // 40 jobs over 10 employees: claimers race on the same rows and on the same
    // employees.
    let mut all = BTreeSet::new();
    for i in 0..40 {
        let ev = new_event(&format!("evt-{i}"), &format!("rep{}@example.com", i % 10));
        all.insert(ingest(&store, ev).await);
    }
    let running_emails: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..4 {
        let store = store.clone();
        let running_emails = running_emails.clone();
        tasks.spawn(async move {
            let owner = format!("worker-{w}");
            let mut mine = Vec::new();
            loop {
                let claimed = store
                    .claim(&owner, 3, LEASE)
                    .await
                    .expect("claim never fails");
                if claimed.is_empty() {
                    if queue_drained(&store).await {
                        break;
                    }
                    // The others still hold jobs: let them finish (no time needs to
                    // pass, every job is due).
                    tokio::task::yield_now().await;
                    continue;
                }
                for c in &claimed {
                    assert_eq!(c.lease.owner, owner);
                    let fresh = running_emails
                        .lock()
                        .expect("lock")
                        .insert(c.job.employee_email.clone());
                    assert!(fresh, "two running jobs for {}", c.job.employee_email);
                }
                // Hold the jobs while the other claimers run, as real work would: the
                // race this test is about needs claims to meet running jobs.
                tokio::time::sleep(Duration::from_millis(2)).await;
                for c in claimed {
                    // Forget the employee before the finish commits, so a claim that
                    // follows the commit can't be mistaken for a double.
                    running_emails
                        .lock()
                        .expect("lock")
                        .remove(&c.job.employee_email);
                    store
                        .finish(&c.lease, Outcome::Succeeded)
                        .await
                        .expect("finish own lease");
                    mine.push(c.job.id);
                }
            }
            mine
        });
    }
    let mut seen = Vec::new();
    let joined = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(r) = tasks.join_next().await {
            seen.extend(r.expect("claimer"));
        }
    })
    .await;
    assert!(joined.is_ok(), "claimers stalled");
    let unique: BTreeSet<_> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "a job was handed out twice");
    assert_eq!(unique, all, "every job claimed exactly once");
    let counts = store.count_by_state().await.expect("counts");
    assert_eq!(counts.get(&JobState::Succeeded), Some(&40));
}

/// Nothing queued or running any more.
async fn queue_drained(store: &SharedStore) -> bool {
    let counts = store.count_by_state().await.expect("counts");
    counts[&JobState::Queued] + counts[&JobState::Running] + counts[&JobState::Scheduled] == 0
}

async fn count_by_state_and_queue_lag(store: SharedStore, _clock: ManualClock) {
    let counts = store.count_by_state().await.expect("counts");
    assert_eq!(counts.len(), JobState::ALL.len(), "every state is reported");
    assert!(counts.values().all(|n| *n == 0));
    assert_eq!(store.oldest_runnable_age().await.expect("lag"), None);

    ingest(&store, new_event("evt-1", "a@example.com")).await;
    ingest(&store, new_event("evt-2", "b@example.com")).await;
    ingest(&store, new_event("evt-3", "c@example.com")).await;
    let c = store.claim("w", 1, LEASE).await.expect("claim");
    store
        .finish(&c[0].lease, Outcome::Succeeded)
        .await
        .expect("finish");
    claim_one_of(&store).await;
    let counts = store.count_by_state().await.expect("counts");
    assert_eq!(counts[&JobState::Queued], 1);
    assert_eq!(counts[&JobState::Running], 1);
    assert_eq!(counts[&JobState::Succeeded], 1);
    assert!(store.oldest_runnable_age().await.expect("lag").is_some());
}

/// `seats_pending` (the `offboard_seats_pending_admin_action` gauge): active jobs
/// with a reserved action and a `seat_requested_at` checkpoint, per action; and
/// `seat_waits`, the same jobs listed (the console's waiting seats).
async fn seats_pending_counts_requested_unverified_seat_changes(
    store: SharedStore,
    clock: ManualClock,
) {
    assert!(store.seats_pending().await.expect("pending").is_empty());
    assert!(store.seat_waits(10).await.expect("waits").is_empty());
    let asked = clock.now();
    let later = clock.now() + chrono::Duration::hours(1);
    // (email, action, seat requested?, how the run ends)
    let runs = [
        ("a@example.com", "deactivate", true, "scheduled"),
        ("b@example.com", "delete", true, "needs_review"),
        ("c@example.com", "delete", false, "scheduled"),
        ("d@example.com", "deactivate", true, "succeeded"),
    ];
    let mut ids = Vec::new();
    for (i, (email, action, requested, end)) in runs.into_iter().enumerate() {
        let id = ingest(&store, new_event(&format!("evt-seat-{i}"), email)).await;
        let c = claim_one_of(&store).await;
        assert_eq!(c.job.id, id);
        let granted = store
            .reserve_seat_action(
                &c.lease,
                action,
                clock.now() - chrono::Duration::hours(1),
                None,
                None,
            )
            .await
            .expect("reserve");
        assert_eq!(granted, Reservation::Granted);
        if requested {
            store
                .put_checkpoint(&c.lease, "seat_requested_at", &json!(asked))
                .await
                .expect("checkpoint");
        }
        if i == 0 {
            store
                .put_checkpoint(&c.lease, "admin_task_id", &json!(101641))
                .await
                .expect("checkpoint");
        }
        let outcome = match end {
            "scheduled" => Outcome::Scheduled {
                run_at: later,
                reason: "verify later".into(),
            },
            "needs_review" => Outcome::NeedsReview {
                reason: "deadline passed".into(),
            },
            _ => Outcome::Succeeded,
        };
        store.finish(&c.lease, outcome).await.expect("finish");
        ids.push(id);
    }
    let pending = store.seats_pending().await.expect("pending");
    assert_eq!(pending.get("deactivate"), Some(&1), "{pending:?}");
    assert_eq!(pending.get("delete"), Some(&1), "{pending:?}");
    let waits = store.seat_waits(10).await.expect("waits");
    let listed: Vec<_> = waits.iter().map(|w| w.job.id.clone()).collect();
    assert_eq!(listed, [ids[0].clone(), ids[1].clone()], "oldest job first");
    assert_eq!(waits[0].requested_at, asked);
    assert_eq!(waits[0].admin_task, Some(json!(101641)));
    assert_eq!(waits[1].admin_task, None);
    assert_eq!(waits[1].job.state, JobState::NeedsReview);
    assert_eq!(store.seat_waits(1).await.expect("waits").len(), 1);
    store
        .cancel(&ids[0], "operator", Via::Cli)
        .await
        .expect("cancel");
    let pending = store.seats_pending().await.expect("pending");
    assert_eq!(pending.get("deactivate"), None, "{pending:?}");
    assert_eq!(pending.get("delete"), Some(&1), "{pending:?}");
    let waits = store.seat_waits(10).await.expect("waits");
    assert_eq!(waits.len(), 1, "a cancelled job waits for nothing");
    assert_eq!(waits[0].job.id, ids[1]);
}

async fn claim_one_of(store: &SharedStore) -> Claimed {
    let mut c = store.claim("w", 1, LEASE).await.expect("claim");
    assert_eq!(c.len(), 1);
    c.remove(0)
}

async fn wait_for_work_returns_by_max(store: SharedStore, _clock: ManualClock) {
    let started = Instant::now();
    store.wait_for_work(Duration::from_millis(100)).await;
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(5), "waited {waited:?}");
}

// ---------------------------------------------------------------------------------
// Store-specific behaviour
// ---------------------------------------------------------------------------------

/// SQLite can't hear other processes: waiting is sleeping.
#[tokio::test]
async fn sqlite_wait_for_work_sleeps() {
    let h = Harness::sqlite(true).await;
    let started = Instant::now();
    let woken = h.store.wait_for_work(Duration::from_millis(80)).await;
    assert!(!woken);
    assert!(started.elapsed() >= Duration::from_millis(80));
}

/// An unknown scheme is a clear error that doesn't echo the URL (it may hold a password).
#[tokio::test]
async fn open_rejects_unknown_schemes() {
    match offboard_core::store::open("mysql://user:secret@host/db", "full").await {
        Err(e @ StoreError::Unsupported(_)) => {
            let msg = e.to_string();
            assert!(msg.contains("mysql") && !msg.contains("secret"), "{msg}");
        }
        Err(other) => panic!("expected Unsupported, got {other:?}"),
        Ok(_) => panic!("mysql is not a supported store"),
    }
}

/// Stored values no job can have (a bad restore, a hand edit): `run_at` beyond any
/// instant, a negative attempt count.
const NOT_A_TIME: i64 = i64::MAX;

/// Every read of the job says which job and column are corrupt instead of making
/// something up (a 1970 `run_at` would make it runnable for ever).
async fn reads_report_corruption(store: &SharedStore, id: &str, column: &str) {
    let reads = [
        store.get_job(id).await.map(|_| ()),
        store.list_jobs(&JobFilter::default()).await.map(|_| ()),
        store
            .jobs_for("jane@example.com", &[JobState::Queued])
            .await
            .map(|_| ()),
    ];
    for read in reads {
        match read {
            Err(StoreError::Corrupt(msg)) => {
                assert!(msg.contains(id) && msg.contains(column), "{msg}");
            }
            other => panic!("{column}: expected Corrupt, got {other:?}"),
        }
    }
}

/// Overwrites columns of one job row behind the store's back: `set` is the SQL
/// `SET` list (literal values only), the same text on both databases.
async fn tamper_with_job(h: &Harness, id: &str, set: &str) {
    use sqlx::Connection;
    let sql = sqlx::AssertSqlSafe(format!("UPDATE jobs SET {set} WHERE id = $1"));
    let done = if h.pg.is_some() {
        let mut raw = sqlx::PgConnection::connect(&h.url).await.expect("connect");
        sqlx::query(sql).bind(id).execute(&mut raw).await.map(drop)
    } else {
        let mut raw = sqlx::SqliteConnection::connect(&h.url)
            .await
            .expect("connect");
        sqlx::query(sql).bind(id).execute(&mut raw).await.map(drop)
    };
    done.unwrap_or_else(|e| panic!("SET {set}: {e}"));
}

/// A corrupt `run_at`, then a corrupt `attempt`, on whichever store `h` holds.
async fn corrupt_stored_values_are_reported(h: &Harness) {
    let id = ingest(&h.store, new_event("evt-1", "jane@example.com")).await;
    tamper_with_job(h, &id, &format!("run_at = {NOT_A_TIME}")).await;
    reads_report_corruption(&h.store, &id, "run_at").await;
    tamper_with_job(h, &id, "run_at = 0, attempt = -1").await;
    reads_report_corruption(&h.store, &id, "attempt").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_corrupt_stored_values_are_reported() {
    corrupt_stored_values_are_reported(&Harness::sqlite(true).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_corrupt_stored_values_are_reported() {
    let Some(h) = Harness::postgres(true).await else {
        return;
    };
    corrupt_stored_values_are_reported(&h).await;
    h.cleanup().await;
}

/// Another replica's ingest wakes an idle worker at once (LISTEN/NOTIFY), and the
/// timeout remains the fallback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_wait_for_work_wakes_on_another_replicas_ingest() {
    let Some(h) = Harness::postgres(true).await else {
        return;
    };
    let receiver = open_at(&h.url, &h.clock).await;

    // The first wait starts the listener; it returns once the listener is up (a
    // (re)connected listener wakes waiters) or after the timeout.
    h.store.wait_for_work(Duration::from_secs(5)).await;

    let worker = h.store.clone();
    let waiter = tokio::spawn(async move {
        let started = Instant::now();
        let woken = worker.wait_for_work(Duration::from_secs(20)).await;
        (woken, started.elapsed())
    });
    // Let the waiter start waiting (a wake-up sent before it waits is not for it).
    tokio::time::sleep(Duration::from_millis(200)).await;
    ingest(&receiver, new_event("evt-1", "jane@example.com")).await;
    let (woken, waited) = waiter.await.expect("waiter");
    assert!(woken, "woken by NOTIFY");
    assert!(waited < Duration::from_secs(10), "waited {waited:?}");

    // Retry and approve wake workers too.
    let c = claim_one(&h.store, "w", LEASE).await;
    h.store
        .finish(
            &c.lease,
            Outcome::NeedsReview {
                reason: "cap".into(),
            },
        )
        .await
        .expect("review");
    let worker = h.store.clone();
    let waiter = tokio::spawn(async move { worker.wait_for_work(Duration::from_secs(20)).await });
    // As above: the waiter must be waiting before the approval.
    tokio::time::sleep(Duration::from_millis(200)).await;
    receiver
        .approve(&c.job.id, Via::Api)
        .await
        .expect("approve");
    assert!(waiter.await.expect("waiter"), "woken by approve");

    // Nothing happening: the timeout is the answer. The channel is the
    // database's, not the schema's, so another test's ingest running beside this
    // one wakes the waiter too; a quiet 300 ms must still come within a few tries.
    let mut timed_out = false;
    for _ in 0..10 {
        let started = Instant::now();
        if !h.store.wait_for_work(Duration::from_millis(300)).await {
            assert!(started.elapsed() >= Duration::from_millis(300));
            timed_out = true;
            break;
        }
    }
    assert!(
        timed_out,
        "never timed out: woken every time with nothing to do"
    );

    drop(receiver);
    h.cleanup().await;
}

/// Claims racing on one employee's jobs across separate pools (as separate replicas
/// would) never fail and never run two of that employee's jobs at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_replicas_racing_on_one_employee() {
    let Some(h) = Harness::postgres(true).await else {
        return;
    };
    let clock = h.clock.clone();
    let mut replicas = vec![h.store.clone()];
    for _ in 0..3 {
        replicas.push(open_at(&h.url, &clock).await);
    }
    for i in 0..30 {
        let mut ev = new_event(&format!("evt-{i}"), &format!("rep{}@example.com", i % 3));
        // Some due a moment in the future, so the runnable set changes while claiming.
        ev.run_at = clock.now() + chrono::Duration::milliseconds((i % 5) * 3);
        ingest(&h.store, ev).await;
    }
    let done = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = tokio::task::JoinSet::new();
    for (r, store) in replicas.into_iter().enumerate() {
        let done = done.clone();
        let clock = clock.clone();
        tasks.spawn(async move {
            let owner = format!("replica-{r}");
            loop {
                let claimed = store
                    .claim(&owner, 2, LEASE)
                    .await
                    .expect("claim never fails");
                if claimed.is_empty() {
                    if queue_drained(&store).await {
                        break;
                    }
                    // Nothing due yet on this replica's view: let time reach the
                    // next job (every replica shares the clock, as NTP would).
                    clock.advance(chrono::Duration::milliseconds(1));
                    tokio::task::yield_now().await;
                    continue;
                }
                for c in claimed {
                    store
                        .finish(&c.lease, Outcome::Succeeded)
                        .await
                        .expect("finish");
                    done.lock().expect("lock").push(c.job.id);
                }
            }
        });
    }
    let joined = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(r) = tasks.join_next().await {
            r.expect("replica");
        }
    })
    .await;
    assert!(joined.is_ok(), "replicas stalled");
    let done = done.lock().expect("lock").clone();
    let unique: BTreeSet<_> = done.iter().collect();
    assert_eq!(done.len(), 30);
    assert_eq!(unique.len(), 30);
    h.cleanup().await;
}

/// The claim's fallback, forced: another replica's uncommitted transaction makes
/// jane's *later* job running while this claim picks her earliest runnable one. The
/// claim waits on `jobs_one_running_per_employee`, loses when the other commits, and
/// runs again without jane instead of failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_claim_survives_losing_a_race_on_one_employee() {
    use sqlx::Connection;
    let Some(h) = Harness::postgres(true).await else {
        return;
    };
    let mut not_yet = new_event("evt-1", "jane@example.com");
    not_yet.run_at = h.clock.now() + chrono::Duration::hours(1);
    let jane_later = ingest(&h.store, not_yet).await;
    let jane_now = ingest(&h.store, new_event("evt-2", "jane@example.com")).await;
    let john = ingest(&h.store, new_event("evt-3", "john@example.com")).await;

    let mut other = sqlx::PgConnection::connect(&h.url).await.expect("connect");
    let mut tx = other.begin().await.expect("begin");
    sqlx::query(
        "UPDATE jobs SET state = 'running', attempt = attempt + 1, lease_owner = 'other' WHERE id = $1",
    )
    .bind(&jane_later)
    .execute(&mut *tx)
    .await
    .expect("other replica's update");

    let store = h.store.clone();
    let claim = tokio::spawn(async move { store.claim("w", 10, LEASE).await });
    // Give the claim time to reach the row lock; the assertion checks it did.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !claim.is_finished(),
        "the claim waits for the other transaction"
    );
    tx.commit().await.expect("commit");
    let claimed = claim.await.expect("task").expect("the claim does not fail");
    let ids: Vec<_> = claimed.iter().map(|c| c.job.id.clone()).collect();
    assert_eq!(ids, [john], "jane is left out; john's job is still claimed");
    assert_eq!(state_of(&h.store, &jane_now).await, JobState::Queued);
    assert_eq!(state_of(&h.store, &jane_later).await, JobState::Running);
    drop(other);
    h.cleanup().await;
}

// ---------------------------------------------------------------------------------
// SCIM users (DESIGN.md §10)
// ---------------------------------------------------------------------------------

fn scim_values(user_name: &str, external_id: Option<&str>, active: bool) -> ScimUserValues {
    ScimUserValues {
        user_name: user_name.to_owned(),
        external_id: external_id.map(str::to_owned),
        active,
        resource: json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": user_name,
            "active": active,
        }),
    }
}

fn scim_write(id: &str, expected: Option<u64>, values: Option<ScimUserValues>) -> ScimWrite {
    ScimWrite {
        id: id.to_owned(),
        expected_version: expected,
        values,
        event: None,
    }
}

/// Writes that must be stored; returns the stored user (`None` after a delete).
async fn scim_written(store: &SharedStore, write: ScimWrite) -> Option<ScimUser> {
    match store.scim_write(write).await.expect("scim write") {
        ScimWriteOutcome::Written { user, .. } => user,
        other => panic!("expected the write to be stored, got {other:?}"),
    }
}

async fn scim_users_round_trip_with_versions(store: SharedStore, clock: ManualClock) {
    let created = scim_written(
        &store,
        scim_write(
            "u1",
            None,
            Some(scim_values("jane@example.com", Some("00u1"), true)),
        ),
    )
    .await
    .expect("created user");
    assert_eq!(created.version, 1);
    assert_eq!(created.created_at, t0());
    assert_eq!(
        store.scim_user("u1").await.expect("get"),
        Some(created.clone())
    );

    clock.advance(chrono::Duration::seconds(60));
    let changed = scim_written(
        &store,
        scim_write(
            "u1",
            Some(1),
            Some(scim_values("jane@example.com", Some("00u1"), false)),
        ),
    )
    .await
    .expect("changed user");
    assert_eq!(changed.version, 2);
    assert_eq!(changed.created_at, t0(), "a change keeps the creation time");
    assert_eq!(changed.updated_at, t0() + chrono::Duration::seconds(60));
    let stored = store
        .scim_user("u1")
        .await
        .expect("get")
        .expect("an inactive user is kept");
    assert_eq!(stored, changed);
    assert!(!stored.active);

    // A writer that read version 1 loses: nothing changes.
    let stale = store
        .scim_write(scim_write(
            "u1",
            Some(1),
            Some(scim_values("renamed@example.com", None, true)),
        ))
        .await
        .expect("stale write");
    assert_eq!(stale, ScimWriteOutcome::VersionMismatch);
    assert_eq!(store.scim_user("u1").await.expect("get"), Some(changed));
    // A create of an id that exists is refused too.
    let again = store
        .scim_write(scim_write(
            "u1",
            None,
            Some(scim_values("other@example.com", None, true)),
        ))
        .await
        .expect("second create");
    assert_eq!(again, ScimWriteOutcome::VersionMismatch);

    for write in [
        scim_write(
            "nobody",
            Some(1),
            Some(scim_values("x@example.com", None, true)),
        ),
        scim_write("nobody", Some(1), None),
    ] {
        assert_eq!(
            store.scim_write(write).await.expect("write"),
            ScimWriteOutcome::NotFound
        );
    }

    assert_eq!(
        scim_written(&store, scim_write("u1", Some(2), None)).await,
        None
    );
    assert_eq!(store.scim_user("u1").await.expect("get"), None);
    let all = store
        .scim_users(&ScimUserQuery {
            limit: 10,
            ..ScimUserQuery::default()
        })
        .await
        .expect("list");
    assert_eq!(all.total, 0);
}

async fn scim_user_names_are_unique_without_case(store: SharedStore, _clock: ManualClock) {
    scim_written(
        &store,
        scim_write(
            "a",
            None,
            Some(scim_values("Jane.Doe@Example.com", None, true)),
        ),
    )
    .await;
    scim_written(
        &store,
        scim_write("b", None, Some(scim_values("john@example.com", None, true))),
    )
    .await;
    let taken = store
        .scim_write(scim_write(
            "c",
            None,
            Some(scim_values("jane.doe@example.COM", None, true)),
        ))
        .await
        .expect("create");
    assert_eq!(taken, ScimWriteOutcome::UserNameTaken);
    assert_eq!(
        store.scim_user("c").await.expect("get"),
        None,
        "nothing stored"
    );
    let renamed = store
        .scim_write(scim_write(
            "b",
            Some(1),
            Some(scim_values("JANE.DOE@example.com", None, true)),
        ))
        .await
        .expect("rename");
    assert_eq!(renamed, ScimWriteOutcome::UserNameTaken);
    assert_eq!(
        store
            .scim_user("b")
            .await
            .expect("get")
            .map(|u| u.user_name),
        Some("john@example.com".to_owned())
    );
    // A user may change the case of its own name.
    let own = scim_written(
        &store,
        scim_write(
            "a",
            Some(1),
            Some(scim_values("jane.doe@example.com", None, true)),
        ),
    )
    .await
    .expect("renamed");
    assert_eq!(own.user_name, "jane.doe@example.com");
    // A deleted user's name is free again.
    scim_written(&store, scim_write("a", Some(2), None)).await;
    scim_written(
        &store,
        scim_write(
            "d",
            None,
            Some(scim_values("Jane.Doe@example.com", None, true)),
        ),
    )
    .await;
}

async fn scim_users_list_filters_and_pages(store: SharedStore, _clock: ManualClock) {
    // Ids sort like the UUIDv7s offboard gives users: by creation.
    for i in 0..5 {
        let name = format!("user{i}@example.com");
        let external = format!("ext-{i}");
        scim_written(
            &store,
            scim_write(
                &format!("id{i}"),
                None,
                Some(scim_values(&name, Some(&external), i % 2 == 0)),
            ),
        )
        .await;
    }
    let list = |query: ScimUserQuery| {
        let store = store.clone();
        async move { store.scim_users(&query).await.expect("list") }
    };
    let page = list(ScimUserQuery {
        offset: 1,
        limit: 2,
        ..ScimUserQuery::default()
    })
    .await;
    assert_eq!(page.total, 5);
    let ids: Vec<&str> = page.users.iter().map(|u| u.id.as_str()).collect();
    assert_eq!(ids, ["id1", "id2"], "oldest first, from the offset");
    assert!(!page.users[0].active, "inactive users are listed too");
    let past_end = list(ScimUserQuery {
        offset: 10,
        limit: 2,
        ..ScimUserQuery::default()
    })
    .await;
    assert_eq!((past_end.total, past_end.users.len()), (5, 0));
    let count_only = list(ScimUserQuery {
        limit: 0,
        ..ScimUserQuery::default()
    })
    .await;
    assert_eq!((count_only.total, count_only.users.len()), (5, 0));

    let by_name = list(ScimUserQuery {
        user_name: Some("USER3@example.com".into()),
        limit: 10,
        ..ScimUserQuery::default()
    })
    .await;
    assert_eq!(by_name.total, 1);
    assert_eq!(by_name.users[0].id, "id3", "userName compares without case");
    let by_external = list(ScimUserQuery {
        external_id: Some("ext-4".into()),
        limit: 10,
        ..ScimUserQuery::default()
    })
    .await;
    assert_eq!(
        by_external
            .users
            .iter()
            .map(|u| u.id.as_str())
            .collect::<Vec<_>>(),
        ["id4"]
    );
    let external_case = list(ScimUserQuery {
        external_id: Some("EXT-4".into()),
        limit: 10,
        ..ScimUserQuery::default()
    })
    .await;
    assert_eq!(external_case.total, 0, "externalId is caseExact");
    let both_disagree = list(ScimUserQuery {
        user_name: Some("user4@example.com".into()),
        external_id: Some("ext-3".into()),
        limit: 10,
        ..ScimUserQuery::default()
    })
    .await;
    assert_eq!(both_disagree.total, 0, "conditions are ANDed");
}

async fn scim_change_and_its_event_are_one_transaction(store: SharedStore, _clock: ManualClock) {
    scim_written(
        &store,
        scim_write(
            "u",
            None,
            Some(scim_values("leaver@example.com", None, true)),
        ),
    )
    .await;
    let mut write = scim_write(
        "u",
        Some(1),
        Some(scim_values("leaver@example.com", None, false)),
    );
    write.event = Some(NewEvent {
        source: "scim".into(),
        ..new_event("scim:u:2", "leaver@example.com")
    });
    let answer = store.scim_write(write.clone()).await.expect("write");
    let ScimWriteOutcome::Written {
        user: Some(user),
        event: Some(IngestOutcome::Accepted { job_id, .. }),
    } = answer
    else {
        panic!("expected the change stored with a new job, got {answer:?}");
    };
    assert_eq!(user.version, 2);
    let job = store
        .get_job(&job_id)
        .await
        .expect("get job")
        .expect("the job is stored");
    assert_eq!(
        (job.job.source.as_str(), job.job.event_id.as_str()),
        ("scim", "scim:u:2")
    );

    // An event the store refuses (its id is taken by another body) takes the user
    // change down with it: neither is stored.
    store
        .ingest(vec![NewEvent {
            source: "scim".into(),
            ..new_event("scim:u:3", "leaver@example.com")
        }])
        .await
        .expect("ingest");
    let mut refused = scim_write(
        "u",
        Some(2),
        Some(scim_values("leaver@example.com", None, true)),
    );
    refused.event = Some(NewEvent {
        source: "scim".into(),
        body_sha256: "another body".into(),
        ..new_event("scim:u:3", "leaver@example.com")
    });
    assert!(
        store.scim_write(refused).await.is_err(),
        "a conflicting event fails the write"
    );
    let after = store.scim_user("u").await.expect("get").expect("user");
    assert_eq!(
        (after.version, after.active),
        (2, false),
        "the user change was rolled back"
    );
    let jobs = store
        .list_jobs(&JobFilter {
            employee: Some("leaver@example.com".into()),
            ..JobFilter::default()
        })
        .await
        .expect("list jobs");
    assert_eq!(jobs.len(), 2, "no job beyond the two ingested: {jobs:?}");
}

// ---------------------------------------------------------------------------------
// The notification outbox (DESIGN.md §13)
// ---------------------------------------------------------------------------------

fn notice(id: &str, event: &str, only_if: Option<JobState>) -> NewNotification {
    NewNotification {
        id: id.to_owned(),
        event: event.to_owned(),
        channel: Channel::Webhook,
        target: "ops".to_owned(),
        message: json!({ "type": event }),
        only_if,
    }
}

/// The audit kinds of a job's trail that start with `notify.`.
async fn notify_audit(store: &SharedStore, job_id: &str) -> Vec<String> {
    let detail = store.get_job(job_id).await.expect("get").expect("job");
    detail
        .audit
        .iter()
        .filter(|a| a.kind.starts_with("notify."))
        .map(|a| format!("{} {}", a.kind, a.detail["id"].as_str().unwrap_or("?")))
        .collect()
}

async fn notifications_are_written_with_their_cause(store: SharedStore, clock: ManualClock) {
    let job_id = ingest(&store, new_event("evt-n", "jane@example.com")).await;
    let old = claim_expired(&store, &clock, "worker-a").await;
    store
        .set_plan_with(
            &old.lease,
            "deactivate",
            &json!({}),
            &[notice("ntf_plan", "job.decided", None)],
        )
        .await
        .expect("plan with its notice");
    let seat = [notice("ntf_seat", "seat.requested", None)];
    store
        .put_checkpoint_with(&old.lease, "seat_requested_at", &json!("t"), &seat)
        .await
        .expect("checkpoint with its notice");
    // The same cause written again (a step repeated) adds nothing, not even audit.
    store
        .put_checkpoint_with(&old.lease, "seat_requested_at", &json!("t"), &seat)
        .await
        .expect("checkpoint again");
    let detail = store.get_job(&job_id).await.expect("get").expect("job");
    let ids: Vec<&str> = detail.notifications.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids, ["ntf_plan", "ntf_seat"]);
    assert!(
        detail
            .notifications
            .iter()
            .all(|n| n.state == NotificationState::Pending
                && n.attempts == 0
                && n.job_id == job_id
                && n.next_at == t0() + chrono::Duration::milliseconds(1))
    );
    assert_eq!(
        detail.notifications[1].message,
        json!({ "type": "seat.requested" })
    );
    assert_eq!(
        notify_audit(&store, &job_id).await,
        ["notify.queued ntf_plan", "notify.queued ntf_seat"]
    );

    // A worker that lost its lease writes neither the step nor its notices.
    store.requeue_expired().await.expect("requeue");
    let new = claim_one(&store, "worker-b", LEASE).await;
    assert_lease_lost(
        store
            .put_checkpoint_with(
                &old.lease,
                "k",
                &json!(1),
                &[notice("ntf_stale", "x", None)],
            )
            .await,
        "stale checkpoint with notice",
    );
    assert_lease_lost(
        store
            .finish_with(
                &old.lease,
                Outcome::Succeeded,
                &[notice("ntf_stale2", "x", None)],
            )
            .await,
        "stale finish with notice",
    );

    // The finish writes the notices its resulting state keeps.
    let review_only = notice(
        "ntf_review",
        "job.needs_review",
        Some(JobState::NeedsReview),
    );
    let failed_only = notice("ntf_failed", "job.failed", Some(JobState::Failed));
    store
        .finish_with(
            &new.lease,
            Outcome::NeedsReview {
                reason: "look".into(),
            },
            &[review_only, failed_only, notice("ntf_always", "x", None)],
        )
        .await
        .expect("finish with notices");
    let detail = store.get_job(&job_id).await.expect("get").expect("job");
    let ids: BTreeSet<&str> = detail.notifications.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(
        ids,
        BTreeSet::from(["ntf_plan", "ntf_seat", "ntf_review", "ntf_always"]),
        "no stale or unkept notice"
    );
    assert_eq!(state_of(&store, &job_id).await, JobState::NeedsReview);

    // A last retry becomes `failed`, and its failure notice is kept then.
    let job_b = ingest(&store, {
        let mut ev = new_event("evt-n2", "max@example.com");
        ev.max_attempts = 1;
        ev
    })
    .await;
    let c = claim_one(&store, "w", LEASE).await;
    let failed_only = notice("ntf_b_failed", "job.failed", Some(JobState::Failed));
    store
        .finish_with(
            &c.lease,
            Outcome::Retry {
                run_at: clock.now(),
                error: "503".into(),
            },
            &[failed_only],
        )
        .await
        .expect("last retry");
    assert_eq!(state_of(&store, &job_b).await, JobState::Failed);
    let detail = store.get_job(&job_b).await.expect("get").expect("job");
    assert_eq!(detail.notifications.len(), 1);
    assert_eq!(detail.notifications[0].event, "job.failed");
}

async fn notification_delivery_is_leased_retried_and_given_up(
    store: SharedStore,
    clock: ManualClock,
) {
    let retry = DeliveryRetry {
        base: Duration::from_secs(30),
        max: Duration::from_secs(3600),
        give_up_after: Duration::from_secs(3600),
    };
    let job_id = ingest(&store, new_event("evt-d", "jane@example.com")).await;
    let c = claim_one(&store, "w", LEASE).await;
    store
        .put_checkpoint_with(
            &c.lease,
            "reassigned",
            &json!({}),
            &[
                notice("ntf_a", "records.reassigned", None),
                notice("ntf_b", "seat.requested", None),
            ],
        )
        .await
        .expect("notices");
    assert_eq!(
        store
            .notifications_pending()
            .await
            .expect("pending")
            .get(&Channel::Webhook),
        Some(&2)
    );

    // Claimed once: a second claimer gets neither while the lease holds.
    let mut claimed = store
        .claim_notifications("sender-1", 10, Duration::from_secs(60))
        .await
        .expect("claim");
    claimed.sort_by(|a, b| a.notification.id.cmp(&b.notification.id));
    assert_eq!(claimed.len(), 2);
    assert!(
        claimed
            .iter()
            .all(|c| c.notification.state == NotificationState::Sending
                && c.lease.attempt == 1
                && c.notification.attempts == 1)
    );
    assert!(
        store
            .claim_notifications("sender-2", 10, Duration::from_secs(60))
            .await
            .expect("claim")
            .is_empty()
    );

    // a: delivered. A result under a stale lease is refused.
    let a = &claimed[0].lease;
    let mut stale = a.clone();
    stale.owner = "sender-2".into();
    assert!(!store.notification_delivered(&stale).await.expect("stale"));
    assert!(store.notification_delivered(a).await.expect("delivered"));
    assert!(
        !store.notification_delivered(a).await.expect("twice"),
        "a result is recorded once"
    );

    // b: fails, waits its backoff (30 s, up to a quarter more), then is due again.
    let b = &claimed[1].lease;
    assert_eq!(
        store
            .notification_failed(b, "503 from ops", &retry)
            .await
            .expect("failed"),
        Some(NotificationState::Pending)
    );
    assert!(
        store
            .claim_notifications("sender-1", 10, LEASE)
            .await
            .expect("claim")
            .is_empty(),
        "not before its backoff"
    );
    clock.advance(chrono::Duration::seconds(38));
    let again = store
        .claim_notifications("sender-2", 10, Duration::from_secs(60))
        .await
        .expect("claim");
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].lease.attempt, 2);
    assert_eq!(
        again[0].notification.last_error.as_deref(),
        Some("503 from ops")
    );

    // A claim whose lease lapsed (a crashed sender) is claimed again, and the old
    // claim's result no longer counts.
    clock.advance(chrono::Duration::seconds(61));
    let third = store
        .claim_notifications("sender-3", 10, Duration::from_secs(60))
        .await
        .expect("claim");
    assert_eq!(third.len(), 1);
    assert_eq!(third[0].lease.attempt, 3);
    assert_eq!(
        store
            .notification_failed(&again[0].lease, "late", &retry)
            .await
            .expect("late"),
        None
    );

    // Past the give-up time, a failure is final: dead, visible, never claimed again.
    clock.advance(chrono::Duration::hours(2));
    assert_eq!(
        store
            .notification_failed(&third[0].lease, "still down", &retry)
            .await
            .expect("failed"),
        Some(NotificationState::Dead)
    );
    clock.advance(chrono::Duration::hours(48));
    assert!(
        store
            .claim_notifications("sender-1", 10, LEASE)
            .await
            .expect("claim")
            .is_empty()
    );
    let detail = store.get_job(&job_id).await.expect("get").expect("job");
    let by_id = |id: &str| {
        detail
            .notifications
            .iter()
            .find(|n| n.id == id)
            .expect("stored")
    };
    assert_eq!(by_id("ntf_a").state, NotificationState::Delivered);
    assert!(by_id("ntf_a").delivered_at.is_some());
    assert_eq!(by_id("ntf_b").state, NotificationState::Dead);
    assert_eq!(by_id("ntf_b").attempts, 3);
    assert_eq!(by_id("ntf_b").last_error.as_deref(), Some("still down"));
    assert_eq!(
        notify_audit(&store, &job_id).await,
        [
            "notify.queued ntf_a",
            "notify.queued ntf_b",
            "notify.delivered ntf_a",
            "notify.retry ntf_b",
            "notify.dead ntf_b",
        ]
    );
    assert_eq!(
        store
            .notifications_pending()
            .await
            .expect("pending")
            .get(&Channel::Webhook),
        Some(&0)
    );
}

// ---------------------------------------------------------------------------------
// Retention ([store] keep_finished_days; store/retention.rs)
// ---------------------------------------------------------------------------------

/// One test on both stores, with the harness (these read rows behind the store's back).
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod retention_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(&super::Harness::sqlite(true).await).await;
                }
            )*
        }
        mod retention_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(h) = super::Harness::postgres(true).await else { return };
                    super::$name(&h).await;
                    h.cleanup().await;
                }
            )*
        }
    };
}

on_both_stores![
    retention_prunes_old_finished_jobs_with_their_trail,
    retention_keeps_a_parent_until_its_follow_up_is_finished_and_dedupe_survives,
    retention_zero_days_prunes_nothing,
];

/// How many rows `sql` (one `$1` parameter, a `COUNT(*)`) counts, behind the store's back.
async fn raw_count(h: &Harness, sql: &str, arg: &str) -> i64 {
    use sqlx::Connection;
    let text = sqlx::AssertSqlSafe(sql.to_owned());
    let n = if h.pg.is_some() {
        let mut raw = sqlx::PgConnection::connect(&h.url).await.expect("connect");
        sqlx::query_scalar(text).bind(arg).fetch_one(&mut raw).await
    } else {
        let mut raw = sqlx::SqliteConnection::connect(&h.url)
            .await
            .expect("connect");
        sqlx::query_scalar(text).bind(arg).fetch_one(&mut raw).await
    };
    n.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Rows left of a job in every table that holds its trail.
async fn rows_of_job(h: &Harness, job_id: &str) -> i64 {
    let mut n = 0;
    for table in [
        "jobs",
        "audit",
        "checkpoints",
        "notifications",
        "seat_actions",
    ] {
        let column = if table == "jobs" { "id" } else { "job_id" };
        n += raw_count(
            h,
            &format!("SELECT COUNT(*) FROM {table} WHERE {column} = $1"),
            job_id,
        )
        .await;
    }
    n
}

/// Whether the event's row is a tombstone: kept, its payload dropped.
async fn is_tombstone(h: &Harness, event_id: &str) -> bool {
    let cast = if h.pg.is_some() {
        "payload::text"
    } else {
        "payload"
    };
    let sql = format!("SELECT COUNT(*) FROM events WHERE event_id = $1 AND {cast} = 'null'");
    raw_count(h, &sql, event_id).await == 1
}

fn days(n: i64) -> chrono::Duration {
    chrono::Duration::days(n)
}

async fn redelivery(store: &SharedStore, id: &str, email: &str) -> IngestOutcome {
    let mut out = store
        .ingest(vec![new_event(id, email)])
        .await
        .expect("ingest");
    assert_eq!(out.len(), 1);
    out.remove(0)
}

/// Old succeeded, failed and cancelled jobs go with their audit, checkpoints,
/// delivered notifications and seat reservation; young finished jobs, active jobs
/// and a finished job whose notification is still due stay; a redelivery of a
/// pruned job's event is still a duplicate of that job, another body a conflict.
async fn retention_prunes_old_finished_jobs_with_their_trail(h: &Harness) {
    let (store, clock) = (&h.store, &h.clock);
    // Succeeded, with every kind of row a job can have.
    let done = ingest(store, new_event("evt-done", "a@example.com")).await;
    let c = claim_one(store, "w", LEASE).await;
    store
        .put_checkpoint(&c.lease, "crm_user_id", &json!(42))
        .await
        .expect("checkpoint");
    store
        .audit(
            &done,
            &[("decision".into(), json!({"action": "deactivate"}))],
        )
        .await
        .expect("audit");
    let reserved = store
        .reserve_seat_action(&c.lease, "deactivate", clock.now(), None, None)
        .await
        .expect("reserve");
    assert_eq!(reserved, Reservation::Granted);
    store
        .finish_with(
            &c.lease,
            Outcome::Succeeded,
            &[notice("ntf-done", "job.succeeded", None)],
        )
        .await
        .expect("finish");
    let sent = store
        .claim_notifications("sender", 10, LEASE)
        .await
        .expect("claim notification");
    assert_eq!(sent.len(), 1);
    assert!(
        store
            .notification_delivered(&sent[0].lease)
            .await
            .expect("delivered")
    );
    // Failed.
    let failed = ingest(store, new_event("evt-failed", "b@example.com")).await;
    let c = claim_one(store, "w", LEASE).await;
    store
        .finish(
            &c.lease,
            Outcome::Failed {
                error: "permanent".into(),
            },
        )
        .await
        .expect("finish");
    // Cancelled by an operator before it ran.
    let cancelled = ingest(store, new_event("evt-cancelled", "c@example.com")).await;
    store
        .cancel(&cancelled, "mistake", Via::Api)
        .await
        .expect("cancel");
    // Needs review, and finished with a notification not delivered yet.
    let review = ingest(store, new_event("evt-review", "d@example.com")).await;
    let c = claim_one(store, "w", LEASE).await;
    store
        .finish(
            &c.lease,
            Outcome::NeedsReview {
                reason: "guard".into(),
            },
        )
        .await
        .expect("finish");
    let undelivered = ingest(store, new_event("evt-undelivered", "e@example.com")).await;
    let c = claim_one(store, "w", LEASE).await;
    store
        .finish_with(
            &c.lease,
            Outcome::Succeeded,
            &[notice("ntf-late", "job.succeeded", None)],
        )
        .await
        .expect("finish");
    // Running (its lease long lapsed by the end: requeueing is not retention's job).
    let running = ingest(store, new_event("evt-running", "f@example.com")).await;
    claim_one(store, "w", LEASE).await;
    // Queued, not due for years (so no claim below takes it).
    let mut later = new_event("evt-queued", "g@example.com");
    later.run_at = clock.now() + days(1000);
    let queued = ingest(store, later).await;

    // A job finished 31 days before the prune: young.
    clock.advance(days(60));
    let young = ingest(store, new_event("evt-young", "h@example.com")).await;
    let c = store.claim("w", 10, LEASE).await.expect("claim");
    let c = c
        .iter()
        .find(|c| c.job.id == young)
        .expect("the young job is due");
    store
        .finish(&c.lease, Outcome::Succeeded)
        .await
        .expect("finish");
    let before = store.count_by_state().await.expect("counts");
    clock.advance(days(31));

    // One transaction per batch: a batch of 2 takes two of the three.
    let keep = Duration::from_secs(90 * 86_400);
    assert_eq!(store.prune_finished(keep, 2).await.expect("prune"), 2);
    let rest = offboard_core::store::retention::prune(store.as_ref(), 90)
        .await
        .expect("prune");
    assert_eq!(rest, 1, "the third old finished job");
    assert_eq!(
        offboard_core::store::retention::prune(store.as_ref(), 90)
            .await
            .expect("again"),
        0,
        "nothing left to prune"
    );

    for id in [&done, &failed, &cancelled] {
        assert!(
            store.get_job(id).await.expect("get").is_none(),
            "{id} pruned"
        );
        assert_eq!(rows_of_job(h, id).await, 0, "{id}: its trail went with it");
    }
    for id in [&review, &undelivered, &running, &queued, &young] {
        assert!(store.get_job(id).await.expect("get").is_some(), "{id} kept");
    }
    assert!(
        rows_of_job(h, &undelivered).await > 1,
        "kept with its trail"
    );
    let after = store.count_by_state().await.expect("counts");
    assert_eq!(
        after[&JobState::Succeeded],
        before[&JobState::Succeeded] - 1
    );
    assert_eq!(after[&JobState::Failed], 0);
    assert_eq!(after[&JobState::Cancelled], 0);
    assert_eq!(after[&JobState::NeedsReview], 1);
    assert_eq!(after[&JobState::Running], 1);
    assert_eq!(after[&JobState::Queued], 1);
    store.compact_job_counts().await.expect("compact");
    assert_eq!(
        store.count_by_state().await.expect("counts"),
        after,
        "folding the counts changes none"
    );
    let listed = store.list_jobs(&JobFilter::default()).await.expect("list");
    assert_eq!(
        listed.len(),
        5,
        "the kept jobs still list, with their events"
    );

    // Dedupe survives: the tombstone answers for the pruned job.
    assert!(is_tombstone(h, "evt-done").await);
    assert_eq!(
        redelivery(store, "evt-done", "a@example.com").await,
        IngestOutcome::Duplicate {
            event_id: "evt-done".into(),
            job_id: done.clone()
        }
    );
    assert_eq!(
        redelivery(store, "evt-failed", "b@example.com").await,
        IngestOutcome::Duplicate {
            event_id: "evt-failed".into(),
            job_id: failed.clone()
        }
    );
    let mut other_body = new_event("evt-cancelled", "c@example.com");
    other_body.body_sha256 = "another body".into();
    assert_eq!(
        store.ingest(vec![other_body]).await.expect("ingest"),
        vec![IngestOutcome::Conflict {
            event_id: "evt-cancelled".into()
        }]
    );
    assert!(
        store.get_job(&done).await.expect("get").is_none(),
        "a duplicate makes no new job"
    );
}

/// A finished parent is kept while its follow-up (`delete_after_retention`) is
/// still there — open, or finished but young — so a follow-up never outlives the
/// job it points at; then the follow-up goes and the parent after it, in one
/// round, and the event's redelivery is a duplicate of the parent throughout.
async fn retention_keeps_a_parent_until_its_follow_up_is_finished_and_dedupe_survives(h: &Harness) {
    let (store, clock) = (&h.store, &h.clock);
    let parent = ingest(store, new_event("evt-1", "jane@example.com")).await;
    let c = claim_one(store, "w", LEASE).await;
    let follow = store
        .enqueue_follow_up(
            &c.lease,
            JobKind::DeleteAfterRetention,
            clock.now() + days(200),
        )
        .await
        .expect("follow-up");
    store
        .finish(&c.lease, Outcome::Succeeded)
        .await
        .expect("finish");

    clock.advance(days(100));
    assert_eq!(
        offboard_core::store::retention::prune(store.as_ref(), 90)
            .await
            .expect("prune"),
        0,
        "the follow-up is still scheduled"
    );
    assert!(store.get_job(&parent).await.expect("get").is_some());

    clock.advance(days(100));
    let c = claim_one(store, "w", LEASE).await;
    assert_eq!(c.job.id, follow);
    store
        .finish(&c.lease, Outcome::Succeeded)
        .await
        .expect("finish");
    clock.advance(days(1));
    assert_eq!(
        offboard_core::store::retention::prune(store.as_ref(), 90)
            .await
            .expect("prune"),
        0,
        "the parent finished 201 days ago, but its follow-up is still there (and young)"
    );
    let kept = store
        .get_job(&follow)
        .await
        .expect("get")
        .expect("follow-up kept");
    assert_eq!(
        kept.job.event.id, "evt-1",
        "the shared event is still there"
    );
    assert!(!is_tombstone(h, "evt-1").await);
    let duplicate = IngestOutcome::Duplicate {
        event_id: "evt-1".into(),
        job_id: parent.clone(),
    };
    assert_eq!(
        redelivery(store, "evt-1", "jane@example.com").await,
        duplicate
    );

    clock.advance(days(91));
    assert_eq!(
        offboard_core::store::retention::prune(store.as_ref(), 90)
            .await
            .expect("prune"),
        2,
        "the follow-up, then its parent, in one round"
    );
    assert!(store.get_job(&follow).await.expect("get").is_none());
    assert!(store.get_job(&parent).await.expect("get").is_none());
    assert!(is_tombstone(h, "evt-1").await);
    assert_eq!(
        redelivery(store, "evt-1", "jane@example.com").await,
        duplicate
    );
    assert!(
        store.claim("w", 10, LEASE).await.expect("claim").is_empty(),
        "no new job for a redelivery"
    );
}

/// `keep_finished_days = 0` keeps everything, however old.
async fn retention_zero_days_prunes_nothing(h: &Harness) {
    let (store, clock) = (&h.store, &h.clock);
    let id = ingest(store, new_event("evt-1", "jane@example.com")).await;
    let c = claim_one(store, "w", LEASE).await;
    store
        .finish(&c.lease, Outcome::Succeeded)
        .await
        .expect("finish");
    clock.advance(days(3650));
    assert_eq!(
        offboard_core::store::retention::prune(store.as_ref(), 0)
            .await
            .expect("prune"),
        0
    );
    assert!(store.get_job(&id).await.expect("get").is_some());
    assert_eq!(rows_of_job(h, &id).await, 1, "the job row is still there");
    // The same job goes once retention is on: the 0 above is the setting, not luck.
    assert_eq!(
        offboard_core::store::retention::prune(store.as_ref(), 1)
            .await
            .expect("prune"),
        1
    );
}
