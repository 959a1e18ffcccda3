//! CLIP through a Roboflow inference server, wire-compatible with the old app:
//!
//! - `POST {url}/clip/embed_image?api_key=KEY` with `{"image": {"type": "base64", "value": JPEG}}`
//!   (or a list of such objects for a batch) → `{"embeddings": [[...], ...]}`
//! - `POST {url}/clip/embed_text?api_key=KEY` with `{"text": "..."}` (or a list) → the same.
//!
//! Requests time out, transient failures (no connection, timeouts, HTTP 5xx) are retried with
//! exponential backoff, and every answer is checked (count, dimension, finite numbers). The API
//! key goes only into the request; it is never logged or put into an error message.

use std::time::Duration;

use base64::Engine as _;
use opencv::core::Mat;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{l2_normalize, EmbedError, Embedder, ModelIdentity, PreparedImage};

#[derive(Clone, Debug)]
pub struct RoboflowSettings {
    /// Base URL of the inference server, e.g. `http://localhost:9001`.
    pub url: String,
    pub api_key: String,
    /// Limit for one request, connection to last byte.
    pub timeout: Duration,
    /// Tries per call, the first included.
    pub attempts: u32,
    /// Wait before the second try; doubled for each further one.
    pub backoff: Duration,
    /// Length of the vectors the server's CLIP model returns (ViT-B/16: 512).
    pub dimension: usize,
    pub jpeg_quality: u8,
}

impl Default for RoboflowSettings {
    fn default() -> Self {
        Self {
            url: "http://localhost:9001".into(),
            api_key: String::new(),
            timeout: Duration::from_secs(30),
            attempts: 3,
            backoff: Duration::from_millis(250),
            dimension: 512,
            jpeg_quality: 90,
        }
    }
}

pub struct RoboflowEmbedder {
    settings: RoboflowSettings,
    client: reqwest::blocking::Client,
}

#[derive(Deserialize)]
struct EmbeddingsAnswer {
    embeddings: Vec<Vec<f32>>,
}

/// What one try came to: done, or an error that is worth another try or not.
enum Attempt {
    Done(Vec<Vec<f32>>),
    Retry(EmbedError),
    Fail(EmbedError),
}

impl RoboflowEmbedder {
    pub fn new(settings: RoboflowSettings) -> Result<Self, EmbedError> {
        let client = reqwest::blocking::Client::builder()
            .timeout(settings.timeout)
            .build()
            .map_err(|e| EmbedError::Unreachable {
                url: settings.url.clone(),
                reason: e.without_url().to_string(),
            })?;
        Ok(Self { settings, client })
    }

    fn endpoint(&self, name: &str) -> String {
        format!("{}/clip/{name}", self.settings.url.trim_end_matches('/'))
    }

    /// Posts `body`, retrying transient failures, and checks that `expected` vectors came back.
    fn post(&self, name: &str, body: &Value, expected: usize) -> Result<Vec<Vec<f32>>, EmbedError> {
        let url = self.endpoint(name);
        let attempts = self.settings.attempts.max(1);
        let mut last_error = None;
        for attempt in 0..attempts {
            if attempt > 0 {
                std::thread::sleep(self.settings.backoff * 2u32.saturating_pow(attempt - 1));
            }
            match self.try_once(&url, body, expected) {
                Attempt::Done(vectors) => return Ok(vectors),
                Attempt::Fail(error) => return Err(error),
                Attempt::Retry(error) => {
                    tracing::warn!(attempt = attempt + 1, of = attempts, "{error}");
                    last_error = Some(error);
                }
            }
        }
        Err(match last_error {
            Some(EmbedError::Timeout { url, seconds, .. }) => EmbedError::Timeout {
                url,
                seconds,
                attempts,
            },
            Some(error) => error,
            None => EmbedError::Unreachable {
                url,
                reason: "no attempt was made".into(),
            },
        })
    }

    fn try_once(&self, url: &str, body: &Value, expected: usize) -> Attempt {
        let timeout = |url: &str| EmbedError::Timeout {
            url: url.to_string(),
            seconds: self.settings.timeout.as_secs(),
            attempts: 1,
        };
        let response = self
            .client
            .post(url)
            .query(&[("api_key", &self.settings.api_key)])
            .json(body)
            .send();
        let response = match response {
            Ok(response) => response,
            Err(error) if error.is_timeout() => return Attempt::Retry(timeout(url)),
            Err(error) => {
                let reason = describe(&error);
                return Attempt::Retry(EmbedError::Unreachable {
                    url: url.to_string(),
                    reason,
                });
            }
        };
        let status = response.status();
        let text = match response.text() {
            Ok(text) => text,
            Err(error) if error.is_timeout() => return Attempt::Retry(timeout(url)),
            Err(error) => {
                return Attempt::Retry(EmbedError::Unreachable {
                    url: url.to_string(),
                    reason: describe(&error),
                })
            }
        };
        if !status.is_success() {
            let error = EmbedError::Status {
                url: url.to_string(),
                status: status.as_u16(),
                body: text
                    .chars()
                    .take(300)
                    .collect::<String>()
                    .replace(&self.settings.api_key, "***"),
            };
            // A server error may pass; a client error (bad key, bad request) will not.
            return if status.is_server_error() {
                Attempt::Retry(error)
            } else {
                Attempt::Fail(error)
            };
        }
        match self.check(&text, expected) {
            Ok(vectors) => Attempt::Done(vectors),
            Err(reason) => Attempt::Fail(EmbedError::Malformed {
                url: url.to_string(),
                reason,
            }),
        }
    }

    fn check(&self, text: &str, expected: usize) -> Result<Vec<Vec<f32>>, String> {
        let answer: EmbeddingsAnswer = serde_json::from_str(text)
            .map_err(|e| format!("expected {{\"embeddings\": [[numbers]]}}: {e}"))?;
        if answer.embeddings.len() != expected {
            return Err(format!(
                "{} embeddings for {expected} inputs",
                answer.embeddings.len()
            ));
        }
        let dimension = self.settings.dimension;
        answer
            .embeddings
            .into_iter()
            .map(|mut v| {
                if v.len() != dimension {
                    return Err(format!(
                        "an embedding of length {} where the model's dimension is {dimension}",
                        v.len()
                    ));
                }
                if v.iter().any(|x| !x.is_finite()) {
                    return Err("an embedding with a non-finite number".into());
                }
                l2_normalize(&mut v);
                Ok(v)
            })
            .collect()
    }
}

/// An HTTP error's cause without its URL (the URL carries the API key).
fn describe(error: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut reason = if error.is_connect() {
        "connection failed".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = error.source();
    while let Some(cause) = source {
        reason = format!("{reason}: {cause}");
        source = cause.source();
    }
    reason
}

/// A single item as an object and a batch as a list: the old app sent objects, and the server
/// accepts both.
fn one_or_many(mut items: Vec<Value>) -> Value {
    if items.len() == 1 {
        items.remove(0)
    } else {
        Value::Array(items)
    }
}

impl Embedder for RoboflowEmbedder {
    fn identity(&self) -> ModelIdentity {
        ModelIdentity {
            name: "roboflow-clip".into(),
            revision: self.settings.url.clone(),
            dimension: self.settings.dimension,
        }
    }

    fn prepare_image(&self, frame: &Mat) -> Result<PreparedImage, EmbedError> {
        let jpeg = crate::video::encode_jpeg(frame, 0, self.settings.jpeg_quality)
            .map_err(|e| EmbedError::Encode(e.to_string()))?;
        Ok(PreparedImage::Base64Jpeg(
            base64::engine::general_purpose::STANDARD.encode(jpeg),
        ))
    }

    fn embed_prepared(&self, images: &[PreparedImage]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let items = images
            .iter()
            .map(|image| match image {
                PreparedImage::Base64Jpeg(value) => Ok(json!({"type": "base64", "value": value})),
                PreparedImage::Cropped(_) | PreparedImage::Resized { .. } => {
                    Err(EmbedError::Encode(
                        "the inference server takes JPEG images, not pixel tensors".into(),
                    ))
                }
            })
            .collect::<Result<Vec<_>, EmbedError>>()?;
        self.post(
            "embed_image",
            &json!({ "image": one_or_many(items) }),
            images.len(),
        )
    }

    fn embed_texts(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let items = texts.iter().map(|t| Value::String(t.clone())).collect();
        self.post(
            "embed_text",
            &json!({ "text": one_or_many(items) }),
            texts.len(),
        )
    }
}
