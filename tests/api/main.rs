//! All integration tests compile into one binary, so the crate links once.

mod helpers;
mod receiver;

mod admin;
mod auth;
mod config_layers;
mod crash;
mod events;
mod groups;
mod hardening;
mod openapi;
mod resilience;
mod route_faults;
mod sandbox;
mod validation;
mod webhooks;
