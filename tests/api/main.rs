//! All integration tests compile into one binary, so the crate links once.

mod helpers;

mod groups;
mod openapi;
mod webhooks;
