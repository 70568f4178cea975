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

pub fn document() -> Value {
    let id_param =
        json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "string", "format": "uuid" } });
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Vellum REST API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Documents and accounts for simple clients. GraphQL at /graphql offers everything this does and more. Errors are JSON: {\"error\": {\"code\", \"message\", \"field\"?, \"current\"?}} with codes UNAUTHENTICATED (401), FORBIDDEN (403), NOT_FOUND (404), CONFLICT (409), VALIDATION (422), LIMIT_EXCEEDED (413), INTERNAL (500)."
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
                        "code": { "type": "string", "enum": ["UNAUTHENTICATED", "FORBIDDEN", "NOT_FOUND", "CONFLICT", "VALIDATION", "LIMIT_EXCEEDED", "INTERNAL"] },
                        "message": { "type": "string" },
                        "field": { "type": "string", "description": "VALIDATION: the offending input field." },
                        "current": { "$ref": "#/components/schemas/Document", "description": "CONFLICT: the record as it is now." }
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
                "responses": { "201": json_ok("Signed in; also sets the session cookie", "Session"), "422": error_response("Invalid input"), "403": error_response("Registration closed") }
            } },
            "/api/auth/login": { "post": {
                "summary": "Sign in", "security": [], "requestBody": json_body("Login"),
                "responses": { "200": json_ok("Signed in; also sets the session cookie", "Session"), "401": error_response("Unknown email or wrong password (indistinguishable)") }
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
            "/api/openapi.json": { "get": { "summary": "This description", "security": [], "responses": { "200": { "description": "OpenAPI 3.1" } } } }
        }
    })
}
