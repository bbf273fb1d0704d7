//! Azure cloud environments: the four built-in clouds and Azure Stack environment files.
//!
//! Names are matched case-insensitively, as go-autorest's `EnvironmentFromName` does.
//! `AzureStackCloud` is described by a JSON file whose path comes from the mount's
//! `cloudEnvFileName` parameter (or, as upstream, from `AZURE_ENVIRONMENT_FILEPATH` in the
//! provider's own environment). The file is read for the mount that names it; unlike upstream no
//! process-wide environment variable is ever set, so one SecretProviderClass cannot change the
//! cloud of another.
//!
//! The path in `cloudEnvFileName` is tenant input, and the provider can read files no tenant
//! should see, so an [`EnvFile`] is read under these rules:
//! - a `cloudEnvFileName` must name a file inside the operator's allowed directory
//!   (`--cloud-env-file-dir`, default [`DEFAULT_CLOUD_ENV_FILE_DIR`]). This is checked on the text
//!   first (absolute, no `..`, under the directory), before the filesystem is touched, so a path
//!   outside gets the same answer whether or not it exists; then the open itself is confined to
//!   the directory (`openat2` with `RESOLVE_BENEATH` where the kernel has it), and the opened
//!   descriptor's real path (`/proc/self/fd/N`) must still be inside the directory, so a symlink
//!   cannot lead out of it (the relative `..data` links of a ConfigMap volume stay inside and keep
//!   working; an absolute symlink inside the directory is refused where `openat2` confines the
//!   open, so links there must be relative). An empty directory setting turns
//!   per-SecretProviderClass files off;
//! - every file (the operator's `AZURE_ENVIRONMENT_FILEPATH` included) is opened with
//!   `O_NONBLOCK | O_NOCTTY | O_CLOEXEC`, so a FIFO or a terminal cannot block the open; the
//!   opened descriptor must be a regular file outside the kernel's pseudo filesystems (procfs,
//!   sysfs, …, told by `fstatfs`; `/proc/self/environ` looks like a regular file) and at most
//!   [`MAX_ENVIRONMENT_FILE_BYTES`]; at most that many bytes plus one are read;
//! - reading happens on the bounded blocking pool ([`EnvFile::load`]), never on a runtime thread;
//! - errors say what is wrong and never quote the file: not which value, only which key.

use std::ffi::OsStr;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use serde_json::{Map, Value};

use crate::text::echo;

/// Name of the Azure Stack cloud, whose endpoints come from an environment file.
pub const AZURE_STACK_CLOUD: &str = "AzureStackCloud";
/// Environment variable upstream reads the Azure Stack environment file path from.
pub const AZURE_ENVIRONMENT_FILEPATH: &str = "AZURE_ENVIRONMENT_FILEPATH";
/// Largest Azure Stack environment file read (real ones are about 1 KiB).
pub const MAX_ENVIRONMENT_FILE_BYTES: u64 = 64 * 1024;
/// Default of `--cloud-env-file-dir`: where Azure Stack Hub set-ups keep the environment file
/// (`/etc/kubernetes/azurestackcloud.json` on AKS engine nodes, mounted into the provider pod
/// through the chart's `linux.volumes`; upstream's own example is `/etc/kubernetes/akscustom.json`).
pub const DEFAULT_CLOUD_ENV_FILE_DIR: &str = "/etc/kubernetes";
/// Longest environment file path accepted (Linux `PATH_MAX`).
pub const MAX_ENVIRONMENT_FILE_PATH: usize = 4096;
/// Longest `name` accepted in an environment file.
const MAX_NAME_CHARS: usize = 128;
/// Longest endpoint URL accepted in an environment file.
const MAX_ENDPOINT_BYTES: usize = 2048;

/// Filesystems whose "regular" files are kernel state, not configuration (`fstatfs` `f_type`).
const PSEUDO_FILESYSTEMS: [u64; 12] = [
    0x9fa0,      // proc
    0x6265_6572, // sysfs
    0x6462_6720, // debugfs
    0x7472_6163, // tracefs
    0x7363_6673, // securityfs
    0x0027_e0eb, // cgroup
    0x6367_7270, // cgroup2
    0x6265_6570, // configfs
    0xde5e_81e4, // efivarfs
    0xcafe_4a11, // bpf
    0x6165_676c, // pstore
    0x6573_5543, // fusectl
];

/// Built-in clouds: name, Entra ID authority host, Key Vault DNS suffix. Public cloud first.
const BUILT_IN: [(&str, &str, &str); 4] = [
    (
        "AzurePublicCloud",
        "https://login.microsoftonline.com/",
        "vault.azure.net",
    ),
    (
        "AzureUSGovernmentCloud",
        "https://login.microsoftonline.us/",
        "vault.usgovcloudapi.net",
    ),
    (
        "AzureChinaCloud",
        "https://login.chinacloudapi.cn/",
        "vault.azure.cn",
    ),
    (
        "AzureGermanCloud",
        "https://login.microsoftonline.de/",
        "vault.microsoftazure.de",
    ),
];

/// The endpoints of one Azure cloud the provider needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloudEnvironment {
    /// Canonical name, e.g. `AzurePublicCloud`.
    pub name: String,
    /// Entra ID authority host with trailing slash, e.g. `https://login.microsoftonline.com/`.
    pub active_directory_endpoint: String,
    /// Key Vault resource with trailing slash, e.g. `https://vault.azure.net/`.
    pub key_vault_endpoint: String,
    /// e.g. `vault.azure.net`.
    pub key_vault_dns_suffix: String,
}

/// Whether `name` (any case) is `AzureStackCloud`, the cloud described by a file.
pub fn is_azure_stack(name: &str) -> bool {
    name.eq_ignore_ascii_case(AZURE_STACK_CLOUD)
}

impl CloudEnvironment {
    /// The Azure public cloud.
    pub fn public() -> Self {
        Self::from_entry(BUILT_IN[0])
    }

    /// One of the four built-in clouds, by name (any case). `None` for other names, including
    /// `AzureStackCloud`.
    pub fn built_in(name: &str) -> Option<Self> {
        BUILT_IN
            .iter()
            .find(|(n, ..)| n.eq_ignore_ascii_case(name))
            .map(|entry| Self::from_entry(*entry))
    }

    fn from_entry((name, aad, suffix): (&str, &str, &str)) -> Self {
        Self {
            name: name.to_string(),
            active_directory_endpoint: aad.to_string(),
            key_vault_endpoint: format!("https://{suffix}/"),
            key_vault_dns_suffix: suffix.to_string(),
        }
    }

    /// A built-in cloud by name (any case), or go-autorest's error for an unknown name. For
    /// `AzureStackCloud` the caller reads an [`EnvFile`] instead; this says it needs one.
    pub fn built_in_or_error(name: &str) -> Result<Self, String> {
        if is_azure_stack(name) {
            return Err(no_env_file(true));
        }
        Self::built_in(name).ok_or_else(|| {
            format!(
                "autorest/azure: There is no cloud environment matching the name {:?} (valid: AzurePublicCloud, AzureUSGovernmentCloud, AzureChinaCloud, AzureGermanCloud, AzureStackCloud)",
                echo(&name.to_uppercase())
            )
        })
    }

    /// Resolves a `cloudName` (any case). `AzureStackCloud` reads `env_file` on the calling
    /// thread (operator tools and tests; a mount uses [`EnvFile::load`]); the error says what is
    /// wrong without the `cloudName ... is not valid` prefix the caller adds.
    pub fn from_name(name: &str, env_file: Option<&EnvFile>) -> Result<Self, String> {
        match env_file {
            Some(file) if is_azure_stack(name) => file.load_blocking(),
            _ => Self::built_in_or_error(name),
        }
    }

    /// Parses and validates the content of an Azure Stack environment file (`name`,
    /// `activeDirectoryEndpoint`, `keyVaultEndpoint`, `keyVaultDNSSuffix`; keys matched
    /// case-insensitively as Go's `encoding/json` does). Errors name the key, never its value:
    /// the bytes may come from any file the provider can read.
    pub fn from_json(bytes: &[u8]) -> Result<Self, String> {
        let invalid =
            |problem: String| format!("not a valid Azure Stack environment file: {problem}");
        let doc: Map<String, Value> = serde_json::from_slice(bytes).map_err(|e| {
            invalid(match e.classify() {
                serde_json::error::Category::Data => "not a JSON object".to_string(),
                _ => format!("invalid JSON ({})", super::json_error(&e)),
            })
        })?;
        let field = |key: &str| -> Result<String, String> {
            match doc
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v)
            {
                None | Some(Value::Null) => Ok(String::new()),
                Some(Value::String(s)) => Ok(s.trim().to_string()),
                Some(_) => Err(invalid(format!("{key} is not a string"))),
            }
        };
        let suffix = field("keyVaultDNSSuffix")?;
        if !is_dns_suffix(&suffix) {
            return Err(invalid(
                "keyVaultDNSSuffix is not a DNS suffix such as vault.azure.net".into(),
            ));
        }
        let active_directory_endpoint = endpoint(
            "activeDirectoryEndpoint",
            &field("activeDirectoryEndpoint")?,
        )
        .map_err(invalid)?;
        let key_vault_endpoint = match field("keyVaultEndpoint")? {
            e if e.is_empty() => format!("https://{suffix}/"),
            e => endpoint("keyVaultEndpoint", &e).map_err(invalid)?,
        };
        let name = match field("name")? {
            n if n.is_empty() => AZURE_STACK_CLOUD.to_string(),
            n if n.chars().count() > MAX_NAME_CHARS || n.chars().any(char::is_control) => {
                return Err(invalid(format!(
                    "name is longer than {MAX_NAME_CHARS} characters or has control characters"
                )));
            }
            n => n,
        };
        Ok(Self {
            name,
            active_directory_endpoint,
            key_vault_endpoint,
            key_vault_dns_suffix: suffix,
        })
    }

    /// `https://<vault>.<suffix>/`
    pub fn vault_url(&self, vault_name: &str) -> String {
        format!("https://{}.{}/", vault_name, self.key_vault_dns_suffix)
    }

    /// Key Vault resource without the trailing slash (pod identity's `resource=` parameter).
    pub fn key_vault_resource(&self) -> &str {
        self.key_vault_endpoint.trim_end_matches('/')
    }
}

/// The problem when `AzureStackCloud` is asked for and no file is named. `per_class_files`:
/// whether `cloudEnvFileName` is allowed (a non-empty `--cloud-env-file-dir`).
pub(crate) fn no_env_file(per_class_files: bool) -> String {
    if per_class_files {
        format!(
            "the Azure Stack environment file is not set: set the cloudEnvFileName parameter or {AZURE_ENVIRONMENT_FILEPATH}"
        )
    } else {
        format!(
            "the Azure Stack environment file is not set: the operator must set {AZURE_ENVIRONMENT_FILEPATH} (cloudEnvFileName is not allowed on this node)"
        )
    }
}

/// A DNS name of at least two labels (RFC 1123 host labels: 1–63 letters, digits and inner
/// hyphens), at most 253 characters, e.g. `vault.local.azurestack.external`.
fn is_dns_suffix(suffix: &str) -> bool {
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    // The last label is not all digits (RFC 3696 section 2): URL parsers read such a host as an
    // IPv4 address (`https://v.0/` does not parse), so the vault URL could not be built.
    let top_level_ok = suffix
        .rsplit('.')
        .next()
        .is_some_and(|tld| !tld.bytes().all(|b| b.is_ascii_digit()));
    // And a URL parser must read `https://<vault>.<suffix>/` as that very DNS host (WHATWG also
    // takes `0x` or `0x1f` as a number, which makes the host an IPv4 address).
    let parses_as_dns_host = || {
        let host = format!("kv.{}", suffix.to_ascii_lowercase());
        url::Url::parse(&format!("https://{host}/"))
            .is_ok_and(|url| url.host() == Some(url::Host::Domain(host.as_str())))
    };
    suffix.len() <= 253
        && suffix.contains('.')
        && suffix.split('.').all(label_ok)
        && top_level_ok
        && parses_as_dns_host()
}

/// An absolute http(s) URL with a host, returned with a trailing slash. The error names the key
/// only.
fn endpoint(key: &str, value: &str) -> Result<String, String> {
    let bad = || format!("{key} is not an absolute https URL");
    if value.len() > MAX_ENDPOINT_BYTES {
        return Err(format!("{key} is longer than {MAX_ENDPOINT_BYTES} bytes"));
    }
    let url = url::Url::parse(value).map_err(|_| bad())?;
    if !matches!(url.scheme(), "https" | "http")
        || url.host_str().is_none()
        || !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(bad());
    }
    // The parsed URL's own serialisation, not the raw value: a lenient spelling the parser
    // accepted (`https:/host`, backslashes) must not reach the SDK unparsed (found by the
    // cloud_env fuzz target). For an ordinary endpoint both are the same.
    let mut normalised = url.as_str().to_string();
    if !normalised.ends_with('/') {
        normalised.push('/');
    }
    Ok(normalised)
}

/// Who named an environment file, which decides the rules it is read under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnvFileOrigin {
    /// A SecretProviderClass's `cloudEnvFileName`: tenant input, confined to this directory.
    Parameter {
        /// The operator's `--cloud-env-file-dir`.
        allowed_dir: PathBuf,
    },
    /// `AZURE_ENVIRONMENT_FILEPATH` in the provider's own environment: the operator's choice.
    Variable,
}

/// An Azure Stack environment file to read: a path that passed the lexical checks, and where it
/// came from. Nothing on the filesystem has been touched yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvFile {
    path: PathBuf,
    origin: EnvFileOrigin,
}

impl EnvFile {
    /// A `cloudEnvFileName` value, checked on its text against the allowed directory (`None`:
    /// per-SecretProviderClass files are turned off). The answer for a path outside the
    /// directory does not depend on the filesystem.
    pub fn parameter(value: &str, allowed_dir: Option<&Path>) -> Result<Self, String> {
        let Some(dir) = allowed_dir else {
            return Err(format!(
                "cloudEnvFileName is not allowed on this node (the provider's --cloud-env-file-dir is empty); the operator can set {AZURE_ENVIRONMENT_FILEPATH} instead"
            ));
        };
        let outside = || {
            format!(
                "cloudEnvFileName {:?}: not inside the allowed directory {}",
                echo(value),
                dir.display()
            )
        };
        check_path_text("cloudEnvFileName", value.as_bytes())?;
        let path = PathBuf::from(value);
        if !path.is_absolute()
            || path.components().any(|c| c == Component::ParentDir)
            || !path.starts_with(dir)
        {
            return Err(outside());
        }
        Ok(Self {
            path,
            origin: EnvFileOrigin::Parameter {
                allowed_dir: dir.to_path_buf(),
            },
        })
    }

    /// The `AZURE_ENVIRONMENT_FILEPATH` value (the operator's file; no directory rule).
    pub fn variable(value: &OsStr) -> Result<Self, String> {
        check_path_text(AZURE_ENVIRONMENT_FILEPATH, value.as_bytes())?;
        Ok(Self {
            path: PathBuf::from(value),
            origin: EnvFileOrigin::Variable,
        })
    }

    /// The path as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the path came from.
    pub fn origin(&self) -> &EnvFileOrigin {
        &self.origin
    }

    /// The parameter or variable that named the file, for error messages.
    fn label(&self) -> &'static str {
        match self.origin {
            EnvFileOrigin::Parameter { .. } => "cloudEnvFileName",
            EnvFileOrigin::Variable => AZURE_ENVIRONMENT_FILEPATH,
        }
    }

    /// Reads and validates the file on the bounded blocking pool (never on a runtime thread),
    /// within the pool's timeout.
    pub async fn load(self) -> Result<CloudEnvironment, String> {
        let label = self.label();
        match crate::blocking::run(move || self.load_blocking()).await {
            Ok(result) => result,
            Err(e) => Err(format!("{label}: reading the environment file {e}")),
        }
    }

    /// Reads and validates the file on the calling thread. Blocking: a mount goes through
    /// [`EnvFile::load`].
    pub fn load_blocking(&self) -> Result<CloudEnvironment, String> {
        let bytes = self.read()?;
        CloudEnvironment::from_json(&bytes)
            .map_err(|e| format!("{} {:?}: {e}", self.label(), echo(&self.shown())))
    }

    fn shown(&self) -> String {
        self.path.display().to_string()
    }

    /// Opens under the rules of the module doc and reads at most the size limit plus one byte.
    fn read(&self) -> Result<Vec<u8>, String> {
        let label = self.label();
        let shown = self.shown();
        let shown = echo(&shown);
        let fail = |problem: &str| format!("{label} {shown:?}: {problem}");
        let file = match &self.origin {
            EnvFileOrigin::Variable => open_nonblocking(&self.path)
                .map_err(|e| format!("{label}: open {shown}: {}", os_error(&e)))?,
            EnvFileOrigin::Parameter { allowed_dir } => {
                let outside = || {
                    fail(&format!(
                        "not inside the allowed directory {}",
                        allowed_dir.display()
                    ))
                };
                let (dir, file) = open_beneath(allowed_dir, &self.path).map_err(|e| {
                    if e.raw_os_error() == Some(libc::EXDEV) {
                        outside()
                    } else {
                        format!("open {shown}: {}", os_error(&e))
                    }
                })?;
                // Belt and braces (and the only confinement where openat2 is missing): the
                // descriptor's real path must be inside the directory's real path.
                let real_dir = fd_path(&dir).map_err(|_| fail("cannot verify its real path"))?;
                let real = fd_path(&file).map_err(|_| fail("cannot verify its real path"))?;
                if !real.starts_with(&real_dir) {
                    return Err(outside());
                }
                file
            }
        };
        let meta = file
            .metadata()
            .map_err(|e| format!("{label}: stat {shown}: {}", os_error(&e)))?;
        if !meta.file_type().is_file() {
            return Err(fail("not a regular file"));
        }
        if on_pseudo_filesystem(&file) {
            return Err(fail(
                "not a regular file (it is on a kernel pseudo filesystem such as procfs or sysfs)",
            ));
        }
        let too_large = || {
            fail(&format!(
                "larger than {} KiB",
                MAX_ENVIRONMENT_FILE_BYTES / 1024
            ))
        };
        if meta.len() > MAX_ENVIRONMENT_FILE_BYTES {
            return Err(too_large());
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        file.take(MAX_ENVIRONMENT_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("{label}: read {shown}: {}", os_error(&e)))?;
        if bytes.len() as u64 > MAX_ENVIRONMENT_FILE_BYTES {
            return Err(too_large());
        }
        Ok(bytes)
    }
}

/// Start-up checks of the cloud settings: `--cloud-env-file-dir` is absolute and free of `..`;
/// the `AZURE_ENVIRONMENT_FILEPATH` file, when `variable` is set, is a valid environment file
/// (read under the same rules as a mount's, the directory rule aside); `--cloud-name` is a
/// built-in cloud, or `AzureStackCloud` with a file that can exist (the variable, or
/// `cloudEnvFileName` allowed). Returns a note worth a warning, or the start-up error.
pub fn check_startup(
    defaults: &super::RequestDefaults,
    variable: Option<&OsStr>,
) -> Result<Option<String>, String> {
    if let Some(dir) = &defaults.cloud_env_file_dir
        && (!dir.is_absolute() || dir.components().any(|c| c == Component::ParentDir))
    {
        return Err(format!(
            "--cloud-env-file-dir {:?}: must be an absolute path without ..",
            echo(&dir.display().to_string())
        ));
    }
    if let Some(value) = variable {
        EnvFile::variable(value)
            .and_then(|file| file.load_blocking())
            .map_err(|e| format!("the Azure Stack environment file is not usable: {e}"))?;
    }
    let name = defaults.cloud_name.trim();
    if !is_azure_stack(name) {
        CloudEnvironment::built_in_or_error(name).map_err(|e| format!("--cloud-name: {e}"))?;
        return Ok(None);
    }
    match (variable, &defaults.cloud_env_file_dir) {
        (Some(_), _) => Ok(None),
        (None, Some(dir)) => Ok(Some(format!(
            "--cloud-name={AZURE_STACK_CLOUD} without {AZURE_ENVIRONMENT_FILEPATH}: every SecretProviderClass without cloudName must set cloudEnvFileName (inside {})",
            dir.display()
        ))),
        (None, None) => Err(format!(
            "--cloud-name={AZURE_STACK_CLOUD} needs the Azure Stack environment file: set {AZURE_ENVIRONMENT_FILEPATH} in the provider's environment (cloudEnvFileName is turned off: --cloud-env-file-dir is empty)"
        )),
    }
}

/// Checks on the text of a path that need no filesystem: not empty, no NUL, bounded length.
fn check_path_text(label: &str, bytes: &[u8]) -> Result<(), String> {
    if bytes.is_empty() || bytes.contains(&0) || bytes.len() > MAX_ENVIRONMENT_FILE_PATH {
        return Err(format!(
            "{label} {:?}: not a file path (empty, a NUL byte, or longer than {MAX_ENVIRONMENT_FILE_PATH} bytes)",
            echo(&String::from_utf8_lossy(bytes))
        ));
    }
    Ok(())
}

/// `O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC` (std adds `O_CLOEXEC`): no FIFO or terminal
/// can block the open or become our controlling terminal.
fn open_nonblocking(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
}

/// `openat2(2)`'s `struct open_how` (libc's is `#[non_exhaustive]`).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// Opens `path` (absolute, lexically inside `dir`) so that resolution cannot leave `dir`:
/// `openat2` with `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS` (an escape fails with `EXDEV` before
/// anything outside is touched); where the kernel or a seccomp profile lacks `openat2`, a plain
/// non-blocking open, which the caller's real-path check confines. Returns the directory too.
// openat2(2) (RESOLVE_BENEATH) has no safe wrapper in std.
#[allow(unsafe_code)]
fn open_beneath(dir: &Path, path: &Path) -> std::io::Result<(std::fs::File, std::fs::File)> {
    let dir_file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(dir)?;
    let relative = path.strip_prefix(dir).unwrap_or(path);
    let relative = if relative.as_os_str().is_empty() {
        Path::new(".")
    } else {
        relative
    };
    let c_path = std::ffi::CString::new(relative.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    let how = OpenHow {
        flags: (libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: a valid directory descriptor, a NUL-terminated path and a correctly sized
    // `open_how` that outlive the call; the result is a new descriptor we own, or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir_file.as_raw_fd(),
            c_path.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if fd >= 0 {
        // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
        let owned = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        return Ok((dir_file, std::fs::File::from(owned)));
    }
    let error = std::io::Error::last_os_error();
    match error.raw_os_error() {
        Some(libc::ENOSYS) | Some(libc::EPERM) | Some(libc::E2BIG) => {
            Ok((dir_file, open_nonblocking(path)?))
        }
        _ => Err(error),
    }
}

/// The real path of an open descriptor, from `/proc/self/fd/N`.
fn fd_path(file: &std::fs::File) -> std::io::Result<PathBuf> {
    std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
}

/// Whether the descriptor's filesystem is one of [`PSEUDO_FILESYSTEMS`] (or cannot be told).
// fstatfs(2) has no safe wrapper in std.
#[allow(unsafe_code)]
fn on_pseudo_filesystem(file: &std::fs::File) -> bool {
    // SAFETY: `statfs` is plain old data; fstatfs fills it for a valid descriptor.
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid descriptor and a pointer to a live `statfs`.
    if unsafe { libc::fstatfs(file.as_raw_fd(), &mut stat) } != 0 {
        return true;
    }
    #[allow(clippy::unnecessary_cast)]
    let kind = (stat.f_type as i64 as u64) & 0xffff_ffff;
    PSEUDO_FILESYSTEMS.contains(&kind)
}

/// An OS error the way Go prints it (`no such file or directory`), plus Rust's error code.
fn os_error(e: &std::io::Error) -> String {
    let text = e.to_string();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

#[cfg(test)]
mod tests;
