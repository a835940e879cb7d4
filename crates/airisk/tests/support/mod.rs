//! Helpers shared by the integration tests of the `airisk` binary: the binary with a clean
//! environment, a spawned `airisk serve` read up to its banner and killed on drop, and the small
//! HTTP and command helpers the tests used to repeat each in its own file.
// Each test binary includes this module and uses a part of it; the rest is dead code there.
#![allow(dead_code)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // tests: a failed step should stop the test loudly

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The `airisk` binary, with every variable it reads its secrets, keys, database and bind address
/// from removed, so a developer's shell never leaks into a test.
pub fn airisk() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_airisk"));
    for var in [
        "AIRISK_ENCRYPTION_KEYS",
        "AIRISK_LEDGER_SIGNING_KEY",
        "AIRISK_LEDGER_VERIFIER_KEY",
        "AIRISK_JWT_SECRET",
        "AIRISK_JWKS_FILE",
        "AIRISK_DATABASE_URL",
        "AIRISK_ADMIN_DATABASE_URL",
        "AIRISK_BIND",
        "AIRISK_CONFIG",
        "AIRISK_PUBLIC_URL",
        "AIRISK_DANGEROUS_INSECURE_COOKIES",
        "AIRISK_JWT_PRIVATE_KEY_FILE",
        "AIRISK_DANGEROUS_ALLOW_HS256",
        "AIRISK_PKCS11_MODULE",
        "PGPASSWORD",
    ] {
        c.env_remove(var);
    }
    c
}

/// Runs `cmd`, asserts it succeeded, and returns its stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// stderr of `out` as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A running `airisk serve`, killed on drop if the test did not stop it.
pub struct Server {
    pub child: Child,
    /// The `export NAME=value` lines of the banner (dev tokens and keys).
    pub exports: HashMap<String, String>,
    pub base: String,
    /// Everything printed on stdout up to and including the "listening" line.
    pub banner: String,
    /// stderr, drained by a thread so the pipe never fills and blocks the server.
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Spawns `cmd` (an `airisk serve …` command) on port 0 and reads stdout up to the
    /// "listening" line, collecting the `export` lines before it.
    pub fn spawn(mut cmd: Command) -> Server {
        let mut child = cmd
            .args(["--bind", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text);
            text
        });
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut exports = HashMap::new();
        let mut banner = String::new();
        let base = loop {
            let line = lines
                .next()
                .expect("airisk serve exited before listening")
                .unwrap();
            banner.push_str(&line);
            banner.push('\n');
            if let Some((k, v)) = line
                .strip_prefix("export ")
                .and_then(|kv| kv.split_once('='))
            {
                exports.insert(k.to_owned(), v.to_owned());
            }
            if let Some(url) = line
                .strip_prefix("# airisk listening on ")
                .or_else(|| line.strip_prefix("airisk listening on "))
            {
                break url.to_owned();
            }
        };
        // Keep draining stdout so a later write never meets a closed pipe.
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            exports,
            base,
            banner,
            stderr: Some(stderr),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGTERM, then (within 20 s) everything it wrote on stderr.
    pub fn stop(self) -> String {
        self.terminate(Duration::from_secs(20)).1
    }

    /// SIGTERM, then (waiting at most `limit`) the exit status and stderr.
    pub fn terminate(mut self, limit: Duration) -> (ExitStatus, String) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + limit;
        let exit = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "airisk serve did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let stderr = self.stderr.take().unwrap().join().unwrap();
        (exit, stderr)
    }
}

/// POSTs `body` as JSON with `token`; the status and the JSON answer (null if none).
pub async fn post(client: &reqwest::Client, url: String, token: &str, body: Value) -> (u16, Value) {
    let r = client
        .post(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// GETs `url` with `token`; the status and the JSON answer (null if none).
pub async fn get(client: &reqwest::Client, url: String, token: &str) -> (u16, Value) {
    let r = client.get(url).bearer_auth(token).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The `airisk` binary with an empty environment but `PATH`: nothing of the caller's shell reaches
/// it.
pub fn airisk_bare() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_airisk"));
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    c
}

/// Runs `command` with `stdin` as its input and returns its output. stdin is fed from another
/// thread, so a large input cannot deadlock against a full stdout; the child may stop reading
/// early (a first bad line), so a broken pipe is fine.
pub fn feed(mut command: Command, stdin: &[u8]) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    let input = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

/// A child process killed (and reaped) on drop.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `psql` on `url` running `sql`, stopping at the first error; its unaligned, tuples-only output.
pub fn psql(url: &str, sql: &str) -> String {
    run_ok(Command::new("psql").args([
        "-X",
        "-v",
        "ON_ERROR_STOP=1",
        "-A",
        "-t",
        "-q",
        "-d",
        url,
        "-c",
        sql,
    ]))
}

/// Production keys made by the binary's own generators, the token key and JWKS written in a
/// directory.
pub struct ProdKeys {
    /// The EdDSA private key file `airisk token issue` signs with (`dir/jwt.pem`).
    pub jwt_private_key: PathBuf,
    /// Its public JWKS, the file `airisk serve` verifies tokens with (`dir/jwks.json`).
    pub jwks_file: PathBuf,
    /// The output of `airisk keys generate` (an encryption keyring entry).
    pub encryption: String,
    /// The output of `airisk keys generate --ledger`: the signing key, then the verifier key.
    pub ledger: String,
}

impl ProdKeys {
    /// Generates the keys in `dir` (which must exist).
    pub fn generate(dir: &Path) -> ProdKeys {
        let jwt_private_key = dir.join("jwt.pem");
        let jwks = run_ok(airisk().args([
            "token",
            "keygen",
            "--private-key",
            jwt_private_key.to_str().unwrap(),
        ]));
        let jwks_file = dir.join("jwks.json");
        std::fs::write(&jwks_file, &jwks).unwrap();
        let encryption = run_ok(airisk().args(["keys", "generate"]));
        let ledger = run_ok(airisk().args(["keys", "generate", "--ledger"]));
        ProdKeys {
            jwt_private_key,
            jwks_file,
            encryption,
            ledger,
        }
    }

    /// The ledger signing key (the first line of [`ProdKeys::ledger`]).
    pub fn signing_key(&self) -> String {
        self.ledger.lines().next().unwrap().trim().to_owned()
    }

    /// Writes `dir/airisk.toml` naming `database_url` and this JWKS, then the `extra` lines;
    /// returns its path.
    pub fn write_config(&self, dir: &Path, database_url: &str, extra: &str) -> PathBuf {
        let config = dir.join("airisk.toml");
        std::fs::write(
            &config,
            format!(
                "database_url = \"{database_url}\"\njwks_file = {:?}\n{extra}",
                self.jwks_file.to_str().unwrap()
            ),
        )
        .unwrap();
        config
    }

    /// `airisk serve --config <config>` with the encryption keyring and the ledger signing key in
    /// its environment, as in production.
    pub fn serve(&self, config: &Path) -> Command {
        let mut cmd = airisk();
        cmd.args(["serve", "--config", config.to_str().unwrap()])
            .env("AIRISK_ENCRYPTION_KEYS", self.encryption.trim())
            .env("AIRISK_LEDGER_SIGNING_KEY", self.signing_key());
        cmd
    }
}

/// A new, empty directory `<temp>/<prefix>-<uuid v7>`; the test removes it when it is done.
pub fn fresh_dir(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
