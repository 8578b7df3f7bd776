//! Schema diagnostics: every problem carries its file, position, a label, an optional help line
//! and a stable code, and renders through miette.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use miette::{
    GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteError, MietteSpanContents,
    NamedSource, SourceCode, SourceSpan, SpanContents,
};

/// A schema file's text, shared by the diagnostics that point into it.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: PathBuf,
    /// The path as shown in messages.
    pub display: String,
    pub text: Arc<str>,
    named: Arc<CharColumns>,
}

impl SourceFile {
    pub fn new(path: &Path, text: String) -> Self {
        let display = path.display().to_string();
        let text: Arc<str> = Arc::from(text);
        let named = Arc::new(CharColumns {
            text: Arc::clone(&text),
            inner: NamedSource::new(display.clone(), Arc::clone(&text)).with_language("yaml"),
        });
        SourceFile {
            path: path.to_path_buf(),
            display,
            text,
            named,
        }
    }
}

/// The source as miette sees it, with columns counted in characters (miette counts bytes), so the
/// `[path:line:col]` above a snippet agrees with the `path:line:col:` of the message.
#[derive(Debug)]
struct CharColumns {
    text: Arc<str>,
    inner: NamedSource<Arc<str>>,
}

impl SourceCode for CharColumns {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let contents = self
            .inner
            .read_span(span, context_lines_before, context_lines_after)?;
        let start = contents.span().offset().min(self.text.len());
        let line_start = self.text[..start].rfind('\n').map_or(0, |i| i + 1);
        let column = self
            .text
            .get(line_start..start)
            .map_or(contents.column(), |s| s.chars().count());
        let mut fixed = MietteSpanContents::new_named(
            contents.name().unwrap_or_default().to_string(),
            contents.data(),
            *contents.span(),
            contents.line(),
            column,
            contents.line_count(),
        );
        if let Some(language) = contents.language() {
            fixed = fixed.with_language(language);
        }
        Ok(Box::new(fixed))
    }
}

/// Lines longer than this are not shown as a snippet (and miette cannot draw past column 65535).
const MAX_SNIPPET_LINE: usize = 1_000;

/// Where in a source a problem is: byte offset and length, plus 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, PartialOrd, Ord)]
pub struct Loc {
    pub line: u32,
    pub column: u32,
    pub offset: usize,
    pub len: usize,
}

/// One problem found in a schema.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    /// Stable code, e.g. `natsgen::unknown_type`.
    pub code: &'static str,
    pub message: String,
    pub label: String,
    pub help: Option<String>,
    pub loc: Loc,
    source: Option<SourceFile>,
    path: String,
}

impl Diagnostic {
    pub fn new(
        code: &'static str,
        source: &SourceFile,
        loc: Loc,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            code,
            message: message.into(),
            label: String::new(),
            help: None,
            loc,
            source: Some(source.clone()),
            path: source.display.clone(),
        }
    }

    /// A problem with a file that could not be read at all.
    pub fn without_source(code: &'static str, path: &Path, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            message: message.into(),
            label: String::new(),
            help: None,
            loc: Loc {
                line: 1,
                column: 1,
                offset: 0,
                len: 0,
            },
            source: None,
            path: path.display().to_string(),
        }
    }

    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn with_help(mut self, help: Option<String>) -> Self {
        self.help = help;
        self
    }

    /// Whether the offending line is short enough to show as a snippet.
    fn snippet_fits(&self) -> bool {
        let Some(source) = &self.source else {
            return false;
        };
        let text = &source.text;
        let start = self.loc.offset.min(text.len());
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        line_end - line_start <= MAX_SNIPPET_LINE
    }

    /// The diagnostic without a snippet: code, `path:line:col: message`, help.
    fn plain(&self) -> String {
        let mut out = format!("{}\n\n  × {self}\n", self.code);
        if let Some(help) = &self.help {
            out.push_str(&format!("  help: {help}\n"));
        }
        out
    }

    /// The file the problem is in, as shown in messages.
    pub fn path(&self) -> &str {
        &self.path
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.path, self.loc.line, self.loc.column, self.message
        )
    }
}

impl std::error::Error for Diagnostic {}

impl miette::Diagnostic for Diagnostic {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.code))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.source.as_ref().map(|s| &*s.named as &dyn SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        self.source.as_ref()?;
        let label = (!self.label.is_empty()).then(|| self.label.clone());
        Some(Box::new(std::iter::once(LabeledSpan::new(
            label,
            self.loc.offset,
            self.loc.len,
        ))))
    }
}

/// Every problem found, sorted by file and position.
#[derive(Debug, Clone, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn sort(&mut self) {
        self.0.sort_by(|a, b| {
            (a.path(), a.loc.offset, a.code).cmp(&(b.path(), b.loc.offset, b.code))
        });
        self.0
            .dedup_by(|a, b| a.path() == b.path() && a.loc == b.loc && a.message == b.message);
    }

    /// Renders every diagnostic as text (no colours), the way `natsgen check` prints them.
    pub fn render(&self) -> String {
        let handler = GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor())
            .with_width(100)
            .with_links(false);
        let mut out = String::new();
        for d in &self.0 {
            if d.snippet_fits() && handler.render_report(&mut out, d).is_ok() {
                out.push('\n');
                continue;
            }
            out.push_str(&d.plain());
            out.push('\n');
        }
        out
    }
}

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

/// The closest candidate to `name` (by edit distance), if it is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let lower = name.to_lowercase();
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = edit_distance(&lower, &c.to_lowercase());
        let limit = (name.chars().count().max(c.chars().count()) / 3).max(1);
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| format!("did you mean '{c}'?"))
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(
            did_you_mean("Strng", ["string", "bytes"]).as_deref(),
            Some("did you mean 'string'?")
        );
        assert_eq!(did_you_mean("Zebra", ["string", "bytes"]), None);
    }
}
