//! The alert engine: gets each alert to the right people once, and to nobody while it is muted.
//!
//! - [`policy`]: escalation policies, matchers and grouping as plain values.
//! - [`message`]: what a notification says, whatever carries it.
//! - [`channels`]: the kinds of channel (webhook, Slack, Teams, email, Web Push), one file each, and the
//!   outbound connections they make.
//! - [`intake`]: the active generation's alerts and the alert actions, projected exactly once into each
//!   alert's escalation.
//! - [`mutes`]: silences, maintenance (work orders in progress), inhibition rules and connectivity.
//! - [`watchdog`]: connectivity alerts for machines gone silent.
//! - [`dispatch`], [`notices`]: the clock that turns due steps and resolutions into notifications;
//!   [`record`]: recording them, with their keys, before they are sent.
//! - [`delivery`]: sending with retries, per-channel limits and leases.
//! - [`secrets`]: channels' secret fields, sealed at rest.
//! - [`run`]: the engine's tasks.

pub mod channels;
pub mod config;
pub mod delivery;
pub mod dispatch;
pub mod intake;
pub mod message;
pub mod mutes;
pub mod notices;
pub mod policy;
pub mod record;
pub mod run;
pub mod secrets;
pub mod watchdog;

pub use config::AlertingConfig;
