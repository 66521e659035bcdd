//! Faults of our own infrastructure, for the scenarios that must survive them: the database
//! proxy lives in the platform's test support, shared with the platform's own tests; a
//! PostgreSQL cluster of the test's own, to stop and start, lives here.

pub use rp_platform::testing::{DbProxy, PrivateNats};

use rp_platform::testing::{eventually, free_port};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A PostgreSQL cluster of the test's own (`initdb` into a temporary directory, a free port,
/// trust authentication), so a test can stop and start the database server its system runs on
/// without touching the machine's PostgreSQL that other tests use. Runs as the `postgres` user
/// when the test runs as root (PostgreSQL refuses to run as root). Stopped (immediately) and
/// deleted on drop.
pub struct PrivatePostgres {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
    as_postgres: bool,
}

impl PrivatePostgres {
    /// Creates the cluster and starts it; returns once it accepts connections.
    pub async fn start() -> Self {
        let bin = postgres_bin();
        let as_postgres = is_root();
        let dir =
            std::env::temp_dir().join(format!("rp-pg-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        if as_postgres {
            run(Command::new("chown").args(["postgres:postgres"]).arg(&dir)).await;
        }
        let pg = Self {
            port: free_port(),
            dir,
            bin,
            as_postgres,
        };
        let data = pg.data_dir();
        run(pg
            .command("initdb")
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&data))
        .await;
        pg.pg_ctl_start().await;
        pg
    }

    /// A URL of the server (its `postgres` database), for [`rp_platform::testing::EnvOptions`].
    pub fn server_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// `pg_ctl stop -m <mode>`; returns once the server has exited. `fast` is what a
    /// PostgreSQL restart does first (every session is terminated, "terminating connection due
    /// to administrator command", a checkpoint is written); `immediate` is a crash (no
    /// checkpoint: the next start recovers from the WAL).
    pub async fn stop(&self, mode: &str) {
        run(self
            .command("pg_ctl")
            .args(["stop", "-m", mode, "-w", "-t", "60", "-D"])
            .arg(self.data_dir()))
        .await;
    }

    /// Starts the stopped server again on the same port and data; returns once it accepts
    /// connections.
    pub async fn start_again(&self) {
        self.pg_ctl_start().await;
    }

    async fn pg_ctl_start(&self) {
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c max_connections=300 -c fsync=off \
             -c full_page_writes=off",
            self.port,
            self.dir.display()
        );
        run(self
            .command("pg_ctl")
            .args(["start", "-w", "-t", "60", "-l"])
            .arg(self.dir.join("server.log"))
            .args(["-o", &opts, "-D"])
            .arg(self.data_dir()))
        .await;
        let addr = format!("127.0.0.1:{}", self.port);
        eventually(Duration::from_secs(30), "PostgreSQL to listen", || {
            let addr = addr.clone();
            async move { tokio::net::TcpStream::connect(addr).await.ok().map(|_| ()) }
        })
        .await;
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// One of the server's programs, as the `postgres` user when we are root.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut c = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        };
        c.current_dir(&self.dir);
        c
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .args(["stop", "-m", "immediate", "-w", "-D"])
            .arg(self.data_dir())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `cmd` to its end; panics with its output when it fails.
async fn run(cmd: &mut Command) {
    cmd.stdin(std::process::Stdio::null());
    let shown = format!("{cmd:?}");
    let out = tokio::process::Command::from(std::mem::replace(cmd, Command::new("true")))
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    assert!(
        out.status.success(),
        "{shown}: {:?}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The newest PostgreSQL's programs (`/usr/lib/postgresql/<version>/bin`), or `PG_BIN`.
fn postgres_bin() -> PathBuf {
    if let Ok(dir) = std::env::var("PG_BIN") {
        return PathBuf::from(dir);
    }
    let root = Path::new("/usr/lib/postgresql");
    let newest = std::fs::read_dir(root)
        .ok()
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .max_by_key(|(v, _)| *v);
    newest.map(|(_, bin)| bin).unwrap_or_else(|| {
        panic!(
            "no PostgreSQL server programs in {}/<version>/bin (set PG_BIN)",
            root.display()
        )
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .is_some_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}
