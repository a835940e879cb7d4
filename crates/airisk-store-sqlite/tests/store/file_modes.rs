//! The database file and its `-wal` and `-shm` files are created owner-only (`0600`), and the
//! directory the store creates `0700`, whatever the umask.
//!
//! The umask is process-wide, so the check runs in a child process of this test binary started
//! by `sh -c 'umask 022; exec …'`: no unsafe code, and no other test sees the changed umask.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use crate::support::{TempDb, append_n};

/// Set in the child: the directory to create the database in.
const CHILD_VAR: &str = "AIRISK_FILE_MODE_CHILD_DIR";

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn the_database_and_its_wal_and_shm_are_owner_only_under_umask_022() {
    let db = TempDb::new();
    let dir = db.path().parent().unwrap().parent().unwrap().join("fresh");
    let out = Command::new("sh")
        .arg("-c")
        .arg("umask 022 && exec \"$0\" \"$@\"")
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "file_modes::child_opens_a_store_under_the_inherited_umask",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_VAR, &dir)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    // The child really ran (not filtered away) and really saw umask 022.
    assert!(text.contains("1 passed"), "{text}");
    assert!(text.contains("umask 022 in effect"), "{text}");
}

/// The child half of the test above; without [`CHILD_VAR`] (a normal run) it has nothing to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_opens_a_store_under_the_inherited_umask() {
    let Some(dir) = std::env::var_os(CHILD_VAR) else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    // An ordinary file shows the umask the parent set: 0666 & !022.
    std::fs::create_dir_all(&dir).unwrap();
    let probe = dir.join("probe");
    std::fs::write(&probe, b"x").unwrap();
    assert_eq!(
        mode(&probe),
        0o644,
        "the child does not run under umask 022"
    );
    println!("umask 022 in effect");

    let path = dir.join("data").join("audit.db");
    let store = airisk_store_sqlite::SqliteStore::open(
        &format!("sqlite://{}", path.display()),
        std::sync::Arc::new(airisk_core::ports::SystemClock),
    )
    .unwrap();
    append_n(&store, "acme", 3).await;
    let wal = dir.join("data").join("audit.db-wal");
    let shm = dir.join("data").join("audit.db-shm");
    assert!(
        wal.exists() && shm.exists(),
        "WAL mode keeps -wal and -shm while open"
    );
    for file in [&path, &wal, &shm] {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
    assert_eq!(mode(&dir.join("data")), 0o700);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}
