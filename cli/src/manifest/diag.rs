//! A located manifest error, rendered by miette: the message, `╭─[file:line:col]`, the
//! line with a caret under the culprit, and a `help:` line with the fix.

use std::ops::Range;
use std::path::Path;

use miette::{Diagnostic, GraphicalReportHandler, GraphicalTheme, NamedSource, SourceSpan};

/// A problem in `rusm.toml`.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("{message}")]
pub struct ManifestError {
    message: String,
    #[source_code]
    src: NamedSource<String>,
    #[label("{label}")]
    span: Option<SourceSpan>,
    label: String,
    #[help]
    help: Option<String>,
}

/// An error found while checking, before it is tied to its file.
#[derive(Debug)]
pub(super) struct Located {
    pub message: String,
    pub span: Option<Range<usize>>,
    pub label: String,
    pub help: Option<String>,
}

impl Located {
    pub fn at(span: Range<usize>, message: impl Into<String>, label: impl Into<String>) -> Located {
        Located { message: message.into(), span: Some(span), label: label.into(), help: None }
    }

    pub fn help(mut self, help: impl Into<String>) -> Located {
        self.help = Some(help.into());
        self
    }

    /// Helps with the nearest of `options` to `word` ("did you mean"), or `otherwise`.
    pub fn suggest(self, word: &str, options: &[&str], otherwise: impl FnOnce() -> String) -> Located {
        match closest(word, options) {
            Some(c) => self.help(format!("did you mean \"{c}\"?")),
            None => self.help(otherwise()),
        }
    }

    pub fn into_error(self, path: &Path, src: String) -> ManifestError {
        let span = self.span.map(|r| clamp(&src, r));
        ManifestError {
            message: self.message,
            src: NamedSource::new(path.display().to_string(), src),
            span,
            label: self.label,
            help: self.help,
        }
    }
}

/// A span inside the text (toml reports the end of input one past it).
fn clamp(src: &str, r: Range<usize>) -> SourceSpan {
    let start = r.start.min(src.len());
    let end = r.end.clamp(start, src.len());
    SourceSpan::from(start..end)
}

impl ManifestError {
    /// The file could not be read at all.
    pub fn unreadable(path: &Path, e: &std::io::Error) -> ManifestError {
        let help = if e.kind() == std::io::ErrorKind::NotFound {
            Some("run `rusm new NAME` to start an app, or give the path of its rusm.toml".to_owned())
        } else {
            None
        };
        ManifestError {
            message: format!("cannot read {}: {e}", path.display()),
            src: NamedSource::new(path.display().to_string(), String::new()),
            span: None,
            label: String::new(),
            help,
        }
    }

    /// A TOML syntax or type error, its serde message made plainer: an unknown key names
    /// its table and the closest known key.
    pub fn from_toml(path: &Path, src: String, e: &toml::de::Error) -> ManifestError {
        let span = e.span().unwrap_or(0..0);
        let msg = e.message().trim().to_owned();
        let located = if let Some(rest) = msg.strip_prefix("unknown field `") {
            let key = rest.split('`').next().unwrap_or_default().to_owned();
            let expected: Vec<&str> = rest.split('`').skip(1).collect::<Vec<_>>().chunks(2).filter_map(|c| c.get(1).copied()).collect();
            let table = match inline_parent(&src, span.start) {
                Some(parent) => format!("an entry of `{parent}` in {}", table_at(&src, span.start)),
                None => table_at(&src, span.start),
            };
            let mut l = Located::at(span.clone(), format!("unknown key \"{key}\" in {table}"), "unknown key");
            l.help = Some(match closest(&key, &expected) {
                Some(s) => format!("did you mean \"{s}\"?"),
                None => format!("the keys of {table} are: {}", expected.join(", ")),
            });
            l
        } else if let Some(rest) = msg.strip_prefix("missing field `") {
            let key = rest.split('`').next().unwrap_or_default();
            let table = table_at(&src, span.start);
            if key == "app" {
                Located::at(span.clone(), "the manifest has no [app] table", "add it above").help("start the file with:\n[app]\nname = \"myapp\"")
            } else {
                Located::at(span.clone(), format!("{table} needs the key \"{key}\""), format!("add `{key} = …` here"))
            }
        } else if let Some(rest) = msg.strip_prefix("invalid type: ") {
            let key = key_at(&src, span.start);
            let rest = plain_types(rest);
            let what = match &key {
                Some(k) => format!("wrong type for \"{k}\": {rest}"),
                None => format!("wrong type: {rest}"),
            };
            Located::at(span.clone(), what, "this value")
        } else {
            Located::at(span.clone(), format!("this is not valid TOML: {msg}"), "here")
        };
        located.into_error(path, src)
    }

    /// The message alone (for NDJSON events).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The full report: plain text, or with colour for a terminal.
    pub fn render(&self, color: bool) -> String {
        let theme = if color { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
        let mut out = String::new();
        let handler = GraphicalReportHandler::new_themed(theme).with_width(100).with_links(false);
        if handler.render_report(&mut out, self).is_err() {
            out = format!("{}\n", self.message);
        }
        out
    }
}

/// The nearest of `options` to `word`, if near enough to be a typo.
pub(super) fn closest<'a>(word: &str, options: &[&'a str]) -> Option<&'a str> {
    options
        .iter()
        .map(|o| (strsim::damerau_levenshtein(word, o), *o))
        .filter(|(d, o)| *d <= 2.max(o.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, o)| o)
}

/// serde's type names as a TOML user knows them.
fn plain_types(s: &str) -> String {
    let mut s = s.to_owned();
    for (from, to) in [
        ("expected i64", "expected an integer"),
        ("expected u64", "expected an integer"),
        ("expected u32", "expected an integer"),
        ("expected a string", "expected a string"),
        ("expected a sequence", "expected an array [..]"),
        ("expected a map", "expected a table"),
        ("expected struct", "expected a table:"),
        ("sequence", "array"),
        ("map", "table"),
    ] {
        s = s.replace(from, to);
    }
    s
}

/// The key of the inline table (`files = [{ … }]`) a byte offset is inside, if any.
fn inline_parent(src: &str, at: usize) -> Option<String> {
    let start = src[..at.min(src.len())].rfind('\n').map_or(0, |i| i + 1);
    src[start..at.min(src.len())].contains('{').then(|| key_at(src, at)).flatten()
}

/// The table a byte offset is in, as its header reads (`[components.echo]`), or "the top
/// level" (a key in a header line belongs to the table above it).
fn table_at(src: &str, at: usize) -> String {
    let line_start = src[..at.min(src.len())].rfind('\n').map_or(0, |i| i + 1);
    if src[line_start..].trim_start().starts_with('[') {
        // A header's first key is a key of the top level.
        return "the top level".to_owned();
    }
    let before = &src[..line_start];
    before
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.split(']').next().map(|h| format!("{h}]")).unwrap_or_else(|| l.to_owned()))
        .map(|h| h.replace("[[", "["))
        .unwrap_or_else(|| "the top level".to_owned())
}

/// The key on the line of a byte offset (`memory = 5` → `memory`).
fn key_at(src: &str, at: usize) -> Option<String> {
    let start = src[..at.min(src.len())].rfind('\n').map_or(0, |i| i + 1);
    let line = src[start..].lines().next()?;
    let (k, _) = line.split_once('=')?;
    let k = k.trim().trim_matches('"');
    (!k.is_empty() && !k.starts_with('[')).then(|| k.to_owned())
}
