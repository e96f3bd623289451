//! Diagnostics: one problem in a plan with its file position, and the error that carries them all.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::terminal::{escape_control, escape_control_keeping_tabs};

/// A 1-based line and column (columns count characters).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl Pos {
    pub const START: Pos = Pos { line: 1, col: 1 };
}

/// One problem found in a plan file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub path: PathBuf,
    /// Where the offending YAML node starts; `None` for problems with the file as a whole
    /// (missing, too large).
    pub pos: Option<Pos>,
    pub message: String,
    /// The source line at `pos`, shown under the message with a caret.
    pub source_line: Option<String>,
}

impl Diagnostic {
    /// A problem without a position.
    pub fn file(path: &Path, message: impl Into<String>) -> Self {
        Diagnostic {
            path: path.to_path_buf(),
            pos: None,
            message: message.into(),
            source_line: None,
        }
    }

    /// A problem at `pos` in `text`. For many problems in one text, [`Diagnostic::in_lines`]
    /// finds the lines once.
    pub fn at(path: &Path, text: &str, pos: Pos, message: impl Into<String>) -> Self {
        Self::in_lines(path, &SourceLines::new(text), pos, message)
    }

    /// A problem at `pos` in the text `lines` were found in.
    pub fn in_lines(
        path: &Path,
        lines: &SourceLines<'_>,
        pos: Pos,
        message: impl Into<String>,
    ) -> Self {
        // The parser places an empty node at the end of the input on the line after the last
        // one; point at the end of the last line instead, which the reader can see.
        let count = lines.lines().len();
        let (pos, index) = if pos.line.saturating_sub(1) < count {
            (pos, Some(pos.line.saturating_sub(1)))
        } else if let Some(last) = lines.lines().last() {
            let end = Pos {
                line: count,
                col: last.chars().count() + 1,
            };
            (end, Some(count - 1))
        } else {
            (pos, None)
        };
        Diagnostic {
            path: path.to_path_buf(),
            pos: Some(pos),
            // A message may quote the value it is about.
            message: lines.redactor.mask_text(&message.into()).into_owned(),
            // The line is shown to whoever reads the error: a secret written on it is not.
            source_line: index.map(|index| lines.shown(index)),
        }
    }

    pub fn line(&self) -> Option<usize> {
        self.pos.map(|p| p.line)
    }

    pub fn col(&self) -> Option<usize> {
        self.pos.map(|p| p.col)
    }
}

/// A plan's text split into lines once, at the first diagnostic, so that each diagnostic finds
/// its line directly rather than scanning the text again (20,000 problems in a 1 MB plan took
/// 17 s that way). A plan without problems is never split.
pub struct SourceLines<'t> {
    text: &'t str,
    lines: std::cell::OnceCell<Vec<&'t str>>,
    /// Which lines are inside a secret value written over several lines.
    secret: std::cell::OnceCell<Vec<bool>>,
    /// The plan's own secret rules besides the built-in ones, once they are known.
    redactor: crate::secret::Redactor,
}

impl<'t> SourceLines<'t> {
    pub fn new(text: &'t str) -> Self {
        Self::with_redactor(text, crate::secret::Redactor::default())
    }

    /// Lines that mask what `redactor` finds secret as well as the built-in rules.
    pub fn with_redactor(text: &'t str, redactor: crate::secret::Redactor) -> Self {
        SourceLines {
            text,
            lines: std::cell::OnceCell::new(),
            secret: std::cell::OnceCell::new(),
            redactor,
        }
    }

    fn lines(&self) -> &[&'t str] {
        self.lines.get_or_init(|| yaml_lines(self.text).collect())
    }

    /// Line `index` as a diagnostic may show it: no secret value on it in clear, whether it
    /// sits on its key's line or on one below it.
    fn shown(&self, index: usize) -> String {
        let line = self.lines()[index];
        let secret = self
            .secret
            .get_or_init(|| crate::secret::secret_block_lines(self.lines(), &self.redactor));
        if secret[index] {
            crate::secret::mask_whole_line(line)
        } else {
            crate::secret::mask_line(line, &self.redactor).into_owned()
        }
    }
}

/// The lines of a text as YAML counts them: a line ends at CR LF, at LF, or at a lone CR, so a
/// diagnostic's line number always finds the line the parser meant.
pub fn yaml_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let current = rest?;
        match current.find(['\r', '\n']) {
            Some(i) => {
                let skip = if current[i..].starts_with("\r\n") {
                    2
                } else {
                    1
                };
                rest = Some(&current[i + skip..]);
                Some(&current[..i])
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The path, the message and the line may all hold input: none may drive the terminal.
        let path = escape_control(&self.path.to_string_lossy()).into_owned();
        let message = escape_control(&self.message);
        let Some(pos) = self.pos else {
            return write!(f, "{path}: {message}");
        };
        write!(f, "{path}:{}:{}: {message}", pos.line, pos.col)?;
        if let Some(line) = &self.source_line {
            // Keep tabs in the caret's indent so it lines up under tab-indented source; a
            // control character before the caret is as wide as its escape.
            let mut indent = String::new();
            for c in line.chars().take(pos.col.saturating_sub(1)) {
                match c {
                    '\t' => indent.push('\t'),
                    c => indent.extend(
                        escape_control(c.encode_utf8(&mut [0; 4]))
                            .chars()
                            .map(|_| ' '),
                    ),
                }
            }
            let line = escape_control_keeping_tabs(line);
            write!(f, "\n    {line}\n    {indent}^")?;
        }
        Ok(())
    }
}

/// Everything wrong with a plan; `Display` renders every diagnostic, one after another.
#[derive(Clone, Debug, thiserror::Error)]
pub struct LoadError {
    diagnostics: Vec<Diagnostic>,
}

impl LoadError {
    pub fn new(mut diagnostics: Vec<Diagnostic>) -> Self {
        diagnostics.sort_by_key(|d| d.pos.unwrap_or(Pos { line: 0, col: 0 }));
        diagnostics.dedup();
        LoadError { diagnostics }
    }

    pub fn single(diagnostic: Diagnostic) -> Self {
        LoadError {
            diagnostics: vec![diagnostic],
        }
    }

    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.diagnostics
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// The closest of `candidates` to `word` when it is close enough to be a likely misspelling.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .map(|c| {
            (
                edit_distance(&word.to_ascii_lowercase(), &c.to_ascii_lowercase()),
                c,
            )
        })
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over characters.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if ca == *cb {
                diagonal
            } else {
                1 + diagonal.min(above).min(row[j])
            };
            diagonal = above;
        }
    }
    row[b.len()]
}

/// ", did you mean `x`?" or nothing.
pub fn suggestion_suffix<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    did_you_mean(word, candidates)
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_insertions_deletions_and_substitutions() {
        assert_eq!(edit_distance("upgrade", "upgrade"), 0);
        assert_eq!(edit_distance("upgarde", "upgrade"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn suggestions_pick_the_closest_plausible_candidate() {
        assert_eq!(
            did_you_mean("upgarde", ["upgrade", "rollback"]),
            Some("upgrade")
        );
        assert_eq!(
            did_you_mean("concurency", ["concurrency", "per_cluster"]),
            Some("concurrency")
        );
        assert_eq!(did_you_mean("zzzzzz", ["upgrade", "rollback"]), None);
    }

    #[test]
    fn diagnostics_render_position_source_line_and_caret() {
        let text = "version: 1\nname: Bad_Name\n";
        let d = Diagnostic::at(
            Path::new("p.yaml"),
            text,
            Pos { line: 2, col: 7 },
            "bad name",
        );
        assert_eq!(
            d.to_string(),
            "p.yaml:2:7: bad name\n    name: Bad_Name\n          ^"
        );
        let whole = Diagnostic::file(Path::new("p.yaml"), "cannot read");
        assert_eq!(whole.to_string(), "p.yaml: cannot read");
    }

    #[test]
    fn lines_end_at_cr_lf_lf_and_a_lone_cr_as_in_yaml() {
        let lines: Vec<&str> = super::yaml_lines("a\r\nb\nc\rd").collect();
        assert_eq!(lines, ["a", "b", "c", "d"]);
        assert_eq!(super::yaml_lines("x\n").collect::<Vec<_>>(), ["x", ""]);
    }
}
