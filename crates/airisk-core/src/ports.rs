//! Ports: the traits through which the core reaches the outside world. Adapters (stores, clocks)
//! implement them in other crates; services receive them as `Arc<dyn …>` values, never globals.

use chrono::{DateTime, SubsecRound, Utc};
use uuid::Uuid;

/// The source of "now". Always UTC; injected so tests control time (invariant 8).
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current instant, truncated to whole microseconds (the precision records keep).
    fn now(&self) -> DateTime<Utc>;
}

/// The operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now().trunc_subsecs(6)
    }
}

/// The source of new identifiers.
pub trait IdGenerator: Send + Sync + std::fmt::Debug {
    /// A new unique id. Production ids are UUIDv7 (time-ordered).
    fn new_id(&self) -> Uuid;
}

/// UUIDv7 ids from the system clock and the OS random source.
#[derive(Debug, Clone, Copy, Default)]
pub struct UuidV7Generator;

impl IdGenerator for UuidV7Generator {
    fn new_id(&self) -> Uuid {
        Uuid::now_v7()
    }
}
