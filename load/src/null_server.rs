//! A do-nothing HTTP server: reads each request whole and answers 202 with
//! a tiny body. `--calibrate` points the generator at it to measure the
//! generator's own ceiling, and the pacer's tests count what it receives.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// What the server has seen.
#[derive(Debug, Default)]
pub struct Seen {
    /// Requests answered.
    pub requests: AtomicU64,
    /// When the first and the latest request arrived.
    pub span: Mutex<Option<(Instant, Instant)>>,
}

/// A running null server.
#[derive(Debug)]
pub struct NullServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// What it has seen.
    pub seen: Arc<Seen>,
}

impl NullServer {
    /// Starts on a free loopback port.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let seen = Arc::new(Seen::default());
        let counted = seen.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                let seen = counted.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let seen = seen.clone();
                        async move {
                            let _ = request.into_body().collect().await;
                            let now = Instant::now();
                            seen.requests.fetch_add(1, Ordering::Relaxed);
                            if let Ok(mut span) = seen.span.lock() {
                                let first = span.map_or(now, |(first, _)| first);
                                *span = Some((first, now));
                            }
                            let mut response =
                                Response::new(Full::new(Bytes::from_static(b"{\"accepted\":0}")));
                            *response.status_mut() = StatusCode::ACCEPTED;
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self { addr, seen })
    }

    /// The URL to point the generator at.
    pub fn url(&self) -> String {
        format!("http://{}/events", self.addr)
    }
}
