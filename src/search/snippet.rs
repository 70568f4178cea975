//! Highlighted snippets: the text around the first matches, HTML-escaped, with `<mark>`
//! around each matched word. Tokenizes only as far as the snippets reach, and stems only
//! the words that could match (stemming every word of a page of hits was most of a
//! query's time).

use tantivy::tokenizer::{Language, TextAnalyzer};

use super::query::Mark;
use super::schema;
use crate::content::html::escape;

struct Tok {
    from: usize,
    to: usize,
    /// As written: lowercased, accents folded (what the `*_raw` fields hold).
    raw: String,
    /// Its stem, once asked for.
    stem: Option<String>,
    marked: bool,
}

/// The two analyzers a highlight needs.
pub struct Highlighter {
    stemmed: TextAnalyzer,
    raw: TextAnalyzer,
}

/// Whether `raw` could have the stem `stem`: stemmers (Snowball's) change a word's
/// ending, never its first letters.
fn could_stem_to(raw: &str, stem: &str) -> bool {
    let k = stem.len().min(3);
    raw.len() >= k && raw.as_bytes()[..k] == stem.as_bytes()[..k]
}

impl Highlighter {
    pub fn new(language: Option<Language>) -> Self {
        Self {
            stemmed: schema::stemmed(language),
            raw: schema::raw(),
        }
    }

    fn stem<'t>(&mut self, tok: &'t mut Tok) -> &'t str {
        if tok.stem.is_none() {
            let stem = schema::tokens(&mut self.stemmed, &tok.raw).pop().unwrap_or_default();
            tok.stem = Some(stem);
        }
        tok.stem.as_deref().unwrap_or_default()
    }

    fn has_stem(&mut self, tok: &mut Tok, stem: &str) -> bool {
        could_stem_to(&tok.raw, stem) && self.stem(tok) == stem
    }

    fn matches(&mut self, mark: &Mark, t: &mut Tok) -> bool {
        match mark {
            Mark::Stem(s) => self.has_stem(t, s),
            Mark::Prefix(p) => t.raw.starts_with(p.as_str()),
            Mark::Fuzzy(w, d) => within(&t.raw, w, usize::from(*d)),
            Mark::Phrase(_) => false,
        }
    }
}

/// Whether `a` is at most `max` edits (Damerau: a swap of neighbours is one) from `b`.
fn within(a: &str, b: &str, max: usize) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if a.len().abs_diff(b.len()) > max {
        return false;
    }
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for i in 0..=a.len() {
        d[i * w] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(w) {
        *cell = j;
    }
    for i in 1..=a.len() {
        let mut best = usize::MAX;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * w + j] + 1)
                .min(d[i * w + j - 1] + 1)
                .min(d[(i - 1) * w + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = v;
            best = best.min(v);
        }
        if best > max {
            return false;
        }
    }
    d[a.len() * w + b.len()] <= max
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Escapes `text[from..to]` with the marked tokens inside it wrapped in `<mark>`.
fn render(text: &str, from: usize, to: usize, toks: &[Tok]) -> String {
    let mut out = String::new();
    if from > 0 {
        out.push('…');
    }
    let mut at = from;
    for t in toks.iter().filter(|t| t.marked && t.from >= from && t.to <= to) {
        out.push_str(&escape(&text[at..t.from]));
        out.push_str("<mark>");
        out.push_str(&escape(&text[t.from..t.to]));
        out.push_str("</mark>");
        at = t.to;
    }
    out.push_str(&escape(&text[at..to]));
    if to < text.len() {
        out.push('…');
    }
    out
}

/// Up to `max_fragments` snippets of about `chars` bytes of `text`, each around a match.
/// With no match, the beginning of the text, unmarked (`None` when the text is empty).
pub fn snippets(h: &mut Highlighter, text: &str, marks: &[Mark], chars: usize, max_fragments: usize) -> Vec<String> {
    let mut toks: Vec<Tok> = Vec::new();
    let mut fragments: Vec<(usize, usize)> = Vec::new();
    let mut open: Option<(usize, usize)> = None;
    let lead = chars / 3;
    {
        let mut raw = h.raw.clone();
        let mut stream = raw.token_stream(text);
        while let Some(t) = stream.next() {
            if let Some((s, e)) = open
                && t.offset_from >= e
            {
                fragments.push((s, e));
                open = None;
                if fragments.len() >= max_fragments {
                    break;
                }
            }
            let mut tok = Tok {
                from: t.offset_from,
                to: t.offset_to,
                raw: t.text.clone(),
                stem: None,
                marked: false,
            };
            tok.marked = marks.iter().any(|m| h.matches(m, &mut tok));
            toks.push(tok);
            let mut first_marked = if toks.last().is_some_and(|t| t.marked) {
                Some(toks.len() - 1)
            } else {
                None
            };
            for m in marks {
                if let Mark::Phrase(stems) = m
                    && toks.len() >= stems.len()
                {
                    let start = toks.len() - stems.len();
                    if toks[start..].iter_mut().zip(stems).all(|(t, s)| h.has_stem(t, s)) {
                        for t in &mut toks[start..] {
                            t.marked = true;
                        }
                        first_marked = Some(first_marked.map_or(start, |f: usize| f.min(start)));
                    }
                }
            }
            if open.is_none()
                && let Some(i) = first_marked
            {
                let at = toks[i].from;
                let min_start = fragments.last().map_or(0, |f| f.1);
                // Start a few words before the match, at a word's start.
                let mut start = at;
                for t in toks[..i].iter().rev() {
                    if t.from < min_start || at - t.from > lead {
                        break;
                    }
                    start = t.from;
                }
                if start < min_start {
                    start = at;
                }
                let end = floor_boundary(text, start + chars);
                open = Some((start, end));
            }
        }
    }
    if let Some(f) = open {
        fragments.push(f);
    }
    if fragments.is_empty() {
        if text.trim().is_empty() {
            return Vec::new();
        }
        let end = floor_boundary(text, chars);
        // End at a word's end rather than inside one.
        let end = if end >= text.len() {
            end
        } else {
            toks.iter().take_while(|t| t.to <= end).last().map_or(end, |t| t.to)
        };
        return vec![render(text, 0, end, &[])];
    }
    fragments
        .into_iter()
        .map(|(s, e)| {
            // End after the last whole word inside the fragment.
            let e = if e >= text.len() {
                e
            } else {
                toks.iter().rfind(|t| t.from >= s && t.to <= e).map_or(e, |t| t.to)
            };
            render(text, s, e, &toks)
        })
        .collect()
}

/// The whole (short) text, escaped, with its matches marked: titles and labels.
pub fn highlight_all(h: &mut Highlighter, text: &str, marks: &[Mark]) -> String {
    snippets(h, text, marks, usize::MAX / 4, 1)
        .into_iter()
        .next()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marks(list: &[Mark]) -> Vec<Mark> {
        list.to_vec()
    }

    #[test]
    fn marks_words_prefixes_typos_and_phrases_and_escapes() {
        let mut a = Highlighter::new(Some(Language::English));
        let text = "We <b>collaborate</b> on documents & collaborative editing; editors collaborated.";
        let m = marks(&[Mark::Stem("collabor".into())]);
        let s = snippets(&mut a, text, &m, 200, 2);
        assert_eq!(
            s,
            vec![
                "We &lt;b&gt;<mark>collaborate</mark>&lt;/b&gt; on documents &amp; <mark>collaborative</mark> editing; editors <mark>collaborated</mark>."
            ]
        );
        let s = snippets(&mut a, text, &[Mark::Prefix("edit".into())], 200, 1);
        assert!(
            s[0].contains("<mark>editing</mark>") && s[0].contains("<mark>editors</mark>"),
            "{s:?}"
        );
        let s = snippets(&mut a, text, &[Mark::Fuzzy("documnets".into(), 2)], 200, 1);
        assert!(s[0].contains("<mark>documents</mark>"), "{s:?}");
        let s = snippets(
            &mut a,
            text,
            &[Mark::Phrase(vec!["collabor".into(), "edit".into()])],
            200,
            1,
        );
        assert!(
            s[0].contains("<mark>collaborative</mark> <mark>editing</mark>"),
            "{s:?}"
        );
        assert!(!s[0].contains("<mark>collaborate</mark>"), "{s:?}");
    }

    #[test]
    fn fragments_are_windows_around_matches() {
        let mut a = Highlighter::new(None);
        let filler = "lorem ipsum dolor sit amet ".repeat(40);
        let text = format!("{filler}needle one {filler}needle two {filler}");
        let s = snippets(&mut a, &text, &[Mark::Stem("needle".into())], 120, 3);
        assert_eq!(s.len(), 2, "{s:?}");
        assert!(s[0].starts_with('…') && s[0].ends_with('…'));
        assert!(s[0].contains("<mark>needle</mark> one") && s[1].contains("<mark>needle</mark> two"));
        assert!(s.iter().all(|f| f.len() < 160), "{s:?}");
        // no match: the beginning, unmarked
        let s = snippets(&mut a, &text, &[Mark::Stem("absent".into())], 30, 3);
        assert_eq!(s, vec!["lorem ipsum dolor sit amet…"]);
    }

    #[test]
    fn edit_distance() {
        assert!(within("colaborate", "collaborate", 1));
        assert!(within("teh", "the", 1));
        assert!(!within("cat", "dog", 2));
        assert!(within("naïve", "naive", 1));
    }
}
