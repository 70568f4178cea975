//! `on-metadata-change`: when a title is written with an empty slug, derive the slug
//! from the title.
use vellum_plugin_sdk::prelude::*;

#[derive(Default)]
struct Slugify;

/// ASCII letters and digits, lower-cased; everything else folds into single hyphens.
fn slugify(title: &str) -> String {
    let mut slug = String::new();
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug = slug.trim_end_matches('-');
    let slug: String = slug.chars().take(80).collect();
    slug.trim_end_matches('-').to_string()
}

impl Plugin for Slugify {
    fn on_metadata_change(&self, _ctx: &Context, mut doc: Document) -> Outcome {
        if !doc.slug.trim().is_empty() {
            return Outcome::Unchanged;
        }
        let slug = slugify(&doc.title);
        if slug.is_empty() {
            return reject("no-slug", "the title has no letters or digits to make a slug from; give a slug", Some("slug"));
        }
        doc.slug = slug;
        Outcome::Modified(doc)
    }
}

register_plugin!(Slugify);
