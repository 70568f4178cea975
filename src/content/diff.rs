//! Text diffs between two plain texts, by lines and by words, as runs of equal,
//! inserted and deleted text: enough to render an inline diff.

use serde::Serialize;
use similar::{ChangeTag, TextDiff};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, async_graphql::Enum)]
#[serde(rename_all = "lowercase")]
pub enum DiffOp {
    Equal,
    Insert,
    Delete,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiffPart {
    pub op: DiffOp,
    pub text: String,
}

/// Line by line: each part is one or more whole lines, each ending with a newline
/// (the last line of a text counts as ending with one, so that appending a line does
/// not show the previous last line as changed).
pub fn lines(old: &str, new: &str) -> Vec<DiffPart> {
    let terminated = |s: &str| {
        if s.is_empty() || s.ends_with('\n') {
            s.to_string()
        } else {
            format!("{s}\n")
        }
    };
    let (old, new) = (terminated(old), terminated(new));
    parts(&TextDiff::from_lines(&old, &new))
}

/// Word by word (whitespace runs are tokens too), for an inline diff.
pub fn words(old: &str, new: &str) -> Vec<DiffPart> {
    parts(&TextDiff::from_words(old, new))
}

fn parts(diff: &TextDiff<'_, '_, str>) -> Vec<DiffPart> {
    let mut out: Vec<DiffPart> = Vec::new();
    for change in diff.iter_all_changes() {
        let op = match change.tag() {
            ChangeTag::Equal => DiffOp::Equal,
            ChangeTag::Insert => DiffOp::Insert,
            ChangeTag::Delete => DiffOp::Delete,
        };
        match out.last_mut() {
            Some(last) if last.op == op => last.text.push_str(change.value()),
            _ => out.push(DiffPart {
                op,
                text: change.value().to_string(),
            }),
        }
    }
    out
}
