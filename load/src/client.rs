//! The HTTP side: one keep-alive HTTP/1.1 connection per VU (hyper's
//! connection API, no pool in between), requests built from pre-made header
//! values, and the exchange timed by the caller.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;

/// Where and how requests go.
#[derive(Debug, Clone)]
pub struct Target {
    /// The resolved address.
    pub addr: SocketAddr,
    host: HeaderValue,
    path: Uri,
    authorization: Option<HeaderValue>,
    gzip: bool,
    /// Bytes of request line and headers, counted in `data_sent`.
    pub head_bytes: u64,
}

impl Target {
    /// Resolves `url` (`http://host:port`, the API's base URL; `/events` is
    /// appended unless the URL already has a path).
    pub async fn resolve(url: &str, api_key: Option<&str>, gzip: bool) -> Result<Self, String> {
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => {
                return Err(format!(
                    "{url:?}: scheme {other:?} is not supported (plain http only; load behind your TLS terminator)"
                ));
            }
            None => return Err(format!("{url:?} lacks http://")),
        }
        let authority = uri
            .authority()
            .ok_or_else(|| format!("{url:?} lacks a host"))?
            .clone();
        let port = authority.port_u16().unwrap_or(80);
        let addr = tokio::net::lookup_host((authority.host(), port))
            .await
            .map_err(|e| format!("cannot resolve {}: {e}", authority.host()))?
            .next()
            .ok_or_else(|| format!("{} resolves to no address", authority.host()))?;
        let path = match uri.path() {
            "" | "/" => "/events",
            path => path,
        };
        let path: Uri = path
            .parse()
            .map_err(|e| format!("{url:?} has a bad path: {e}"))?;
        let host = HeaderValue::from_str(authority.as_str())
            .map_err(|_| format!("{url:?} has a bad host"))?;
        let authorization = api_key
            .map(|key| {
                let mut value = HeaderValue::from_str(&format!("Bearer {key}"))
                    .map_err(|_| "the API key has characters a header cannot carry".to_owned())?;
                value.set_sensitive(true);
                Ok::<_, String>(value)
            })
            .transpose()?;
        let head_bytes = (format!("POST {path} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: 00000\r\n\r\n", authority.as_str()).len()
            + authorization.as_ref().map_or(0, |a| a.len() + 17)
            + if gzip { 26 } else { 0 }) as u64;
        Ok(Self {
            addr,
            host,
            path,
            authorization,
            gzip,
            head_bytes,
        })
    }

    fn request(&self, body: Bytes) -> Result<Request<Full<Bytes>>, hyper::http::Error> {
        let mut builder = Request::post(self.path.clone())
            .header(HOST, self.host.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(authorization) = &self.authorization {
            builder = builder.header(AUTHORIZATION, authorization.clone());
        }
        if self.gzip {
            builder = builder.header(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        builder.body(Full::new(body))
    }
}

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// Connecting failed.
    #[error("connect: {0}")]
    Connect(std::io::Error),
    /// The exchange failed midway.
    #[error("{0}")]
    Http(#[from] hyper::Error),
    /// The request could not be built.
    #[error("request: {0}")]
    Request(#[from] hyper::http::Error),
    /// No answer within the request timeout.
    #[error("timed out")]
    Timeout,
}

/// An answer.
#[derive(Debug, Clone, Copy)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// Bytes of status line, headers and body.
    pub bytes: u64,
}

/// One keep-alive connection.
pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
}

impl Connection {
    /// Connects to `target`.
    pub async fn open(target: &Target) -> Result<Self, ExchangeError> {
        let stream = tokio::net::TcpStream::connect(target.addr)
            .await
            .map_err(ExchangeError::Connect)?;
        stream.set_nodelay(true).map_err(ExchangeError::Connect)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(Self { sender })
    }

    /// Sends `body` and reads the whole answer, within `timeout`.
    pub async fn exchange(
        &mut self,
        target: &Target,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Answer, ExchangeError> {
        let request = target.request(body)?;
        let exchange = async {
            self.sender.ready().await?;
            let response = self.sender.send_request(request).await?;
            let status = response.status().as_u16();
            let head: usize = response
                .headers()
                .iter()
                .map(|(name, value)| name.as_str().len() + value.len() + 4)
                .sum::<usize>()
                + 19;
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, ExchangeError>(Answer {
                status,
                bytes: (head + body.len()) as u64,
            })
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| ExchangeError::Timeout)?
    }
}
