//! Opaque Relay cursors: base64url of `{order, key, id}`. A cursor from one order is
//! refused in another, since its key would mean something else there.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Document;
use crate::error::{Error, Result};
use crate::store::{CursorKey, OrderField};

#[derive(Serialize, Deserialize)]
struct Raw {
    o: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    t: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    s: Option<String>,
    id: Uuid,
}

fn order_name(order: OrderField) -> &'static str {
    match order {
        OrderField::CreatedAt => "created",
        OrderField::UpdatedAt => "updated",
        OrderField::Title => "title",
    }
}

pub fn encode_cursor(order: OrderField, doc: &Document) -> String {
    let (t, s) = match order.key_of(doc) {
        CursorKey::Time(t) => (Some(t), None),
        CursorKey::Text(s) => (None, Some(s)),
    };
    let raw = Raw {
        o: order_name(order).to_string(),
        t,
        s,
        id: doc.id,
    };
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&raw).expect("cursor serializes"))
}

pub fn decode_cursor(cursor: &str, order: OrderField) -> Result<(CursorKey, Uuid)> {
    let invalid = || Error::validation("after", "invalid cursor");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let raw: Raw = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if raw.o != order_name(order) {
        return Err(Error::validation("after", "cursor belongs to a different order"));
    }
    let key = match (raw.t, raw.s) {
        (Some(t), None) if order != OrderField::Title => CursorKey::Time(t),
        (None, Some(s)) if order == OrderField::Title => CursorKey::Text(s),
        _ => return Err(invalid()),
    };
    Ok((key, raw.id))
}
