//! Graceful shutdown: readiness turns off, in-flight requests finish and are
//! acknowledged, the server then exits cleanly.

use std::time::Duration;

use crate::support::{TestApi, event};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_requests_finish_before_exit() {
    let mut api = TestApi::start().await;
    // Slow the broker so the request is still waiting when shutdown begins.
    api.kafka
        .slow_broker(1, Duration::from_millis(700))
        .unwrap();
    let http = api.http.clone();
    let url = api.url("/events");
    let in_flight = tokio::spawn(async move {
        http.post(url)
            .header("content-type", "application/json")
            .body(event("late", "click").to_string())
            .send()
            .await
            .unwrap()
            .status()
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let server = api.begin_stop();
    assert_eq!(
        in_flight.await.unwrap(),
        202,
        "the in-flight request completes"
    );
    server.await.unwrap().unwrap();
    api.kafka.slow_broker(1, Duration::ZERO).unwrap();
    assert_eq!(api.topic_message_count(), 1);
}
