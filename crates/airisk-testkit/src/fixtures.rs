//! Clocks, ids and principals for tests.

use std::sync::Mutex;

use airisk_core::ports::Clock;
use airisk_core::security::rbac::Role;
use airisk_core::security::tenant_context::{ActorId, Principal, TenantId};
use chrono::{DateTime, Duration, TimeZone, Utc};

/// A clock that stands still until moved.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock at `2026-01-01T00:00:00Z`.
    pub fn new() -> Self {
        Self::at(
            Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
                .single()
                .unwrap_or_default(),
        )
    }

    /// A clock at `t`.
    pub fn at(t: DateTime<Utc>) -> Self {
        ManualClock { now: Mutex::new(t) }
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        let mut now = self
            .now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *now += d;
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self
            .now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A tenant id from a literal known to be valid.
///
/// # Panics
/// If `s` is not a valid tenant id (a bug in the test that calls it).
#[allow(clippy::expect_used)] // fixture: a bad literal is a bug in the calling test
pub fn tenant(s: &str) -> TenantId {
    TenantId::parse(s).expect("fixture tenant id must be valid")
}

/// A human principal from literals known to be valid.
///
/// # Panics
/// If `actor` or `tenant_id` is invalid (a bug in the test that calls it).
#[allow(clippy::expect_used)] // fixture: a bad literal is a bug in the calling test
pub fn human(actor: &str, tenant_id: &str, role: Role) -> Principal {
    Principal::human(
        ActorId::parse(actor).expect("fixture actor id must be valid"),
        tenant(tenant_id),
        role,
    )
}
