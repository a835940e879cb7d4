//! `on_backends!`: the tests that run one scenario on several stores, generated from one line.

/// For the scenario `async fn $scenario(Backend)` (in the invoking module), a module named
/// `$scenario` with one test per backend listed: `in_memory`, `on_sqlite` and `on_postgres`. The
/// PostgreSQL test is `#[ignore]`d with the reason `scripts/check-pg-ran.sh` looks for, and
/// records its run through `PgDb` like every PostgreSQL test. Arguments for `#[tokio::test]` may
/// follow the list in parentheses:
///
/// ```ignore
/// on_backends!(shutdown_loses_no_acknowledged_write: [memory, sqlite, postgres]
///     (flavor = "multi_thread", worker_threads = 2));
/// ```
macro_rules! on_backends {
    (@test memory $scenario:ident ($($args:tt)*)) => {
        #[tokio::test($($args)*)]
        async fn in_memory() {
            super::$scenario(crate::support::Backend::Memory).await;
        }
    };
    (@test sqlite $scenario:ident ($($args:tt)*)) => {
        #[tokio::test($($args)*)]
        async fn on_sqlite() {
            super::$scenario(crate::support::Backend::Sqlite).await;
        }
    };
    (@test postgres $scenario:ident ($($args:tt)*)) => {
        #[tokio::test($($args)*)]
        #[ignore = "PostgreSQL: needs AIRISK_TEST_DATABASE_URL; run with --ignored (scripts/test.sh does)"]
        async fn on_postgres() {
            super::$scenario(crate::support::Backend::Postgres).await;
        }
    };
    ($scenario:ident: [$($backend:ident),+ $(,)?]) => {
        on_backends!($scenario: [$($backend),+] ());
    };
    ($scenario:ident: [$($backend:ident),+ $(,)?] $args:tt) => {
        mod $scenario {
            $( on_backends!(@test $backend $scenario $args); )+
        }
    };
}
