//! Services: what the gateway does, between storage and the Graph client below and the
//! HTTP handlers above. Each calls storage and the Graph client, never a handler.
//!
//! - `creation`: a group creation from the call to Meta to the webhook that completes it,
//!   and the callers waiting for it;
//! - `groups`: every other group operation, with its effect on the registry;
//! - `processing`: Meta's webhooks, from the signed POST to registry changes and team events;
//! - `delivery`: team events pushed to the teams' webhook endpoints;
//! - `endpoints`: the endpoints a team manages, their secrets, attempts and replays;
//! - `events`: the team events feed, and what administrators see of it;
//! - `ownership`: which team owns a group;
//! - `revocation`: revoked tokens, held in memory;
//! - `audit`: the audit log;
//! - `retention`: pruning what grows with traffic, in the background.

pub mod audit;
pub mod creation;
pub mod delivery;
pub mod endpoints;
pub mod events;
pub mod groups;
pub mod ownership;
pub mod processing;
pub mod reconcile;
pub mod registry;
pub mod retention;
pub mod revocation;
