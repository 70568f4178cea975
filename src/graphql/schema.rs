//! Queries and mutations.

use async_graphql::{Context, ID, Object, Result, Schema};
use axum::http::header::SET_COOKIE;
use uuid::Uuid;

use super::types::*;
use super::{caller, gql, state};
use crate::auth::{self, Principal, TokenScope};
use crate::config::Config;
use crate::documents::{self, DocumentPatch, ListArgs, NewDocument};
use crate::error::Error;
use crate::rest::session_cookie;

pub type VellumSchema = Schema<Query, Mutation, super::subscription::Subscription>;

pub fn build_schema(config: &Config) -> VellumSchema {
    let g = &config.graphql;
    let mut builder = Schema::build(Query, Mutation, super::subscription::Subscription)
        .limit_depth(g.max_depth)
        .limit_complexity(g.max_complexity)
        .limit_recursive_depth(64)
        .limit_directives(16);
    if !g.introspection {
        builder = builder.disable_introspection();
    }
    builder.finish()
}

pub(super) fn parse_id(id: &ID, field: &str) -> Result<Uuid> {
    Uuid::parse_str(id.as_str()).map_err(|_| gql(Error::validation(field, "not a valid id")))
}

pub struct Query;

#[Object]
impl Query {
    /// The signed-in user, or null.
    async fn me(&self, ctx: &Context<'_>) -> Option<User> {
        caller(ctx).user().cloned().map(User::own)
    }

    /// One document by id or slug.
    async fn document(&self, ctx: &Context<'_>, id: Option<ID>, slug: Option<String>) -> Result<Document> {
        let (st, who) = (state(ctx), caller(ctx));
        let found = match (id, slug) {
            (Some(id), None) => documents::get(&st.store, who, parse_id(&id, "id")?).await,
            (None, Some(slug)) => documents::get_by_slug(&st.store, who, &slug).await,
            _ => Err(Error::validation("id", "give exactly one of id and slug")),
        };
        Ok(Document(found.map_err(gql)?.doc))
    }

    /// Documents the caller may read, newest change first unless `orderBy` says otherwise.
    #[graphql(complexity = "first.unwrap_or(20).clamp(1, 100) as usize * child_complexity")]
    async fn documents(
        &self,
        ctx: &Context<'_>,
        filter: Option<DocumentFilter>,
        order_by: Option<DocumentOrder>,
        #[graphql(desc = "Page size, 1 to 100 (default 20).")] first: Option<i32>,
        after: Option<String>,
    ) -> Result<DocumentConnection> {
        let (st, who) = (state(ctx), caller(ctx));
        let filter = filter.unwrap_or_default();
        let owner = filter.owner_id.as_ref().map(|id| parse_id(id, "ownerId")).transpose()?;
        let (field, dir) = order_by.map(|o| (o.field, o.direction)).unwrap_or_default();
        let order = field.into();
        let args = ListArgs {
            status: filter.status,
            owner,
            order,
            descending: dir == OrderDirection::Desc,
            first: first.map(i64::from),
            after,
        };
        let page = documents::list(&st.store, who, args).await.map_err(gql)?;
        Ok(DocumentConnection::new(page, order))
    }

    /// Who is in a document right now (on this server): one entry per connection,
    /// with the name, colour and cursor from its awareness state.
    async fn presence(&self, ctx: &Context<'_>, document_id: ID) -> Result<Vec<Presence>> {
        let (st, who) = (state(ctx), caller(ctx));
        let id = parse_id(&document_id, "documentId")?;
        documents::get(&st.store, who, id).await.map_err(gql)?;
        Ok(st.collab.presence(id).await.into_iter().map(Presence::from).collect())
    }

    /// The caller's live API tokens (never the tokens themselves).
    async fn api_tokens(&self, ctx: &Context<'_>) -> Result<Vec<ApiTokenInfo>> {
        let user = caller(ctx).require_user().map_err(gql)?;
        let tokens = state(ctx).store.list_api_tokens(user.id).await.map_err(gql)?;
        Ok(tokens.into_iter().map(Into::into).collect())
    }
}

pub struct Mutation;

#[Object]
impl Mutation {
    /// Creates an account and signs in (also sets the session cookie).
    async fn register(&self, ctx: &Context<'_>, input: RegisterInput) -> Result<AuthPayload> {
        let st = state(ctx);
        let input = auth::RegisterInput {
            email: input.email,
            password: input.password,
            display_name: input.display_name,
        };
        let (user, token) = st.auth.register(&st.store, input).await.map_err(gql)?;
        ctx.append_http_header(SET_COOKIE, session_cookie(&st.config, Some(&token)));
        Ok(AuthPayload {
            token,
            user: User::own(user),
        })
    }

    /// Signs in (also sets the session cookie). Unknown email and wrong password
    /// give the same UNAUTHENTICATED error.
    async fn login(&self, ctx: &Context<'_>, email: String, password: String) -> Result<AuthPayload> {
        let st = state(ctx);
        let (user, token) = st.auth.login(&st.store, &email, &password).await.map_err(gql)?;
        ctx.append_http_header(SET_COOKIE, session_cookie(&st.config, Some(&token)));
        Ok(AuthPayload {
            token,
            user: User::own(user),
        })
    }

    /// Clears the session cookie.
    async fn logout(&self, ctx: &Context<'_>) -> bool {
        ctx.append_http_header(SET_COOKIE, session_cookie(&state(ctx).config, None));
        true
    }

    async fn create_document(&self, ctx: &Context<'_>, input: CreateDocumentInput) -> Result<Document> {
        let (st, who) = (state(ctx), caller(ctx));
        let new = NewDocument {
            title: input.title,
            slug: input.slug,
        };
        Ok(Document(documents::create(&st.store, who, new).await.map_err(gql)?))
    }

    /// Changes metadata if `lockVersion` is still current; otherwise fails with
    /// CONFLICT and `extensions.current` holding the document as it is now.
    async fn update_document(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateDocumentInput,
        lock_version: i64,
    ) -> Result<Document> {
        let (st, who) = (state(ctx), caller(ctx));
        let id = parse_id(&id, "id")?;
        writer(who)?;
        let patch = DocumentPatch {
            title: input.title,
            slug: input.slug,
            status: input.status,
        };
        let doc = documents::update(&st.store, who, id, lock_version, patch)
            .await
            .map_err(gql)?;
        Ok(Document(doc))
    }

    /// Soft-deletes a document (owner or admin).
    async fn delete_document(&self, ctx: &Context<'_>, id: ID) -> Result<ID> {
        let (st, who) = (state(ctx), caller(ctx));
        writer(who)?;
        documents::delete(&st.store, who, parse_id(&id, "id")?)
            .await
            .map_err(gql)?;
        Ok(id)
    }

    /// Shares a document with a user (owner or admin); `role: NONE` removes the grant.
    async fn grant_access(
        &self,
        ctx: &Context<'_>,
        document_id: ID,
        user_email: String,
        role: AccessGrant,
    ) -> Result<bool> {
        let (st, who) = (state(ctx), caller(ctx));
        let id = parse_id(&document_id, "documentId")?;
        documents::share(&st.store, who, id, &user_email, role.into())
            .await
            .map_err(gql)?;
        Ok(true)
    }

    /// Creates an API token for external frontends. The token is shown only in this answer.
    async fn create_api_token(
        &self,
        ctx: &Context<'_>,
        name: String,
        #[graphql(default_with = "TokenScope::Read")] scope: TokenScope,
    ) -> Result<CreatedApiToken> {
        let (st, who) = (state(ctx), caller(ctx));
        let created = st
            .auth
            .create_api_token(&st.store, who, &name, scope)
            .await
            .map_err(gql)?;
        Ok(CreatedApiToken {
            token: created.token,
            api_token: created.info.into(),
        })
    }

    async fn revoke_api_token(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let (st, who) = (state(ctx), caller(ctx));
        let user = who.require_writer().map_err(gql)?;
        let id = parse_id(&id, "id")?;
        if !st.store.revoke_api_token(user.id, id).await.map_err(gql)? {
            return Err(gql(Error::NotFound("API token")));
        }
        Ok(true)
    }
}

/// Mutations other than sign-in need a principal allowed to write.
fn writer(who: &Principal) -> Result<()> {
    who.require_writer().map(|_| ()).map_err(gql)
}
