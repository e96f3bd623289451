//! How the simulator's error answers look: the body's shape (`--error-style`, one of the shapes
//! the SDKs' error readers accept) and the status of a refused change to a busy release
//! (`--busy-status`).

use serde_json::{Value, json};

/// The shape of an error answer's body.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ErrorStyle {
    /// `{"error_code": …, "error_msg": …}`, as the API gateway and CCE answer.
    #[default]
    Snake,
    /// `{"errorCode": …, "errorMsg": …}`, a pair only the core SDK reader knows.
    Camel,
    /// `{"error": {"code": …, "message": …}}`, as IAM answers.
    Nested,
}

impl ErrorStyle {
    /// The error body for `code` and `message` in this shape.
    pub fn body(self, code: &str, message: &str) -> Value {
        match self {
            ErrorStyle::Snake => json!({"error_code": code, "error_msg": message}),
            ErrorStyle::Camel => json!({"errorCode": code, "errorMsg": message}),
            ErrorStyle::Nested => json!({"error": {"code": code, "message": message}}),
        }
    }
}

/// The statuses the service is seen to refuse a change to a busy release with; which one it
/// uses is not documented.
pub const BUSY_STATUSES: [u16; 3] = [400, 403, 409];

/// The default busy status: not 409, so that flotilla is seen to rely on the message rather
/// than on the status.
pub const DEFAULT_BUSY_STATUS: u16 = 400;

/// `--busy-status`: one of [`BUSY_STATUSES`].
pub fn parse_busy_status(text: &str) -> Result<u16, String> {
    text.trim()
        .parse::<u16>()
        .ok()
        .filter(|status| BUSY_STATUSES.contains(status))
        .ok_or_else(|| format!("`{text}` is not one of 400, 403, 409"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cce::error::read_error_body;

    #[test]
    fn every_style_is_read_back_with_its_code_and_message() {
        for style in [ErrorStyle::Snake, ErrorStyle::Camel, ErrorStyle::Nested] {
            let body = style.body("CCE.01400001", "bad values").to_string();
            let read = read_error_body(body.as_bytes(), Some("application/json"));
            assert_eq!(read.code.as_deref(), Some("CCE.01400001"), "{style:?}");
            assert_eq!(read.message.as_deref(), Some("bad values"), "{style:?}");
        }
    }

    #[test]
    fn the_busy_status_is_one_of_the_three_seen() {
        assert_eq!(parse_busy_status("403"), Ok(403));
        assert!(parse_busy_status("500").is_err());
        assert!(parse_busy_status("busy").is_err());
    }
}
