//! The one error type of the server functions, shared by browser and server: the variant says
//! whose fault it is and so the HTTP status; the message says what to do next, and never names
//! a folder of the server (the server's own errors make it so before they get here).

use investigator_core::requests::RequestError;
use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ApiError {
    /// The request is wrong (refused or undecodable arguments): 400.
    #[error("{0}")]
    BadArgument(String),
    /// A well-formed video id the library does not list: 404.
    #[error("{0}")]
    NoSuchVideo(String),
    /// Not possible now: no CLIP model loaded, or the video cannot be opened: 503.
    #[error("{0}")]
    Unavailable(String),
    /// Our failure: 500.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status of an answer carrying this error.
    pub fn status(&self) -> u16 {
        match self {
            Self::BadArgument(_) => 400,
            Self::NoSuchVideo(_) => 404,
            Self::Unavailable(_) => 503,
            Self::Internal(_) => 500,
        }
    }

    /// The message for the page.
    pub fn message(&self) -> &str {
        match self {
            Self::BadArgument(m)
            | Self::NoSuchVideo(m)
            | Self::Unavailable(m)
            | Self::Internal(m) => m,
        }
    }
}

/// A refused argument is the client's fault: 400.
impl From<RequestError> for ApiError {
    fn from(error: RequestError) -> Self {
        Self::BadArgument(error.to_string())
    }
}

impl FromServerFnError for ApiError {
    type Encoder = JsonEncoding;

    /// server_fn's own failures: arguments it could not decode are the client's (on the server,
    /// decoding only ever reads the request); a request that did not arrive is "unavailable"
    /// (the browser's side of a server that is down).
    fn from_server_fn_error(error: ServerFnErrorErr) -> Self {
        let error = match error {
            ServerFnErrorErr::Args(m)
            | ServerFnErrorErr::MissingArg(m)
            | ServerFnErrorErr::Deserialization(m) => Self::BadArgument(m),
            ServerFnErrorErr::Request(m) => {
                Self::Unavailable(format!("could not reach the server: {m}"))
            }
            other => Self::Internal(other.to_string()),
        };
        #[cfg(feature = "ssr")]
        error.set_response_status();
        error
    }
}

#[cfg(feature = "ssr")]
impl ApiError {
    /// Sets the status of the server function's HTTP answer from the variant (server_fn itself
    /// answers 500 to every error). Only for calls over HTTP: a server function called while
    /// rendering a page leaves the page's status alone.
    pub fn set_response_status(&self) {
        use leptos::prelude::use_context;
        let is_api_call = use_context::<axum::http::request::Parts>()
            .is_some_and(|parts| investigator_core::routes::is_api_path(parts.uri.path()));
        if let (true, Some(response)) = (is_api_call, use_context::<leptos_axum::ResponseOptions>())
        {
            response.set_status(
                axum::http::StatusCode::from_u16(self.status())
                    .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_arguments_are_the_clients_fault_and_server_failures_ours() {
        let from = ApiError::from_server_fn_error;
        assert_eq!(
            from(ServerFnErrorErr::Args("missing field `frame`".into())).status(),
            400
        );
        assert_eq!(
            from(ServerFnErrorErr::MissingArg("viewer".into())).status(),
            400
        );
        assert_eq!(
            from(ServerFnErrorErr::Deserialization(
                "EOF while parsing".into()
            ))
            .status(),
            400
        );
        assert_eq!(
            from(ServerFnErrorErr::Serialization("cannot write".into())).status(),
            500
        );
        assert_eq!(
            ApiError::NoSuchVideo("there is no video 0123456789abcdef".into()).status(),
            404
        );
        assert_eq!(
            ApiError::Internal("frame 3 cannot be decoded".into()).status(),
            500
        );
        assert_eq!(
            ApiError::BadArgument("prompt 1 is empty".into()).message(),
            "prompt 1 is empty"
        );
    }

    #[test]
    fn errors_survive_the_trip_to_the_browser() {
        for error in [
            ApiError::BadArgument("a".into()),
            ApiError::NoSuchVideo("b".into()),
            ApiError::Unavailable("c".into()),
            ApiError::Internal("d".into()),
        ] {
            assert_eq!(ApiError::de(error.ser()), error);
        }
        // An answer that is not ours (a proxy's page) still reads as an error, not a panic.
        assert!(matches!(
            ApiError::de("<html>".into()),
            ApiError::BadArgument(_)
        ));
    }
}
