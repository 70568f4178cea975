//! A limit checked between parsing and validation: how many fields a query asks for once
//! its fragments are expanded. async-graphql's validation walks a fragment each time it
//! is spread, so a few hundred bytes of fragments that each spread the previous one twice
//! (30 of them: 2^30 fields) kept a request computing for minutes before its complexity
//! limit could refuse it (and its recursion-depth check, which runs right after parsing,
//! walks them the same way). Here every fragment is counted once (memoized), so the check
//! costs the size of the query, and a query past `graphql.max_complexity` fields is
//! refused before either starts (each field counts at least 1 toward complexity, so
//! nothing the complexity limit accepts is refused here).

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{ErrorExtensionValues, ServerError, ServerResult, Variables};

/// The extension (one per schema).
pub struct ExpandedFields {
    pub max: usize,
}

impl ExtensionFactory for ExpandedFields {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Check { max: self.max as u64 })
    }
}

struct Check {
    max: u64,
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
        // Before `next`: async-graphql's own recursion-depth check runs inside it and walks
        // every spread as well. A query that does not parse is left to `next` to report.
        if let Ok(doc) = async_graphql::parser::parse_query(query) {
            let fields = expanded_fields(&doc);
            if fields > self.max {
                let mut e = ServerError::new(
                    format!(
                        "the query asks for more than {} fields once its fragments are expanded \
                         (graphql.max_complexity)",
                        self.max
                    ),
                    None,
                );
                let mut ext = ErrorExtensionValues::default();
                ext.set("code", "LIMIT_EXCEEDED");
                e.extensions = Some(ext);
                return Err(e);
            }
        }
        next.run(ctx, query, variables).await
    }
}

/// The fields of the document's largest operation with every fragment spread expanded;
/// saturating, each fragment counted once. A fragment cycle counts as nothing here
/// (validation refuses it next).
pub fn expanded_fields(doc: &ExecutableDocument) -> u64 {
    let mut memo: HashMap<&str, Option<u64>> = HashMap::new();
    doc.operations
        .iter()
        .map(|(_, op)| count(&op.node.selection_set.node, doc, &mut memo))
        .max()
        .unwrap_or(0)
}

fn count<'a>(set: &'a SelectionSet, doc: &'a ExecutableDocument, memo: &mut HashMap<&'a str, Option<u64>>) -> u64 {
    let mut total = 0u64;
    for item in &set.items {
        let n = match &item.node {
            Selection::Field(f) => 1u64.saturating_add(count(&f.node.selection_set.node, doc, memo)),
            Selection::InlineFragment(i) => count(&i.node.selection_set.node, doc, memo),
            Selection::FragmentSpread(s) => {
                let name = s.node.fragment_name.node.as_str();
                match memo.get(name) {
                    Some(Some(n)) => *n,
                    // Being counted: a cycle.
                    Some(None) => 0,
                    None => match doc.fragments.get(&s.node.fragment_name.node) {
                        None => 0,
                        Some(fragment) => {
                            memo.insert(name, None);
                            let n = count(&fragment.node.selection_set.node, doc, memo);
                            memo.insert(name, Some(n));
                            n
                        }
                    },
                }
            }
        };
        total = total.saturating_add(n);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(q: &str) -> u64 {
        expanded_fields(&async_graphql::parser::parse_query(q).unwrap())
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
        // A cycle is left to validation.
        assert_eq!(
            fields("{ ...A } fragment A on Query { me { id } ...B } fragment B on Query { ...A }"),
            2
        );
    }
}
