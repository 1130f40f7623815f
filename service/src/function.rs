//! Function platforms: the API and the worker run as AWS Lambda functions
//! when the Lambda runtime API is there (the same binaries, chosen at
//! start; docs/DEPLOY.md).

/// Set by Lambda (and by its emulators) for a custom runtime: the address
/// of the runtime API a function takes its invocations from.
pub const RUNTIME_API: &str = "AWS_LAMBDA_RUNTIME_API";

/// Whether this process runs as a Lambda function.
pub fn on_lambda() -> bool {
    std::env::var_os(RUNTIME_API).is_some_and(|v| !v.is_empty())
}

/// cargo-lambda's emulator of Lambda's runtime and invoke APIs (`cargo
/// lambda watch --only-lambda-apis`), for running the functions on one
/// machine: a function process started with [`Emulator::function_env`]
/// takes its invocations from it, and clients invoke it through
/// [`Emulator::function_url`] (a function URL) or [`Emulator::invoke_url`]
/// (the Invoke API). Stopped when dropped.
pub struct Emulator {
    child: std::process::Child,
    port: u16,
}

/// The function name the emulator gives a function it does not start.
const EMULATED_FUNCTION: &str = "_";

impl Emulator {
    /// Starts the emulator on a free port of 127.0.0.1, from `workspace`
    /// (it reads the workspace's metadata), and waits until it answers.
    /// cargo-lambda is `CARGO_LAMBDA` when set, else the one
    /// `scripts/setup` installs under `target/lambda-venv`, else
    /// `cargo-lambda` on the `PATH`.
    pub fn start(workspace: &std::path::Path) -> anyhow::Result<Self> {
        use anyhow::Context;
        let installed = workspace.join("target/lambda-venv/bin/cargo-lambda");
        let program = match std::env::var_os("CARGO_LAMBDA") {
            Some(program) => std::path::PathBuf::from(program),
            None if installed.exists() => installed,
            None => "cargo-lambda".into(),
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = std::process::Command::new(&program)
            .args(["lambda", "watch", "--only-lambda-apis", "--quiet"])
            .args(["--invoke-address", "127.0.0.1", "--invoke-port"])
            .arg(port.to_string())
            .current_dir(workspace)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .spawn()
            .with_context(|| {
                format!(
                    "starting cargo-lambda's emulator ({}; scripts/setup installs it)",
                    program.display()
                )
            })?;
        let mut emulator = Emulator { child, port };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = emulator.child.try_wait()? {
                anyhow::bail!("cargo-lambda's emulator exited at start: {status}");
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "cargo-lambda's emulator did not answer on port {port} within 60 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Ok(emulator)
    }

    /// The variables Lambda sets for a function, pointing at this emulator.
    pub fn function_env(&self) -> Vec<(&'static str, String)> {
        vec![
            (RUNTIME_API, format!("http://127.0.0.1:{}/.rt", self.port)),
            ("AWS_LAMBDA_FUNCTION_NAME", EMULATED_FUNCTION.to_owned()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "1".to_owned()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024".to_owned()),
        ]
    }

    /// Starts `program` as this emulator's function, with only the
    /// variables Lambda would give it ([`Emulator::function_env`], `PATH`)
    /// and `vars`, its standard output to `stdout`. Stopped when dropped.
    pub fn function<K, V>(
        &self,
        program: &std::path::Path,
        vars: impl IntoIterator<Item = (K, V)>,
        stdout: std::process::Stdio,
    ) -> anyhow::Result<Function>
    where
        K: AsRef<std::ffi::OsStr>,
        V: AsRef<std::ffi::OsStr>,
    {
        use anyhow::Context;
        let child = std::process::Command::new(program)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(self.function_env())
            .envs(vars)
            .stdin(std::process::Stdio::null())
            .stdout(stdout)
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        Ok(Function(child))
    }

    /// The function URL of the function, for `path` (starting with `/`).
    pub fn function_url(&self, path: &str) -> String {
        format!(
            "http://127.0.0.1:{}/lambda-url/{EMULATED_FUNCTION}{path}",
            self.port
        )
    }

    /// Where the function is invoked with an event (the Invoke API).
    pub fn invoke_url(&self) -> String {
        format!(
            "http://127.0.0.1:{}/2015-03-31/functions/{EMULATED_FUNCTION}/invocations",
            self.port
        )
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A function process started by [`Emulator::function`]; killed when
/// dropped (an execution environment the platform reclaims).
pub struct Function(std::process::Child);

impl Function {
    /// Whether the process still runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }

    /// Its standard output, if it was piped (once).
    pub fn take_stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.0.stdout.take()
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
