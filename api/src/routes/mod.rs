//! HTTP endpoints, one module per group; each exports its `router()`, assembled in [`crate::app`].
//!
//! - [`ingest`]: `POST /api/v1/ingest`, into the one admission path of readings.
//! - [`machines`], [`readings`]: machines, their readings (raw, bucketed, latest, CSV); [`series`] reads
//!   the readings store (raw rows, or the continuous aggregates for buckets).
//! - [`rules`], [`alerts`]: rules as events, alerts with their history, acks and snoozes;
//!   [`rule_preview`] runs a rule over a machine's stored readings before it is saved.
//! - [`channels`], [`policies`], [`silences`], [`push`]: the alert engine's notification channels,
//!   escalation policies, silences, delivery log, and the browsers people subscribed for Web Push.
//! - [`sources`]: OPC-UA and Modbus TCP ingest sources and their status.
//! - [`accounts`], [`users`], [`api_keys`]: sign-up, login, sessions, users, API keys.
//! - [`maintenance`], [`work_orders`]: maintenance events and sign-offs, work orders.
//! - [`predictions`], [`models`]: remaining-useful-life predictions (a machine's history, the fleet ranked
//!   by remaining life) and the tenant's models (training jobs, metrics, activation); [`activations`]
//!   publishes activations to the predictor.
//! - [`fleet`], [`reports`], [`settings`]: fleet status and KPIs, CSV and PDF exports, tenant settings.
//! - [`health`]: `/healthz`, `/readyz`, `/metrics`.
//! - [`bodies`]: the JSON bodies handlers check field by field, described for the OpenAPI document;
//!   [`channel_bodies`]: a notification channel's, one configuration schema per kind.
//! - [`paging`]: what the handlers share: pages, filters, machine lookups, CSV documents.

pub mod accounts;
pub mod activations;
pub mod alerts;
pub mod api_keys;
pub mod bodies;
pub mod channel_bodies;
pub mod channels;
pub mod fleet;
pub mod health;
pub mod ingest;
pub mod machines;
pub mod maintenance;
pub mod models;
pub mod paging;
pub mod policies;
pub mod predictions;
pub mod push;
pub mod readings;
pub mod reports;
pub mod rule_preview;
pub mod rules;
pub mod series;
pub mod settings;
pub mod silences;
pub mod sources;
pub mod users;
pub mod work_orders;
