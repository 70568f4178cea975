//! `/api/auth/*`.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::{Caller, JsonBody, session_cookie};
use crate::auth::{self, User};
use crate::error::Result;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisterBody {
    email: String,
    password: String,
    display_name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    email: String,
    password: String,
}

fn signed_in(app: &AppState, status: StatusCode, user: User, token: String) -> Response {
    let cookie = session_cookie(&app.config, Some(&token));
    (
        status,
        [(header::SET_COOKIE, cookie)],
        Json(json!({ "token": token, "user": user })),
    )
        .into_response()
}

pub async fn register(State(app): State<AppState>, JsonBody(b): JsonBody<RegisterBody>) -> Result<Response> {
    let input = auth::RegisterInput {
        email: b.email,
        password: b.password,
        display_name: b.display_name,
    };
    let (user, token) = app.auth.register(&app.store, input).await?;
    Ok(signed_in(&app, StatusCode::CREATED, user, token))
}

pub async fn login(State(app): State<AppState>, JsonBody(b): JsonBody<LoginBody>) -> Result<Response> {
    let (user, token) = app.auth.login(&app.store, &b.email, &b.password).await?;
    Ok(signed_in(&app, StatusCode::OK, user, token))
}

pub async fn logout(State(app): State<AppState>) -> Response {
    let cookie = session_cookie(&app.config, None);
    (StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response()
}

pub async fn me(Caller(who): Caller) -> Result<Json<User>> {
    Ok(Json(who.require_user()?.clone()))
}
