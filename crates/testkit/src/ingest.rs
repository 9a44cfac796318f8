//! The receiver in-process: the real webhook and health routes, with their
//! layers, over a fresh SQLite store, for tests that send many hand-made
//! requests and check each answer and what was stored — no worker, no CRM.

use std::{sync::Arc, time::Duration};

use offboard_core::{
    domain::SystemClock,
    http::{self, HealthState},
    ingest::{Source, Sources, routes::IngestState},
    store::{self, SharedStore},
};
use tempfile::TempDir;

/// A receiver serving on a loopback port until the test's runtime ends.
pub struct Receiver {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The store it writes to, for checking what was accepted.
    pub store: SharedStore,
    /// Where the store's file lives; kept so a test can restart over it.
    pub dir: TempDir,
}

/// Serves `sources` with bodies up to `max_body` bytes over the SQLite file
/// `t.db` in `dir`, migrated first; three attempts per job, as the default.
pub async fn serve(sources: Vec<Source>, max_body: usize, dir: TempDir) -> Receiver {
    let store = store::open(&format!("sqlite://{}/t.db", dir.path().display()), "full")
        .await
        .expect("open the store");
    store.migrate().await.expect("migrate the store");
    let state = IngestState {
        store: store.clone(),
        store_deadline: Duration::from_secs(1),
        sources: Arc::new(Sources::from_sources(sources)),
        max_attempts: 3,
        wake: None,
        // No worker shares this store, so nothing else needs to agree on "now";
        // the senders sign with the wall clock.
        clock: SystemClock::shared(),
    };
    let router = http::with_layers(
        http::ingest_router(state, max_body).merge(http::health_router(HealthState {
            store: store.clone(),
            metrics: http::metrics_handle(),
            store_deadline: Duration::from_secs(1),
        })),
        Duration::from_secs(10),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("the bound address");
    tokio::spawn(async move { axum::serve(listener, router).await });
    Receiver {
        base: format!("http://{addr}"),
        store,
        dir,
    }
}
