//! Command-line flags, named and defaulted as the Go provider v1.8.2's (`--endpoint`,
//! `--construct-pem-chain`, `-v`, ...), plus our own additions.
//!
//! Boolean flags take Go's `strconv.ParseBool` spellings and may be given bare
//! (`--construct-pem-chain`) or with a value (`--construct-pem-chain=false`).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand};

use crate::content::ContentOptions;
use crate::go::{parse_go_bool, parse_go_duration};
use crate::keyvault::KeyVaultOptions;
use crate::provider::ProviderOptions;
use crate::request::RequestDefaults;
use crate::transport::{Transport, TransportOptions};

/// Go's `flag` package accepts long flags with one dash (`-logtostderr=false`, `-vmodule=x=2`),
/// and manifests written for the Go provider use that form; clap wants two. Rewrites every such
/// argument to the two-dash form, leaving `-v`, `-v=5`, `-v5` (our one short flag), `--x` and
/// everything after a bare `--` alone.
pub fn go_style_args<I: IntoIterator<Item = String>>(args: I) -> Vec<String> {
    let mut out = Vec::new();
    let mut passthrough = false;
    for arg in args {
        if passthrough || arg == "--" {
            passthrough = true;
            out.push(arg);
            continue;
        }
        let rewritten = match arg.strip_prefix('-') {
            Some(rest) if !rest.starts_with('-') => {
                let name = rest.split('=').next().unwrap_or_default();
                let short_v = name
                    .strip_prefix('v')
                    .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()));
                (name.len() > 1 && !short_v).then(|| format!("-{arg}"))
            }
            _ => None,
        };
        out.push(rewritten.unwrap_or(arg));
    }
    out
}

/// The command line: server flags, and optional operator subcommands.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "akv-csi-provider",
    about = "Azure Key Vault provider for the Secrets Store CSI driver",
    disable_version_flag = true,
    args_conflicts_with_subcommands = false
)]
pub struct Cli {
    #[command(flatten)]
    pub flags: Flags,

    /// Without a subcommand the provider serves the driver.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Operator tools (the server stays the default).
#[derive(Clone, Debug, Subcommand)]
pub enum Command {
    /// Validate SecretProviderClass manifests offline, with the validator Mount uses.
    Check {
        /// YAML files holding SecretProviderClass documents (several documents per file allowed).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Perform a real mount against Key Vault and write the files as the driver would.
    Mount(MountArgs),
    /// Call `Version` on a running provider's endpoint, as the driver does; exit 1 if it does not answer.
    Probe(ProbeArgs),
}

/// `akv-csi-provider probe`.
#[derive(Clone, Debug, Args)]
pub struct ProbeArgs {
    /// The endpoint to call (default: the server's `--endpoint`).
    #[arg(long = "endpoint", id = "probe_endpoint", value_name = "ENDPOINT")]
    pub endpoint: Option<String>,
    /// Deadline for connecting and the call together (Go duration).
    #[arg(long, default_value = "5s", value_parser = parse_go_duration)]
    pub timeout: Duration,
}

/// `akv-csi-provider mount`.
#[derive(Clone, Debug, Args)]
pub struct MountArgs {
    /// The SecretProviderClass manifest (the first SecretProviderClass document is used).
    #[arg(long)]
    pub spc: PathBuf,
    #[arg(long, default_value = "akv-csi-debug")]
    pub pod_name: String,
    /// Namespace of the pod (default: the manifest's namespace, else `default`).
    #[arg(long)]
    pub namespace: Option<String>,
    #[arg(long, default_value = "default")]
    pub service_account: String,
    /// A service-account token (JWT) for workload identity / identity binding.
    #[arg(long)]
    pub service_account_token_file: Option<PathBuf>,
    /// nodePublishSecretRef data as a YAML/JSON map (e.g. clientid, clientsecret).
    #[arg(long)]
    pub secrets_file: Option<PathBuf>,
    /// Default file mode (octal), as the driver's `permission`.
    #[arg(long, default_value = "0644")]
    pub permission: String,
    /// Directory to write the files into.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Clone, Debug, Args)]
pub struct Flags {
    /// gRPC endpoint: unix:///path/azure.sock or tcp://host:port.
    #[arg(long, default_value = "unix:///tmp/azure.sock")]
    pub endpoint: String,

    /// Print version information as JSON and exit.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", default_value = "false", value_parser = parse_go_bool, action = ArgAction::Set)]
    pub version: bool,

    /// Default cloud when a SecretProviderClass sets no cloudName.
    #[arg(long, default_value = "AzurePublicCloud")]
    pub cloud_name: String,

    /// Order certificate chains converted from PFX leaf → intermediates → root.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", default_value = "true", value_parser = parse_go_bool, action = ArgAction::Set)]
    pub construct_pem_chain: bool,

    /// Also write <file>.crt and <file>.key for certificate-backed secrets.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", default_value = "false", value_parser = parse_go_bool, action = ArgAction::Set)]
    pub write_cert_and_key_in_separate_files: bool,

    /// Log as JSON lines instead of text.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", default_value = "false", value_parser = parse_go_bool, action = ArgAction::Set)]
    pub log_format_json: bool,

    /// Log verbosity (klog levels: 0 info, 2 more info, 4 debug, 5+ trace). RUST_LOG overrides.
    #[arg(short = 'v', long = "v", default_value_t = 0)]
    pub verbosity: u8,

    /// Port of the HTTP health endpoint.
    #[arg(long, default_value_t = 8989)]
    pub healthz_port: u16,

    /// Path of the HTTP health endpoint.
    #[arg(long, default_value = "/healthz")]
    pub healthz_path: String,

    /// Timeout of the gRPC health check the health endpoint performs.
    #[arg(long, default_value = "5s", value_parser = parse_go_duration)]
    pub healthz_timeout: Duration,

    /// Metrics backend; only "prometheus" (any case) is supported.
    #[arg(long, default_value = "Prometheus")]
    pub metrics_backend: String,

    /// Port of the Prometheus /metrics endpoint.
    #[arg(long, default_value_t = 8898)]
    pub prometheus_port: u16,

    /// Identity binding: URL of the AKS token proxy.
    #[arg(long, default_value = "")]
    pub token_proxy_url: String,

    /// Identity binding: TLS server name of the AKS token proxy.
    #[arg(long, default_value = "")]
    pub sni_name: String,

    /// Identity binding: CA bundle trusted for the token proxy when the file exists (re-read
    /// when it changes), else the system trust store.
    #[arg(long, default_value = crate::auth::identity_binding::DEFAULT_TOKEN_PROXY_CA_FILE)]
    pub token_proxy_ca_file: std::path::PathBuf,

    /// Accepted for compatibility; upstream ignores it too.
    #[arg(long, default_value = "")]
    pub custom_user_agent: String,

    /// Accepted for compatibility; this provider has no pprof endpoint.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", default_value = "false", value_parser = parse_go_bool, action = ArgAction::Set)]
    pub enable_pprof: bool,

    /// Accepted for compatibility (see --enable-pprof).
    #[arg(long, default_value_t = 6060)]
    pub pprof_port: u16,

    /// Most objects of one mount fetched at the same time.
    #[arg(long, default_value_t = 64)]
    pub max_concurrent_fetches: usize,

    /// Serve identical fetches (same identity, vault, object and version) from memory for this long.
    /// 0 (default) turns the content cache off; concurrent identical fetches are coalesced anyway.
    #[arg(long, default_value = "0s", value_parser = parse_go_duration)]
    pub cache_ttl: Duration,

    /// How long in-flight mounts may run after SIGTERM/SIGINT before the server stops
    /// (below Kubernetes' default 30 s termination grace period).
    #[arg(long, default_value = "25s", value_parser = parse_go_duration)]
    pub shutdown_grace_period: Duration,

    /// Most blocking or CPU-heavy jobs (tenant-named file reads, PKCS#12 key derivation, large
    /// PEM bundles) running at once on the bounded blocking pool.
    #[arg(long, default_value_t = crate::blocking::DEFAULT_MAX_JOBS)]
    pub max_blocking_jobs: usize,

    /// Longest a mount waits for one blocking job (queueing included) before it fails.
    #[arg(long, default_value = "5s", value_parser = parse_go_duration)]
    pub blocking_timeout: Duration,

    // --- Tenant isolation: identity inputs and the credential cache (issue #10, iso-auth) ---
    /// Largest `attributes` JSON of a mount (SecretProviderClass parameters, pod information and
    /// service-account tokens), in bytes; larger requests are refused before parsing.
    #[arg(long, default_value_t = crate::request::MAX_ATTRIBUTES_BYTES)]
    pub max_attributes_bytes: usize,

    /// Largest value of one nodePublishSecretRef key (clientid, clientsecret, clientcert), in
    /// bytes. A clientcert is refused above 64 KiB whatever this says.
    #[arg(long, default_value_t = crate::request::MAX_SECRET_VALUE_BYTES)]
    pub max_secret_value_bytes: usize,

    /// Most proven identities (credentials with their cached tokens) kept across mounts; the
    /// least recently used go first. Identities that never obtained a token are not kept.
    #[arg(long, default_value_t = crate::auth::DEFAULT_MAX_IDENTITIES)]
    pub max_cached_identities: usize,
    // --- end of iso-auth flags ---
    /// Retries of one token request (Entra ID, IMDS, NMI) after a transient fault: a 5xx, a 429
    /// (its Retry-After honoured), IMDS's 404 and 410, a failed or reset connection, a timeout.
    /// Rejections are never retried; no retry runs past the mount's deadline. 0 turns retries off.
    #[arg(long, default_value_t = crate::auth::DEFAULT_AUTH_MAX_RETRIES)]
    pub auth_max_retries: u32,

    // --- Cloud environment files (issue #10 item 1, issue #12 item 3) ---
    /// Directory a SecretProviderClass's cloudEnvFileName must be inside (Azure Stack Hub
    /// environment files). Empty: cloudEnvFileName is refused; only AZURE_ENVIRONMENT_FILEPATH in
    /// the provider's environment can name the file.
    #[arg(long, default_value = crate::request::cloud::DEFAULT_CLOUD_ENV_FILE_DIR)]
    pub cloud_env_file_dir: String,
    // --- end of cloud environment files ---

    // ---- Mount budgets and provider-wide bounds (issue #10: tenant isolation, budget part) ----
    /// Most Key Vault requests in flight across all mounts; mounts share them first come, first
    /// served (each mount also stays within --max-concurrent-fetches; a fetch coalesced onto an
    /// identical one in flight takes no slot).
    #[arg(long, default_value_t = crate::keyvault::DEFAULT_MAX_CONCURRENT_REQUESTS)]
    pub max_total_concurrent_fetches: usize,

    /// Most mounts served at once; more wait in arrival order, and fail with UNAVAILABLE if no
    /// slot frees up before their deadline.
    #[arg(long, default_value_t = crate::provider::DEFAULT_MAX_IN_FLIGHT_MOUNTS)]
    pub max_in_flight_mounts: usize,

    /// Largest answer one mount may produce, in bytes (file contents, paths, ids and versions),
    /// enforced as files arrive. The default is the driver's default gRPC receive limit (4 MiB).
    #[arg(long, default_value_t = crate::provider::MAX_RESPONSE_BYTES)]
    pub max_response_bytes: usize,

    /// Largest Key Vault response body read, in bytes, per HTTP exchange (list pages included).
    #[arg(long, default_value_t = crate::keyvault::MAX_RESPONSE_BODY_BYTES)]
    pub max_keyvault_response_bytes: usize,
    // ---- end of the budget block ----

    // --- PKCS#12 (PFX) limits, checked before any key derivation (issue #10, content) ---
    /// Largest PFX (DER bytes) opened: certificate-backed secrets and `clientcert`.
    #[arg(long, default_value_t = crate::content::pfx_limits::DEFAULT_MAX_BYTES)]
    pub max_pfx_bytes: usize,

    /// Most safes (ContentInfos of the authenticated safe) in one PFX.
    #[arg(long, default_value_t = crate::content::pfx_limits::DEFAULT_MAX_SAFES)]
    pub max_pfx_safes: usize,

    /// Most bags (keys, certificates, ...) in one PFX, inside encrypted safes included.
    #[arg(long, default_value_t = crate::content::pfx_limits::DEFAULT_MAX_BAGS)]
    pub max_pfx_bags: usize,

    /// Most iterations of one PFX key derivation (PBKDF2, PKCS#12 KDF of a PBE or of the MAC).
    #[arg(long, default_value_t = crate::content::pfx_limits::DEFAULT_MAX_ITERATIONS)]
    pub max_pfx_kdf_iterations: u32,

    /// Most work units (≈ SHA-256 compressions) of all key derivations opening one PFX.
    #[arg(long, default_value_t = crate::content::pfx_limits::DEFAULT_MAX_WORK)]
    pub max_pfx_kdf_work: u64,

    /// Most memory (bytes, 128·N·r) of one scrypt key derivation in a PFX.
    #[arg(long, default_value_t = crate::content::pfx_limits::DEFAULT_MAX_SCRYPT_MEMORY)]
    pub max_pfx_scrypt_memory: u64,
    // --- end of PKCS#12 limits ---
    /// Extra PEM CA bundle trusted for Azure endpoints, in addition to the system store.
    #[arg(long)]
    pub extra_ca_file: Option<std::path::PathBuf>,

    /// At start, how long to wait for another provider still serving the socket (the previous
    /// pod of a rolling update) to let go of it; it is never deleted while it answers.
    #[arg(long, default_value = "60s", value_parser = parse_go_duration)]
    pub socket_handover_timeout: Duration,

    // --- klog flags of the Go provider (`klog.InitFlags`), accepted so that manifests written
    // for it keep starting; logs always go to stderr here, so none of them changes anything and
    // one start-up warning lists those given (see `Flags::inert_klog_flags`).
    /// klog: log to standard error instead of files (always the case here).
    #[arg(long = "logtostderr", num_args = 0..=1, default_missing_value = "true", value_parser = parse_go_bool, action = ArgAction::Set, hide = true)]
    pub klog_logtostderr: Option<bool>,
    /// klog: log to standard error as well as files (no effect here).
    #[arg(long = "alsologtostderr", num_args = 0..=1, default_missing_value = "true", value_parser = parse_go_bool, action = ArgAction::Set, hide = true)]
    pub klog_alsologtostderr: Option<bool>,
    /// klog: per-file verbosity (no effect here; use `-v` or `RUST_LOG`).
    #[arg(long = "vmodule", hide = true)]
    pub klog_vmodule: Option<String>,
    /// klog: directory of log files (no effect here).
    #[arg(long = "log_dir", hide = true)]
    pub klog_log_dir: Option<String>,
    /// klog: log file (no effect here).
    #[arg(long = "log_file", hide = true)]
    pub klog_log_file: Option<String>,
    /// klog: log file size limit in MB (no effect here).
    #[arg(long = "log_file_max_size", hide = true)]
    pub klog_log_file_max_size: Option<u64>,
    /// klog: severity copied to stderr (no effect here).
    #[arg(long = "stderrthreshold", hide = true)]
    pub klog_stderrthreshold: Option<String>,
    /// klog: omit line headers (no effect here).
    #[arg(long = "skip_headers", num_args = 0..=1, default_missing_value = "true", value_parser = parse_go_bool, action = ArgAction::Set, hide = true)]
    pub klog_skip_headers: Option<bool>,
    /// klog: omit headers in log files (no effect here).
    #[arg(long = "skip_log_headers", num_args = 0..=1, default_missing_value = "true", value_parser = parse_go_bool, action = ArgAction::Set, hide = true)]
    pub klog_skip_log_headers: Option<bool>,
    /// klog: one file per severity off (no effect here).
    #[arg(long = "one_output", num_args = 0..=1, default_missing_value = "true", value_parser = parse_go_bool, action = ArgAction::Set, hide = true)]
    pub klog_one_output: Option<bool>,
    /// klog: directory in headers (no effect here).
    #[arg(long = "add_dir_header", num_args = 0..=1, default_missing_value = "true", value_parser = parse_go_bool, action = ArgAction::Set, hide = true)]
    pub klog_add_dir_header: Option<bool>,
    /// klog: stack trace at file:line (no effect here).
    #[arg(long = "log_backtrace_at", hide = true)]
    pub klog_log_backtrace_at: Option<String>,

    // ---- network edge (issue #10): HTTP servers, tcp:// endpoint, /metrics labels, test redirect
    /// Address the health endpoint listens on (its port is --healthz-port). The default, every
    /// address, is what the kubelet's probe of a hostNetwork pod needs.
    #[arg(long, default_value = "0.0.0.0")]
    pub healthz_bind_address: IpAddr,

    /// Address the /metrics endpoint listens on (its port is --prometheus-port).
    #[arg(long, default_value = "0.0.0.0")]
    pub metrics_bind_address: IpAddr,

    /// Health and metrics servers: a request's headers must arrive within this time of the
    /// connection opening, else the connection is closed.
    #[arg(long, default_value = "5s", value_parser = parse_go_duration)]
    pub http_header_timeout: Duration,

    /// Health and metrics servers: longest a connection (one request and its response; keep-alive
    /// is off) stays open. The health server uses at least --healthz-timeout plus 1s.
    #[arg(long, default_value = "10s", value_parser = parse_go_duration)]
    pub http_request_timeout: Duration,

    /// Health and metrics servers: most connections open at once, per server. When full, a peer
    /// holding fewer connections than the heaviest peer takes that peer's oldest connection's place.
    #[arg(long, default_value_t = 128)]
    pub http_max_connections: usize,

    /// Health and metrics servers: most connections open at once from one peer address.
    #[arg(long, default_value_t = 8)]
    pub http_max_connections_per_ip: usize,

    /// Put Key Vault object names and versions in the object_name and object_version labels of
    /// the certificate-expiry gauges; false leaves them empty (one series per namespace,
    /// SecretProviderClass, vault and object type, holding the earliest expiry).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", default_value = "true", value_parser = parse_go_bool, action = ArgAction::Set)]
    pub certificate_expiry_object_names: bool,

    /// Drop a certificate-expiry series no mount has refreshed for this long (pruned on a timer).
    /// The default, 30 days, outlives any realistic interval between two mounts of an object.
    #[arg(long, default_value = "720h", value_parser = parse_go_duration)]
    pub certificate_expiry_retention: Duration,

    /// Most distinct Key Vault object names the keyvault_request metric carries in object_name;
    /// calls for further objects are counted under object_name="_overflow".
    #[arg(long, default_value_t = crate::telemetry::MAX_OBJECT_NAMES)]
    pub metrics_max_object_names: usize,

    /// Allow a tcp:// --endpoint on a non-loopback address. The provider API has no
    /// authentication: anyone who reaches the port can mount any tenant's secrets with the
    /// identities the provider can use.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", default_value = "false", value_parser = parse_go_bool, action = ArgAction::Set)]
    pub allow_non_loopback_tcp_endpoint: bool,

    /// The test-only redirect flag; empty unless built with the `test-redirect` feature.
    #[command(flatten)]
    pub test: TestFlags,
}

/// Flags that exist only in test builds (feature `test-redirect`).
#[cfg(feature = "test-redirect")]
#[derive(Clone, Debug, Default, Args)]
pub struct TestFlags {
    /// TESTING ONLY: send every Azure request (Key Vault, Entra ID, IMDS, NMI) to this base URL.
    #[arg(long, hide = true)]
    pub test_redirect_url: Option<String>,
}

/// Flags that exist only in test builds: none in this build (no `test-redirect` feature), so
/// `--test-redirect-url` is an unknown argument.
#[cfg(not(feature = "test-redirect"))]
#[derive(Clone, Debug, Default, Args)]
pub struct TestFlags {}

impl Flags {
    /// The HTTP seam for every Azure call: production, or (feature `test-redirect` only) the
    /// hidden test redirect.
    pub fn transport(&self) -> Result<Transport, String> {
        let extra_ca_pem = match &self.extra_ca_file {
            Some(path) => Some(
                std::fs::read(path)
                    .map_err(|e| format!("--extra-ca-file {}: {e}", path.display()))?,
            ),
            None => None,
        };
        #[cfg(feature = "test-redirect")]
        if let Some(url) = &self.test.test_redirect_url {
            let target = url
                .parse()
                .map_err(|e| format!("--test-redirect-url {url}: {e}"))?;
            return Transport::redirect_all(target, extra_ca_pem).map_err(|e| e.to_string());
        }
        Transport::production(&TransportOptions {
            extra_ca_pem,
            ..TransportOptions::default()
        })
        .map_err(|e| e.to_string())
    }

    /// Connection limits of the health and metrics servers.
    pub fn http_limits(&self) -> crate::telemetry::HttpLimits {
        crate::telemetry::HttpLimits {
            header_timeout: self.http_header_timeout,
            request_timeout: self.http_request_timeout,
            max_connections: self.http_max_connections,
            max_connections_per_ip: self.http_max_connections_per_ip,
        }
    }

    /// How certificate-expiry series are kept and labelled.
    pub fn expiry_options(&self) -> crate::telemetry::ExpiryOptions {
        crate::telemetry::ExpiryOptions {
            retention: self.certificate_expiry_retention,
            object_names: self.certificate_expiry_object_names,
        }
    }

    /// How the gRPC endpoint may be bound.
    pub fn bind_options(&self) -> crate::server::BindOptions {
        crate::server::BindOptions {
            allow_non_loopback_tcp: self.allow_non_loopback_tcp_endpoint,
        }
    }

    /// The klog flags given on the command line; they are accepted and have no effect.
    pub fn inert_klog_flags(&self) -> Vec<&'static str> {
        let given = [
            ("--logtostderr", self.klog_logtostderr.is_some()),
            ("--alsologtostderr", self.klog_alsologtostderr.is_some()),
            ("--vmodule", self.klog_vmodule.is_some()),
            ("--log_dir", self.klog_log_dir.is_some()),
            ("--log_file", self.klog_log_file.is_some()),
            ("--log_file_max_size", self.klog_log_file_max_size.is_some()),
            ("--stderrthreshold", self.klog_stderrthreshold.is_some()),
            ("--skip_headers", self.klog_skip_headers.is_some()),
            ("--skip_log_headers", self.klog_skip_log_headers.is_some()),
            ("--one_output", self.klog_one_output.is_some()),
            ("--add_dir_header", self.klog_add_dir_header.is_some()),
            ("--log_backtrace_at", self.klog_log_backtrace_at.is_some()),
        ];
        given
            .into_iter()
            .filter_map(|(name, set)| set.then_some(name))
            .collect()
    }

    /// Limits of the bounded blocking pool.
    pub fn blocking_limits(&self) -> crate::blocking::BlockingLimits {
        crate::blocking::BlockingLimits {
            max_jobs: self.max_blocking_jobs.max(1),
            timeout: self.blocking_timeout,
        }
    }

    /// Process-wide defaults of the request parser (`--cloud-name`, `--cloud-env-file-dir`).
    pub fn request_defaults(&self) -> RequestDefaults {
        RequestDefaults {
            cloud_name: self.cloud_name.clone(),
            max_attributes_bytes: self.max_attributes_bytes.max(1),
            max_secret_value_bytes: self.max_secret_value_bytes.max(1),
            cloud_env_file_dir: Some(self.cloud_env_file_dir.trim())
                .filter(|d| !d.is_empty())
                .map(PathBuf::from),
        }
    }

    /// Limits every PFX must meet before any key derivation.
    pub fn pfx_limits(&self) -> crate::content::pfx_limits::PfxLimits {
        crate::content::pfx_limits::PfxLimits {
            max_bytes: self.max_pfx_bytes,
            max_safes: self.max_pfx_safes,
            max_bags: self.max_pfx_bags,
            max_iterations: self.max_pfx_kdf_iterations,
            max_work: self.max_pfx_kdf_work,
            max_scrypt_memory: self.max_pfx_scrypt_memory,
        }
    }

    pub fn provider_options(&self) -> ProviderOptions {
        let defaults = ProviderOptions::default();
        ProviderOptions {
            request: self.request_defaults(),
            content: ContentOptions {
                construct_pem_chain: self.construct_pem_chain,
                write_cert_and_key_in_separate_files: self.write_cert_and_key_in_separate_files,
            },
            max_concurrent_fetches: self.max_concurrent_fetches.max(1),
            max_in_flight_mounts: self.max_in_flight_mounts.max(1),
            max_response_bytes: self.max_response_bytes,
            auth: crate::auth::AuthOptions {
                token_proxy_url: Some(self.token_proxy_url.clone()).filter(|s| !s.is_empty()),
                sni_name: Some(self.sni_name.clone()).filter(|s| !s.is_empty()),
                token_proxy_ca_file: Some(self.token_proxy_ca_file.clone()),
                max_identities: self.max_cached_identities.max(1),
                max_retries: self.auth_max_retries,
                ..defaults.auth
            },
            keyvault: KeyVaultOptions {
                cache_ttl: self.cache_ttl,
                max_response_body_bytes: self.max_keyvault_response_bytes.max(1),
                max_concurrent_requests: self.max_total_concurrent_fetches.max(1),
                ..defaults.keyvault
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_upstream() {
        let f = Cli::try_parse_from(["akv-csi-provider"]).unwrap().flags;
        assert_eq!(f.endpoint, "unix:///tmp/azure.sock");
        assert!(f.construct_pem_chain);
        assert!(!f.write_cert_and_key_in_separate_files);
        assert_eq!(f.healthz_port, 8989);
        assert_eq!(f.healthz_path, "/healthz");
        assert_eq!(f.healthz_timeout, Duration::from_secs(5));
        assert_eq!(f.prometheus_port, 8898);
        assert_eq!(f.cloud_name, "AzurePublicCloud");
        assert_eq!(
            f.request_defaults().cloud_env_file_dir,
            Some(PathBuf::from("/etc/kubernetes"))
        );
        let off = Cli::try_parse_from(["p", "--cloud-env-file-dir="])
            .unwrap()
            .flags;
        assert_eq!(off.request_defaults().cloud_env_file_dir, None);
        assert_eq!(f.max_total_concurrent_fetches, 128);
        assert_eq!(f.max_in_flight_mounts, 128);
        assert_eq!(f.max_response_bytes, 4 * 1024 * 1024);
        assert_eq!(f.max_keyvault_response_bytes, 256 * 1024);
        assert_eq!(f.provider_options().auth.max_retries, 3);
        let none = Cli::try_parse_from(["p", "--auth-max-retries=0"])
            .unwrap()
            .flags;
        assert_eq!(none.provider_options().auth.max_retries, 0);
        assert_eq!(
            f.pfx_limits(),
            crate::content::pfx_limits::PfxLimits::default()
        );
    }

    #[test]
    fn go_style_booleans_and_verbosity() {
        let f = Cli::try_parse_from([
            "p",
            "--construct-pem-chain=false",
            "--log-format-json",
            "-v=5",
            "--write-cert-and-key-in-separate-files=True",
        ])
        .unwrap()
        .flags;
        assert!(!f.construct_pem_chain);
        assert!(f.log_format_json);
        assert!(f.write_cert_and_key_in_separate_files);
        assert_eq!(f.verbosity, 5);
        assert!(Cli::try_parse_from(["p", "--construct-pem-chain=yes"]).is_err());
        let check = Cli::try_parse_from(["p", "check", "spc.yaml"]).unwrap();
        assert!(matches!(check.command, Some(Command::Check { .. })));
    }

    #[test]
    fn klog_flags_are_accepted_in_go_and_clap_spelling() {
        let args = [
            "p",
            "-logtostderr=false",
            "--alsologtostderr",
            "-vmodule=provider=5",
            "--log_dir=/tmp",
            "-log_file",
            "/tmp/x.log",
            "--log_file_max_size=1800",
            "-stderrthreshold=INFO",
            "--skip_headers",
            "-skip_log_headers=true",
            "--one_output=false",
            "-add_dir_header",
            "--log_backtrace_at=:0",
            "-v=3",
        ];
        let f = Cli::try_parse_from(go_style_args(args.map(String::from)))
            .unwrap()
            .flags;
        assert_eq!(f.verbosity, 3);
        assert_eq!(f.klog_logtostderr, Some(false));
        assert_eq!(f.inert_klog_flags().len(), 12);
        let plain = Cli::try_parse_from(["p"]).unwrap().flags;
        assert!(plain.inert_klog_flags().is_empty());
        assert_eq!(
            go_style_args(["p", "-v5", "-v", "2", "--endpoint=x", "--", "-keep"].map(String::from)),
            ["p", "-v5", "-v", "2", "--endpoint=x", "--", "-keep"]
        );
        assert_eq!(
            go_style_args(
                [
                    "p",
                    "-endpoint=unix:///x.sock",
                    "-cloud-name",
                    "AzureChinaCloud"
                ]
                .map(String::from)
            ),
            [
                "p",
                "--endpoint=unix:///x.sock",
                "--cloud-name",
                "AzureChinaCloud"
            ]
        );
    }

    #[test]
    fn edge_defaults() {
        let f = Cli::try_parse_from(["p"]).unwrap().flags;
        assert_eq!(f.healthz_bind_address.to_string(), "0.0.0.0");
        assert_eq!(f.metrics_bind_address.to_string(), "0.0.0.0");
        assert_eq!(f.http_limits(), crate::telemetry::HttpLimits::default());
        assert_eq!(
            f.expiry_options(),
            crate::telemetry::ExpiryOptions::default()
        );
        assert!(!f.bind_options().allow_non_loopback_tcp);
        let f = Cli::try_parse_from([
            "p",
            "--healthz-bind-address=127.0.0.1",
            "--metrics-bind-address=::1",
            "--certificate-expiry-object-names=false",
            "--allow-non-loopback-tcp-endpoint",
        ])
        .unwrap()
        .flags;
        assert!(f.healthz_bind_address.is_loopback() && f.metrics_bind_address.is_ipv6());
        assert!(!f.expiry_options().object_names);
        assert!(f.bind_options().allow_non_loopback_tcp);
        assert!(Cli::try_parse_from(["p", "--healthz-bind-address=localhost"]).is_err());
    }

    /// A build without the `test-redirect` feature (the release binary) has no redirect flag.
    #[cfg(not(feature = "test-redirect"))]
    #[test]
    fn no_redirect_flag_without_the_feature() {
        let error =
            Cli::try_parse_from(["p", "--test-redirect-url=http://127.0.0.1:1"]).unwrap_err();
        assert_eq!(error.kind(), clap::error::ErrorKind::UnknownArgument);
    }

    /// With the feature the flag exists, but stays out of `--help`.
    #[cfg(feature = "test-redirect")]
    #[test]
    fn redirect_flag_is_hidden_in_test_builds() {
        use clap::CommandFactory;
        let f = Cli::try_parse_from(["p", "--test-redirect-url=http://127.0.0.1:1"])
            .unwrap()
            .flags;
        assert_eq!(
            f.test.test_redirect_url.as_deref(),
            Some("http://127.0.0.1:1")
        );
        let help = Cli::command().render_long_help().to_string();
        assert!(!help.contains("redirect"), "{help}");
    }
}
