//! The convergence check: at the end of a run every client of a document must hold the
//! same text (and the expected text, where it is known). A divergence names the document,
//! the clients and the first differing offset, and fails the run.

use std::fmt::Write;

/// What one client ended with.
pub struct Final {
    pub idx: usize,
    pub text: String,
    /// Whether it received everything the senders reported sending before the deadline.
    pub complete: bool,
    pub errors: Vec<String>,
    pub closed: Option<String>,
}

/// Checks one document's clients. `expected` is the exact text, when known.
pub fn document(doc: &str, clients: &[Final], expected: Option<&str>) -> Result<(), String> {
    let mut problems = String::new();
    for c in clients {
        if let Some(e) = c.errors.first() {
            let _ = writeln!(problems, "  client {} on {doc}: {e} ({} errors)", c.idx, c.errors.len());
        }
        if !c.complete {
            let _ = writeln!(
                problems,
                "  client {} on {doc}: did not receive every update before the deadline{}",
                c.idx,
                c.closed
                    .as_ref()
                    .map_or(String::new(), |r| format!(" (connection {r})"))
            );
        }
    }
    let reference: (String, &str) = match expected {
        Some(e) => ("expected text".into(), e),
        None => match clients.first() {
            Some(c) => (format!("client {}", c.idx), &c.text),
            None => return Ok(()),
        },
    };
    for c in clients {
        if let Some(at) = first_difference(reference.1, &c.text) {
            let _ = writeln!(
                problems,
                "  client {} on {doc} differs from the {} at offset {at} (lengths {} vs {}): {:?} vs {:?}",
                c.idx,
                reference.0,
                reference.1.len(),
                c.text.len(),
                excerpt(&c.text, at),
                excerpt(reference.1, at),
            );
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("DIVERGED: clients of {doc} do not converge\n{problems}"))
    }
}

/// Byte offset of the first difference (the traces and markers are ASCII).
pub fn first_difference(a: &str, b: &str) -> Option<usize> {
    let common = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    if common == a.len() && common == b.len() {
        None
    } else {
        Some(common)
    }
}

fn excerpt(s: &str, at: usize) -> String {
    let start = at.saturating_sub(8);
    let end = (at + 24).min(s.len());
    s.get(start..end).unwrap_or("").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fin(idx: usize, text: &str) -> Final {
        Final {
            idx,
            text: text.into(),
            complete: true,
            errors: vec![],
            closed: None,
        }
    }

    #[test]
    fn reports_first_offset() {
        assert_eq!(first_difference("abc", "abc"), None);
        assert_eq!(first_difference("abc", "abd"), Some(2));
        assert_eq!(first_difference("abc", "ab"), Some(2));
        assert!(document("d", &[fin(0, "hello"), fin(1, "hello")], Some("hello")).is_ok());
        let e = document("d", &[fin(0, "hello"), fin(1, "help!")], None).unwrap_err();
        assert!(e.contains("DIVERGED") && e.contains("offset 3"), "{e}");
        let e = document("d", &[fin(0, "hello")], Some("hellO")).unwrap_err();
        assert!(e.contains("expected text at offset 4"), "{e}");
    }
}
