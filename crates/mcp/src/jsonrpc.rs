//! JSON-RPC 2.0 messages, kept as the JSON object that arrived so fields the gateway does not know
//! pass through untouched; only `id`, `method`, `params` and `result` are ever looked at.

use serde_json::{Map, Value};

/// A JSON object: the representation of every message and of most params and results.
pub type Object = Map<String, Value>;

/// Parse error (-32700): the bytes are not JSON.
pub const PARSE_ERROR: i64 = -32700;
/// Invalid request (-32600): JSON, but not a JSON-RPC message this endpoint accepts.
pub const INVALID_REQUEST: i64 = -32600;
/// Method not found (-32601).
pub const METHOD_NOT_FOUND: i64 = -32601;
/// Invalid params (-32602); also the answer for an unknown or forbidden tool, prompt or resource.
pub const INVALID_PARAMS: i64 = -32602;
/// Internal error (-32603); the gateway uses it when an upstream server fails, naming it in `data`.
pub const INTERNAL_ERROR: i64 = -32603;
/// Request timed out (-32001), as the MCP SDKs define it.
pub const REQUEST_TIMEOUT: i64 = -32001;
/// Resource not found (-32002), as the MCP specification defines it.
pub const RESOURCE_NOT_FOUND: i64 = -32002;

/// What a message is, decided once when it is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Has `method` and `id`: expects an answer.
    Request,
    /// Has `method`, no `id`.
    Notification,
    /// Has `id` and `result` or `error`.
    Response,
}

/// One JSON-RPC message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    body: Object,
    kind: Kind,
}

/// Why bytes are not one acceptable JSON-RPC message; each names the problem for the error reply.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MessageError {
    /// Not JSON at all.
    #[error("not valid JSON: {0}")]
    NotJson(String),
    /// A JSON array: a batch, which protocol 2025-06-18 removed.
    #[error("JSON-RPC batches are not supported: send one message per request")]
    Batch,
    /// JSON, but not an object.
    #[error("a JSON-RPC message must be a JSON object")]
    NotObject,
    /// `jsonrpc` is missing or not "2.0".
    #[error("\"jsonrpc\" must be \"2.0\"")]
    Version,
    /// `id` is not a string or an integer.
    #[error("\"id\" must be a string or an integer")]
    BadId,
    /// `method` is not a string.
    #[error("\"method\" must be a string")]
    BadMethod,
    /// `params` is not an object or array.
    #[error("\"params\" must be an object")]
    BadParams,
    /// No `method`, and no `result` or `error` with an `id`.
    #[error(
        "a message needs \"method\" (request or notification) or \"id\" with \"result\" or \"error\" (response)"
    )]
    Shape,
}

impl MessageError {
    /// The JSON-RPC error code a client gets for this problem.
    pub fn code(&self) -> i64 {
        match self {
            MessageError::NotJson(_) => PARSE_ERROR,
            _ => INVALID_REQUEST,
        }
    }
}

impl Message {
    /// Parses one message from bytes; arrays (batches) and non-objects are refused.
    pub fn parse(bytes: &[u8]) -> Result<Self, MessageError> {
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(body)) => Self::from_object(body),
            Ok(Value::Array(_)) => Err(MessageError::Batch),
            Ok(_) => Err(MessageError::NotObject),
            Err(error) => Err(MessageError::NotJson(error.to_string())),
        }
    }

    /// Classifies an object as a request, notification or response, checking the fields that decide it.
    pub fn from_object(body: Object) -> Result<Self, MessageError> {
        if body.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
            return Err(MessageError::Version);
        }
        let id = body.get("id");
        let id_ok = |id: &Value| id.is_string() || id.is_i64() || id.is_u64();
        let kind = match body.get("method") {
            Some(Value::String(_)) => {
                match body.get("params") {
                    None | Some(Value::Object(_)) | Some(Value::Array(_)) => {}
                    Some(_) => return Err(MessageError::BadParams),
                }
                match id {
                    None => Kind::Notification,
                    Some(id) if id_ok(id) => Kind::Request,
                    Some(_) => return Err(MessageError::BadId),
                }
            }
            Some(_) => return Err(MessageError::BadMethod),
            None => {
                let answered = body.contains_key("result") || body.contains_key("error");
                match id {
                    Some(id) if answered && (id_ok(id) || id.is_null()) => Kind::Response,
                    Some(_) if answered => return Err(MessageError::BadId),
                    _ => return Err(MessageError::Shape),
                }
            }
        };
        Ok(Message { body, kind })
    }

    /// A request from the gateway.
    pub fn request(id: Value, method: &str, params: Option<Value>) -> Self {
        let mut body = Object::new();
        body.insert("jsonrpc".into(), "2.0".into());
        body.insert("id".into(), id);
        body.insert("method".into(), method.into());
        if let Some(params) = params {
            body.insert("params".into(), params);
        }
        Message {
            body,
            kind: Kind::Request,
        }
    }

    /// A notification from the gateway.
    pub fn notification(method: &str, params: Option<Value>) -> Self {
        let mut body = Object::new();
        body.insert("jsonrpc".into(), "2.0".into());
        body.insert("method".into(), method.into());
        if let Some(params) = params {
            body.insert("params".into(), params);
        }
        Message {
            body,
            kind: Kind::Notification,
        }
    }

    /// A successful response.
    pub fn result(id: Value, result: Value) -> Self {
        let mut body = Object::new();
        body.insert("jsonrpc".into(), "2.0".into());
        body.insert("id".into(), id);
        body.insert("result".into(), result);
        Message {
            body,
            kind: Kind::Response,
        }
    }

    /// An error response.
    pub fn error(id: Value, error: &RpcError) -> Self {
        let mut body = Object::new();
        body.insert("jsonrpc".into(), "2.0".into());
        body.insert("id".into(), id);
        body.insert("error".into(), error.to_value());
        Message {
            body,
            kind: Kind::Response,
        }
    }

    /// Request, notification or response.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The method of a request or notification.
    pub fn method(&self) -> Option<&str> {
        self.body.get("method").and_then(Value::as_str)
    }

    /// The id of a request or response.
    pub fn id(&self) -> Option<&Value> {
        self.body.get("id")
    }

    /// Replaces the id (requests and responses crossing the gateway get the other side's id).
    pub fn set_id(&mut self, id: Value) {
        self.body.insert("id".into(), id);
    }

    /// The params, when they are an object.
    pub fn params(&self) -> Option<&Object> {
        self.body.get("params").and_then(Value::as_object)
    }

    /// The params object, for rewriting a name or a progress token in place.
    pub fn params_mut(&mut self) -> Option<&mut Object> {
        self.body.get_mut("params").and_then(Value::as_object_mut)
    }

    /// Takes the params out, leaving none.
    pub fn take_params(&mut self) -> Option<Value> {
        self.body.remove("params")
    }

    /// The result of a successful response.
    pub fn result_value(&self) -> Option<&Value> {
        self.body.get("result")
    }

    /// The error of a failed response.
    pub fn error_value(&self) -> Option<&Value> {
        self.body.get("error")
    }

    /// Takes the result out of a successful response.
    pub fn into_result(self) -> Result<Value, Value> {
        let mut body = self.body;
        match body.remove("result") {
            Some(result) => Ok(result),
            None => Err(body.remove("error").unwrap_or(Value::Null)),
        }
    }

    /// The whole message as a JSON object.
    pub fn as_object(&self) -> &Object {
        &self.body
    }

    /// Serializes the message to compact JSON.
    pub fn to_json(&self) -> String {
        // Serializing a map of JSON values cannot fail.
        serde_json::to_string(&self.body).unwrap_or_default()
    }
}

/// A JSON-RPC error object.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    /// The error code.
    pub code: i64,
    /// A message a person can act on.
    pub message: String,
    /// Machine-readable details.
    pub data: Option<Value>,
}

impl RpcError {
    /// An error without data.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        RpcError {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// The error as its JSON object.
    pub fn to_value(&self) -> Value {
        let mut error = Object::new();
        error.insert("code".into(), self.code.into());
        error.insert("message".into(), self.message.clone().into());
        if let Some(data) = &self.data {
            error.insert("data".into(), data.clone());
        }
        Value::Object(error)
    }
}
