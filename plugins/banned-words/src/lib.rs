//! `before-publish`: refuses to publish a document whose title or body contains one of
//! the words in its `words` setting, saying which word and where.
use vellum_plugin_sdk::prelude::*;

#[derive(Default)]
struct BannedWords;

/// The first banned word in `text` (whole words, case-insensitive) and the paragraph
/// it is in (1-based).
fn find(text: &str, banned: &[String]) -> Option<(String, usize)> {
    for (i, para) in text.split("\n\n").enumerate() {
        for word in para.split(|c: char| !c.is_alphanumeric() && c != '\'' && c != '-') {
            let lower = word.to_lowercase();
            if banned.iter().any(|b| *b == lower) {
                return Some((word.to_string(), i + 1));
            }
        }
    }
    None
}

impl Plugin for BannedWords {
    fn before_publish(&self, _ctx: &Context, doc: Document) -> Outcome {
        let banned: Vec<String> = host::config("words")
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|w| w.as_str().map(|s| s.trim().to_lowercase()))
            .filter(|w| !w.is_empty())
            .collect();
        if banned.is_empty() {
            return Outcome::Unchanged;
        }
        if let Some((word, _)) = find(&doc.title, &banned) {
            return reject("banned-word", format!("the title contains “{word}”, which may not be published"), Some("title"));
        }
        if let Some((word, para)) = find(&doc.body_text, &banned) {
            return reject(
                "banned-word",
                format!("paragraph {para} contains “{word}”, which may not be published"),
                Some("body"),
            );
        }
        Outcome::Unchanged
    }
}

register_plugin!(BannedWords);
