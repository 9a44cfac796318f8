//! End-to-end tests of the running service: each test spawns the real app on a
//! random port over a temp SQLite store, with the CRM (Zendesk Sell, Pipedrive,
//! HubSpot or Salesforce) played by the real `offboard-sandbox`.

mod helpers;

mod hubspot;
mod salesforce;

mod admin;
mod console;
mod notifications;
mod offboarding;
mod pipedrive;
mod policy_flow;
mod scim;
mod webhook;
