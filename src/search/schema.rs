//! The index's fields and its two analyzers.
//!
//! An entry is a version (immutable: added once, never changed) or a document's live
//! draft (replaced when the draft changes). Text is indexed twice: stemmed, with
//! positions, for words and phrases (`title`, `label`, `body`), and as written
//! (lowercased, no stemming), for prefix and fuzzy terms (`*_raw`), so that `collab*`
//! still finds "collaborative" although its stem is "collabor".

use tantivy::Index;
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{
    AsciiFoldingFilter, Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, TextAnalyzer,
};

pub const STEMMED: &str = "vellum_stemmed";
pub const RAW: &str = "vellum_raw";

/// The field handles, looked up once.
#[derive(Clone, Copy)]
pub struct Fields {
    /// `v:<version id>` or `l:<document id>`: what replacing or deleting an entry names.
    pub key: Field,
    /// The document's id, as text (filters, deleting a document's entries).
    pub doc: Field,
    /// The document's id as two fast numbers, read per hit by the filtering collector.
    pub doc_hi: Field,
    pub doc_lo: Field,
    /// The version's id; 0 for a live draft.
    pub version_id: Field,
    pub number: Field,
    pub title: Field,
    pub title_raw: Field,
    pub label: Field,
    pub label_raw: Field,
    pub author: Field,
    pub created_at: Field,
    pub body: Field,
    pub body_raw: Field,
    /// Live drafts: the sequence number of the last update the indexed text holds.
    pub seq: Field,
}

pub fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let stemmed = TextOptions::default()
        .set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(STEMMED)
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        )
        .set_stored();
    let raw = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(RAW)
            .set_index_option(IndexRecordOption::WithFreqs),
    );
    let fields = Fields {
        key: b.add_text_field("key", STRING),
        doc: b.add_text_field("doc", STRING | STORED),
        doc_hi: b.add_u64_field("doc_hi", FAST),
        doc_lo: b.add_u64_field("doc_lo", FAST),
        version_id: b.add_i64_field("version_id", INDEXED | STORED | FAST),
        number: b.add_i64_field("number", STORED),
        title: b.add_text_field("title", stemmed.clone()),
        title_raw: b.add_text_field("title_raw", raw.clone()),
        label: b.add_text_field("label", stemmed.clone()),
        label_raw: b.add_text_field("label_raw", raw.clone()),
        author: b.add_text_field("author", STRING | STORED),
        created_at: b.add_date_field("created_at", INDEXED | STORED | FAST),
        body: b.add_text_field("body", stemmed),
        body_raw: b.add_text_field("body_raw", raw),
        seq: b.add_i64_field("seq", STORED | FAST),
    };
    (b.build(), fields)
}

/// The setting's language; `None` for "none" (no stemming).
pub fn parse_language(name: &str) -> anyhow::Result<Option<Language>> {
    use Language::*;
    Ok(Some(match name.to_ascii_lowercase().as_str() {
        "none" => return Ok(None),
        "arabic" => Arabic,
        "danish" => Danish,
        "dutch" => Dutch,
        "english" => English,
        "finnish" => Finnish,
        "french" => French,
        "german" => German,
        "greek" => Greek,
        "hungarian" => Hungarian,
        "italian" => Italian,
        "norwegian" => Norwegian,
        "portuguese" => Portuguese,
        "romanian" => Romanian,
        "russian" => Russian,
        "spanish" => Spanish,
        "swedish" => Swedish,
        "tamil" => Tamil,
        "turkish" => Turkish,
        other => anyhow::bail!("search.language: unknown language `{other}` (see config/default.toml)"),
    }))
}

/// Words: runs of letters and digits, lowercased, accents folded, and stemmed.
pub fn stemmed(language: Option<Language>) -> TextAnalyzer {
    let b = TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .dynamic();
    match language {
        Some(l) => b.filter_dynamic(Stemmer::new(l)).build(),
        None => b.build(),
    }
}

/// Words as written: lowercased and accents folded, not stemmed.
pub fn raw() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

pub fn register(index: &Index, language: Option<Language>) {
    index.tokenizers().register(STEMMED, stemmed(language));
    index.tokenizers().register(RAW, raw());
}

/// Every token `analyzer` makes of `text`.
pub fn tokens(analyzer: &mut TextAnalyzer, text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut stream = analyzer.token_stream(text);
    while let Some(t) = stream.next() {
        out.push(t.text.clone());
    }
    out
}
