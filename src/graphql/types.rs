//! GraphQL object types: thin views over the capability modules' structs.

use async_graphql::{Context, Enum, ID, InputObject, Json, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::{caller, gql, state};
use crate::auth::policy::Access;
use crate::auth::{self, ApiToken, Role, TokenScope};
use crate::content::{self, diff::DiffOp};
use crate::documents::{self, DocStatus};
use crate::publishing::{self, Readable, View};
use crate::store::{self, OrderField};
use crate::versions;

pub struct User {
    pub user: auth::User,
    /// Whether the email may be shown whoever asks (the answer to `register`/`login`).
    pub own: bool,
}

impl User {
    pub fn new(user: auth::User) -> Self {
        Self { user, own: false }
    }
    pub fn own(user: auth::User) -> Self {
        Self { user, own: true }
    }
}

#[Object]
impl User {
    async fn id(&self) -> ID {
        ID(self.user.id.to_string())
    }
    /// Visible to the user themself and to admins; null for anyone else.
    async fn email(&self, ctx: &Context<'_>) -> Option<&str> {
        let me = caller(ctx).user();
        let allowed = self.own || me.is_some_and(|u| u.id == self.user.id || u.role == Role::Admin);
        allowed.then_some(self.user.email.as_str())
    }
    async fn display_name(&self) -> &str {
        &self.user.display_name
    }
    async fn role(&self) -> Role {
        self.user.role
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.user.created_at
    }
}

/// A user by id, as other users see them (`None` stays `None`).
pub(super) async fn user(ctx: &Context<'_>, id: Option<uuid::Uuid>) -> async_graphql::Result<Option<User>> {
    let Some(id) = id else { return Ok(None) };
    Ok(state(ctx).store.user_by_id(id).await.map_err(gql)?.map(User::new))
}

/// A document as one query shows it: the published view (title and body as
/// published) or the live one (`document(…, draft: true)`, lists and mutations).
pub struct Document {
    pub doc: documents::Document,
    pub view: View,
    /// The caller's access, when the resolver that produced this already knows it.
    pub access: Option<Access>,
}

impl From<documents::Document> for Document {
    fn from(doc: documents::Document) -> Self {
        Self {
            doc,
            view: View::Live,
            access: None,
        }
    }
}

impl From<Readable> for Document {
    fn from(r: Readable) -> Self {
        Self {
            doc: r.doc,
            view: r.view,
            access: Some(r.access),
        }
    }
}

/// What the caller may do with a document.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum DocumentAccess {
    /// Only its published content.
    None,
    Read,
    Write,
    /// Also delete and share.
    Manage,
}

impl From<Access> for DocumentAccess {
    fn from(a: Access) -> Self {
        match a {
            Access::None => DocumentAccess::None,
            Access::Read => DocumentAccess::Read,
            Access::Write => DocumentAccess::Write,
            Access::Manage => DocumentAccess::Manage,
        }
    }
}

#[Object]
impl Document {
    async fn id(&self) -> ID {
        ID(self.doc.id.to_string())
    }
    /// The published title in the published view (the live title when nothing is
    /// published); the live title otherwise.
    async fn title(&self, ctx: &Context<'_>) -> async_graphql::Result<String> {
        if self.view == View::Published
            && let Some(v) = publishing::published_version(state(ctx), &self.doc)
                .await
                .map_err(gql)?
        {
            return Ok(v.title);
        }
        Ok(self.doc.title.clone())
    }
    async fn slug(&self) -> &str {
        &self.doc.slug
    }
    async fn status(&self) -> DocStatus {
        self.doc.status
    }
    /// Bumped by every metadata write; pass it back to `updateDocument`.
    async fn lock_version(&self) -> i64 {
        self.doc.lock_version
    }
    async fn owner(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        user(ctx, Some(self.doc.owner_id)).await
    }
    async fn published_version_id(&self) -> Option<ID> {
        self.doc.published_version_id.map(|v| ID(v.to_string()))
    }
    /// The version readers get, while the document is published.
    async fn published_version(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Version>> {
        let v = publishing::published_version(state(ctx), &self.doc)
            .await
            .map_err(gql)?;
        Ok(v.map(Version))
    }
    /// The body: the published version's in the published view (null when nothing is
    /// published), the live document's with `draft: true`.
    async fn body(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Body>> {
        let st = state(ctx);
        let r = Readable {
            doc: self.doc.clone(),
            access: self.access.unwrap_or(Access::None),
            view: self.view,
        };
        Ok(publishing::delivered_body(st, caller(ctx), &r)
            .await
            .map_err(gql)?
            .map(Body))
    }
    /// What the caller may do with this document.
    async fn my_access(&self, ctx: &Context<'_>) -> async_graphql::Result<DocumentAccess> {
        if let Some(a) = self.access {
            return Ok(a.into());
        }
        let who = caller(ctx);
        let found = state(ctx)
            .store
            .document_by_id(self.doc.id, who.user().map(|u| u.id))
            .await
            .map_err(gql)?;
        let access = found.map_or(Access::None, |(d, g)| auth::policy::document_access(who, d.owner_id, g));
        Ok(access.into())
    }
    /// Fields plugins computed for the newest version (`enrich`), keyed by plugin name;
    /// `{}` before the first version.
    async fn fields(&self, ctx: &Context<'_>) -> async_graphql::Result<Json<serde_json::Value>> {
        let fields = state(ctx)
            .store
            .latest_version_fields(self.doc.id)
            .await
            .map_err(|e| gql(crate::error::Error::from(e)))?;
        Ok(Json(
            fields
                .and_then(|f| serde_json::from_str(&f).ok())
                .unwrap_or_else(|| serde_json::json!({})),
        ))
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.doc.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.doc.updated_at
    }
}

/// A body in every format.
pub struct Body(pub content::Body);

#[Object]
impl Body {
    /// Sanitized HTML.
    async fn html(&self) -> String {
        self.0.html()
    }
    /// CommonMark (underline as `<u>`).
    async fn markdown(&self) -> String {
        self.0.markdown()
    }
    /// ProseMirror JSON, as TipTap's `getJSON()` gives it.
    async fn json(&self) -> Json<serde_json::Value> {
        Json(self.0.json().clone())
    }
    /// Plain text, blocks separated by a blank line.
    async fn text(&self) -> String {
        self.0.text()
    }
}

/// A body given to `setBody`: exactly one of the formats.
#[derive(InputObject)]
pub struct BodyInput {
    pub html: Option<String>,
    pub markdown: Option<String>,
    pub json: Option<Json<serde_json::Value>>,
}

impl BodyInput {
    pub fn into_input(self, field: &str) -> Result<content::BodyInput, crate::error::Error> {
        Ok(content::BodyInput::one_of(
            field,
            self.html,
            self.markdown,
            self.json.map(|j| j.0),
        )?)
    }
}

/// A named version of a document.
pub struct Version(pub store::Version);

#[Object]
impl Version {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn document_id(&self) -> ID {
        ID(self.0.document_id.to_string())
    }
    /// 1, 2, 3… within the document.
    async fn number(&self) -> i64 {
        self.0.number
    }
    async fn label(&self) -> &str {
        &self.0.label
    }
    /// The document's title when the version was saved.
    async fn title(&self) -> &str {
        &self.0.title
    }
    async fn author(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        user(ctx, self.0.author_id).await
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// For a version that records a restore: the number of the version restored.
    async fn restored_from(&self) -> Option<i64> {
        self.0.restored_from
    }
    /// Fields plugins computed when the version was saved (`enrich`), keyed by plugin
    /// name: `{"word-count": {"words": 412, "readingMinutes": 3}}`.
    async fn fields(&self) -> Json<serde_json::Value> {
        Json(serde_json::from_str(&self.0.fields).unwrap_or_else(|_| serde_json::json!({})))
    }
    /// Whether this is the version readers get now.
    async fn published(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        let found = state(ctx)
            .store
            .document_by_id(self.0.document_id, None)
            .await
            .map_err(gql)?;
        Ok(found.is_some_and(|(d, _)| publishing::is_public(&d) && d.published_version_id == Some(self.0.id)))
    }
    /// Plain text at that moment.
    async fn text(&self) -> &str {
        &self.0.text
    }
    async fn body(&self, ctx: &Context<'_>) -> async_graphql::Result<Body> {
        Ok(Body(versions::body(state(ctx), self.0.id).await.map_err(gql)?))
    }
}

#[derive(SimpleObject)]
pub struct VersionEdge {
    pub cursor: String,
    pub node: Version,
}

#[derive(SimpleObject)]
pub struct VersionConnection {
    pub edges: Vec<VersionEdge>,
    pub page_info: PageInfo,
}

impl VersionConnection {
    pub fn new(versions: Vec<store::Version>, has_next_page: bool) -> Self {
        let edges: Vec<VersionEdge> = versions
            .into_iter()
            .map(|v| VersionEdge {
                cursor: v.number.to_string(),
                node: Version(v),
            })
            .collect();
        let end_cursor = edges.last().map(|e| e.cursor.clone());
        Self {
            edges,
            page_info: PageInfo {
                has_next_page,
                end_cursor,
            },
        }
    }
}

/// A run of equal, inserted or deleted text.
#[derive(SimpleObject)]
pub struct DiffPart {
    pub op: DiffOp,
    pub text: String,
}

/// Plain-text differences between two versions (or a version and the live document).
#[derive(SimpleObject)]
pub struct VersionDiff {
    /// Whole lines: for a side-by-side or line view.
    pub lines: Vec<DiffPart>,
    /// Words and the spaces between them: for an inline view.
    pub words: Vec<DiffPart>,
}

impl VersionDiff {
    pub fn new(lines: Vec<content::diff::DiffPart>, words: Vec<content::diff::DiffPart>) -> Self {
        let map = |parts: Vec<content::diff::DiffPart>| {
            parts.into_iter().map(|p| DiffPart { op: p.op, text: p.text }).collect()
        };
        Self {
            lines: map(lines),
            words: map(words),
        }
    }
}

/// What happened, for `documentChanged`.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum DocumentChangeKind {
    Metadata,
    /// The body changed (edits are coalesced to a few events per second).
    Content,
    Published,
    Unpublished,
    Deleted,
}

#[derive(SimpleObject)]
pub struct DocumentChangeEvent {
    pub kind: DocumentChangeKind,
    /// The document after the change (live view).
    pub document: Document,
}

#[derive(SimpleObject)]
pub struct AuthPayload {
    /// A session token: send it as `Authorization: Bearer <token>`.
    pub token: String,
    pub user: User,
}

#[derive(SimpleObject)]
pub struct ApiTokenInfo {
    pub id: ID,
    pub name: String,
    pub scope: TokenScope,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<ApiToken> for ApiTokenInfo {
    fn from(t: ApiToken) -> Self {
        Self {
            id: ID(t.id.to_string()),
            name: t.name,
            scope: t.scope,
            created_at: t.created_at,
            last_used_at: t.last_used_at,
        }
    }
}

#[derive(SimpleObject)]
pub struct CreatedApiToken {
    /// The token itself. Shown only now: store it; Vellum keeps only its hash.
    pub token: String,
    pub api_token: ApiTokenInfo,
}

#[derive(SimpleObject)]
pub struct DocumentEdge {
    pub cursor: String,
    pub node: Document,
}

#[derive(SimpleObject)]
pub struct PageInfo {
    pub has_next_page: bool,
    pub end_cursor: Option<String>,
}

#[derive(SimpleObject)]
pub struct DocumentConnection {
    pub edges: Vec<DocumentEdge>,
    pub page_info: PageInfo,
}

impl DocumentConnection {
    pub fn new(page: crate::store::DocumentPage, order: OrderField) -> Self {
        let edges: Vec<DocumentEdge> = page
            .documents
            .into_iter()
            .map(|d| DocumentEdge {
                cursor: documents::encode_cursor(order, &d),
                node: Document::from(d),
            })
            .collect();
        let end_cursor = edges.last().map(|e| e.cursor.clone());
        Self {
            edges,
            page_info: PageInfo {
                has_next_page: page.has_next_page,
                end_cursor,
            },
        }
    }
}

#[derive(InputObject, Default)]
pub struct DocumentFilter {
    pub status: Option<DocStatus>,
    pub owner_id: Option<ID>,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq, Default)]
pub enum DocumentOrderField {
    CreatedAt,
    #[default]
    UpdatedAt,
    Title,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq, Default)]
pub enum OrderDirection {
    Asc,
    #[default]
    Desc,
}

#[derive(InputObject)]
pub struct DocumentOrder {
    pub field: DocumentOrderField,
    pub direction: OrderDirection,
}

impl From<DocumentOrderField> for OrderField {
    fn from(f: DocumentOrderField) -> Self {
        match f {
            DocumentOrderField::CreatedAt => OrderField::CreatedAt,
            DocumentOrderField::UpdatedAt => OrderField::UpdatedAt,
            DocumentOrderField::Title => OrderField::Title,
        }
    }
}

#[derive(InputObject)]
pub struct RegisterInput {
    pub email: String,
    pub password: String,
    pub display_name: String,
}

#[derive(InputObject)]
pub struct CreateDocumentInput {
    pub title: String,
    /// Derived from the title when omitted.
    pub slug: Option<String>,
}

#[derive(InputObject)]
pub struct UpdateDocumentInput {
    pub title: Option<String>,
    pub slug: Option<String>,
    pub status: Option<DocStatus>,
}

/// The grant to give with `grantAccess`; NONE removes it.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum AccessGrant {
    Editor,
    Viewer,
    None,
}

impl From<AccessGrant> for Option<auth::Grant> {
    fn from(g: AccessGrant) -> Self {
        match g {
            AccessGrant::Editor => Some(auth::Grant::Editor),
            AccessGrant::Viewer => Some(auth::Grant::Viewer),
            AccessGrant::None => None,
        }
    }
}

/// One connection in a document.
#[derive(SimpleObject)]
pub struct Presence {
    pub user_id: Option<ID>,
    pub display_name: String,
    /// A viewer's connection: it cannot edit.
    pub read_only: bool,
    /// The Yjs client id of the connection's awareness state.
    pub client_id: Option<String>,
    /// `user.name` from the awareness state (TipTap's collaboration caret sets it).
    pub name: Option<String>,
    /// `user.color` from the awareness state.
    pub color: Option<String>,
    /// The awareness `cursor` field (relative positions), as JSON.
    pub cursor: Option<async_graphql::Json<serde_json::Value>>,
}

impl From<crate::collab::PresenceEntry> for Presence {
    fn from(p: crate::collab::PresenceEntry) -> Self {
        Self {
            user_id: p.user_id.map(|u| ID(u.to_string())),
            display_name: p.display_name,
            read_only: p.read_only,
            client_id: p.client_id.map(|c| c.to_string()),
            name: p.name,
            color: p.color,
            cursor: p.cursor.map(async_graphql::Json),
        }
    }
}

/// An installed plugin, as admins see it.
pub struct Plugin {
    pub name: String,
    pub loaded: Option<std::sync::Arc<crate::plugins::Loaded>>,
    pub state: Option<crate::plugins::State>,
    pub stats: crate::plugins::Stats,
    pub problem: Option<String>,
}

#[derive(async_graphql::Enum, Clone, Copy, PartialEq, Eq)]
pub enum PluginStatus {
    /// Loaded and called.
    Enabled,
    /// Loaded, not called (an admin turned it off, or bundled and not yet on).
    Disabled,
    /// Turned off by the host after repeated failures (see `disabledReason`).
    Failing,
    /// Not loaded: its files failed a check (see `error`).
    Broken,
}

#[derive(async_graphql::SimpleObject)]
pub struct PluginSetting {
    pub key: String,
    /// `string`, `integer`, `number`, `boolean` or `array` (of strings).
    #[graphql(name = "type")]
    pub kind: String,
    pub default: Option<Json<serde_json::Value>>,
    pub description: Option<String>,
    pub minimum: Option<f64>,
    pub maximum: Option<f64>,
}

#[Object]
impl Plugin {
    async fn name(&self) -> &str {
        &self.name
    }
    async fn version(&self) -> Option<&str> {
        self.loaded.as_ref().map(|l| l.manifest.version.as_str())
    }
    async fn description(&self) -> Option<&str> {
        self.loaded.as_ref().map(|l| l.manifest.description.as_str())
    }
    /// `bundled` (built into Vellum) or the folder it was loaded from.
    async fn source(&self) -> Option<String> {
        self.loaded.as_ref().map(|l| match &l.source {
            crate::plugins::Source::Bundled => "bundled".to_string(),
            crate::plugins::Source::Dir(d) => d.display().to_string(),
        })
    }
    async fn sha256(&self) -> Option<&str> {
        self.loaded.as_ref().map(|l| l.sha256.as_str())
    }
    async fn hooks(&self) -> Vec<crate::plugins::Hook> {
        self.loaded
            .as_ref()
            .map(|l| l.manifest.hooks.clone())
            .unwrap_or_default()
    }
    async fn priority(&self) -> Option<i32> {
        self.loaded.as_ref().map(|l| l.manifest.priority)
    }
    async fn status(&self) -> PluginStatus {
        match (&self.loaded, &self.state) {
            (None, _) => PluginStatus::Broken,
            (Some(_), Some(s)) if s.enabled => PluginStatus::Enabled,
            (Some(_), Some(s)) if s.disabled_reason.is_some() => PluginStatus::Failing,
            _ => PluginStatus::Disabled,
        }
    }
    /// Why it is not loaded, or why its newest files were refused (the previous version
    /// keeps running then).
    async fn error(&self) -> Option<&str> {
        self.problem.as_deref()
    }
    async fn disabled_reason(&self) -> Option<&str> {
        self.state.as_ref().and_then(|s| s.disabled_reason.as_deref())
    }
    async fn requested_capabilities(&self) -> Vec<crate::plugins::Capability> {
        self.loaded
            .as_ref()
            .map(|l| l.manifest.capabilities.clone())
            .unwrap_or_default()
    }
    async fn granted_capabilities(&self) -> Vec<crate::plugins::Capability> {
        self.state
            .as_ref()
            .map(|s| s.granted.iter().copied().collect())
            .unwrap_or_default()
    }
    /// The settings an admin set (the schema's defaults apply to the rest).
    async fn config(&self) -> Json<serde_json::Value> {
        Json(serde_json::Value::Object(
            self.state.as_ref().map(|s| s.config.clone()).unwrap_or_default(),
        ))
    }
    /// The settings the plugin has, from its manifest.
    async fn config_schema(&self) -> Vec<PluginSetting> {
        let Some(l) = &self.loaded else { return Vec::new() };
        l.manifest
            .config
            .iter()
            .map(|(k, s)| PluginSetting {
                key: k.clone(),
                kind: serde_json::to_value(s.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                default: s.default.clone().map(Json),
                description: s.description.clone(),
                minimum: s.minimum,
                maximum: s.maximum,
            })
            .collect()
    }
    /// Calls on this node since it started.
    async fn calls(&self) -> u64 {
        self.stats.calls
    }
    async fn rejections(&self) -> u64 {
        self.stats.rejections
    }
    async fn failures(&self) -> u64 {
        self.stats.failures
    }
    async fn last_failure(&self) -> Option<&str> {
        self.stats.last_failure.as_deref()
    }
    /// Median time of the recent calls, in milliseconds.
    async fn p50_ms(&self) -> Option<f64> {
        self.stats.quantile_us(0.5).map(|us| f64::from(us) / 1000.0)
    }
    async fn p99_ms(&self) -> Option<f64> {
        self.stats.quantile_us(0.99).map(|us| f64::from(us) / 1000.0)
    }
    /// Instructions (fuel) used by all calls.
    async fn fuel_used(&self) -> u64 {
        self.stats.fuel_used
    }
}
