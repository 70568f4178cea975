//! Input rules for document metadata. Errors name the field.

use crate::error::{Error, Result};

pub const MAX_TITLE_CHARS: usize = 200;
pub const MAX_SLUG_CHARS: usize = 100;

/// A trimmed, non-empty title of at most 200 characters without control characters.
pub fn validate_title(title: &str) -> Result<String> {
    let t = title.trim();
    if t.is_empty() {
        return Err(Error::validation("title", "must not be empty"));
    }
    if t.chars().count() > MAX_TITLE_CHARS {
        return Err(Error::validation(
            "title",
            format!("must be at most {MAX_TITLE_CHARS} characters"),
        ));
    }
    if t.chars().any(char::is_control) {
        return Err(Error::validation("title", "must not contain control characters"));
    }
    Ok(t.to_string())
}

/// Lowercase ASCII letters and digits in words joined by single hyphens.
pub fn validate_slug(slug: &str) -> Result<()> {
    let err = |m: &str| Err(Error::validation("slug", m));
    if slug.is_empty() || slug.len() > MAX_SLUG_CHARS {
        return err("must be 1 to 100 characters");
    }
    let ok_chars = slug
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !ok_chars || slug.starts_with('-') || slug.ends_with('-') || slug.contains("--") {
        return err("use lowercase letters, digits and single hyphens (like `my-first-post`)");
    }
    Ok(())
}

/// A slug made from a title: ASCII letters and digits, the rest folded into hyphens.
pub fn slugify(title: &str) -> String {
    let mut out = String::new();
    for c in title.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
        if out.len() >= 60 {
            break;
        }
    }
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() { "untitled".to_string() } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert_eq!(slugify("Hello, World!"), "hello-world");
        assert_eq!(slugify("  Ünïcode only ✓ "), "n-code-only");
        assert_eq!(slugify("!!!"), "untitled");
        assert!(validate_slug("my-first-post").is_ok());
        for bad in ["", "-a", "a-", "a--b", "A", "a b", "ü", &"a".repeat(101)] {
            assert!(validate_slug(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn titles() {
        assert_eq!(validate_title("  Hi  ").unwrap(), "Hi");
        assert!(validate_title("   ").is_err());
        assert!(validate_title(&"x".repeat(201)).is_err());
        assert!(validate_title(&"é".repeat(200)).is_ok());
        assert!(validate_title("a\u{0}b").is_err());
    }
}
