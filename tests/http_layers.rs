//! The shared HTTP layers (`offboard_core::http::with_layers`) around routes that
//! misbehave: a panicking handler answers 500 with the JSON error shape and the
//! server keeps serving (also on the same connection); a handler slower than the
//! timeout answers 408 JSON; unknown routes 404 JSON; every answer carries a
//! request id, the caller's when it sent one.

use std::time::Duration;

use axum::{Router, routing::get};
use serde_json::Value;

async fn serve(timeout: Duration) -> String {
    let router = Router::new()
        .route(
            "/boom",
            get(|| async {
                if true {
                    panic!("handler bug");
                }
                "unreachable"
            }),
        )
        .route("/ok", get(|| async { "fine" }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        );
    let app = offboard_core::http::with_layers(router, timeout);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

async fn error_of(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("application/json"), "{status}: {ct}");
    (status, resp.json().await.unwrap())
}

#[tokio::test]
async fn a_panicking_handler_gets_a_500_json_and_the_server_lives_on() {
    let base = serve(Duration::from_secs(10)).await;
    // One client: keep-alive, so the panic must not take the connection down either.
    let http = reqwest::Client::new();
    for round in 0..3 {
        let resp = http.get(format!("{base}/boom")).send().await.unwrap();
        assert!(resp.headers().contains_key("x-request-id"));
        let (status, body) = error_of(resp).await;
        assert_eq!(status, 500, "round {round}");
        assert_eq!(body["error"]["code"], "internal");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            !message.contains("handler bug"),
            "the panic message leaked: {message}"
        );

        let ok = http.get(format!("{base}/ok")).send().await.unwrap();
        assert_eq!(ok.status(), 200, "round {round}");
        assert_eq!(ok.text().await.unwrap(), "fine");
    }
    // Fresh connections work too.
    let ok = reqwest::get(format!("{base}/ok")).await.unwrap();
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn slow_handlers_time_out_with_json_and_unknown_routes_are_json_404s() {
    let base = serve(Duration::from_millis(200)).await;
    let http = reqwest::Client::new();
    let started = std::time::Instant::now();
    let (status, body) = error_of(http.get(format!("{base}/slow")).send().await.unwrap()).await;
    assert_eq!(status, 408);
    assert_eq!(body["error"]["code"], "timeout");
    assert!(started.elapsed() < Duration::from_secs(4));

    let (status, body) = error_of(http.get(format!("{base}/nope")).send().await.unwrap()).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");

    // The caller's request id is kept and echoed; otherwise one is made up.
    let mine = http
        .get(format!("{base}/ok"))
        .header("x-request-id", "caller-chosen-42")
        .send()
        .await
        .unwrap();
    assert_eq!(mine.headers()["x-request-id"], "caller-chosen-42");
    let a = http.get(format!("{base}/ok")).send().await.unwrap();
    let b = http.get(format!("{base}/ok")).send().await.unwrap();
    assert_ne!(a.headers()["x-request-id"], b.headers()["x-request-id"]);
}
