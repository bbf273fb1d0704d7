//! The release artefact as an operator runs it: the provider binary as a child process, with its
//! socket, health and metrics endpoints; and the attack harness of the isolation tests, which runs
//! one tenant's attack against that process while it checks that everyone else is still served.
//!
//! Every Azure call of a started provider goes to the in-repo fake (`--test-redirect-url`);
//! `scripts/test.sh` also runs the tests inside `unshare -n`.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::driver::Driver;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_akv-csi-provider");

/// The started binary, its stderr lines, and the addresses it reported.
pub struct ProviderProcess {
    pub child: Child,
    /// `host:port` of `/metrics`.
    pub metrics: String,
    /// `host:port` of `/healthz`.
    pub health: String,
    /// The gRPC socket.
    pub socket: PathBuf,
    /// Every stderr line after the startup line, as it comes.
    pub logs: std::sync::mpsc::Receiver<String>,
    /// The stderr lines up to and including the startup line (returned by the first
    /// [`Self::drain_logs`]).
    startup_logs: std::sync::Mutex<Vec<String>>,
}

impl ProviderProcess {
    /// Starts the binary on `socket` with ephemeral health and metrics ports, `-v=5`, and `extra`
    /// flags; waits (20 s at most) for its startup line.
    pub fn start(socket: &Path, extra: &[String]) -> ProviderProcess {
        let mut child = Command::new(BIN)
            .arg(format!("--endpoint=unix://{}", socket.display()))
            .args(["--healthz-port=0", "--prometheus-port=0", "-v=5"])
            .args(extra)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("start the binary");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, logs) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut startup_logs = Vec::new();
        while Instant::now() < deadline {
            let Ok(line) = logs.recv_timeout(Duration::from_millis(200)) else {
                continue;
            };
            startup_logs.push(line.clone());
            if line.contains("akv-csi-provider started") {
                let field = |name: &str| {
                    line.split_whitespace()
                        .find_map(|w| w.strip_prefix(&format!("{name}=")))
                        .map(|v| v.replace("0.0.0.0", "127.0.0.1"))
                        .expect("address in the startup line")
                };
                return ProviderProcess {
                    metrics: field("metrics"),
                    health: field("health"),
                    socket: socket.to_owned(),
                    child,
                    logs,
                    startup_logs: std::sync::Mutex::new(startup_logs),
                };
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the provider did not start: {}", startup_logs.join("\n"));
    }

    /// Starts the binary with every Azure call redirected to `fake_url`.
    pub fn start_with_fake(socket: &Path, fake_url: &str, extra: &[String]) -> ProviderProcess {
        let mut args = vec![format!("--test-redirect-url={fake_url}")];
        args.extend_from_slice(extra);
        Self::start(socket, &args)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Current resident memory, KiB.
    pub fn rss_kib(&self) -> u64 {
        proc_status_kib(self.pid(), "VmRSS:")
    }

    /// Peak resident memory since start (or since [`Self::reset_peak`]), KiB.
    pub fn peak_kib(&self) -> u64 {
        proc_status_kib(self.pid(), "VmHWM:")
    }

    /// Resets the peak to the current resident memory (`5` to `/proc/PID/clear_refs`, Linux ≥ 4.0;
    /// where that is refused the peak since start stays, which only overstates growth).
    pub fn reset_peak(&self) {
        let _ = std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5");
    }

    /// Open descriptors of the process.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Every stderr line received since the last call (the first call includes the startup
    /// lines).
    pub fn drain_logs(&self) -> Vec<String> {
        let mut lines = std::mem::take(&mut *akv_csi_provider::sync::lock(&self.startup_logs));
        lines.extend(self.logs.try_iter());
        lines
    }

    /// SIGTERM, then waits (30 s at most) for the exit.
    // kill(2) has no safe wrapper in std (Child::kill sends SIGKILL, not SIGTERM).
    #[allow(unsafe_code)]
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.pid() as i32;
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "did not stop after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ProviderProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A plain HTTP/1.1 GET on loopback (blocking); returns (status, body). `(0, "")` when no answer
/// came within `timeout`.
pub fn http_get_within(address: &str, path: &str, timeout: Duration) -> (u16, String) {
    let Ok(addr) = address.parse() else {
        return (0, String::new());
    };
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, timeout) else {
        return (0, String::new());
    };
    stream.set_read_timeout(Some(timeout)).ok();
    stream.set_write_timeout(Some(timeout)).ok();
    if write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .is_err()
    {
        return (0, String::new());
    }
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response);
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// [`http_get_within`] with 10 s.
pub fn http_get(address: &str, path: &str) -> (u16, String) {
    http_get_within(address, path, Duration::from_secs(10))
}

/// What one attack did to the provider, measured while it ran.
#[derive(Debug, Clone)]
pub struct AttackReport {
    pub name: String,
    /// How long the attack took (for a mount: until the provider answered).
    pub elapsed: Duration,
    /// Slowest `Version` answer on a separate driver connection while the attack ran.
    pub version_max: Duration,
    /// Slowest `/healthz` answer while the attack ran.
    pub healthz_max: Duration,
    /// Probes that failed (no answer within 1 s, or an error).
    pub probe_failures: usize,
    /// Peak resident memory minus resident memory just before the attack, MiB.
    pub peak_growth_mib: f64,
}

impl AttackReport {
    /// One line for the test output (and the README's security table).
    pub fn line(&self) -> String {
        format!(
            "attack {:<44} answered in {:>6.0} ms | Version max {:>5.1} ms | /healthz max {:>5.1} ms | probe failures {} | peak memory +{:.1} MiB",
            self.name,
            self.elapsed.as_secs_f64() * 1e3,
            self.version_max.as_secs_f64() * 1e3,
            self.healthz_max.as_secs_f64() * 1e3,
            self.probe_failures,
            self.peak_growth_mib,
        )
    }

    /// The isolation rule of issue #10: everyone else answered within 1 s throughout, the attack
    /// ended within `within`, and peak memory grew by less than 24 MiB.
    pub fn assert_isolated(&self, within: Duration) {
        println!("{}", self.line());
        assert_eq!(self.probe_failures, 0, "{}", self.line());
        assert!(self.version_max < Duration::from_secs(1), "{}", self.line());
        assert!(self.healthz_max < Duration::from_secs(1), "{}", self.line());
        assert!(self.elapsed < within, "{}", self.line());
        assert!(self.peak_growth_mib < 24.0, "{}", self.line());
    }
}

/// Runs `attack` against `provider` while probing `Version` (on its own driver connection) and
/// `/healthz` every 100 ms; returns what was measured and the attack's own output.
pub async fn under_attack<T, F>(
    name: &str,
    provider: &ProviderProcess,
    attack: F,
) -> (AttackReport, T)
where
    F: std::future::Future<Output = T>,
{
    let mut probe_driver = Driver::connect(&provider.socket)
        .await
        .with_timeout(Duration::from_secs(1));
    probe_driver
        .version()
        .await
        .expect("Version before the attack");
    provider.reset_peak();
    let baseline_kib = provider.rss_kib();
    let done = Arc::new(AtomicBool::new(false));
    let health = provider.health.clone();
    let probes = tokio::spawn({
        let done = done.clone();
        async move {
            let (mut version_max, mut healthz_max, mut failures) =
                (Duration::ZERO, Duration::ZERO, 0usize);
            loop {
                let start = Instant::now();
                let version = tokio::time::timeout(Duration::from_secs(1), probe_driver.version())
                    .await
                    .map(|r| r.is_ok())
                    .unwrap_or(false);
                version_max = version_max.max(start.elapsed());
                let start = Instant::now();
                let address = health.clone();
                let (status, _) = tokio::task::spawn_blocking(move || {
                    http_get_within(&address, "/healthz", Duration::from_secs(1))
                })
                .await
                .unwrap_or((0, String::new()));
                healthz_max = healthz_max.max(start.elapsed());
                failures += usize::from(!version) + usize::from(status != 200);
                if done.load(Ordering::SeqCst) {
                    return (version_max, healthz_max, failures);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    let start = Instant::now();
    let output = attack.await;
    let elapsed = start.elapsed();
    done.store(true, Ordering::SeqCst);
    let (version_max, healthz_max, probe_failures) = probes.await.expect("probe task");
    let peak_growth_mib = provider.peak_kib().saturating_sub(baseline_kib) as f64 / 1024.0;
    let report = AttackReport {
        name: name.to_owned(),
        elapsed,
        version_max,
        healthz_max,
        probe_failures,
        peak_growth_mib,
    };
    (report, output)
}
