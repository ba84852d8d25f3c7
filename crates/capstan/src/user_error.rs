//! Errors as a person should read them: what is wrong, then what to do.

use std::fmt::Write;

/// The message for an error and its causes, one paragraph, no debug output.
pub fn render(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            let _ = write!(text, ": {cause}");
        }
    }
    text
}
