//! Schema diagnostics: every problem carries its file, position, a label, an optional help line
//! and a stable code, and renders through miette.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use miette::{
    GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteError, MietteSpanContents,
    SourceCode, SourceSpan, SpanContents,
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
            lines: LineIndex::new(&text),
            text: Arc::clone(&text),
            name: display.clone(),
        });
        SourceFile {
            path: path.to_path_buf(),
            display,
            text,
            named,
        }
    }
}

/// Where each line of a text starts, built once per file so that a diagnostic finds its line by
/// binary search instead of rescanning the text. Lines end at `\n`, `\r\n` or a lone `\r`, as
/// miette counts them.
#[derive(Debug)]
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> Self {
        work::scanned(text.len());
        let bytes = text.as_bytes();
        let mut starts = vec![0];
        for (i, &b) in bytes.iter().enumerate() {
            let ends_line = b == b'\n' || (b == b'\r' && bytes.get(i + 1) != Some(&b'\n'));
            if ends_line {
                starts.push(i + 1);
            }
        }
        LineIndex { starts }
    }

    /// The 0-based line holding byte `offset`.
    fn line_of(&self, offset: usize) -> usize {
        self.starts
            .partition_point(|&start| start <= offset)
            .saturating_sub(1)
    }

    /// Where 0-based `line` starts, or `None` past the last line.
    fn start(&self, line: usize) -> Option<usize> {
        self.starts.get(line).copied()
    }
}

/// The source as miette sees it, with columns counted in characters (miette counts bytes), so the
/// `[path:line:col]` above a snippet agrees with the `path:line:col:` of the message. Only the
/// lines around a span are handed to miette, which scans what it is given from the start.
#[derive(Debug)]
struct CharColumns {
    text: Arc<str>,
    name: String,
    lines: LineIndex,
}

impl SourceCode for CharColumns {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let text: &'a str = &self.text;
        let offset = span.offset().min(text.len());
        let last = (offset + span.len()).saturating_sub(1).max(offset);
        let first_line = self.lines.line_of(offset);
        let window_line = first_line.saturating_sub(context_lines_before);
        let window_start = self.lines.start(window_line).unwrap_or(0);
        let window_end = self
            .lines
            .start(self.lines.line_of(last) + context_lines_after + 2)
            .unwrap_or(text.len());
        let window = text.get(window_start..window_end).unwrap_or(text);
        let window_start = if window.len() == text.len() {
            0
        } else {
            window_start
        };
        let window_line = if window_start == 0 { 0 } else { window_line };
        work::scanned(window.len());
        let local = SourceSpan::new((offset - window_start).into(), span.len());
        let contents = window.read_span(&local, context_lines_before, context_lines_after)?;
        let start = contents.span().offset() + window_start;
        let line_start = self
            .lines
            .start(self.lines.line_of(start))
            .unwrap_or(0)
            .min(start);
        let column = text
            .get(line_start..start)
            .map_or(contents.column(), |s| s.chars().count());
        let fixed = MietteSpanContents::new_named(
            self.name.clone(),
            contents.data(),
            SourceSpan::new(start.into(), contents.span().len()),
            contents.line() + window_line,
            column,
            contents.line_count() + window_line,
        )
        .with_language("yaml");
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
        let lines = &source.named.lines;
        let line = lines.line_of(self.loc.offset.min(source.text.len()));
        let start = lines.start(line).unwrap_or(0);
        let end = lines.start(line + 1).unwrap_or(source.text.len());
        end - start <= MAX_SNIPPET_LINE + 2
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
        self.render_styled(false)
    }

    /// Renders every diagnostic as text, in ANSI colours when `color` is set (for a terminal).
    pub fn render_styled(&self, color: bool) -> String {
        let theme = if color {
            GraphicalTheme::unicode()
        } else {
            GraphicalTheme::unicode_nocolor()
        };
        let handler = GraphicalReportHandler::new_themed(theme)
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
    Suggestions::new(candidates).did_you_mean(name)
}

/// Candidates examined per lookup, at most: a lookup costs the same in a schema of any size.
const MAX_EXAMINED: usize = 2_048;
/// Edit-distance cells computed per lookup, at most.
const MAX_CELLS: usize = 32_768;

/// A set of names to suggest from, prepared once and asked many times ("did you mean ...?").
///
/// A lookup is bounded whatever the number of names: only names of a length that can be close
/// enough are looked at, a character-set filter drops most of those before any edit distance is
/// computed, distances stop as soon as they exceed the limit, and the work per lookup is capped.
#[derive(Debug, Default)]
pub struct Suggestions {
    names: Vec<Candidate>,
    /// Candidate indices by length in characters.
    by_len: BTreeMap<usize, Vec<usize>>,
    /// Each candidate (lowercase) and each of its one-character deletions → candidate indices:
    /// every candidate one edit away from a name shares a key with it.
    deletions: HashMap<String, Vec<usize>>,
}

/// Names longer than this are not indexed by deletions (they are still compared by the scan).
const MAX_INDEXED_LEN: usize = 64;

/// `chars` and each of its one-character deletions.
fn deletions(chars: &[char]) -> impl Iterator<Item = String> + '_ {
    std::iter::once(chars.iter().collect()).chain((0..chars.len()).map(move |skip| {
        chars
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != skip)
            .map(|(_, c)| *c)
            .collect()
    }))
}

#[derive(Debug)]
struct Candidate {
    name: String,
    lower: Vec<char>,
    mask: u64,
}

/// The set of characters of a name, folded into 64 bits. One edit changes at most two bits, so
/// names whose masks differ in more than `2 × limit` bits are further apart than `limit`.
fn char_mask(chars: &[char]) -> u64 {
    chars
        .iter()
        .fold(0, |mask, &c| mask | 1u64 << (u32::from(c) % 64))
}

fn limit_for(a: usize, b: usize) -> usize {
    (a.max(b) / 3).max(1)
}

impl Suggestions {
    pub fn new<'a>(candidates: impl IntoIterator<Item = &'a str>) -> Self {
        let mut out = Suggestions::default();
        for c in candidates {
            out.push(c);
        }
        out
    }

    pub fn push(&mut self, name: &str) {
        let lower: Vec<char> = name.to_lowercase().chars().collect();
        let index = self.names.len();
        self.by_len.entry(lower.len()).or_default().push(index);
        if lower.len() <= MAX_INDEXED_LEN {
            for key in deletions(&lower) {
                let slot = self.deletions.entry(key).or_default();
                if slot.last() != Some(&index) {
                    slot.push(index);
                }
            }
        }
        self.names.push(Candidate {
            name: name.to_string(),
            mask: char_mask(&lower),
            lower,
        });
    }

    /// `did you mean '<closest>'?` when a candidate is close enough to `name`.
    pub fn did_you_mean(&self, name: &str) -> Option<String> {
        self.closest(name).map(|c| format!("did you mean '{c}'?"))
    }

    /// The closest candidate within a third of the longer name's length (at least 1 edit); the
    /// earliest given wins a tie.
    pub fn closest(&self, name: &str) -> Option<&str> {
        let lower: Vec<char> = name.to_lowercase().chars().collect();
        let mask = char_mask(&lower);
        let len = lower.len();
        let shortest = len.saturating_sub(len / 3 + 1);
        let longest = len + len / 2 + 2;
        let mut best: Option<(usize, usize)> = None;
        let consider = |best: &mut Option<(usize, usize)>, i: usize, limit: usize| {
            let c = &self.names[i];
            let cap = best.map_or(limit, |(d, _)| d.min(limit));
            let d = bounded_edit_distance(&lower, &c.lower, cap);
            if d <= cap && best.is_none_or(|(bd, bi)| d < bd || (d == bd && i < bi)) {
                *best = Some((d, i));
            }
        };
        // Every candidate within one edit shares a deletion key with the name: the usual typo is
        // found exactly, however many names there are.
        if len <= MAX_INDEXED_LEN {
            for key in deletions(&lower) {
                for &i in self.deletions.get(&key).map_or(&[][..], Vec::as_slice) {
                    consider(&mut best, i, limit_for(len, self.names[i].lower.len()));
                }
            }
        }
        if best.is_some_and(|(d, _)| d <= 1) {
            return best.map(|(_, i)| self.names[i].name.as_str());
        }
        let (mut examined, mut cells) = (0usize, 0usize);
        'lengths: for (&other_len, indices) in self.by_len.range(shortest..=longest) {
            let limit = limit_for(len, other_len);
            if len.abs_diff(other_len) > limit {
                continue;
            }
            for &i in indices {
                examined += 1;
                if examined > MAX_EXAMINED || cells > MAX_CELLS {
                    break 'lengths;
                }
                if (self.names[i].mask ^ mask).count_ones() as usize > 2 * limit {
                    continue;
                }
                cells += len * other_len;
                consider(&mut best, i, limit);
            }
        }
        best.map(|(_, i)| self.names[i].name.as_str())
    }
}

/// The edit distance of `a` and `b`, or anything above `cap` once it is certain to exceed it.
fn bounded_edit_distance(a: &[char], b: &[char], cap: usize) -> usize {
    work::distance_cells(a.len() * b.len());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        let mut row_min = cur[0];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
            row_min = row_min.min(cur[j + 1]);
        }
        if row_min > cap {
            return cap + 1;
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Counters of the work diagnostics do, so tests can show it grows linearly with the schema.
mod work {
    #[cfg(test)]
    thread_local! {
        pub(crate) static SCANNED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
        pub(crate) static CELLS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    /// Bytes of schema text scanned to place or show a diagnostic.
    pub(crate) fn scanned(_bytes: usize) {
        #[cfg(test)]
        SCANNED.with(|c| c.set(c.get() + _bytes));
    }

    /// Cells of edit-distance tables computed for suggestions.
    pub(crate) fn distance_cells(_cells: usize) {
        #[cfg(test)]
        CELLS.with(|c| c.set(c.get() + _cells));
    }

    /// The counters' values since the last call on this thread: `(scanned, cells)`.
    #[cfg(test)]
    pub(crate) fn take() -> (usize, usize) {
        (SCANNED.with(|c| c.replace(0)), CELLS.with(|c| c.replace(0)))
    }
}

#[cfg(test)]
pub(crate) use work::take as take_work;

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
