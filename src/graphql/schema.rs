//! Queries and mutations.

use async_graphql::{Context, ID, Json, Object, Result, Schema};
use axum::http::header::SET_COOKIE;
use uuid::Uuid;

use super::search::{SearchConnection, SearchFilter, SearchStatus};
use super::types::*;
use super::{caller, gql, state};
use crate::auth::{self, Principal, TokenScope};
use crate::config::Config;
use crate::documents::{self, DocumentPatch, ListArgs, NewDocument};
use crate::error::Error;
use crate::publishing::{self, Key};
use crate::rest::session_cookie;
use crate::versions;

pub type VellumSchema = Schema<Query, Mutation, super::subscription::Subscription>;

/// How deep selection sets and fragments may nest (checked in `expanded`).
const MAX_RECURSIVE_DEPTH: usize = 64;

pub fn build_schema(config: &Config) -> VellumSchema {
    let g = &config.graphql;
    let mut builder = Schema::build(Query, Mutation, super::subscription::Subscription)
        .limit_depth(g.max_depth)
        .limit_complexity(g.max_complexity)
        .limit_recursive_depth(MAX_RECURSIVE_DEPTH)
        .limit_directives(16)
        // Before `ExpandedFields`, which parses the query: it sees the parsed document.
        .extension(super::deadline::QueryDeadline {
            limit: std::time::Duration::from_millis(g.query_timeout_ms.max(1)),
        })
        .extension(super::expanded::ExpandedFields {
            max: g.max_complexity,
            max_depth: MAX_RECURSIVE_DEPTH,
        });
    if !(g.introspection || config.server.dev) {
        builder = builder.disable_introspection();
    }
    // "Did you mean …?" in errors names fields to anyone guessing at the schema: with
    // introspection off, so are the suggestions.
    if !(g.introspection || config.server.dev) {
        builder = builder.disable_suggestions();
    }
    builder.finish()
}

fn require_admin(who: &Principal, message: &str) -> Result<()> {
    match who.user() {
        Some(u) if u.role == auth::Role::Admin => Ok(()),
        Some(_) => Err(gql(Error::forbidden(message))),
        None => Err(gql(Error::Unauthenticated)),
    }
}

pub(super) fn parse_id(id: &ID, field: &str) -> Result<Uuid> {
    Uuid::parse_str(id.as_str()).map_err(|_| gql(Error::validation(field, "not a valid id")))
}

pub(super) fn parse_version_id(id: &ID, field: &str) -> Result<i64> {
    id.as_str()
        .parse::<i64>()
        .map_err(|_| gql(Error::validation(field, "not a valid version id")))
}

pub struct Query;

#[Object]
impl Query {
    /// The signed-in user, or null.
    async fn me(&self, ctx: &Context<'_>) -> Option<User> {
        caller(ctx).user().cloned().map(User::own)
    }

    /// One document by id or slug. Frontends get the published view: the title and
    /// body as last published, readable without access to the document (anonymously
    /// when the server allows it). `draft: true` gives the live document instead, to
    /// callers who may read it.
    async fn document(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
        slug: Option<String>,
        #[graphql(desc = "The live document instead of the published one (needs read access).")] draft: Option<bool>,
    ) -> Result<Document> {
        let draft = draft.unwrap_or(false);
        let (st, who) = (state(ctx), caller(ctx));
        let key = match (&id, &slug) {
            (Some(id), None) => Key::Id(parse_id(id, "id")?),
            (None, Some(slug)) => Key::Slug(slug),
            _ => return Err(gql(Error::validation("id", "give exactly one of id and slug"))),
        };
        Ok(publishing::read(st, who, key, draft).await.map_err(gql)?.into())
    }

    /// A document's named versions, newest first.
    #[graphql(complexity = "first.unwrap_or(20).clamp(1, 100) as usize * child_complexity")]
    async fn versions(
        &self,
        ctx: &Context<'_>,
        document_id: ID,
        #[graphql(desc = "Page size, 1 to 100 (default 20).")] first: Option<i32>,
        after: Option<String>,
    ) -> Result<VersionConnection> {
        let (st, who) = (state(ctx), caller(ctx));
        let id = parse_id(&document_id, "documentId")?;
        let (list, more) = versions::list(st, who, id, first.map(i64::from), after.as_deref())
            .await
            .map_err(gql)?;
        Ok(VersionConnection::new(list, more))
    }

    /// One version, with its body in every format.
    async fn version(&self, ctx: &Context<'_>, id: ID) -> Result<Version> {
        let (st, who) = (state(ctx), caller(ctx));
        Ok(Version(
            versions::get(st, who, parse_version_id(&id, "id")?)
                .await
                .map_err(gql)?,
        ))
    }

    /// Differences in plain text from version `from` to version `to`, or to the live
    /// document when `to` is omitted.
    async fn version_diff(&self, ctx: &Context<'_>, from: ID, to: Option<ID>) -> Result<VersionDiff> {
        let (st, who) = (state(ctx), caller(ctx));
        let from = parse_version_id(&from, "from")?;
        let to = to.as_ref().map(|t| parse_version_id(t, "to")).transpose()?;
        let (lines, words) = versions::diff(st, who, from, to).await.map_err(gql)?;
        Ok(VersionDiff::new(lines, words))
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

    /// Who is in a document right now, on every node of a cluster: one entry per connection,
    /// with the name, colour and cursor from its awareness state.
    async fn presence(&self, ctx: &Context<'_>, document_id: ID) -> Result<Vec<Presence>> {
        let (st, who) = (state(ctx), caller(ctx));
        let id = parse_id(&document_id, "documentId")?;
        documents::get(&st.store, who, id).await.map_err(gql)?;
        Ok(st.collab.presence(id).await.into_iter().map(Presence::from).collect())
    }

    /// The caller's live API tokens (never the tokens themselves).
    /// Every plugin this node knows (admins only): loaded ones and ones that failed to load.
    async fn plugins(&self, ctx: &Context<'_>) -> Result<Vec<Plugin>> {
        let who = caller(ctx);
        match who.user() {
            Some(u) if u.role == auth::Role::Admin => {}
            Some(_) => return Err(gql(Error::forbidden("only admins manage plugins"))),
            None => return Err(gql(Error::Unauthenticated)),
        }
        Ok(plugin_list(state(ctx)).await)
    }
    /// Full-text search over every saved version and every live draft the caller may
    /// read (anonymous callers: published content only). Syntax: words (all must match),
    /// "phrases", AND / OR / NOT (or -word), parentheses, prefixes (`coll*`), typos
    /// (`colaborate~`, `teh~1`), and fields (`title:`, `label:`, `body:`).
    #[graphql(complexity = "first.unwrap_or(10).clamp(1, 100) as usize * child_complexity")]
    async fn search(
        &self,
        ctx: &Context<'_>,
        query: String,
        filter: Option<SearchFilter>,
        #[graphql(desc = "Page size, 1 to 100 (default 10).")] first: Option<i32>,
        after: Option<String>,
    ) -> Result<SearchConnection> {
        let (st, who) = (state(ctx), caller(ctx));
        let f = filter.unwrap_or_default();
        let filter = crate::search::Filter {
            document_id: f
                .document_id
                .as_ref()
                .map(|id| parse_id(id, "filter.documentId"))
                .transpose()?,
            author: f.author.as_ref().map(|id| parse_id(id, "filter.author")).transpose()?,
            status: f.status,
            from: f.from,
            to: f.to,
            latest_only: f.latest_only,
            published_only: f.published_only,
            live: f.live,
        };
        let page = crate::search::search(st, who, &query, filter, first.map(i64::from), after.as_deref())
            .await
            .map_err(gql)?;
        Ok(page.into())
    }

    /// Where this node's search index stands (admins).
    async fn search_status(&self, ctx: &Context<'_>) -> Result<SearchStatus> {
        require_admin(caller(ctx), "only admins see the search index's status")?;
        SearchStatus::of(state(ctx)).await
    }

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
    /// give the same UNAUTHENTICATED error. After `auth.login_max_failures` failures in a
    /// row for an email, its logins fail with RATE_LIMITED (`extensions.retryAfter`
    /// seconds) until the lockout ends, even with the right password.
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
        Ok(documents::create(st, who, new).await.map_err(gql)?.into())
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
        let doc = documents::update(st, who, id, lock_version, patch).await.map_err(gql)?;
        Ok(doc.into())
    }

    /// Saves the document's current content as a named version.
    async fn save_version(&self, ctx: &Context<'_>, document_id: ID, label: String) -> Result<Version> {
        let (st, who) = (state(ctx), caller(ctx));
        writer(who)?;
        let id = parse_id(&document_id, "documentId")?;
        Ok(Version(versions::save(st, who, id, &label).await.map_err(gql)?))
    }

    /// Makes the live document's content equal to a version's, as a change every
    /// connected editor sees at once (typing elsewhere merges), and records it as a
    /// new version. Returns that new version.
    async fn restore_version(&self, ctx: &Context<'_>, version_id: ID) -> Result<Version> {
        let (st, who) = (state(ctx), caller(ctx));
        writer(who)?;
        let id = parse_version_id(&version_id, "versionId")?;
        Ok(Version(versions::restore(st, who, id).await.map_err(gql)?))
    }

    /// Writes the body (HTML, Markdown or ProseMirror JSON) into the live document,
    /// merged with live edits block by block: only top-level blocks that differ
    /// change, so editors typing in other blocks keep their edits. Pass `base` (the
    /// body you read, e.g. `document(draft: true) { body { json } }`) to apply only
    /// what you changed from it: then edits made since your read survive even in
    /// blocks you sent back as they were. Stored and broadcast like any edit before
    /// this returns.
    async fn set_body(
        &self,
        ctx: &Context<'_>,
        document_id: ID,
        input: BodyInput,
        base: Option<BodyInput>,
    ) -> Result<Document> {
        let (st, who) = (state(ctx), caller(ctx));
        writer(who)?;
        let id = parse_id(&document_id, "documentId")?;
        let input = input.into_input("input").map_err(gql)?;
        let base = base.map(|b| b.into_input("base")).transpose().map_err(gql)?;
        publishing::set_body(st, who, id, input, base).await.map_err(gql)?;
        Ok(publishing::read(st, who, Key::Id(id), true).await.map_err(gql)?.into())
    }

    /// Saves a version of the live document and makes it the one readers get
    /// (status PUBLISHED). Editors and admins only.
    async fn publish(&self, ctx: &Context<'_>, document_id: ID, label: Option<String>) -> Result<Document> {
        let (st, who) = (state(ctx), caller(ctx));
        writer(who)?;
        let id = parse_id(&document_id, "documentId")?;
        Ok(publishing::publish(st, who, id, label.as_deref())
            .await
            .map_err(gql)?
            .into())
    }

    /// Takes the document out of publication (status DRAFT). Editors and admins only.
    async fn unpublish(&self, ctx: &Context<'_>, document_id: ID) -> Result<Document> {
        let (st, who) = (state(ctx), caller(ctx));
        writer(who)?;
        let id = parse_id(&document_id, "documentId")?;
        Ok(publishing::unpublish(st, who, id).await.map_err(gql)?.into())
    }

    /// Soft-deletes a document (owner or admin).
    async fn delete_document(&self, ctx: &Context<'_>, id: ID) -> Result<ID> {
        let (st, who) = (state(ctx), caller(ctx));
        writer(who)?;
        documents::delete(&st.store, &st.collab.events(), who, parse_id(&id, "id")?)
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

    /// Rebuilds this node's search index from the database, in the background (admins):
    /// searches keep answering from the old index until the new one is complete. Follow
    /// it with `searchStatus { rebuild { done total } }`.
    async fn reindex(&self, ctx: &Context<'_>) -> Result<SearchStatus> {
        let st = state(ctx);
        require_admin(caller(ctx), "only admins rebuild the search index")?;
        st.search.start_rebuild(st).map_err(gql)?;
        SearchStatus::of(st).await
    }

    /// Turns a plugin on or off on every node (admins).
    async fn set_plugin_enabled(&self, ctx: &Context<'_>, name: String, enabled: bool) -> Result<Plugin> {
        let st = state(ctx);
        st.plugins.set_enabled(caller(ctx), &name, enabled).await.map_err(gql)?;
        plugin_by_name(st, &name).await
    }
    /// Replaces a plugin's settings, checked against its manifest's schema (admins).
    async fn set_plugin_config(
        &self,
        ctx: &Context<'_>,
        name: String,
        config: Json<serde_json::Value>,
    ) -> Result<Plugin> {
        let st = state(ctx);
        st.plugins
            .set_config(caller(ctx), &name, &config.0)
            .await
            .map_err(gql)?;
        plugin_by_name(st, &name).await
    }
    /// Grants a plugin capabilities its manifest requests; the rest are withdrawn (admins).
    async fn set_plugin_grants(
        &self,
        ctx: &Context<'_>,
        name: String,
        capabilities: Vec<crate::plugins::Capability>,
    ) -> Result<Plugin> {
        let st = state(ctx);
        st.plugins
            .set_grants(caller(ctx), &name, &capabilities)
            .await
            .map_err(gql)?;
        plugin_by_name(st, &name).await
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

async fn plugin_list(st: &crate::state::AppState) -> Vec<Plugin> {
    let p = &st.plugins;
    let problems = p.problems();
    let mut out = Vec::new();
    for l in p.loaded().iter() {
        let name = l.manifest.name.clone();
        out.push(Plugin {
            state: p.state(&name).await,
            stats: p.stats(&name),
            problem: problems.iter().find(|x| x.name == name).map(|x| x.error.clone()),
            loaded: Some(l.clone()),
            name,
        });
    }
    for x in problems {
        if !out.iter().any(|o| o.name == x.name) {
            out.push(Plugin {
                name: x.name.clone(),
                loaded: None,
                state: None,
                stats: Default::default(),
                problem: Some(x.error),
            });
        }
    }
    out
}

async fn plugin_by_name(st: &crate::state::AppState, name: &str) -> Result<Plugin> {
    plugin_list(st)
        .await
        .into_iter()
        .find(|p| p.name == name)
        .ok_or_else(|| gql(Error::NotFound("plugin")))
}
