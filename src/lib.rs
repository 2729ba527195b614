//! wa-groups-gateway: one place for internal apps to manage WhatsApp groups through Meta's
//! Cloud API, without holding WhatsApp access tokens.
//!
//! Layers, bottom up; a module imports only from its own layer or those below (README, "Code
//! map"):
//! 1. leaves: `clock`, `context` (the request's id and audit notes), `crypto` (secrets at
//!    rest), `domain`, `metrics`, `supervisor` (background tasks restarted after a panic);
//! 2. `config`, `platform` (the live teams and phone numbers), `ratelimit`;
//! 3. `storage` (all SQL), `graph` (all Graph calls);
//! 4. `error`, `services`, `tokens`;
//! 5. HTTP: `auth`, `connection` (requests refused before routing), `telemetry`, `routes`,
//!    `console` (the platform teams' web page);
//! 6. composition: `process` (running a server command), `startup`, `openapi`, `cli`,
//!    `config_check`, `sandbox`.

pub mod clock;
pub mod context;
pub mod crypto;
pub mod domain;
pub mod metrics;
pub mod supervisor;

pub mod config;
pub mod platform;
pub mod ratelimit;

pub mod graph;
pub mod storage;

pub mod error;
pub mod services;
pub mod tokens;

pub mod auth;
pub mod connection;
pub mod console;
pub mod routes;
pub mod telemetry;

pub mod cli;
pub mod cli_registry;
pub mod config_check;
pub mod openapi;
pub mod process;
pub mod sandbox;
pub mod startup;
