//! Source files and byte spans: what every diagnostic points into.

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A half-open byte range `[start, end)` in one source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }

    pub fn len(&self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// The same range seen from a file in which this span's text starts at `offset`.
    pub fn shifted(self, offset: usize) -> Span {
        Span::new(self.start + offset, self.end + offset)
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
}

impl From<pest::Span<'_>> for Span {
    fn from(span: pest::Span<'_>) -> Self {
        Span::new(span.start(), span.end())
    }
}

impl From<Span> for miette::SourceSpan {
    fn from(span: Span) -> Self {
        miette::SourceSpan::new(span.start.into(), span.len())
    }
}

/// A value with the place in the source it was written at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spanned<T> {
    pub node: T,
    pub span: Span,
}

impl<T> Spanned<T> {
    pub fn new(node: T, span: Span) -> Self {
        Spanned { node, span }
    }
}

impl<T> std::ops::Deref for Spanned<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.node
    }
}

/// A file that diagnostics can point into: a `.step` file or a template. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SourceFile {
    inner: Arc<SourceInner>,
}

#[derive(Debug)]
struct SourceInner {
    /// The path as the user gave it (relative paths stay relative, so output is reproducible).
    path: PathBuf,
    text: String,
}

impl SourceFile {
    pub fn new(path: impl Into<PathBuf>, text: impl Into<String>) -> Self {
        SourceFile {
            inner: Arc::new(SourceInner {
                path: path.into(),
                text: text.into(),
            }),
        }
    }

    pub fn read(path: &Path) -> std::io::Result<Self> {
        let bytes = std::fs::read(path)?;
        let text = String::from_utf8(bytes).map_err(|err| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "not UTF-8 at byte {} (save the file as UTF-8)",
                    err.utf8_error().valid_up_to()
                ),
            )
        })?;
        // A BOM from Windows editors is not part of the rules.
        let text = text
            .strip_prefix('\u{feff}')
            .map(str::to_owned)
            .unwrap_or(text);
        Ok(SourceFile::new(path, text))
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    pub fn name(&self) -> String {
        self.inner.path.display().to_string()
    }

    pub fn text(&self) -> &str {
        &self.inner.text
    }

    pub fn slice(&self, span: Span) -> &str {
        &self.inner.text[span.start..span.end]
    }

    /// 1-based line and column (in characters, as an editor counts them) of a byte offset.
    pub fn line_column(&self, offset: usize) -> (usize, usize) {
        let text = &self.inner.text[..offset.min(self.inner.text.len())];
        let line = text.matches('\n').count() + 1;
        let line_start = text.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let column = text[line_start..].chars().count() + 1;
        (line, column)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_counts_characters_not_bytes() {
        let file = SourceFile::new("a.step", "clinic \"さくら\"\nquiet 25:00");
        let offset = file.text().find("25").unwrap();
        assert_eq!(file.line_column(offset), (2, 7));
        let offset = file.text().find('"').unwrap() + 1;
        assert_eq!(file.line_column(offset), (1, 9));
        let after_sakura = file.text().find("\"\n").unwrap();
        assert_eq!(file.line_column(after_sakura), (1, 12));
    }
}
