//! All integration tests compile into one binary, so the crate links once.

mod fleet;
mod helpers;
mod pg;
mod receiver;

mod admin;
mod auth;
mod config_layers;
mod console;
mod crash;
mod endpoints;
mod events;
mod expiry;
mod fleet_truth;
mod groups;
mod guardrails;
mod hardening;
mod isolation;
mod layering;
mod messages;
mod openapi;
mod platform;
mod platform_cli;
mod replicas;
mod resilience;
mod route_faults;
mod sandbox;
mod sandbox_fidelity;
mod storage;
mod supervision;
mod validation;
mod webhooks;
