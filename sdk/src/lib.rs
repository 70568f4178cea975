//! Write Vellum plugins in Rust.
//!
//! A plugin is a type that implements [`Plugin`] (every hook defaults to "unchanged")
//! and is registered with [`register_plugin!`]; built for `wasm32-wasip2`, it is a
//! WebAssembly component that exports the hooks of the WIT package
//! `vellum:plugin@0.1.0` (`sdk/wit/plugin.wit`). The plugin's manifest (`plugin.toml`)
//! says which hooks the host calls. See the README for a complete plugin.
//!
//! ```ignore
//! use vellum_plugin_sdk::prelude::*;
//!
//! #[derive(Default)]
//! struct Shout;
//!
//! impl Plugin for Shout {
//!     fn before_save_version(&self, _ctx: &Context, mut doc: Document) -> Outcome {
//!         doc.title = doc.title.to_uppercase();
//!         Outcome::Modified(doc)
//!     }
//! }
//!
//! register_plugin!(Shout);
//! ```

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "plugin",
        pub_export_macro: true,
        export_macro_name: "__export_plugin",
        default_bindings_module: "vellum_plugin_sdk::bindings",
    });
}

use bindings::vellum::plugin::types;

/// The version of the WIT package this SDK implements.
pub const WIT_VERSION: &str = "0.1.0";

pub use types::{Document, Hook, HookContext as Context, Outcome, Rejection};

/// Host capabilities. Each must be requested in the manifest and granted by the
/// operator; calling one that is not granted stops the call with an error.
pub mod host {
    pub use crate::bindings::vellum::plugin::log::Level;

    /// Writes to the host log, under the plugin's name. Always granted.
    pub fn log(level: Level, message: &str) {
        crate::bindings::vellum::plugin::log::log(level, message);
    }

    /// The plugin's setting `key` (capability `config`), parsed from its JSON.
    pub fn config(key: &str) -> Option<serde_json::Value> {
        crate::bindings::vellum::plugin::config::get(key).and_then(|s| serde_json::from_str(&s).ok())
    }

    /// The plugin's own key/value state (capability `kv`).
    pub mod kv {
        pub fn get(key: &str) -> Option<Vec<u8>> {
            crate::bindings::vellum::plugin::kv::get(key)
        }
        pub fn set(key: &str, value: &[u8]) -> Result<(), String> {
            crate::bindings::vellum::plugin::kv::set(key, value)
        }
        pub fn delete(key: &str) {
            crate::bindings::vellum::plugin::kv::delete(key)
        }
    }

    /// Another document by id or slug, if the acting user can read it (capability
    /// `content`).
    pub fn document(id_or_slug: &str) -> Option<super::Document> {
        crate::bindings::vellum::plugin::content::get_document(id_or_slug)
    }
}

/// A plugin: implement the hooks it subscribes to; the rest stay "unchanged".
///
/// A fresh instance of the component serves every call, so `Self::default()` is made
/// for each call and nothing is kept between calls (use the `kv` capability for state).
pub trait Plugin: Default {
    /// Before a version is saved: reject, or modify title, slug or body.
    fn before_save_version(&self, ctx: &Context, doc: Document) -> Outcome {
        let _ = (ctx, doc);
        Outcome::Unchanged
    }
    /// Before a publish: reject, or modify.
    fn before_publish(&self, ctx: &Context, doc: Document) -> Outcome {
        let _ = (ctx, doc);
        Outcome::Unchanged
    }
    /// After a publish is durable (in the background): side effects only.
    fn after_publish(&self, ctx: &Context, doc: Document) -> Result<(), String> {
        let _ = (ctx, doc);
        Ok(())
    }
    /// Before a title, slug or status change is stored: reject, or modify metadata.
    fn on_metadata_change(&self, ctx: &Context, doc: Document) -> Outcome {
        let _ = (ctx, doc);
        Outcome::Unchanged
    }
    /// When content is delivered: the new HTML, or `None` to leave it.
    fn render(&self, ctx: &Context, doc: Document, html: String) -> Option<String> {
        let _ = (ctx, doc, html);
        None
    }
    /// When a version is saved: computed fields, stored under the plugin's name.
    fn enrich(&self, ctx: &Context, doc: Document) -> Result<serde_json::Value, String> {
        let _ = (ctx, doc);
        Ok(serde_json::Value::Object(Default::default()))
    }
}

/// A rejection, as a hook returns it: `return reject("banned-word", "…", Some("body"))`.
pub fn reject(code: &str, message: impl Into<String>, field: Option<&str>) -> Outcome {
    Outcome::Reject(Rejection {
        code: code.to_string(),
        message: message.into(),
        field: field.map(str::to_string),
    })
}

impl Document {
    /// The plugin-computed fields as JSON (an empty object when there are none).
    pub fn fields(&self) -> serde_json::Value {
        serde_json::from_str(&self.fields_json).unwrap_or_else(|_| serde_json::json!({}))
    }
    /// The body as ProseMirror JSON.
    pub fn body(&self) -> serde_json::Value {
        serde_json::from_str(&self.body_json).unwrap_or(serde_json::Value::Null)
    }
    /// Words in the plain-text body.
    pub fn word_count(&self) -> usize {
        self.body_text.split_whitespace().count()
    }
}

/// Forwards a panic's message to the host log before the call traps, so the
/// operator sees why (the host reports the call as failed).
#[doc(hidden)]
pub fn __install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            host::log(host::Level::Error, &format!("panicked: {info}"));
        }))
    });
}

/// Registers a [`Plugin`] type as the component's exports.
#[macro_export]
macro_rules! register_plugin {
    ($plugin:ty) => {
        const _: () = {
            use $crate::bindings::exports::vellum::plugin as __hooks;
            use $crate::{Context as __Ctx, Document as __Doc, Outcome as __Outcome, Plugin as __Plugin};

            struct __VellumPlugin;

            fn __make() -> $plugin {
                $crate::__install_panic_hook();
                <$plugin as ::core::default::Default>::default()
            }

            impl __hooks::before_save_version::Guest for __VellumPlugin {
                fn before_save_version(ctx: __Ctx, doc: __Doc) -> __Outcome {
                    __Plugin::before_save_version(&__make(), &ctx, doc)
                }
            }
            impl __hooks::before_publish::Guest for __VellumPlugin {
                fn before_publish(ctx: __Ctx, doc: __Doc) -> __Outcome {
                    __Plugin::before_publish(&__make(), &ctx, doc)
                }
            }
            impl __hooks::after_publish::Guest for __VellumPlugin {
                fn after_publish(ctx: __Ctx, doc: __Doc) -> ::core::result::Result<(), ::std::string::String> {
                    __Plugin::after_publish(&__make(), &ctx, doc)
                }
            }
            impl __hooks::on_metadata_change::Guest for __VellumPlugin {
                fn on_metadata_change(ctx: __Ctx, doc: __Doc) -> __Outcome {
                    __Plugin::on_metadata_change(&__make(), &ctx, doc)
                }
            }
            impl __hooks::render::Guest for __VellumPlugin {
                fn render(
                    ctx: __Ctx,
                    doc: __Doc,
                    html: ::std::string::String,
                ) -> ::core::option::Option<::std::string::String> {
                    __Plugin::render(&__make(), &ctx, doc, html)
                }
            }
            impl __hooks::enrich::Guest for __VellumPlugin {
                fn enrich(
                    ctx: __Ctx,
                    doc: __Doc,
                ) -> ::core::result::Result<::std::string::String, ::std::string::String> {
                    __Plugin::enrich(&__make(), &ctx, doc).map(|v| v.to_string())
                }
            }

    $crate::bindings::__export_plugin!(__VellumPlugin with_types_in $crate::bindings);
        };
    };
}

/// `use vellum_plugin_sdk::prelude::*;` brings in what a plugin needs.
pub mod prelude {
    pub use crate::host::{self, Level};
    pub use crate::{Context, Document, Hook, Outcome, Plugin, Rejection, register_plugin, reject};
    pub use serde_json::{Value, json};
}
