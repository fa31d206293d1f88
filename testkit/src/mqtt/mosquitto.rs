//! The real `mosquitto` broker (Debian package `mosquitto`), started for one test.

use std::fmt::Write as _;
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::unused_local_port;

/// How long mosquitto may take to accept connections after it was started.
const READY_WAIT: Duration = Duration::from_secs(10);
/// How many times a start is tried with fresh ports (another process may take a free port
/// between choosing it and mosquitto binding it).
const START_TRIES: usize = 3;
const MISSING: &str = "mosquitto is not installed: apt-get install mosquitto";

/// How to configure a [`Mosquitto`].
#[derive(Debug, Clone)]
pub struct MosquittoConfig {
    /// Users of the authenticated listener (written with `mosquitto_passwd -b`).
    pub users: Vec<(String, String)>,
    /// Also open a TLS listener (anonymous) with a fresh self-signed certificate for
    /// `localhost` and `127.0.0.1`.
    pub tls: bool,
    /// Extra lines appended to the generated configuration (global settings apply to every
    /// listener, since the configuration uses `per_listener_settings true`).
    pub extra: String,
}

impl Default for MosquittoConfig {
    /// One user, `loaddensity` / `secret`; no TLS listener.
    fn default() -> Self {
        Self {
            users: vec![("loaddensity".to_owned(), "secret".to_owned())],
            tls: false,
            extra: String::new(),
        }
    }
}

/// A `mosquitto` process on free loopback ports, with its configuration in a temporary
/// directory:
///
/// - [`Mosquitto::port`]: anonymous access (`allow_anonymous true`);
/// - [`Mosquitto::auth_port`]: `password_file` generated with `mosquitto_passwd -b` from
///   [`MosquittoConfig::users`], `allow_anonymous false`;
/// - [`Mosquitto::tls_port`]: TLS, anonymous, when [`MosquittoConfig::tls`] is set (trust
///   [`Mosquitto::ca_file`]).
///
/// The process is stopped by its PID when this value is dropped. [`Mosquitto::stop`] and
/// [`Mosquitto::restart`] take it down and bring it back on the same ports.
///
/// # Panics
///
/// [`Mosquitto::start`] panics with "mosquitto is not installed: apt-get install mosquitto"
/// when the binary is missing: a test that needs the real broker never skips silently.
#[derive(Debug)]
pub struct Mosquitto {
    dir: TempDir,
    binary: PathBuf,
    config_path: PathBuf,
    log_path: PathBuf,
    port: u16,
    auth_port: u16,
    tls_port: Option<u16>,
    ca_path: Option<PathBuf>,
    child: Option<Child>,
}

fn find_program(name: &str, fallbacks: &[&str]) -> Option<PathBuf> {
    let from_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join(name));
    from_path
        .chain(fallbacks.iter().map(PathBuf::from))
        .find(|candidate| candidate.is_file())
}

impl Mosquitto {
    /// Writes the configuration, starts mosquitto and waits until every listener accepts
    /// connections.
    ///
    /// # Panics
    /// When `mosquitto` or `mosquitto_passwd` is not installed.
    pub async fn start(config: MosquittoConfig) -> io::Result<Self> {
        let binary = find_program(
            "mosquitto",
            &["/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"],
        )
        .expect(MISSING);
        let dir = tempfile::Builder::new().prefix("ld-mosquitto-").tempdir()?;
        let password_file = dir.path().join("passwd");
        write_password_file(&password_file, &config.users)?;
        let tls_files = if config.tls {
            Some(write_certificate(dir.path())?)
        } else {
            None
        };

        let mut broker = Self {
            binary,
            config_path: dir.path().join("mosquitto.conf"),
            log_path: dir.path().join("mosquitto.log"),
            port: 0,
            auth_port: 0,
            tls_port: None,
            ca_path: tls_files.as_ref().map(|(cert, _)| cert.clone()),
            child: None,
            dir,
        };
        let mut last_error = None;
        for _ in 0..START_TRIES {
            broker.port = unused_local_port();
            broker.auth_port = unused_local_port();
            broker.tls_port = config.tls.then(unused_local_port);
            broker.write_config(&config, &password_file, tls_files.as_ref())?;
            match broker.launch().await {
                Ok(()) => return Ok(broker),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("mosquitto did not start")))
    }

    fn write_config(
        &self,
        config: &MosquittoConfig,
        password_file: &Path,
        tls: Option<&(PathBuf, PathBuf)>,
    ) -> io::Result<()> {
        let mut text = String::new();
        let _ = writeln!(text, "per_listener_settings true");
        let _ = writeln!(text, "persistence false");
        let _ = writeln!(text, "log_dest stderr");
        // Ignored unless mosquitto runs as root; then it keeps root instead of switching to
        // the `mosquitto` user, who could not read our temporary files.
        let _ = writeln!(text, "user root");
        let _ = writeln!(text, "max_queued_messages 100000");
        let _ = writeln!(text, "\nlistener {} 127.0.0.1", self.port);
        let _ = writeln!(text, "allow_anonymous true");
        let _ = writeln!(text, "\nlistener {} 127.0.0.1", self.auth_port);
        let _ = writeln!(text, "allow_anonymous false");
        let _ = writeln!(text, "password_file {}", password_file.display());
        if let (Some(port), Some((cert, key))) = (self.tls_port, tls) {
            let _ = writeln!(text, "\nlistener {port} 127.0.0.1");
            let _ = writeln!(text, "allow_anonymous true");
            let _ = writeln!(text, "certfile {}", cert.display());
            let _ = writeln!(text, "keyfile {}", key.display());
        }
        if !config.extra.is_empty() {
            let _ = writeln!(text, "\n{}", config.extra);
        }
        std::fs::write(&self.config_path, text)
    }

    async fn launch(&mut self) -> io::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)?;
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(&self.config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()?;
        self.child = Some(child);
        let started = Instant::now();
        let ports: Vec<u16> = [Some(self.port), Some(self.auth_port), self.tls_port]
            .into_iter()
            .flatten()
            .collect();
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    self.child = None;
                    return Err(io::Error::other(format!(
                        "mosquitto exited with {status} while starting; log:\n{}",
                        self.log()
                    )));
                }
            }
            let mut ready = true;
            for port in &ports {
                if tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, *port))
                    .await
                    .is_err()
                {
                    ready = false;
                    break;
                }
            }
            if ready {
                return Ok(());
            }
            if started.elapsed() > READY_WAIT {
                self.stop();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "mosquitto did not accept connections within {READY_WAIT:?}; log:\n{}",
                        self.log()
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The anonymous listener's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The password-protected listener's port.
    pub fn auth_port(&self) -> u16 {
        self.auth_port
    }

    /// The TLS listener's port, when configured.
    pub fn tls_port(&self) -> Option<u16> {
        self.tls_port
    }

    /// `127.0.0.1:<port>`: the anonymous listener.
    pub fn broker(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:<auth_port>`: the password-protected listener.
    pub fn auth_broker(&self) -> String {
        format!("127.0.0.1:{}", self.auth_port)
    }

    /// `mqtts://localhost:<tls_port>`, when configured.
    pub fn tls_broker(&self) -> Option<String> {
        self.tls_port
            .map(|port| format!("mqtts://localhost:{port}"))
    }

    /// The PEM file of the TLS listener's self-signed certificate (its own CA).
    pub fn ca_file(&self) -> Option<&Path> {
        self.ca_path.as_deref()
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// What mosquitto logged so far (all runs).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The directory holding the configuration, password file and certificates.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills the process (by its PID) and waits for it to exit. Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops (if running) and starts mosquitto again on the same ports.
    pub async fn restart(&mut self) -> io::Result<()> {
        self.stop();
        self.launch().await
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.stop();
    }
}

fn write_password_file(path: &Path, users: &[(String, String)]) -> io::Result<()> {
    // An empty file is a valid password file (no user can log in).
    std::fs::write(path, "")?;
    if users.is_empty() {
        return Ok(());
    }
    let tool = find_program(
        "mosquitto_passwd",
        &[
            "/usr/bin/mosquitto_passwd",
            "/usr/local/bin/mosquitto_passwd",
        ],
    )
    .expect(MISSING);
    for (user, password) in users {
        let output = Command::new(&tool)
            .arg("-b")
            .arg(path)
            .arg(user)
            .arg(password)
            .stdin(Stdio::null())
            .output()?;
        if !output.status.success() {
            return Err(io::Error::other(format!(
                "mosquitto_passwd -b failed for user {user:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            )));
        }
    }
    Ok(())
}

/// Writes a self-signed certificate and its key; returns (certificate, key) paths.
fn write_certificate(dir: &Path) -> io::Result<(PathBuf, PathBuf)> {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .map_err(io::Error::other)?;
    let cert = dir.join("server.crt");
    let key = dir.join("server.key");
    std::fs::write(&cert, certified.cert.pem())?;
    std::fs::write(&key, certified.signing_key.serialize_pem())?;
    Ok((cert, key))
}
