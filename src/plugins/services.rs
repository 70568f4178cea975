//! What plugins reach of the server: the capability services behind a call (`kv` in the
//! database, `content` through the same access rules as the API), and the conversion of
//! documents to and from the WIT record.

use std::sync::Arc;

use tokio::runtime::Handle;

use super::runtime::Services;
use super::{Caller, Record};
use crate::auth::Principal;
use crate::content::Body;
use crate::documents::Document;
use crate::publishing::{self, Key};
use crate::state::AppState;

/// The services of one request's calls: the app, acting as `who`.
struct AppServices {
    app: AppState,
    who: Principal,
    rt: Handle,
}

impl Services for AppServices {
    fn kv_get(&self, plugin: &str, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        self.rt.block_on(self.app.store.plugin_kv_get(plugin, key))
    }
    fn kv_set(&self, plugin: &str, key: &str, value: &[u8], quota: u64) -> anyhow::Result<Result<(), String>> {
        self.rt
            .block_on(self.app.store.plugin_kv_set(plugin, key, value, quota))
    }
    fn kv_delete(&self, plugin: &str, key: &str) -> anyhow::Result<()> {
        self.rt.block_on(self.app.store.plugin_kv_delete(plugin, key))
    }
    fn document(&self, id_or_slug: &str) -> anyhow::Result<Option<Record>> {
        self.rt.block_on(async {
            let key = || match uuid::Uuid::parse_str(id_or_slug) {
                Ok(id) => Key::Id(id),
                Err(_) => Key::Slug(id_or_slug),
            };
            // The draft for a user who may read it; otherwise what readers get.
            let readable = match publishing::read(&self.app, &self.who, key(), true).await {
                Ok(r) => r,
                Err(_) => match publishing::read(&self.app, &self.who, key(), false).await {
                    Ok(r) => r,
                    Err(_) => return Ok(None),
                },
            };
            let body = match publishing::body(&self.app, &readable).await {
                Ok(Some(b)) => b,
                _ => Body::empty(),
            };
            let fields = self
                .app
                .store
                .latest_version_fields(readable.doc.id)
                .await?
                .unwrap_or_else(|| "{}".into());
            Ok(Some(record(&readable.doc, None, &body, &fields)))
        })
    }
}

/// The caller of hooks run for `who` in one request.
pub fn caller(app: &AppState, who: &Principal) -> Caller {
    Caller {
        actor: who.user().map(|u| u.id),
        request_id: uuid::Uuid::now_v7().to_string(),
        services: Arc::new(AppServices {
            app: app.clone(),
            who: who.clone(),
            rt: Handle::current(),
        }),
    }
}

/// A document as plugins see it.
pub fn record(doc: &Document, version: Option<u32>, body: &Body, fields: &str) -> Record {
    Record {
        id: doc.id.to_string(),
        slug: doc.slug.clone(),
        title: doc.title.clone(),
        status: doc.status.as_str().to_string(),
        version,
        body_text: body.text(),
        body_html: body.html(),
        body_json: body.json().to_string(),
        fields_json: fields.to_string(),
    }
}

/// Metadata only (`on-metadata-change`): the bodies are left empty.
pub fn metadata_record(doc: &Document) -> Record {
    Record {
        id: doc.id.to_string(),
        slug: doc.slug.clone(),
        title: doc.title.clone(),
        status: doc.status.as_str().to_string(),
        version: None,
        body_text: String::new(),
        body_html: String::new(),
        body_json: String::new(),
        fields_json: "{}".into(),
    }
}
