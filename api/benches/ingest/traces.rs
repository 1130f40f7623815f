//! Phase 4: what tracing costs, off, sampled at 1 % and at 100 %, each
//! mode an API process of its own exporting to a receiver here that
//! counts the spans.

use super::*;

/// Counts the spans OTLP/HTTP requests carry.
async fn count_spans(
    axum::extract::State(spans): axum::extract::State<Arc<AtomicU64>>,
    body: bytes::Bytes,
) -> axum::http::StatusCode {
    use prost::Message;
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return axum::http::StatusCode::BAD_REQUEST;
    };
    let n: usize = request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum();
    spans.fetch_add(n as u64, Ordering::Relaxed);
    axum::http::StatusCode::OK
}

/// Each tracing mode in an API process of its own, `rounds` times in turn;
/// prints the rates and the spans exported.
pub(crate) async fn tracing_cost(bootstrap: &str, secs: u64, rounds: usize) {
    let spans = Arc::new(AtomicU64::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/v1/traces", axum::routing::post(count_spans))
        .with_state(spans.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let modes: [(&str, Option<&str>); 3] = [
        ("off (no endpoint)", None),
        ("1 % sampled", Some("0.01")),
        ("100 % sampled", Some("1")),
    ];
    // Per mode: (batch events/s, singles/s, spans) of each round.
    let mut results: Vec<Vec<(f64, f64, u64)>> = vec![Vec::new(); modes.len()];
    for round in 0..rounds {
        for (i, (name, ratio)) in modes.iter().enumerate() {
            let before = spans.load(Ordering::Relaxed);
            let env: Vec<(&str, &str)> = match ratio {
                Some(ratio) => vec![
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
                    ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
                    ("OTEL_TRACES_SAMPLER_ARG", ratio),
                ],
                None => Vec::new(),
            };
            let api = ApiProcess::start(bootstrap, &env);
            let batch = drive(&api.url, 100, 32, secs).await.events;
            let single = drive(&api.url, 1, 256, secs).await.requests;
            api.stop();
            let exported = spans.load(Ordering::Relaxed) - before;
            eprintln!(
                "  round {}: {name:<18} {batch:>9.0} events/s in batches, {single:>7.0} singles/s, {exported} spans",
                round + 1
            );
            results[i].push((batch, single, exported));
        }
    }
    let mean = |xs: &[(f64, f64, u64)], f: fn(&(f64, f64, u64)) -> f64| {
        xs.iter().map(f).sum::<f64>() / xs.len() as f64
    };
    let (off_batch, off_single) = (mean(&results[0], |r| r.0), mean(&results[0], |r| r.1));
    println!(
        "  tracing cost (mean of {rounds} round(s), each mode an API process of its own, taking turns):"
    );
    println!(
        "  {:<20}{:>16}{:>10}{:>14}{:>10}{:>16}",
        "", "batches (ev/s)", "vs off", "singles (/s)", "vs off", "spans exported"
    );
    for ((name, _), runs) in modes.iter().zip(&results) {
        let batch = mean(runs, |r| r.0);
        let single = mean(runs, |r| r.1);
        let exported: u64 = runs.iter().map(|r| r.2).sum();
        println!(
            "  {name:<20}{batch:>16.0}{:>9.1}%{single:>14.0}{:>9.1}%{exported:>16}",
            100.0 * (batch / off_batch - 1.0),
            100.0 * (single / off_single - 1.0),
        );
    }
    println!();
}
