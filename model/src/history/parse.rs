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

impl Problem {
    /// A JSON error without serde's "at line 1 column 7" (the line is ours to name).
    pub(super) fn malformed(error: serde_json::Error) -> Problem {
        let message = error.to_string();
        let message = match message.rsplit_once(" at line ") {
            Some((message, _)) => format!("{message} (column {})", error.column()),
            None => message,
        };
        Problem::Malformed(message)
    }

    pub(super) fn unmatched(kind: EventType, process: u64) -> Problem {
        Problem::Unmatched { kind: kind.name(), process }
    }
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
