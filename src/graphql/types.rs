//! GraphQL object types: thin views over the capability modules' structs.

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::{caller, gql, state};
use crate::auth::{self, ApiToken, Role, TokenScope};
use crate::documents::{self, DocStatus};
use crate::store::OrderField;

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

pub struct Document(pub documents::Document);

#[Object]
impl Document {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn title(&self) -> &str {
        &self.0.title
    }
    async fn slug(&self) -> &str {
        &self.0.slug
    }
    async fn status(&self) -> DocStatus {
        self.0.status
    }
    /// Bumped by every metadata write; pass it back to `updateDocument`.
    async fn lock_version(&self) -> i64 {
        self.0.lock_version
    }
    async fn owner(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        let owner = state(ctx).store.user_by_id(self.0.owner_id).await.map_err(gql)?;
        Ok(owner.map(User::new))
    }
    async fn published_version_id(&self) -> Option<ID> {
        self.0.published_version_id.map(|v| ID(v.to_string()))
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
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
                node: Document(d),
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
