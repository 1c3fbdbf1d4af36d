//! Reading a history from text, and the errors that name the line and the problem.
//!
//! Every line must end in a newline: a last line without one is reported as a cut
//! history, even if what is there happens to parse, because a recorder that died
//! mid-write leaves exactly that behind and a checker must not pass judgement on half
//! a history.

use std::io::{BufRead, Read};

use thiserror::Error;

use super::build::Validator;
use super::text::Interner;
use super::wire::{self, Line};
use super::{EventType, History};

/// The longest line read (a replica's final log is one line, so this is generous): a
/// bound on memory for input that never ends a line.
pub const LINE_BYTES_MAX: u64 = 1 << 30;

/// What is wrong with a line.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum Problem {
    #[error("empty history: expected a header line")]
    Empty,
    #[error("read error: {0}")]
    Io(String),
    #[error("not valid UTF-8")]
    NotUtf8,
    #[error("line longer than {LINE_BYTES_MAX} bytes")]
    TooLong,
    #[error("last line has no newline: the history was cut short")]
    Truncated,
    #[error("empty line")]
    EmptyLine,
    #[error("malformed line: {0}")]
    Malformed(String),
    #[error("unsupported history version {0} (this build reads version 1)")]
    Version(String),
    #[error("unknown line type `{0}`")]
    UnknownType(String),
    #[error("unknown operation `{0}`")]
    UnknownOperation(String),
    #[error("{kind} without a matching invoke for process {process}")]
    Unmatched { kind: &'static str, process: u64 },
    #[error("{0}")]
    Invalid(String),
}

/// The most characters of a quoted value a message shows: a line may hold megabytes.
pub const QUOTED_CHARS_MAX: usize = 80;

/// `text` as a message quotes it: whole up to `QUOTED_CHARS_MAX` characters, else its
/// start and how long it is.
pub(crate) fn quoted(text: &str) -> std::borrow::Cow<'_, str> {
    cut(text, QUOTED_CHARS_MAX)
}

/// `text` up to `chars_max` characters, else its start and how long it is.
fn cut(text: &str, chars_max: usize) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(chars_max) {
        None => text.into(),
        Some((end, _)) => format!("{}… ({} bytes)", &text[..end], text.len()).into(),
    }
}

impl Problem {
    /// A JSON error without serde's "at line 1 column 7" (the line is ours to name), in
    /// the words of the format rather than of the types that read it.
    pub(super) fn malformed(error: serde_json::Error, line: &str) -> Problem {
        let message = error.to_string();
        let message = match message.rsplit_once(" at line ") {
            Some((message, _)) => message.to_string(),
            None => message,
        };
        let message = plain_words(&message, line, error.column());
        // serde quotes what it read (an unknown variant, a string where a number
        // belongs): room for the message around a quoted value, not for megabytes.
        let message = cut(&message, 3 * QUOTED_CHARS_MAX);
        Problem::Malformed(format!("{message} (column {})", error.column()))
    }

    /// A line that failed to read because it is JSON but not an object: said so, rather
    /// than in the words of the type that expected an object.
    pub(super) fn not_an_object(line: &str) -> Option<Problem> {
        let found = match serde_json::from_str::<serde_json::Value>(line).ok()? {
            serde_json::Value::Object(_) => return None,
            serde_json::Value::Array(_) => "an array",
            serde_json::Value::String(_) => "a string",
            serde_json::Value::Number(_) => "a number",
            serde_json::Value::Bool(_) => "a boolean",
            serde_json::Value::Null => "null",
        };
        Some(Problem::Malformed(format!(
            "expected a JSON object {{...}} on every line, found {found}"
        )))
    }

    pub(super) fn unmatched(kind: EventType, process: u64) -> Problem {
        Problem::Unmatched { kind: kind.name(), process }
    }
}

/// serde's message said in the format's words: a number too large for any field is
/// named as written (serde reads it as a float), and the names of the reading types
/// (`struct LineIn`) become what they read ("an object").
fn plain_words(message: &str, line: &str, column: usize) -> String {
    if message.starts_with("invalid type: floating point") {
        // The number ends at the column serde names (1-based, inclusive).
        let before = line.get(..column.min(line.len())).unwrap_or("");
        let start =
            before.rfind(|c: char| !(c.is_ascii_digit() || c == '-')).map_or(0, |at| at + 1);
        let digits = &before[start..];
        if !digits.is_empty() && digits.bytes().any(|b| b.is_ascii_digit()) {
            let expected = message.rsplit_once(", expected ").map_or("an integer", |(_, e)| e);
            return integer_words(&format!(
                "integer {digits} is out of range, expected {expected}"
            ));
        }
    }
    match message.find("expected struct ") {
        Some(at) => format!("{}expected an object", &message[..at]),
        None => integer_words(message),
    }
}

/// Rust's integer types said as ranges.
fn integer_words(message: &str) -> String {
    message
        .replace("expected u64", "expected an integer from 0 to 18446744073709551615")
        .replace("expected u32", "expected an integer from 0 to 4294967295")
}

/// A history that cannot be checked: the line (1-based) and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("line {line}: {problem}")]
pub struct HistoryError {
    pub line: u64,
    pub problem: Problem,
}

impl HistoryError {
    pub(super) fn new(line: u64, problem: Problem) -> HistoryError {
        debug_assert!(line >= 1, "lines are numbered from 1");
        HistoryError { line, problem }
    }

    /// The error prefixed with the file it came from: `history.jsonl:12: ...`.
    pub fn in_file(&self, path: &str) -> String {
        format!("{path}:{}: {}", self.line, self.problem)
    }
}

/// Feeds lines, in order, to the validator.
struct Parser {
    validator: Option<Validator>,
    line: u64,
    /// Every record's key and value, held once.
    interner: Interner,
}

impl Parser {
    fn new() -> Parser {
        Parser { validator: None, line: 0, interner: Interner::new() }
    }

    /// One line, with its newline already checked and removed.
    fn line(&mut self, text: &str) -> Result<(), HistoryError> {
        self.line += 1;
        let line = self.line;
        let text = text.strip_suffix('\r').unwrap_or(text);
        // A byte-order mark some editors write first is not part of the header.
        let text = if line == 1 { text.strip_prefix('\u{feff}').unwrap_or(text) } else { text };
        if text.is_empty() {
            return Err(HistoryError::new(line, Problem::EmptyLine));
        }
        match &mut self.validator {
            None => {
                let header =
                    wire::header_from_line(text).map_err(|p| HistoryError::new(line, p))?;
                self.validator = Some(Validator::new(header));
                Ok(())
            }
            Some(validator) => {
                match wire::line_from_str(text, &mut self.interner)
                    .map_err(|p| HistoryError::new(line, p))?
                {
                    Line::Event(event) => validator.push_event(event),
                    Line::Closing(closing) => validator.push_closing(closing),
                }
            }
        }
    }

    fn cut_short(&self) -> HistoryError {
        HistoryError::new(self.line + 1, Problem::Truncated)
    }

    fn finish(self) -> Result<History, HistoryError> {
        match self.validator {
            None => Err(HistoryError::new(1, Problem::Empty)),
            Some(validator) => validator.finish(),
        }
    }
}

/// Reads a history from JSON Lines text (see `model/HISTORY.md`).
pub fn parse_history(mut reader: impl BufRead) -> Result<History, HistoryError> {
    let mut parser = Parser::new();
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        let read = Read::take(&mut reader, LINE_BYTES_MAX + 1).read_until(b'\n', &mut buffer);
        if let Err(error) = read {
            return Err(HistoryError::new(parser.line + 1, Problem::Io(error.to_string())));
        }
        if buffer.is_empty() {
            return parser.finish();
        }
        if buffer.last() != Some(&b'\n') {
            return Err(if buffer.len() as u64 > LINE_BYTES_MAX {
                HistoryError::new(parser.line + 1, Problem::TooLong)
            } else {
                parser.cut_short()
            });
        }
        buffer.pop();
        let Ok(text) = std::str::from_utf8(&buffer) else {
            return Err(HistoryError::new(parser.line + 1, Problem::NotUtf8));
        };
        parser.line(text)?;
    }
}

/// Reads a history from JSON Lines text held in memory.
pub fn parse_history_str(text: &str) -> Result<History, HistoryError> {
    let mut parser = Parser::new();
    for line in text.split_inclusive('\n') {
        let Some(line) = line.strip_suffix('\n') else {
            return Err(parser.cut_short());
        };
        if line.len() as u64 > LINE_BYTES_MAX {
            return Err(HistoryError::new(parser.line + 1, Problem::TooLong));
        }
        parser.line(line)?;
    }
    parser.finish()
}
