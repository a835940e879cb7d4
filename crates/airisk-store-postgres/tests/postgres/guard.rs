//! The one test of this binary that is never ignored: under CI a missing database fails the run.
//!
//! Every PostgreSQL test is `#[ignore]`d (a plain `cargo test` lists it as ignored, never as
//! passed) and panics when run without `AIRISK_TEST_DATABASE_URL`. This test closes the last
//! gap — a CI run that forgot the variable and so never asked for the ignored tests: with `CI`
//! set (to anything but empty, `0` or `false`, as every CI service sets it) and no URL, it fails.

use crate::support::URL_VAR;

fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false" | "FALSE" | "False"))
}

#[test]
fn under_ci_the_postgresql_tests_cannot_be_skipped() {
    assert!(
        !under_ci() || std::env::var(URL_VAR).is_ok_and(|u| !u.is_empty()),
        "CI is set but {URL_VAR} is not: the PostgreSQL store tests would not run"
    );
}
