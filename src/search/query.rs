//! The query syntax, parsed here rather than by tantivy's parser so that every form the
//! search box documents (fuzzy `word~`, prefix `word*`, field filters) means one thing,
//! errors say where they are, and the highlighter knows exactly what matched.
//!
//! ```text
//! query   := or
//! or      := and ("OR" and)*
//! and     := unary ("AND"? unary)*          words side by side must all match
//! unary   := ("NOT" | "-") unary | primary
//! primary := "(" or ")" | (field ":")? atom
//! atom    := '"' words '"' | word "*" | word "~" [0-2] | word
//! field   := title | label | body
//! ```

use tantivy::Term;
use tantivy::query::{
    AllQuery, BooleanQuery, BoostQuery, EmptyQuery, FuzzyTermQuery, Occur, PhraseQuery, Query, RegexQuery, TermQuery,
};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::tokenizer::TextAnalyzer;

use super::schema::{self, Fields};

/// Where a query may look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Title,
    Label,
    Body,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Atom {
    Word(String),
    Phrase(String),
    Prefix(String),
    Fuzzy(String, u8),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Or(Vec<Node>),
    And(Vec<Node>),
    Not(Box<Node>),
    Leaf(Option<Target>, Atom),
}

/// A syntax error: what is wrong, and the column (1-based, in characters) where.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    pub column: usize,
    pub message: String,
}

impl std::fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (at character {})", self.message, self.column)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Open,
    Close,
    And,
    Or,
    Not,
    Leaf(Option<Target>, Atom),
}

fn err(column: usize, message: impl Into<String>) -> SyntaxError {
    SyntaxError {
        column,
        message: message.into(),
    }
}

const MAX_QUERY_CHARS: usize = 1000;
const MAX_LEAVES: usize = 64;

fn lex(input: &str) -> Result<Vec<(usize, Tok)>, SyntaxError> {
    let chars: Vec<char> = input.chars().collect();
    if chars.len() > MAX_QUERY_CHARS {
        return Err(err(
            MAX_QUERY_CHARS + 1,
            format!("a query has at most {MAX_QUERY_CHARS} characters"),
        ));
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let col = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        match c {
            '(' => {
                out.push((col, Tok::Open));
                i += 1;
                continue;
            }
            ')' => {
                out.push((col, Tok::Close));
                i += 1;
                continue;
            }
            '-' if chars.get(i + 1).is_some_and(|n| !n.is_whitespace()) => {
                out.push((col, Tok::Not));
                i += 1;
                continue;
            }
            _ => {}
        }
        // A field name and a colon, then a phrase or a word.
        let mut field = None;
        let mut j = i;
        while j < chars.len() && chars[j].is_ascii_alphabetic() {
            j += 1;
        }
        if j > i && chars.get(j) == Some(&':') {
            let name: String = chars[i..j].iter().collect();
            field = Some(match name.to_ascii_lowercase().as_str() {
                "title" => Target::Title,
                "label" => Target::Label,
                "body" | "text" => Target::Body,
                _ => {
                    return Err(err(
                        col,
                        format!("unknown field `{name}:`; use title:, label: or body: (or quote the text)"),
                    ));
                }
            });
            i = j + 1;
            if i >= chars.len() || chars[i].is_whitespace() || chars[i] == ')' {
                return Err(err(col, format!("nothing to search for after `{name}:`")));
            }
        }
        if chars[i] == '"' {
            let start = i;
            i += 1;
            let mut text = String::new();
            while i < chars.len() && chars[i] != '"' {
                text.push(chars[i]);
                i += 1;
            }
            if i >= chars.len() {
                return Err(err(start + 1, "this quote is never closed"));
            }
            i += 1;
            out.push((start + 1, Tok::Leaf(field, Atom::Phrase(text))));
            continue;
        }
        let start = i;
        let mut word = String::new();
        while i < chars.len() && !chars[i].is_whitespace() && !matches!(chars[i], '(' | ')' | '"') {
            word.push(chars[i]);
            i += 1;
        }
        if word.is_empty() {
            return Err(err(start + 1, format!("unexpected `{}`", chars[start])));
        }
        if field.is_none() {
            match word.as_str() {
                "AND" => {
                    out.push((start + 1, Tok::And));
                    continue;
                }
                "OR" => {
                    out.push((start + 1, Tok::Or));
                    continue;
                }
                "NOT" => {
                    out.push((start + 1, Tok::Not));
                    continue;
                }
                _ => {}
            }
        }
        let atom = atom(&word, start + 1)?;
        out.push((start + 1, Tok::Leaf(field, atom)));
    }
    Ok(out)
}

fn atom(word: &str, col: usize) -> Result<Atom, SyntaxError> {
    if let Some(stem) = word.strip_suffix('*') {
        if stem.contains('*') || stem.contains('~') {
            return Err(err(col, "a `*` may only end a word (a prefix: `coll*`)"));
        }
        if stem.chars().filter(|c| c.is_alphanumeric()).count() < 2 {
            return Err(err(col, "a prefix needs at least two letters before the `*`"));
        }
        return Ok(Atom::Prefix(stem.to_string()));
    }
    if let Some(at) = word.find('~') {
        let (w, rest) = (&word[..at], &word[at + 1..]);
        let distance = match rest {
            "" => {
                if w.chars().count() <= 4 {
                    1
                } else {
                    2
                }
            }
            "0" => 0,
            "1" => 1,
            "2" => 2,
            _ => {
                return Err(err(
                    col + w.chars().count(),
                    "a `~` ends a word, optionally with an edit distance of 0, 1 or 2 (`colaborate~`, `teh~1`)",
                ));
            }
        };
        if w.is_empty() || w.contains('*') {
            return Err(err(col, "a `~` must follow a word"));
        }
        return Ok(Atom::Fuzzy(w.to_string(), distance));
    }
    if word.contains('*') {
        return Err(err(col, "a `*` may only end a word (a prefix: `coll*`)"));
    }
    Ok(Atom::Word(word.to_string()))
}

struct Parser {
    toks: Vec<(usize, Tok)>,
    at: usize,
    end: usize,
    leaves: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at).map(|(_, t)| t)
    }
    fn col(&self) -> usize {
        self.toks.get(self.at).map_or(self.end, |(c, _)| *c)
    }

    fn or(&mut self) -> Result<Node, SyntaxError> {
        let mut parts = vec![self.and()?];
        while self.peek() == Some(&Tok::Or) {
            self.at += 1;
            if matches!(self.peek(), None | Some(Tok::Close | Tok::Or | Tok::And)) {
                return Err(err(self.col(), "expected something to search for after OR"));
            }
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Node::Or(parts)
        })
    }

    fn and(&mut self) -> Result<Node, SyntaxError> {
        let mut parts = vec![self.unary()?];
        loop {
            match self.peek() {
                Some(Tok::And) => {
                    self.at += 1;
                    if matches!(self.peek(), None | Some(Tok::Close | Tok::Or | Tok::And)) {
                        return Err(err(self.col(), "expected something to search for after AND"));
                    }
                    parts.push(self.unary()?);
                }
                Some(Tok::Open | Tok::Not | Tok::Leaf(..)) => parts.push(self.unary()?),
                _ => break,
            }
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Node::And(parts)
        })
    }

    fn unary(&mut self) -> Result<Node, SyntaxError> {
        if self.peek() == Some(&Tok::Not) {
            self.at += 1;
            if matches!(self.peek(), None | Some(Tok::Close | Tok::Or | Tok::And)) {
                return Err(err(self.col(), "expected something to leave out after NOT"));
            }
            return Ok(Node::Not(Box::new(self.unary()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Node, SyntaxError> {
        let col = self.col();
        match self.toks.get(self.at).map(|(_, t)| t.clone()) {
            Some(Tok::Open) => {
                self.depth += 1;
                if self.depth > 16 {
                    return Err(err(col, "parentheses nest at most 16 deep"));
                }
                self.at += 1;
                if self.peek() == Some(&Tok::Close) {
                    return Err(err(col, "empty parentheses"));
                }
                let inner = self.or()?;
                if self.peek() != Some(&Tok::Close) {
                    return Err(err(col, "this parenthesis is never closed"));
                }
                self.at += 1;
                self.depth -= 1;
                Ok(inner)
            }
            Some(Tok::Leaf(field, atom)) => {
                self.at += 1;
                self.leaves += 1;
                if self.leaves > MAX_LEAVES {
                    return Err(err(col, format!("a query has at most {MAX_LEAVES} terms")));
                }
                Ok(Node::Leaf(field, atom))
            }
            Some(Tok::Close) => Err(err(col, "`)` without a matching `(`")),
            Some(Tok::And) => Err(err(col, "AND needs something to search for before it")),
            Some(Tok::Or) => Err(err(col, "OR needs something to search for before it")),
            Some(Tok::Not) => unreachable!("handled by unary"),
            None => Err(err(col, "expected something to search for")),
        }
    }
}

/// Parses a query (see the module's grammar).
pub fn parse(input: &str) -> Result<Node, SyntaxError> {
    let toks = lex(input)?;
    if toks.is_empty() {
        return Err(err(1, "the query is empty"));
    }
    let mut p = Parser {
        toks,
        at: 0,
        end: input.chars().count() + 1,
        leaves: 0,
        depth: 0,
    };
    let node = p.or()?;
    if p.at < p.toks.len() {
        let col = p.col();
        return Err(match p.peek() {
            Some(Tok::Close) => err(col, "`)` without a matching `(`"),
            _ => err(col, "unexpected text"),
        });
    }
    Ok(node)
}

/// What the highlighter marks in a text: the positive terms of a query.
#[derive(Debug, Clone, PartialEq)]
pub enum Mark {
    /// A token whose stem is this.
    Stem(String),
    /// A token (as written, lowercased) that starts with this.
    Prefix(String),
    /// A token (as written, lowercased) at most this many edits from this.
    Fuzzy(String, u8),
    /// Consecutive tokens with these stems.
    Phrase(Vec<String>),
}

/// Builds tantivy queries and highlight marks from a parsed query.
pub struct Builder<'a> {
    pub fields: &'a Fields,
    pub stemmed: TextAnalyzer,
    pub raw: TextAnalyzer,
}

impl Builder<'_> {
    fn targets(&self, t: Option<Target>) -> Vec<(Field, Field, f32)> {
        let f = self.fields;
        let title = (f.title, f.title_raw, 2.0);
        let label = (f.label, f.label_raw, 1.5);
        let body = (f.body, f.body_raw, 1.0);
        match t {
            None => vec![title, label, body],
            Some(Target::Title) => vec![title],
            Some(Target::Label) => vec![label],
            Some(Target::Body) => vec![body],
        }
    }

    pub fn query(&mut self, node: &Node) -> Box<dyn Query> {
        match node {
            Node::Or(parts) => Box::new(BooleanQuery::new(
                parts.iter().map(|p| (Occur::Should, self.query(p))).collect(),
            )),
            Node::And(parts) => {
                let mut clauses: Vec<(Occur, Box<dyn Query>)> = parts
                    .iter()
                    .map(|p| match p {
                        Node::Not(inner) => (Occur::MustNot, self.query(inner)),
                        p => (Occur::Must, self.query(p)),
                    })
                    .collect();
                if clauses.iter().all(|(o, _)| *o == Occur::MustNot) {
                    clauses.push((Occur::Must, Box::new(AllQuery)));
                }
                Box::new(BooleanQuery::new(clauses))
            }
            Node::Not(inner) => Box::new(BooleanQuery::new(vec![
                (Occur::Must, Box::new(AllQuery)),
                (Occur::MustNot, self.query(inner)),
            ])),
            Node::Leaf(target, atom) => self.leaf(*target, atom),
        }
    }

    fn leaf(&mut self, target: Option<Target>, atom: &Atom) -> Box<dyn Query> {
        let mut per_field: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for (stemmed, raw, boost) in self.targets(target) {
            let q: Option<Box<dyn Query>> = match atom {
                Atom::Word(w) | Atom::Phrase(w) => {
                    let toks = schema::tokens(&mut self.stemmed, w);
                    match toks.len() {
                        0 => None,
                        1 => Some(Box::new(TermQuery::new(
                            Term::from_field_text(stemmed, &toks[0]),
                            IndexRecordOption::WithFreqs,
                        ))),
                        _ => Some(Box::new(PhraseQuery::new(
                            toks.iter().map(|t| Term::from_field_text(stemmed, t)).collect(),
                        ))),
                    }
                }
                Atom::Prefix(p) => schema::tokens(&mut self.raw, p).last().and_then(|t| {
                    RegexQuery::from_pattern(&format!("{}.*", regex_escape(t)), raw)
                        .ok()
                        .map(|q| Box::new(q) as Box<dyn Query>)
                }),
                Atom::Fuzzy(w, d) => schema::tokens(&mut self.raw, w)
                    .first()
                    .map(|t| Box::new(FuzzyTermQuery::new(Term::from_field_text(raw, t), *d, true)) as Box<dyn Query>),
            };
            if let Some(q) = q {
                per_field.push((Occur::Should, Box::new(BoostQuery::new(q, boost))));
            }
        }
        if per_field.is_empty() {
            return Box::new(EmptyQuery);
        }
        Box::new(BooleanQuery::new(per_field))
    }

    /// The marks for text of `target`: the query's terms that are not under a NOT.
    pub fn marks(&mut self, node: &Node, target: Target) -> Vec<Mark> {
        let mut out = Vec::new();
        self.collect_marks(node, target, &mut out);
        out
    }

    fn collect_marks(&mut self, node: &Node, target: Target, out: &mut Vec<Mark>) {
        match node {
            Node::Or(parts) | Node::And(parts) => {
                for p in parts {
                    self.collect_marks(p, target, out);
                }
            }
            Node::Not(_) => {}
            Node::Leaf(t, _) if t.is_some_and(|t| t != target) => {}
            Node::Leaf(_, atom) => match atom {
                Atom::Word(w) | Atom::Phrase(w) => {
                    let toks = schema::tokens(&mut self.stemmed, w);
                    match toks.len() {
                        0 => {}
                        1 => out.push(Mark::Stem(toks[0].clone())),
                        _ => out.push(Mark::Phrase(toks)),
                    }
                }
                Atom::Prefix(p) => {
                    if let Some(t) = schema::tokens(&mut self.raw, p).last() {
                        out.push(Mark::Prefix(t.clone()));
                    }
                }
                Atom::Fuzzy(w, d) => {
                    if let Some(t) = schema::tokens(&mut self.raw, w).first() {
                        out.push(Mark::Fuzzy(t.clone(), *d));
                    }
                }
            },
        }
    }
}

fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if !c.is_alphanumeric() {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(a: Atom) -> Node {
        Node::Leaf(None, a)
    }
    fn word(w: &str) -> Node {
        leaf(Atom::Word(w.into()))
    }

    #[test]
    fn precedence_and_forms() {
        assert_eq!(
            parse("a b OR c").unwrap(),
            Node::Or(vec![Node::And(vec![word("a"), word("b")]), word("c")])
        );
        assert_eq!(
            parse("a AND NOT (b OR -c)").unwrap(),
            Node::And(vec![
                word("a"),
                Node::Not(Box::new(Node::Or(vec![word("b"), Node::Not(Box::new(word("c")))])))
            ])
        );
        assert_eq!(
            parse("title:\"big news\" coll* colaborate~ teh~1").unwrap(),
            Node::And(vec![
                Node::Leaf(Some(Target::Title), Atom::Phrase("big news".into())),
                leaf(Atom::Prefix("coll".into())),
                leaf(Atom::Fuzzy("colaborate".into(), 2)),
                leaf(Atom::Fuzzy("teh".into(), 1)),
            ])
        );
        // lowercase operators are words; a dash inside a word is not NOT
        assert_eq!(
            parse("and co-author").unwrap(),
            Node::And(vec![word("and"), word("co-author")])
        );
    }

    #[test]
    fn errors_say_where() {
        let cases = [
            ("", 1, "empty"),
            ("big \"news", 5, "never closed"),
            ("(a OR b", 1, "never closed"),
            ("a) b", 2, "without a matching"),
            ("a AND", 6, "after AND"),
            ("OR a", 1, "before it"),
            ("a NOT", 6, "after NOT"),
            ("colour:red", 1, "unknown field"),
            ("title: x", 1, "nothing to search for"),
            ("c*", 1, "two letters"),
            ("*ab", 1, "only end"),
            ("word~7", 5, "edit distance"),
            ("()", 1, "empty parentheses"),
        ];
        for (q, col, text) in cases {
            let e = parse(q).expect_err(q);
            assert_eq!(e.column, col, "{q}: {e}");
            assert!(e.message.contains(text), "{q}: {e}");
        }
        assert!(
            parse(&"a ".repeat(70))
                .unwrap_err()
                .message
                .contains("at most 64 terms")
        );
        assert!(parse(&"(".repeat(20)).unwrap_err().message.contains("16 deep"));
    }
}
