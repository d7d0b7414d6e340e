//! Diagnostics that point at a place in a file: `path:line: message`.
//!
//! Config and resource loading collect these instead of stopping at the first problem, so
//! `reconfd check` can report every error at once (ripgrep's habit).

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem found in one file, with the line when it is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file at fault.
    pub file: PathBuf,
    /// 1-based line, when the parser or a span knows it.
    pub line: Option<usize>,
    /// What is wrong, in one line.
    pub message: String,
}

impl Diagnostic {
    /// A problem with a whole file (no line).
    pub fn file(file: &Path, message: impl Into<String>) -> Self {
        Self {
            file: file.to_owned(),
            line: None,
            message: message.into(),
        }
    }

    /// A problem at a byte offset of `text`, the file's content.
    pub fn at(file: &Path, text: &str, offset: usize, message: impl Into<String>) -> Self {
        Self {
            file: file.to_owned(),
            line: Some(line_of(text, offset)),
            message: message.into(),
        }
    }

    /// Turns a TOML parse or type error into a diagnostic with the line of its span.
    pub fn from_toml(file: &Path, text: &str, err: &toml::de::Error) -> Self {
        let message = err.message().trim().to_owned();
        match err.span() {
            Some(span) => Self::at(file, text, span.start, message),
            None => Self::file(file, message),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file.display(), line, self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

impl std::error::Error for Diagnostic {}

/// The 1-based line holding byte `offset` of `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Several diagnostics reported together; Display prints one per line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_error_carries_line() {
        let text = "a = 1\nb = \"x\"\nrelaod_cmd = 3\n";
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct T {
            a: i64,
            b: String,
        }
        let err = toml::from_str::<T>(text).unwrap_err();
        let d = Diagnostic::from_toml(Path::new("/x.toml"), text, &err);
        assert_eq!(d.line, Some(3), "{d}");
        assert!(
            d.to_string()
                .starts_with("/x.toml:3: unknown field `relaod_cmd`"),
            "{d}"
        );
    }
}
