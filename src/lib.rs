//! wa-groups-gateway: one place for internal apps to manage WhatsApp groups through Meta's
//! Cloud API, without holding WhatsApp access tokens.

pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod config_check;
pub mod domain;
pub mod error;
pub mod events;
pub mod graph;
pub mod idempotency;
pub mod metrics;
pub mod openapi;
pub mod ownership;
pub mod ratelimit;
pub mod registry;
pub mod revocation;
pub mod routes;
pub mod sandbox;
pub mod startup;
pub mod telemetry;
pub mod tokens;
pub mod webhooks;
