//! The OpenAPI 3.1 description of the REST API, served at `/api/openapi.json`.
//! Written by hand next to the handlers; `tests/api.rs` checks that every route the
//! router serves is described here.

use axum::Json;
use serde_json::{Value, json};

pub async fn spec() -> Json<Value> {
    Json(document())
}

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
    })
}

fn json_body(schema: &str) -> Value {
    json!({ "required": true, "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } } })
}

fn json_ok(description: &str, schema: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } } })
}

/// `/api/search` and its schemas (apart: one `json!` for everything outgrows the macro
/// recursion limit).
fn add_search(doc: &mut Value) {
    doc["paths"]["/api/search"] = json!({ "get": {
                "summary": "Full-text search over every version and live draft the caller may read (anonymous: published content only)",
                "description": "Syntax: words (all must match), \"phrases\", AND / OR / NOT (or -word), parentheses, prefixes (coll*), typos (colaborate~, teh~1), fields (title:, label:, body:). A syntax error is VALIDATION with field `query` and the character where it is.",
                "security": [{}, { "bearer": [] }, { "cookie": [] }],
                "parameters": [
                    { "name": "q", "in": "query", "required": true, "schema": { "type": "string", "maxLength": 1000 } },
                    { "name": "documentId", "in": "query", "schema": { "type": "string", "format": "uuid" } },
                    { "name": "author", "in": "query", "schema": { "type": "string", "format": "uuid" }, "description": "Versions saved by this user" },
                    { "name": "status", "in": "query", "schema": { "type": "string", "enum": ["draft", "in_review", "published", "archived"] }, "description": "The document's status now" },
                    { "name": "from", "in": "query", "schema": { "type": "string", "format": "date-time" } },
                    { "name": "to", "in": "query", "schema": { "type": "string", "format": "date-time" } },
                    { "name": "latestOnly", "in": "query", "schema": { "type": "boolean", "default": false }, "description": "Only each document's newest version" },
                    { "name": "publishedOnly", "in": "query", "schema": { "type": "boolean", "default": false }, "description": "Only the version readers get now" },
                    { "name": "live", "in": "query", "schema": { "type": "boolean" }, "description": "true: only live drafts; false: only saved versions" },
                    { "name": "first", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 100, "default": 10 } },
                    { "name": "after", "in": "query", "schema": { "type": "string" }, "description": "pageInfo.endCursor of the previous page" }
                ],
                "responses": { "200": json_ok("A page of hits", "SearchPage"), "422": error_response("A syntax error (where it is) or a bad filter"), "401": error_response("Anonymous reading is off"), "503": error_response("Search is turned off on this server") }
            } });
    doc["components"]["schemas"]["SearchPage"] = json!({ "type": "object", "properties": {
                    "totalCount": { "type": "integer" },
                    "items": { "type": "array", "items": { "$ref": "#/components/schemas/SearchHit" } },
                    "pageInfo": { "type": "object", "properties": { "hasNextPage": { "type": "boolean" }, "endCursor": { "type": ["string", "null"] } } }
                } });
    doc["components"]["schemas"]["SearchHit"] = json!({ "type": "object", "properties": {
                    "documentId": { "type": "string", "format": "uuid" }, "slug": { "type": "string" },
                    "kind": { "type": "string", "enum": ["version", "live"] },
                    "versionId": { "type": ["integer", "null"] }, "versionNumber": { "type": ["integer", "null"] },
                    "title": { "type": "string" }, "titleHtml": { "type": "string", "description": "Escaped, with <mark> around matches" },
                    "label": { "type": "string" }, "authorId": { "type": ["string", "null"], "format": "uuid" },
                    "createdAt": { "type": "string", "format": "date-time" }, "score": { "type": "number" },
                    "snippets": { "type": "array", "items": { "type": "string" }, "description": "Escaped HTML fragments with <mark> around matches" },
                    "published": { "type": "boolean" }, "cursor": { "type": "string" }
                } });
}

pub fn document() -> Value {
    let mut doc = base();
    add_search(&mut doc);
    doc
}

fn base() -> Value {
    let id_param =
        json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "string", "format": "uuid" } });
    let number_param =
        json!({ "name": "number", "in": "path", "required": true, "schema": { "type": "integer", "minimum": 1 } });
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Vellum REST API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Documents and accounts for simple clients. GraphQL at /graphql offers everything this does and more. Errors are JSON: {\"error\": {\"code\", \"message\", \"field\"?, \"current\"?, \"retryAfter\"?}} with codes UNAUTHENTICATED (401), FORBIDDEN (403), NOT_FOUND (404), CONFLICT (409), VALIDATION (422), LIMIT_EXCEEDED (413), RATE_LIMITED (429, with Retry-After and retryAfter: too many failed sign-ins for one email), BUSY (503, with Retry-After: too many sign-ins at once), PLUGIN_REJECTED (422: a plugin refused the change; plugin, reason, pluginMessage and field say which, why and where), PLUGIN_FAILED (502: a plugin on the change's path failed; plugin and kind — out-of-fuel, timeout, memory-limit, trap, invalid-output, capability-denied, input-too-large, busy), INTERNAL (500)."
        },
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "description": "A session token from login/register, or an API token (vlm_…)." },
                "cookie": { "type": "apiKey", "in": "cookie", "name": "vellum_session" }
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": { "error": { "type": "object", "required": ["code", "message"], "properties": {
                        "code": { "type": "string", "enum": ["UNAUTHENTICATED", "FORBIDDEN", "NOT_FOUND", "CONFLICT", "VALIDATION", "LIMIT_EXCEEDED", "RATE_LIMITED", "BUSY", "PLUGIN_REJECTED", "PLUGIN_FAILED", "INTERNAL"] },
                        "message": { "type": "string" },
                        "field": { "type": "string", "description": "VALIDATION: the offending input field." },
                        "current": { "$ref": "#/components/schemas/Document", "description": "CONFLICT: the record as it is now." },
                        "retryAfter": { "type": "integer", "minimum": 1, "description": "RATE_LIMITED: seconds until the lockout ends (also the Retry-After header)." },
                        "plugin": { "type": "string", "description": "PLUGIN_REJECTED, PLUGIN_FAILED: the plugin's name." },
                        "reason": { "type": "string", "description": "PLUGIN_REJECTED: the plugin's short code for why." },
                        "pluginMessage": { "type": "string", "description": "PLUGIN_REJECTED: the plugin's message, to show the editor." },
                        "kind": { "type": "string", "description": "PLUGIN_FAILED: how the plugin failed." }
                    } } }
                },
                "User": { "type": "object", "properties": {
                    "id": { "type": "string", "format": "uuid" }, "email": { "type": "string" },
                    "displayName": { "type": "string" },
                    "role": { "type": "string", "enum": ["admin", "editor", "author", "viewer"] },
                    "createdAt": { "type": "string", "format": "date-time" }
                } },
                "Session": { "type": "object", "properties": { "token": { "type": "string" }, "user": { "$ref": "#/components/schemas/User" } } },
                "Register": { "type": "object", "additionalProperties": false, "required": ["email", "password", "displayName"], "properties": {
                    "email": { "type": "string", "maxLength": 254 }, "password": { "type": "string", "minLength": 8 },
                    "displayName": { "type": "string", "maxLength": 100 }
                } },
                "Login": { "type": "object", "additionalProperties": false, "required": ["email", "password"], "properties": {
                    "email": { "type": "string" }, "password": { "type": "string" }
                } },
                "Status": { "type": "string", "enum": ["draft", "in_review", "published", "archived"] },
                "Document": { "type": "object", "properties": {
                    "id": { "type": "string", "format": "uuid" }, "title": { "type": "string" }, "slug": { "type": "string" },
                    "status": { "$ref": "#/components/schemas/Status" }, "ownerId": { "type": "string", "format": "uuid" },
                    "lockVersion": { "type": "integer", "description": "Send it back with PATCH; bumped by every metadata write." },
                    "publishedVersionId": { "type": ["integer", "null"] },
                    "createdAt": { "type": "string", "format": "date-time" }, "updatedAt": { "type": "string", "format": "date-time" }
                } },
                "CreateDocument": { "type": "object", "additionalProperties": false, "required": ["title"], "properties": {
                    "title": { "type": "string", "maxLength": 200 },
                    "slug": { "type": "string", "pattern": "^[a-z0-9]+(-[a-z0-9]+)*$", "maxLength": 100 }
                } },
                "UpdateDocument": { "type": "object", "additionalProperties": false, "required": ["lockVersion"], "properties": {
                    "lockVersion": { "type": "integer" }, "title": { "type": "string", "maxLength": 200 },
                    "slug": { "type": "string", "pattern": "^[a-z0-9]+(-[a-z0-9]+)*$" }, "status": { "$ref": "#/components/schemas/Status" }
                } },
                "Share": { "type": "object", "additionalProperties": false, "required": ["userEmail"], "properties": {
                    "userEmail": { "type": "string" }, "role": { "type": ["string", "null"], "enum": ["editor", "viewer", null] }
                } },
                "Body": { "type": "object", "description": "A document body in every format.", "properties": {
                    "html": { "type": "string", "description": "Sanitized HTML" },
                    "markdown": { "type": "string", "description": "CommonMark (underline as <u>)" },
                    "json": { "type": "object", "description": "ProseMirror JSON (TipTap getJSON)" },
                    "text": { "type": "string", "description": "Plain text, blocks separated by a blank line" }
                } },
                "BodyInput": { "type": "object", "additionalProperties": false, "minProperties": 1,
                    "description": "Exactly one of the formats. Only top-level blocks that differ from the live body change.",
                    "properties": { "html": { "type": "string" }, "markdown": { "type": "string" }, "json": { "type": "object" },
                        "base": { "type": "object", "description": "The body you read and edited (one format): only your changes from it are applied, so edits made since survive",
                            "properties": { "html": { "type": "string" }, "markdown": { "type": "string" }, "json": { "type": "object" } } } } },
                "Version": { "type": "object", "properties": {
                    "id": { "type": "integer" }, "documentId": { "type": "string", "format": "uuid" },
                    "number": { "type": "integer", "description": "1, 2, 3… within the document; used in paths" },
                    "label": { "type": "string" }, "authorId": { "type": ["string", "null"], "format": "uuid" },
                    "title": { "type": "string" }, "restoredFrom": { "type": ["integer", "null"], "description": "For a restore: the number restored" },
                    "createdAt": { "type": "string", "format": "date-time" }
                } },
                "VersionWithBody": { "allOf": [{ "$ref": "#/components/schemas/Version" }, { "type": "object", "properties": { "body": { "$ref": "#/components/schemas/Body" } } }] },
                "VersionPage": { "type": "object", "properties": {
                    "items": { "type": "array", "items": { "$ref": "#/components/schemas/Version" } },
                    "pageInfo": { "type": "object", "properties": { "hasNextPage": { "type": "boolean" }, "endCursor": { "type": ["string", "null"] } } }
                } },
                "SaveVersion": { "type": "object", "additionalProperties": false, "required": ["label"], "properties": { "label": { "type": "string", "maxLength": 200 } } },
                "Publish": { "type": "object", "additionalProperties": false, "properties": { "label": { "type": "string", "maxLength": 200 } } },
                "DiffPart": { "type": "object", "properties": { "op": { "type": "string", "enum": ["equal", "insert", "delete"] }, "text": { "type": "string" } } },
                "Diff": { "type": "object", "properties": {
                    "lines": { "type": "array", "items": { "$ref": "#/components/schemas/DiffPart" } },
                    "words": { "type": "array", "items": { "$ref": "#/components/schemas/DiffPart" } }
                } },
                "Content": { "type": "object", "description": "A document as a frontend reads it.", "properties": {
                    "id": { "type": "string", "format": "uuid" }, "slug": { "type": "string" }, "title": { "type": "string" },
                    "status": { "$ref": "#/components/schemas/Status" }, "draft": { "type": "boolean" },
                    "version": { "type": ["object", "null"], "description": "The published version (null for drafts)" },
                    "updatedAt": { "type": "string", "format": "date-time" }, "body": { "$ref": "#/components/schemas/Body" }
                } },
                "DocumentPage": { "type": "object", "properties": {
                    "items": { "type": "array", "items": { "$ref": "#/components/schemas/Document" } },
                    "pageInfo": { "type": "object", "properties": { "hasNextPage": { "type": "boolean" }, "endCursor": { "type": ["string", "null"] } } }
                } }
            }
        },
        "security": [{ "bearer": [] }, { "cookie": [] }],
        "paths": {
            "/api/auth/register": { "post": {
                "summary": "Create an account and sign in (the first account becomes admin)", "security": [],
                "requestBody": json_body("Register"),
                "responses": { "201": json_ok("Signed in; also sets the session cookie", "Session"), "422": error_response("Invalid input"), "403": error_response("Registration closed"), "503": error_response("Too many sign-ins at once; retry after Retry-After seconds") }
            } },
            "/api/auth/login": { "post": {
                "summary": "Sign in", "security": [], "requestBody": json_body("Login"),
                "responses": { "200": json_ok("Signed in; also sets the session cookie", "Session"), "401": error_response("Unknown email or wrong password (indistinguishable)"), "429": error_response("Too many failed sign-ins for this email (known or not): every login for it, even with the right password, is refused until Retry-After seconds have passed"), "503": error_response("Too many sign-ins at once; retry after Retry-After seconds") }
            } },
            "/api/auth/logout": { "post": { "summary": "Clear the session cookie", "responses": { "204": { "description": "Cookie cleared" } } } },
            "/api/auth/me": { "get": {
                "summary": "The signed-in user",
                "responses": { "200": json_ok("The user", "User"), "401": error_response("Not signed in") }
            } },
            "/api/documents": {
                "post": { "summary": "Create a document", "requestBody": json_body("CreateDocument"),
                    "responses": { "201": json_ok("Created", "Document"), "422": error_response("Invalid input"), "403": error_response("Viewers cannot create") } },
                "get": { "summary": "List documents the caller may read (keyset pagination)",
                    "parameters": [
                        { "name": "status", "in": "query", "schema": { "$ref": "#/components/schemas/Status" } },
                        { "name": "owner", "in": "query", "schema": { "type": "string", "format": "uuid" } },
                        { "name": "orderBy", "in": "query", "schema": { "type": "string", "enum": ["createdAt", "updatedAt", "title"], "default": "updatedAt" } },
                        { "name": "direction", "in": "query", "schema": { "type": "string", "enum": ["asc", "desc"], "default": "desc" } },
                        { "name": "first", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 100, "default": 20 } },
                        { "name": "after", "in": "query", "schema": { "type": "string" }, "description": "pageInfo.endCursor of the previous page" }
                    ],
                    "responses": { "200": json_ok("A page", "DocumentPage"), "401": error_response("Not signed in") } }
            },
            "/api/documents/{id}": {
                "parameters": [id_param],
                "get": { "summary": "One document", "responses": { "200": json_ok("The document", "Document"), "404": error_response("No such document, or not visible") } },
                "patch": { "summary": "Change metadata with optimistic locking", "requestBody": json_body("UpdateDocument"),
                    "responses": { "200": json_ok("Updated", "Document"), "409": error_response("Stale lockVersion; `current` holds the document now"),
                        "403": error_response("Read-only access"), "422": error_response("Invalid input") } },
                "delete": { "summary": "Soft-delete (owner or admin)", "responses": { "204": { "description": "Deleted" }, "403": error_response("Not the owner") } }
            },
            "/api/documents/by-slug/{slug}": { "get": {
                "parameters": [{ "name": "slug", "in": "path", "required": true, "schema": { "type": "string" } }],
                "summary": "One document by slug", "responses": { "200": json_ok("The document", "Document"), "404": error_response("No such document") }
            } },
            "/api/documents/{id}/access": { "patch": {
                "parameters": [id_param],
                "summary": "Share a document with a user, or remove the grant with role null (owner or admin)",
                "requestBody": json_body("Share"), "responses": { "204": { "description": "Done" }, "422": error_response("Unknown user") }
            } },
            "/api/documents/{id}/versions": {
                "parameters": [id_param],
                "get": { "summary": "Named versions, newest first",
                    "parameters": [
                        { "name": "first", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 100, "default": 20 } },
                        { "name": "after", "in": "query", "schema": { "type": "string" }, "description": "pageInfo.endCursor of the previous page" }
                    ],
                    "responses": { "200": json_ok("A page", "VersionPage"), "404": error_response("No such document") } },
                "post": { "summary": "Save the current content as a named version", "requestBody": json_body("SaveVersion"),
                    "responses": { "201": json_ok("Saved", "Version"), "403": error_response("Read-only access"), "422": error_response("Invalid label") } }
            },
            "/api/documents/{id}/versions/{number}": { "get": {
                "parameters": [id_param, number_param],
                "summary": "One version with its body", "responses": { "200": json_ok("The version", "VersionWithBody"), "404": error_response("No such version") }
            } },
            "/api/documents/{id}/versions/{number}/diff": { "get": {
                "parameters": [id_param, number_param, { "name": "to", "in": "query", "schema": { "type": "integer" }, "description": "Another version number; omitted: the live document" }],
                "summary": "Plain-text diff by lines and by words", "responses": { "200": json_ok("The diff", "Diff"), "404": error_response("No such version") }
            } },
            "/api/documents/{id}/restore/{number}": { "post": {
                "parameters": [id_param, number_param],
                "summary": "Restore a version into the live document (a CRDT change every editor sees) and record it as a new version",
                "responses": { "201": json_ok("The new version recording the restore", "Version"), "403": error_response("Read-only access"), "404": error_response("No such version") }
            } },
            "/api/documents/{id}/body": { "put": {
                "parameters": [id_param],
                "summary": "Write the live body; only top-level blocks that differ change, merged with live edits",
                "requestBody": json_body("BodyInput"),
                "responses": { "200": { "description": "The body now", "content": { "application/json": { "schema": { "type": "object", "properties": { "body": { "$ref": "#/components/schemas/Body" } } } } } },
                    "422": error_response("Invalid content; `field` is the JSON path"), "403": error_response("Read-only access") }
            } },
            "/api/documents/{id}/publish": { "post": {
                "parameters": [id_param],
                "summary": "Save a version and make it the published one (editors and admins)",
                "requestBody": { "required": false, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Publish" } } } },
                "responses": { "200": json_ok("Published", "Document"), "403": error_response("Not a publisher") }
            } },
            "/api/documents/{id}/unpublish": { "post": {
                "parameters": [id_param],
                "summary": "Take the document out of publication (editors and admins)",
                "responses": { "200": json_ok("Unpublished (status draft)", "Document"), "403": error_response("Not a publisher") }
            } },
            "/api/content/{id}": { "get": {
                "parameters": [id_param, { "name": "draft", "in": "query", "schema": { "type": "boolean", "default": false }, "description": "The live document instead (needs read access)" }],
                "summary": "Published content by id (anonymous when the server allows it)", "security": [{}, { "bearer": [] }, { "cookie": [] }],
                "responses": { "200": json_ok("The content", "Content"), "404": error_response("Not published, or no such document"), "401": error_response("Anonymous reading is off") }
            } },
            "/api/content/by-slug/{slug}": { "get": {
                "parameters": [{ "name": "slug", "in": "path", "required": true, "schema": { "type": "string" } }, { "name": "draft", "in": "query", "schema": { "type": "boolean", "default": false } }],
                "summary": "Published content by slug", "security": [{}, { "bearer": [] }, { "cookie": [] }],
                "responses": { "200": json_ok("The content", "Content"), "404": error_response("Not published, or no such document") }
            } },
            "/api/openapi.json": { "get": { "summary": "This description", "security": [], "responses": { "200": { "description": "OpenAPI 3.1" } } } }
        }
    })
}
