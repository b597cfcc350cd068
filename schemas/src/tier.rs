//! The subscription tiers and the limits in force for a tenant: the figures the gateway, the API and the
//! retention sweep all enforce. Values only; loading a tenant's overrides is the caller's business.

use serde::Serialize;

/// Subscription tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// Free: 2 machines, 60 writes and 300 reads per minute, 7 days of readings, 2 ingest sources of at
    /// most 50 points, 80 points in all.
    Free,
    /// Pro: 50 machines, 300 writes and 1,500 reads per minute, 365 days of readings, 50 ingest sources of
    /// at most 1,000 points, 5,000 points in all.
    Pro,
    /// Enterprise: 10,000 machines, 1,200 writes and 6,000 reads per minute, 3,650 days of readings, 5,000
    /// ingest sources of at most 10,000 points, 500,000 points in all.
    Enterprise,
}

impl Tier {
    /// The tier's name as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Free => "free",
            Tier::Pro => "pro",
            Tier::Enterprise => "enterprise",
        }
    }

    /// Parses a stored tier name; anything unknown counts as Free, the most restrictive.
    pub fn parse(name: &str) -> Self {
        match name {
            "pro" => Tier::Pro,
            "enterprise" => Tier::Enterprise,
            _ => Tier::Free,
        }
    }

    /// Most machines a tenant of this tier may register.
    pub fn max_machines(self) -> u64 {
        match self {
            Tier::Free => 2,
            Tier::Pro => 50,
            Tier::Enterprise => 10_000,
        }
    }

    /// API writes per minute (an ingest request is one write).
    pub fn writes_per_minute(self) -> u64 {
        match self {
            Tier::Free => 60,
            Tier::Pro => 300,
            Tier::Enterprise => 1_200,
        }
    }

    /// API reads per minute.
    pub fn reads_per_minute(self) -> u64 {
        match self {
            Tier::Free => 300,
            Tier::Pro => 1_500,
            Tier::Enterprise => 6_000,
        }
    }

    /// Days of readings kept.
    pub fn retention_days(self) -> u32 {
        match self {
            Tier::Free => 7,
            Tier::Pro => 365,
            Tier::Enterprise => 3_650,
        }
    }

    /// Most ingest sources (devices the platform polls), enabled or not.
    pub fn max_sources(self) -> u64 {
        match self {
            Tier::Free => 2,
            Tier::Pro => 50,
            Tier::Enterprise => 5_000,
        }
    }

    /// Most points (values read) in one source's point map.
    pub fn max_points_per_source(self) -> u64 {
        match self {
            Tier::Free => 50,
            Tier::Pro => 1_000,
            Tier::Enterprise => 10_000,
        }
    }

    /// Most points over all of a tenant's sources.
    pub fn max_points(self) -> u64 {
        match self {
            Tier::Free => 80,
            Tier::Pro => 5_000,
            Tier::Enterprise => 500_000,
        }
    }
}

/// A tenant's limits in force: its tier's figures unless a platform operator overrode them.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct TenantLimits {
    /// The tier.
    pub tier: Tier,
    /// Most machines.
    pub max_machines: u64,
    /// API writes per minute.
    pub writes_per_minute: u64,
    /// API reads per minute.
    pub reads_per_minute: u64,
    /// Days of readings kept.
    pub retention_days: u32,
    /// Most ingest sources.
    pub max_sources: u64,
    /// Most points in one source.
    pub max_points_per_source: u64,
    /// Most points over all sources.
    pub max_points: u64,
}

impl TenantLimits {
    /// The limits from a tier and the tenant's override columns (NULL: the tier's figure).
    pub fn from_row(
        tier: Tier,
        max_machines: Option<i32>,
        writes: Option<i32>,
        reads: Option<i32>,
    ) -> Self {
        let or = |o: Option<i32>, default: u64| o.map(|v| v.max(0) as u64).unwrap_or(default);
        Self {
            tier,
            max_machines: or(max_machines, tier.max_machines()),
            writes_per_minute: or(writes, tier.writes_per_minute()),
            reads_per_minute: or(reads, tier.reads_per_minute()),
            retention_days: tier.retention_days(),
            max_sources: tier.max_sources(),
            max_points_per_source: tier.max_points_per_source(),
            max_points: tier.max_points(),
        }
    }
}
