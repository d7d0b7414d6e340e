//! The metrics listener: `GET /metrics`, `/healthz` and `/readyz` over HTTP/1.1 (hyper), on
//! a TCP address or a unix socket. Each answer is computed from memory: nothing here talks to
//! etcd or waits on the daemon's tasks, so a scrape stays cheap and answers while they are
//! busy.

use std::convert::Infallible;
use std::io;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::task::JoinHandle;
use tracing::{debug, info};

use crate::config::Listen;

/// OpenMetrics text, what `prometheus-client` writes.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Binds `listen` (replacing a stale unix socket) and serves it until the task is aborted.
/// An address that cannot be bound is an error naming it.
pub async fn serve(listen: &Listen) -> io::Result<JoinHandle<()>> {
    let with_addr =
        |e: io::Error| io::Error::new(e.kind(), format!("metrics.listen {listen}: {e}"));
    super::enable();
    let task = match listen {
        Listen::Tcp(addr) => {
            let l = TcpListener::bind(addr).await.map_err(with_addr)?;
            tokio::spawn(async move {
                loop {
                    if let Ok((stream, _)) = l.accept().await {
                        connection(stream);
                    }
                }
            })
        }
        Listen::Unix(path) => {
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(with_addr(e)),
            }
            let l = UnixListener::bind(path).map_err(with_addr)?;
            tokio::spawn(async move {
                loop {
                    if let Ok((stream, _)) = l.accept().await {
                        connection(stream);
                    }
                }
            })
        }
    };
    info!("serving /metrics, /healthz and /readyz on {listen}");
    Ok(task)
}

/// Serves one connection in its own task.
fn connection<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(stream: S) {
    tokio::spawn(async move {
        let service = hyper::service::service_fn(handle);
        if let Err(e) = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service)
            .await
        {
            debug!("metrics connection: {e}");
        }
    });
}

fn text(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// Answers one request.
async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    const PLAIN: &str = "text/plain; charset=utf-8";
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Ok(text(
            StatusCode::METHOD_NOT_ALLOWED,
            PLAIN,
            "only GET\n".into(),
        ));
    }
    let verdict = |r: Result<String, String>| match r {
        Ok(body) => text(StatusCode::OK, PLAIN, body),
        Err(body) => text(StatusCode::SERVICE_UNAVAILABLE, PLAIN, body),
    };
    Ok(match req.uri().path() {
        "/metrics" => text(StatusCode::OK, OPENMETRICS, super::encode()),
        "/healthz" => verdict(super::live::healthy()),
        "/readyz" => verdict(super::live::ready()),
        _ => text(
            StatusCode::NOT_FOUND,
            PLAIN,
            "not found: try /metrics, /healthz or /readyz\n".into(),
        ),
    })
}
