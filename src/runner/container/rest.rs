//! [`Engine`] over the engine's Docker-compatible REST API (platform.md
//! 2.2): HTTP/1.1 over its Unix socket with hyper, one connection per
//! request (a handful per pass; nothing to keep alive across failures).

use super::engine::{Engine, EngineError, EngineResult};
use super::spec::{self, EngineKind, Inspect};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::net::UnixStream;

/// The API version both engines serve (Podman 4.0 and later).
const API: &str = "/v1.41";
/// Longest wait for an answer; a pull may take longer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const PULL_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, Clone)]
pub struct RestEngine {
    kind: EngineKind,
    socket: PathBuf,
    /// The fix named when the socket is missing.
    fix: String,
}

struct Answer {
    status: StatusCode,
    body: Bytes,
}

impl RestEngine {
    pub fn new(kind: EngineKind, socket: PathBuf, fix: String) -> RestEngine {
        RestEngine { kind, socket, fix }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    fn connect_error(&self, detail: impl ToString) -> EngineError {
        EngineError::Connect {
            engine: self.kind.as_str(),
            path: self.socket.clone(),
            detail: detail.to_string(),
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        timeout: Duration,
    ) -> EngineResult<Answer> {
        match tokio::time::timeout(timeout, self.call_inner(method, path, body)).await {
            Ok(answer) => answer,
            Err(_) => Err(self.connect_error(format!("no answer to {path} within {timeout:?}"))),
        }
    }

    async fn call_inner(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> EngineResult<Answer> {
        let stream = match UnixStream::connect(&self.socket).await {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(EngineError::NoSocket {
                    engine: self.kind.as_str(),
                    path: self.socket.clone(),
                    fix: self.fix.clone(),
                })
            }
            Err(e) => return Err(self.connect_error(e)),
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| self.connect_error(e))?;
        let conn = tokio::spawn(async move {
            // Errors surface on the request side.
            let _ = conn.await;
        });
        let bytes = match body {
            Some(v) => Bytes::from(v.to_string()),
            None => Bytes::new(),
        };
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header("Host", "localhost");
        if body.is_some() {
            builder = builder.header("Content-Type", "application/json");
        }
        let request = builder
            .body(Full::new(bytes))
            .map_err(|e| self.protocol(path, e))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| self.connect_error(e))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| self.connect_error(e))?
            .to_bytes();
        conn.abort();
        Ok(Answer { status, body })
    }

    fn protocol(&self, what: &str, detail: impl ToString) -> EngineError {
        EngineError::Protocol {
            engine: self.kind.as_str(),
            what: what.to_string(),
            detail: detail.to_string(),
        }
    }

    /// An error status as the engine explained it (`{"message": ...}`).
    fn api_error(&self, what: &str, answer: &Answer) -> EngineError {
        let message = serde_json::from_slice::<Value>(&answer.body)
            .ok()
            .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&answer.body).trim().to_string());
        EngineError::Api {
            engine: self.kind.as_str(),
            what: what.to_string(),
            status: answer.status.as_u16(),
            message,
        }
    }

    /// A request whose success is any 2xx (or one of `also_ok`).
    async fn expect_ok(
        &self,
        method: Method,
        path: String,
        what: &str,
        body: Option<&Value>,
        also_ok: &[u16],
    ) -> EngineResult<Answer> {
        let answer = self.call(method, &path, body, REQUEST_TIMEOUT).await?;
        if answer.status.is_success() || also_ok.contains(&answer.status.as_u16()) {
            Ok(answer)
        } else {
            Err(self.api_error(what, &answer))
        }
    }

    /// `GET /_ping`: the engine answers.
    pub async fn ping(&self) -> EngineResult<()> {
        self.expect_ok(Method::GET, "/_ping".into(), "ping", None, &[])
            .await
            .map(|_| ())
    }
}

impl Engine for RestEngine {
    async fn inspect(&self, name: &str) -> EngineResult<Option<Inspect>> {
        let what = format!("inspect container {name}");
        let answer = self
            .call(
                Method::GET,
                &format!("{API}/containers/{name}/json"),
                None,
                REQUEST_TIMEOUT,
            )
            .await?;
        match answer.status {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => serde_json::from_slice(&answer.body)
                .map(Some)
                .map_err(|e| self.protocol(&what, e)),
            _ => Err(self.api_error(&what, &answer)),
        }
    }

    async fn image_present(&self, image: &str) -> EngineResult<bool> {
        let answer = self
            .call(
                Method::GET,
                &format!("{API}/images/{image}/json"),
                None,
                REQUEST_TIMEOUT,
            )
            .await?;
        match answer.status {
            StatusCode::NOT_FOUND => Ok(false),
            s if s.is_success() => Ok(true),
            _ => Err(self.api_error(&format!("inspect image {image}"), &answer)),
        }
    }

    async fn pull(&self, image: &str) -> EngineResult<()> {
        let what = format!("pull image {image}");
        let (repo, tag) = spec::split_image(image);
        let path = if tag.is_empty() {
            format!("{API}/images/create?fromImage={repo}")
        } else {
            format!("{API}/images/create?fromImage={repo}&tag={tag}")
        };
        let answer = self.call(Method::POST, &path, None, PULL_TIMEOUT).await?;
        if !answer.status.is_success() {
            return Err(self.api_error(&what, &answer));
        }
        // A stream of JSON lines; one with `error` is a failure.
        for line in answer.body.split(|b| *b == b'\n') {
            if let Ok(v) = serde_json::from_slice::<Value>(line) {
                if let Some(error) = v.get("error").and_then(Value::as_str) {
                    return Err(EngineError::Api {
                        engine: self.kind.as_str(),
                        what,
                        status: answer.status.as_u16(),
                        message: error.to_string(),
                    });
                }
            }
        }
        Ok(())
    }

    async fn create(&self, name: &str, request: &Value) -> EngineResult<()> {
        self.expect_ok(
            Method::POST,
            format!("{API}/containers/create?name={name}"),
            &format!("create container {name}"),
            Some(request),
            &[],
        )
        .await
        .map(|_| ())
    }

    async fn start(&self, name: &str) -> EngineResult<()> {
        self.expect_ok(
            Method::POST,
            format!("{API}/containers/{name}/start"),
            &format!("start container {name}"),
            None,
            &[304],
        )
        .await
        .map(|_| ())
    }

    async fn restart(&self, name: &str, timeout_s: u32) -> EngineResult<()> {
        self.expect_ok(
            Method::POST,
            format!("{API}/containers/{name}/restart?t={timeout_s}"),
            &format!("restart container {name}"),
            None,
            &[],
        )
        .await
        .map(|_| ())
    }

    async fn remove(&self, name: &str) -> EngineResult<()> {
        let stop = format!("{API}/containers/{name}/stop?t={}", spec::STOP_TIMEOUT_S);
        // Stopped first so the router ends with SIGTERM, then removed.
        let stop_timeout = REQUEST_TIMEOUT + Duration::from_secs(u64::from(spec::STOP_TIMEOUT_S));
        let answer = self.call(Method::POST, &stop, None, stop_timeout).await?;
        if !(answer.status.is_success() || matches!(answer.status.as_u16(), 304 | 404)) {
            return Err(self.api_error(&format!("stop container {name}"), &answer));
        }
        self.expect_ok(
            Method::DELETE,
            format!("{API}/containers/{name}?force=true"),
            &format!("remove container {name}"),
            None,
            &[404],
        )
        .await
        .map(|_| ())
    }

    async fn logs(&self, name: &str, tail: u32) -> EngineResult<Vec<String>> {
        let answer = self
            .expect_ok(
                Method::GET,
                format!("{API}/containers/{name}/logs?stdout=true&stderr=true&tail={tail}"),
                &format!("logs of container {name}"),
                None,
                &[],
            )
            .await?;
        Ok(spec::demux_logs(&answer.body))
    }
}
