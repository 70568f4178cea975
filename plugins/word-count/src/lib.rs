//! `enrich`: the number of words in a version and the minutes it takes to read.
use vellum_plugin_sdk::prelude::*;

#[derive(Default)]
struct WordCount;

impl Plugin for WordCount {
    fn enrich(&self, _ctx: &Context, doc: Document) -> Result<Value, String> {
        let per_minute = host::config("wordsPerMinute")
            .and_then(|v| v.as_u64())
            .filter(|n| *n > 0)
            .unwrap_or(200);
        let words = doc.word_count() as u64;
        Ok(json!({ "words": words, "readingMinutes": words.div_ceil(per_minute) }))
    }
}

register_plugin!(WordCount);
