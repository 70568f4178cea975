//! Vellum: a collaborative headless CMS in one binary. See `ARCHITECTURE.md`.

pub mod app;
pub mod auth;
pub mod bus;
pub mod cli;
pub mod collab;
pub mod config;
pub mod content;
pub mod documents;
pub mod error;
pub mod graphql;
pub mod memory;
pub mod metrics;
pub mod plugins;
pub mod publishing;
pub mod rest;
pub mod search;
pub mod slots;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod ui;
pub mod versions;
pub mod ws;
