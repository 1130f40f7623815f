//! A private PostgreSQL for the local run, the way it embeds Kafka: when
//! `DATABASE_URL` is unset and nothing answers at the default address, a
//! server is started from the machine's own PostgreSQL binaries, in a data
//! directory of its own (kept between runs), on a free loopback port, and
//! stopped with the run.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use anyhow::{Context, bail};

/// Where the services look for PostgreSQL when `DATABASE_URL` is unset.
pub const DEFAULT_ADDRESS: &str = "127.0.0.1:5432";

/// True when something accepts connections at `address` within a second.
pub fn answers(address: &str) -> bool {
    address
        .parse::<SocketAddr>()
        .is_ok_and(|a| TcpStream::connect_timeout(&a, Duration::from_secs(1)).is_ok())
}

/// The data directory: `target/eventpipe-postgres` when run from the
/// repository (or under `CARGO_TARGET_DIR`), else one in the temporary
/// directory.
pub fn default_data_dir() -> PathBuf {
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(target).join("eventpipe-postgres");
    }
    let local = PathBuf::from("target");
    if local.is_dir() {
        return local.join("eventpipe-postgres");
    }
    std::env::temp_dir().join("eventpipe-postgres")
}

/// The directory holding `initdb` and `pg_ctl`: `pg_config --bindir`, the
/// newest `/usr/lib/postgresql/*/bin`, or the `PATH`.
pub fn find_binaries() -> Option<PathBuf> {
    let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if has_both(&dir) {
            return Some(dir);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse().ok()?;
            Some((version, e.path().join("bin")))
        })
        .filter(|(_, dir)| has_both(dir))
        .collect();
    versions.sort();
    if let Some((_, dir)) = versions.pop() {
        return Some(dir);
    }
    std::env::split_paths(&std::env::var_os("PATH")?).find(|d| has_both(d))
}

/// A running private server.
#[derive(Debug)]
pub struct PrivatePostgres {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    /// The system user the server runs as when this process is root
    /// (PostgreSQL refuses to run as root).
    run_as: Option<String>,
}

impl PrivatePostgres {
    /// Starts a server on data directory `dir` (created and initialised on
    /// first use), on a free loopback port.
    pub fn start(dir: &Path) -> anyhow::Result<Self> {
        let bin = find_binaries().context(
            "PostgreSQL is not reachable and no PostgreSQL server binaries (initdb, pg_ctl) are installed: run scripts/setup (it installs Debian's postgresql), or set DATABASE_URL",
        )?;
        let run_as = if is_root() {
            let user = "postgres";
            let exists = Command::new("id")
                .arg(user)
                .output()
                .is_ok_and(|o| o.status.success());
            if !exists {
                bail!(
                    "PostgreSQL will not run as root and there is no `postgres` user to run it as: run eventpipe as a normal user, or set DATABASE_URL"
                );
            }
            Some(user.to_owned())
        } else {
            None
        };
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let dir = dir
            .canonicalize()
            .with_context(|| format!("resolving {}", dir.display()))?;
        let mut server = PrivatePostgres {
            dir,
            bin,
            port: 0,
            run_as,
        };
        if let Some(user) = &server.run_as {
            check(
                Command::new("chown")
                    .args(["-R", &format!("{user}:"), &server.dir.to_string_lossy()])
                    .output(),
                "chown",
            )?;
        }
        if !server.dir.join("PG_VERSION").exists() {
            let dir = server.dir.to_string_lossy().into_owned();
            server.run(
                "initdb",
                &[
                    "-D",
                    &dir,
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ],
            )?;
        }
        // A server left running by a run that was killed holds the directory.
        if server
            .run("pg_ctl", &["-D", &server.dir.to_string_lossy(), "status"])
            .is_ok()
        {
            server.stop_server()?;
        }
        server.port = free_port()?;
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {}",
            server.port,
            server.dir.display()
        );
        let dir = server.dir.to_string_lossy().into_owned();
        let log = server.dir.join("server.log").to_string_lossy().into_owned();
        server
            .run(
                "pg_ctl",
                &[
                    "-D", &dir, "-l", &log, "-o", &options, "-w", "-t", "60", "start",
                ],
            )
            .with_context(|| format!("starting PostgreSQL (its log: {log})"))?;
        Ok(server)
    }

    /// The URL of database `name` on it.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Its data directory.
    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    fn stop_server(&self) -> anyhow::Result<()> {
        let dir = self.dir.to_string_lossy().into_owned();
        self.run("pg_ctl", &["-D", &dir, "-m", "fast", "-w", "stop"])
            .map(drop)
    }

    /// Runs one of the server's programs (as the server's user when root).
    fn run(&self, program: &str, args: &[&str]) -> anyhow::Result<Output> {
        let path = self.bin.join(program);
        let mut command = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&path);
                c
            }
            None => Command::new(&path),
        };
        command.args(args).current_dir(&self.dir);
        check(command.output(), program)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        if self.port != 0
            && let Err(error) = self.stop_server()
        {
            tracing::warn!(%error, "could not stop the private PostgreSQL");
        }
    }
}

fn check(output: std::io::Result<Output>, what: &str) -> anyhow::Result<Output> {
    let output = output.with_context(|| format!("running {what}"))?;
    if !output.status.success() {
        bail!(
            "{what} failed: {}{}",
            String::from_utf8_lossy(&output.stdout).trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(output)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}
