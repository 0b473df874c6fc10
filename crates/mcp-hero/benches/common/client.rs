//! The benchmarks' MCP client: hyper's HTTP/1.1 connection API, one kept-alive TCP connection
//! per client, one request at a time, speaking Streamable HTTP to the gateway or the fixture.

use std::net::SocketAddr;

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

/// The protocol version the benchmarks' clients speak.
pub const PROTOCOL_VERSION: &str = "2025-11-25";
/// What `echo` is called with, and must answer.
pub const ECHO_TEXT: &str = "the quick brown fox jumps over the lazy dog";

/// Where an MCP endpoint is, and the bearer token it wants, if any.
#[derive(Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub path: String,
    pub token: Option<String>,
}

/// One kept-alive TCP connection (no pool: exactly one per task).
pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
    host: HeaderValue,
}

impl Connection {
    pub async fn open(addr: SocketAddr) -> Self {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("HTTP/1.1 handshake");
        tokio::spawn(connection);
        Connection {
            sender,
            host: HeaderValue::from_str(&addr.to_string()).expect("host header"),
        }
    }

    /// One request; the status, the headers that matter and the whole body.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        token: Option<&str>,
        session: Option<&HeaderValue>,
        body: Bytes,
    ) -> Result<(StatusCode, hyper::HeaderMap, Bytes), String> {
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, self.host.clone())
            .header(ACCEPT, "application/json, text/event-stream")
            .header(CONTENT_TYPE, "application/json");
        if let Some(token) = token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some(session) = session {
            request = request
                .header("mcp-session-id", session.clone())
                .header("mcp-protocol-version", PROTOCOL_VERSION);
        }
        let request = request.body(Full::new(body)).map_err(|e| e.to_string())?;
        self.sender.ready().await.map_err(|e| e.to_string())?;
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(|e| format!("request error: {e}"))?;
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| format!("body error: {e}"))?
            .to_bytes();
        Ok((parts.status, parts.headers, body))
    }
}

/// An initialized MCP session over its own connection.
pub struct McpClient {
    pub connection: Connection,
    pub endpoint: Endpoint,
    pub session: Option<HeaderValue>,
    pub next_id: u64,
}

impl McpClient {
    pub async fn connect(endpoint: &Endpoint) -> Self {
        McpClient {
            connection: Connection::open(endpoint.addr).await,
            endpoint: endpoint.clone(),
            session: None,
            next_id: 1,
        }
    }

    pub async fn post(
        &mut self,
        message: &Value,
    ) -> Result<(StatusCode, hyper::HeaderMap, Bytes), String> {
        self.connection
            .send(
                Method::POST,
                &self.endpoint.path,
                self.endpoint.token.as_deref(),
                self.session.as_ref(),
                Bytes::from(message.to_string()),
            )
            .await
    }

    /// `initialize` then `notifications/initialized`.
    pub async fn initialize(&mut self) -> Result<(), String> {
        let request = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": PROTOCOL_VERSION, "capabilities": {},
            "clientInfo": {"name": "mcp-hero-bench", "version": "1"}}});
        let (status, headers, body) = self.post(&request).await?;
        if status != StatusCode::OK {
            return Err(format!(
                "initialize: {status}: {}",
                String::from_utf8_lossy(&body)
            ));
        }
        self.session = Some(
            headers
                .get("mcp-session-id")
                .cloned()
                .ok_or("initialize: no Mcp-Session-Id")?,
        );
        let notification = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let (status, _, _) = self.post(&notification).await?;
        if status != StatusCode::ACCEPTED {
            return Err(format!("notifications/initialized: {status}"));
        }
        Ok(())
    }

    /// A request; its `result`, read from JSON or from the SSE stream.
    pub async fn request(&mut self, method: &str, params: Value) -> Result<Value, String> {
        let id = self.next_id;
        self.next_id += 1;
        let message = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let (status, headers, body) = self.post(&message).await?;
        if status != StatusCode::OK {
            return Err(format!(
                "{method}: {status}: {}",
                String::from_utf8_lossy(&body)
            ));
        }
        let is_sse = headers
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("text/event-stream"));
        let mut answer: Value = if is_sse {
            String::from_utf8_lossy(&body)
                .lines()
                .filter_map(|line| line.strip_prefix("data: "))
                .filter_map(|data| serde_json::from_str::<Value>(data).ok())
                .find(|message| message.get("id") == Some(&json!(id)))
                .ok_or_else(|| format!("{method}: no answer on the SSE stream"))?
        } else {
            serde_json::from_slice(&body).map_err(|e| format!("{method}: {e}"))?
        };
        match answer.get_mut("result") {
            Some(result) => Ok(result.take()),
            None => Err(format!("{method}: {answer}")),
        }
    }

    pub async fn echo(&mut self, tool: &str) -> Result<(), String> {
        let result = self
            .request(
                "tools/call",
                json!({"name": tool, "arguments": {"text": ECHO_TEXT}}),
            )
            .await?;
        if result["content"][0]["text"] == ECHO_TEXT && result["isError"] != true {
            Ok(())
        } else {
            Err(format!("tools/call {tool}: unexpected result {result}"))
        }
    }

    /// Ends the session (DELETE); the gateway waits for its servers to exit.
    pub async fn end(&mut self) {
        let _ = self
            .connection
            .send(
                Method::DELETE,
                &self.endpoint.path,
                self.endpoint.token.as_deref(),
                self.session.as_ref(),
                Bytes::new(),
            )
            .await;
    }
}
