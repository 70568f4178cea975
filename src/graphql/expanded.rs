//! A limit checked between parsing and validation: how many fields a query asks for once
//! its fragments are expanded. async-graphql's validation walks a fragment each time it
//! is spread, so a few hundred bytes of fragments that each spread the previous one twice
//! (30 of them: 2^30 fields) kept a request computing for minutes before its complexity
//! limit could refuse it (and its recursion-depth check, which runs right after parsing,
//! walks them the same way). Here every fragment is counted once (memoized), so the check
//! costs the size of the query, and a query past `graphql.max_complexity` fields is
//! refused before either starts (each field counts at least 1 toward complexity, so
//! nothing the complexity limit accepts is refused here). The same walk gives the nesting
//! depth, so async-graphql's own parse and recursion check are not run after it.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{ErrorExtensionValues, ServerError, ServerResult, Variables};

/// The extension (one per schema). It also takes over async-graphql's recursion-depth
/// check (which walks every spread), so a query is parsed once.
pub struct ExpandedFields {
    pub max: usize,
    /// `limit_recursive_depth`: selection sets and fragments nested at most this deep.
    pub max_depth: usize,
}

impl ExtensionFactory for ExpandedFields {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Check {
            max: self.max as u64,
            max_depth: self.max_depth as u64,
        })
    }
}

struct Check {
    max: u64,
    max_depth: u64,
}

fn limit_exceeded(message: String) -> ServerError {
    let mut e = ServerError::new(message, None);
    let mut ext = ErrorExtensionValues::default();
    ext.set("code", "LIMIT_EXCEEDED");
    e.extensions = Some(ext);
    e
}

#[async_trait::async_trait]
impl Extension for Check {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        // A query that does not parse is left to `next`, which reports it as usual.
        let Ok(doc) = async_graphql::parser::parse_query(query) else {
            return next.run(ctx, query, variables).await;
        };
        let Size { fields, depth } = expanded(&doc);
        if fields > self.max {
            return Err(limit_exceeded(format!(
                "the query asks for more than {} fields once its fragments are expanded \
                 (graphql.max_complexity)",
                self.max
            )));
        }
        if depth == u64::MAX {
            let mut e = limit_exceeded("fragments spread each other in a cycle".into());
            if let Some(ext) = e.extensions.as_mut() {
                ext.set("code", "VALIDATION");
            }
            return Err(e);
        }
        if depth > self.max_depth {
            return Err(limit_exceeded(format!(
                "The recursion depth of the query cannot be greater than `{}`",
                self.max_depth
            )));
        }
        // Checked: `next` (async-graphql's parse and its walk of every spread) is not run.
        Ok(doc)
    }
}

/// A selection set's fields with every fragment spread expanded (saturating), and how
/// deep its selection sets and fragments nest, counted as async-graphql's recursion check
/// counts them (each field with a selection, spread and inline fragment one level).
#[derive(Clone, Copy, Default)]
struct Size {
    fields: u64,
    depth: u64,
}

/// The size of the document's largest operation; each fragment is counted once. A
/// fragment cycle nests without end: `depth` is `u64::MAX`.
fn expanded(doc: &ExecutableDocument) -> Size {
    let mut memo: HashMap<&str, Option<Size>> = HashMap::new();
    doc.operations
        .iter()
        .map(|(_, op)| size(&op.node.selection_set.node, doc, &mut memo))
        .fold(Size::default(), |a, b| Size {
            fields: a.fields.max(b.fields),
            depth: a.depth.max(b.depth),
        })
}

fn size<'a>(set: &'a SelectionSet, doc: &'a ExecutableDocument, memo: &mut HashMap<&'a str, Option<Size>>) -> Size {
    let mut total = Size::default();
    for item in &set.items {
        let (fields, depth) = match &item.node {
            Selection::Field(f) => {
                let inner = &f.node.selection_set.node;
                let sub = size(inner, doc, memo);
                let nested = if inner.items.is_empty() {
                    0
                } else {
                    sub.depth.saturating_add(1)
                };
                (1u64.saturating_add(sub.fields), nested)
            }
            Selection::InlineFragment(i) => {
                let sub = size(&i.node.selection_set.node, doc, memo);
                (sub.fields, sub.depth.saturating_add(1))
            }
            Selection::FragmentSpread(s) => {
                let name = s.node.fragment_name.node.as_str();
                let sub = match memo.get(name) {
                    Some(Some(n)) => *n,
                    // Being counted: a cycle, which nests without end (async-graphql's
                    // validation would recurse on it; its recursion check stopped that).
                    Some(None) => Size {
                        fields: 0,
                        depth: u64::MAX,
                    },
                    None => match doc.fragments.get(&s.node.fragment_name.node) {
                        None => Size::default(),
                        Some(fragment) => {
                            memo.insert(name, None);
                            let n = size(&fragment.node.selection_set.node, doc, memo);
                            memo.insert(name, Some(n));
                            n
                        }
                    },
                };
                (sub.fields, sub.depth.saturating_add(1))
            }
        };
        total.fields = total.fields.saturating_add(fields);
        total.depth = total.depth.max(depth);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(q: &str) -> u64 {
        expanded(&async_graphql::parser::parse_query(q).unwrap()).fields
    }

    #[test]
    fn fragments_count_each_time_they_are_spread() {
        assert_eq!(fields("{ me { id email } }"), 3);
        assert_eq!(
            fields("{ a: me { ...F } b: me { ...F } } fragment F on User { id email }"),
            6
        );
        assert_eq!(fields("{ me { ... on User { id } } }"), 2);
        let mut bomb = String::from("fragment F0 on Document { id title slug }\n");
        for i in 1..=60 {
            bomb.push_str(&format!("fragment F{i} on Document {{ ...F{p} ...F{p} }}\n", p = i - 1));
        }
        bomb.push_str("{ document(id: \"x\") { ...F60 } }");
        assert_eq!(fields(&bomb), 3 * (1 << 60) + 1, "counted at once, not walked");
        // Depth as async-graphql counts it: `me` with a selection, and the spread.
        let doc = async_graphql::parser::parse_query("{ ...F } fragment F on Query { me { id } }").unwrap();
        assert_eq!(expanded(&doc).depth, 2);
        // A cycle is left to validation.
        assert_eq!(
            fields("{ ...A } fragment A on Query { me { id } ...B } fragment B on Query { ...A }"),
            2
        );
    }
}
