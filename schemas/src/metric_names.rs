//! Names of every Prometheus metric the platform exports, documented in one place.
//!
//! Constants only: the crates that record them use the `metrics` facade, and `GET /metrics` renders them.

/// Counter of HTTP requests, labelled `method`, `route` and `status`.
pub const HTTP_REQUESTS: &str = "haltless_http_requests_total";
/// Histogram of HTTP request durations in seconds, labelled `method` and `route`.
pub const HTTP_REQUEST_SECONDS: &str = "haltless_http_request_duration_seconds";
/// Counter of readings admitted (acknowledged by Kafka), whatever their door, labelled `source` (gateway,
/// agent, modbus, opcua).
pub const READINGS_ACCEPTED: &str = "haltless_gateway_readings_accepted_total";
/// Counter of readings refused, labelled `reason` and `source` (requests refused as invalid count once).
pub const READINGS_REJECTED: &str = "haltless_gateway_readings_rejected_total";
/// Ingest requests answered 503 `overloaded`: the process was already handling its limit of requests, or the
/// records waiting for Kafka filled the producer's bounded queue.
pub const INGEST_SHED: &str = "haltless_gateway_requests_shed_total";
/// Histogram of the time Kafka took to acknowledge one ingest request's records, in seconds.
pub const PRODUCE_SECONDS: &str = "haltless_gateway_produce_duration_seconds";
/// Counter of rows a projection wrote, labelled `projection`.
pub const PROJECTION_ROWS: &str = "haltless_projection_rows_total";
/// Histogram of messages per projection batch, labelled `projection`.
pub const PROJECTION_BATCH_MESSAGES: &str = "haltless_projection_batch_messages";
/// Gauge of messages a projection is behind the partition's end, labelled `projection` and `partition`.
pub const PROJECTION_LAG: &str = "haltless_projection_lag_messages";
/// Gauge of messages an exactly-once processor (`detectors`, `predictor`) is behind the end of its input
/// partition, labelled `processor` and `partition`; 0 when caught up.
pub const PROCESSOR_LAG: &str = "haltless_processor_lag_messages";
/// Counter of messages a projection could not decode and skipped, labelled `projection`.
pub const PROJECTION_UNDECODABLE: &str = "haltless_projection_undecodable_messages_total";
/// Counter of alert transitions the detectors committed.
pub const DETECTOR_ALERTS: &str = "haltless_detector_alerts_total";
/// Histogram of readings messages per detector transaction.
pub const DETECTOR_BATCH_MESSAGES: &str = "haltless_detector_batch_messages";
/// Counter of remaining-useful-life predictions the predictor committed.
pub const PREDICTOR_PREDICTIONS: &str = "haltless_predictor_predictions_total";
/// Counter of login attempts, labelled `outcome` (`ok`, `invalid`, `throttled`).
pub const AUTH_LOGINS: &str = "haltless_auth_logins_total";
/// Counter of argon2 runs, labelled `kind` (`verify`: a login's check, dummy ones included; `hash`: a
/// password set at sign-up, user creation or invitation), the work a flood of requests can ask for.
pub const AUTH_PASSWORD_WORK: &str = "haltless_auth_password_work_total";
/// Counter of refresh tokens presented a second time (each revokes a session).
pub const AUTH_REFRESH_REUSE: &str = "haltless_auth_refresh_reuse_total";
/// Counter of requests refused for a tenant's rate limit, labelled `kind` (`reads`, `writes`).
pub const RATE_LIMITED: &str = "haltless_rate_limited_total";
/// Counter of readings the retention sweep deleted.
pub const RETENTION_DELETED: &str = "haltless_retention_deleted_readings_total";
/// Counter of readings a device source delivered, labelled `source`.
pub const SOURCE_READINGS: &str = "haltless_source_readings_total";
/// Counter of failed polls (connection, timeout, device exception, delivery), labelled `source`.
pub const SOURCE_ERRORS: &str = "haltless_source_errors_total";
/// Gauge of sources this connectors instance polls.
pub const SOURCES_OWNED: &str = "haltless_connectors_sources_owned";
/// Gauge of readings waiting in the edge agent's disk buffer.
pub const AGENT_BUFFERED: &str = "haltless_agent_buffered_readings";
/// Counter of readings the edge agent dropped because its buffer was full (the oldest go first).
pub const AGENT_DROPPED: &str = "haltless_agent_dropped_readings_total";
/// Counter of readings the edge agent pushed and the cloud acknowledged.
pub const AGENT_PUSHED: &str = "haltless_agent_pushed_readings_total";
/// Counter of failed pushes of the edge agent.
pub const AGENT_PUSH_FAILURES: &str = "haltless_agent_push_failures_total";
/// Counter of Redis outages seen by the rate limiter (one per outage, however many requests it lets through).
pub const RATE_LIMIT_OUTAGES: &str = "haltless_rate_limit_outages_total";
/// Counter of requests and deliveries let through unchecked because Redis was unreachable, labelled `kind`.
pub const RATE_LIMIT_PASSED: &str = "haltless_rate_limit_passed_total";
/// Counter of answers given from the lookup cache because PostgreSQL was unreachable, labelled `lookup`
/// (`api_key`, `machines`).
pub const LOOKUP_CACHE_FALLBACKS: &str = "haltless_lookup_cache_fallbacks_total";
/// Counter of restarts of a role whose work failed, labelled `role`.
pub const ROLE_RESTARTS: &str = "haltless_role_restarts_total";
/// Counter of notifications the alert engine recorded for delivery, labelled `kind` (`alert`, `resolved`,
/// `test`).
pub const NOTIFICATIONS_RECORDED: &str = "haltless_notifications_recorded_total";
/// Counter of delivery attempts, labelled `outcome` (`delivered`, `retry`, `failed`).
pub const NOTIFICATION_ATTEMPTS: &str = "haltless_notification_attempts_total";
