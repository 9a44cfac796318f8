//! End-to-end tests of the running service: each test spawns the real app on a
//! random port over a temp SQLite store, with Zendesk Sell played by the real
//! `offboard-sandbox`.

mod helpers;

mod hubspot;

mod admin;
mod offboarding;
mod pipedrive;
mod policy_flow;
mod webhook;
