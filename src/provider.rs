//! One mount, end to end: parse and validate the request, resolve the identity, fetch every object
//! concurrently (bounded), convert, and answer with the files in SecretProviderClass order.
//!
//! A mount succeeds whole or fails whole: the first failing object fails the mount, nothing
//! partial is returned. Every failure is a [`MountError`] whose kind is set where it happens and
//! whose message names the object (`objectType/objectName`) and the problem, never secret
//! material; [`Provider::mount`] turns it into the metric result class and the gRPC status, once.
//!
//! What one mount may take from the others is bounded:
//! - the response budget ([`ProviderOptions::max_response_bytes`], the driver's 4 MiB gRPC limit
//!   by default) is charged as each file arrives, paths, ids and versions included; the first
//!   object that passes it fails the mount with `RESOURCE_EXHAUSTED` and the fetches still
//!   outstanding are dropped (and aborted, unless another mount waits for the same fetch);
//! - Key Vault calls of one mount ([`ProviderOptions::max_concurrent_fetches`]) and Key Vault
//!   requests of all mounts together (`KeyVaultOptions::max_concurrent_requests`,
//!   `--max-total-concurrent-fetches`) are bounded by FIFO semaphores, the per-mount one taken
//!   first, so one mount with 1,000 objects queues at most its own share ahead of another
//!   mount's first fetch (a fetch coalesced onto one in flight takes no provider-wide slot);
//! - mounts served at once ([`ProviderOptions::max_in_flight_mounts`]) wait in FIFO order for a
//!   slot; a mount that gets no slot (or no fetch slot) before its deadline fails with
//!   `UNAVAILABLE`;
//! - content conversion (PFX → PEM, chain ordering, JWK → PEM, certificate expiry parsing) runs
//!   on the bounded blocking pool ([`crate::blocking`]), after the fetch slots are released;
//!   plain secrets without PEM, up to [`INLINE_CONTENT_BYTES`], are copied inline.

use std::time::Duration;

use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, Semaphore, SemaphorePermit};
use tokio::time::Instant;
use tonic::Status;

use crate::auth::{AuthOptions, Identities};
use crate::blocking::{self, BlockingError};
use crate::content::{self, ContentOptions, JsonWebKey, RenderedFile, SecretBundle};
use crate::error::{MountError, MountErrorKind};
use crate::keyvault::{
    KeyVaultOptions, KvError, KvErrorKind, VaultClient, VaultClients, VersionInfo,
};
use crate::pb;
use crate::request::{self, MountRequest, ObjectSpec, ObjectType, RequestDefaults};
use crate::server::MountHandler;
use crate::telemetry::{CertificateObject, metrics};
use crate::transport::Transport;

/// The driver's default gRPC receive limit: a larger response cannot be delivered. Default of
/// `--max-response-bytes`.
pub const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;
/// Kept back from the response budget for the gRPC and protobuf framing of the whole answer.
const RESPONSE_RESERVE_BYTES: usize = 4 * 1024;
/// Charged per file on top of its path, contents, id and version: the protobuf framing of one
/// `File` and one `ObjectVersion` entry (tags, lengths, mode), rounded up.
const PER_FILE_OVERHEAD_BYTES: usize = 32;
/// Fetches of one mount in flight before its first file arrives (its sizes are unknown until
/// then); afterwards the budget paces them (see `ResponseBudget`). As wide as the default
/// `--max-concurrent-fetches`, so a mount of small files is fetched in one round trip; each
/// response body is at most `--max-keyvault-response-bytes` (256 KiB), so at most 16 MiB is in
/// flight before the first file is charged.
const BUDGET_FIRST_WINDOW: usize = 64;
/// Most files one answer may hold: every object version of a mount (at most
/// [`request::MAX_FILES_PER_MOUNT`]) written as `.crt`, `.key` and the main file.
pub const MAX_RESPONSE_FILES: usize = 3 * crate::request::MAX_FILES_PER_MOUNT;
/// Default of `--max-in-flight-mounts`: mounts served at once; more wait for a slot. Above the
/// kubelet's default of 110 pods per node, so a node where every pod mounts at once (node boot)
/// is served in one round and their identical fetches still coalesce.
pub const DEFAULT_MAX_IN_FLIGHT_MOUNTS: usize = 128;
/// A plain secret (no certificate behind it, no PEM in it) up to this size is turned into its
/// file inline: a copy or a base64/hex decode of 8 KiB stays under a millisecond even in a debug
/// build on a loaded machine, and covers passwords, keys and connection strings. Anything larger
/// or needing conversion goes to the blocking pool.
pub const INLINE_CONTENT_BYTES: usize = 8 * 1024;
/// A Kubernetes Secret holds at most 1 MiB: larger mounts cannot be synced (warning only).
pub const SECRET_SYNC_WARN_BYTES: usize = 1024 * 1024;
/// Deadline when the caller sent none (kubelet's CSI timeout is 2 minutes).
const DEFAULT_DEADLINE: Duration = Duration::from_secs(110);
/// Time kept back from the caller's deadline to deliver the answer.
const DEADLINE_MARGIN: Duration = Duration::from_millis(500);

/// Process-wide provider settings (from flags).
#[derive(Clone, Debug)]
pub struct ProviderOptions {
    pub request: RequestDefaults,
    pub content: ContentOptions,
    /// Most Key Vault calls of one mount in flight at once.
    pub max_concurrent_fetches: usize,
    /// Most mounts served at once; more wait (FIFO) until their deadline.
    pub max_in_flight_mounts: usize,
    /// Largest answer one mount may produce (files, paths, ids and versions included).
    pub max_response_bytes: usize,
    pub auth: AuthOptions,
    pub keyvault: KeyVaultOptions,
}

impl Default for ProviderOptions {
    fn default() -> Self {
        Self {
            request: RequestDefaults::default(),
            content: ContentOptions::default(),
            max_concurrent_fetches: 64,
            max_in_flight_mounts: DEFAULT_MAX_IN_FLIGHT_MOUNTS,
            max_response_bytes: MAX_RESPONSE_BYTES,
            auth: AuthOptions::default(),
            keyvault: KeyVaultOptions::default(),
        }
    }
}

/// The provider: long-lived identity and Key Vault client caches shared by all mounts.
#[derive(Debug)]
pub struct Provider {
    options: ProviderOptions,
    identities: Identities,
    vaults: VaultClients,
    /// Mounts being served.
    mount_slots: Semaphore,
}

/// What the Key Vault answered for one object version, before conversion.
enum FetchedContent {
    Secret(SecretBundle),
    Key(JsonWebKey),
    Cert(Vec<u8>),
}

impl FetchedContent {
    /// Cheap enough to convert on the runtime (see [`INLINE_CONTENT_BYTES`]).
    fn is_cheap(&self) -> bool {
        match self {
            FetchedContent::Secret(bundle) => {
                let cert_backed = bundle.kid.as_deref().is_some_and(|kid| !kid.is_empty());
                let value = bundle.value.as_ref().map(|v| v.expose().as_bytes());
                !cert_backed
                    && value.is_none_or(|v| {
                        v.len() <= INLINE_CONTENT_BYTES
                            && !v.windows(10).any(|w| w == b"-----BEGIN")
                    })
            }
            FetchedContent::Key(_) | FetchedContent::Cert(_) => false,
        }
    }

    /// The files of the object's `jmesPath` entries, in order (secrets only: validated so).
    fn jmes_files(&self, paths: &[String]) -> Result<Vec<Vec<u8>>, content::ContentError> {
        match self {
            FetchedContent::Secret(bundle) => {
                let value = bundle
                    .value
                    .as_ref()
                    .ok_or_else(|| content::ContentError("secret value is nil".into()))?;
                content::jmes::extract(value.expose(), paths)
                    .map_err(|e| content::ContentError(e.to_string()))
            }
            FetchedContent::Key(_) | FetchedContent::Cert(_) => Ok(Vec::new()),
        }
    }

    fn render(
        self,
        object: (request::ObjectFormat, request::ObjectEncoding),
        options: &ContentOptions,
    ) -> Result<content::Rendered, content::ContentError> {
        match self {
            FetchedContent::Secret(bundle) => {
                content::render_secret(&bundle, object.0, object.1, options)
            }
            FetchedContent::Key(jwk) => content::render_key(&jwk).map(single_file),
            FetchedContent::Cert(der) => Ok(single_file(content::render_certificate(&der))),
        }
    }
}

/// The answer's size so far, charged as files arrive, and the fetches that may still add to it.
///
/// Besides failing the object that passes the budget, it paces the mount: a new fetch starts only
/// while the bytes charged plus one largest-file-so-far for each fetch in flight (the new one
/// included) still fit, or when nothing else is in flight. A mount of small files is never
/// slowed; a mount of large ones that cannot fit stops after about one budget's worth of
/// fetches, not after a full window of concurrent ones.
struct ResponseBudget {
    max_bytes: usize,
    state: Mutex<BudgetState>,
    changed: Notify,
}

#[derive(Default)]
struct BudgetState {
    bytes: usize,
    files: usize,
    in_flight: usize,
    /// The largest object (all its files) charged so far.
    largest: usize,
}

/// A fetch admitted by [`ResponseBudget::admit`]; leaves the in-flight count when dropped.
struct Admitted<'a>(&'a ResponseBudget);

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.0.lock().in_flight -= 1;
        self.0.changed.notify_waiters();
    }
}

impl ResponseBudget {
    fn new(max_response_bytes: usize) -> Self {
        Self {
            max_bytes: max_response_bytes.saturating_sub(RESPONSE_RESERVE_BYTES),
            state: Mutex::default(),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BudgetState> {
        // Plain counters: a panic elsewhere cannot leave them inconsistent.
        crate::sync::lock(&self.state)
    }

    /// Waits until one more fetch may be in flight (see the type's doc).
    async fn admit(&self) -> Admitted<'_> {
        loop {
            let notified = self.changed.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            {
                let mut state = self.lock();
                let projected = state
                    .bytes
                    .saturating_add((state.in_flight + 1).saturating_mul(state.largest));
                let admit = if state.files == 0 {
                    // Sizes unknown yet: a first window, widened as soon as files arrive.
                    state.in_flight < BUDGET_FIRST_WINDOW
                } else {
                    projected <= self.max_bytes
                };
                if state.in_flight == 0 || admit {
                    state.in_flight += 1;
                    return Admitted(self);
                }
            }
            notified.await;
        }
    }

    /// Charges `files` of `object`; the object that passes the budget fails the mount.
    fn charge(&self, object: &ObjectSpec, files: &[MountedFile]) -> Result<(), MountError> {
        let bytes: usize = files
            .iter()
            .map(|f| {
                f.contents.len()
                    + f.path.len()
                    + f.id.len()
                    + f.version.len()
                    + PER_FILE_OVERHEAD_BYTES
            })
            .sum();
        let (total_bytes, total_files) = {
            let mut state = self.lock();
            state.bytes = state.bytes.saturating_add(bytes);
            state.files += files.len();
            state.largest = state.largest.max(bytes);
            (state.bytes, state.files)
        };
        self.changed.notify_waiters();
        if total_bytes > self.max_bytes {
            return Err(MountError::limit(format!(
                "object {object}: with its {bytes} bytes the mount's answer passes {total_bytes} bytes, above the {} bytes the driver accepts (--max-response-bytes; the driver's default gRPC limit is 4 MiB); split the SecretProviderClass",
                self.max_bytes + RESPONSE_RESERVE_BYTES
            )));
        }
        if total_files > MAX_RESPONSE_FILES {
            return Err(MountError::limit(format!(
                "object {object}: the mount's answer passes {MAX_RESPONSE_FILES} files; split the SecretProviderClass"
            )));
        }
        Ok(())
    }

    fn bytes(&self) -> usize {
        self.lock().bytes
    }
}

/// One file of the answer, with the object-version entry that goes with it.
struct MountedFile {
    path: String,
    mode: u32,
    contents: Vec<u8>,
    id: String,
    version: String,
}

impl Provider {
    pub fn new(transport: Transport, options: ProviderOptions) -> Self {
        let identities = Identities::new(transport.clone(), options.auth.clone());
        let vaults = VaultClients::new(transport, options.keyvault.clone());
        // tokio's semaphores are fair: waiters are served in the order they asked.
        let mount_slots = Semaphore::new(options.max_in_flight_mounts.max(1));
        Self {
            options,
            identities,
            vaults,
            mount_slots,
        }
    }

    /// Serves one `Mount` call.
    pub async fn mount(
        &self,
        raw: pb::MountRequest,
        deadline: Option<Instant>,
    ) -> Result<pb::MountResponse, Status> {
        let started = Instant::now();
        let _in_flight = metrics().mount_started();
        let deadline = effective_deadline(started, deadline);
        let parsed = request::parse_mount(&raw, &self.options.request)
            .await
            .map_err(MountError::from);
        let outcome = match &parsed {
            Ok(request) => self.mount_in_slot(request, deadline).await,
            Err(error) => Err(error.clone()),
        };
        let seconds = started.elapsed().as_secs_f64();
        let result = match &outcome {
            Ok(_) => "ok",
            Err(error) => error.class(),
        };
        log_mount(parsed.as_ref().ok(), &outcome, result, seconds);
        outcome.map_err(Status::from)
    }

    /// Waits (FIFO, until `deadline`) for one of the `--max-in-flight-mounts` slots, then serves.
    async fn mount_in_slot(
        &self,
        request: &MountRequest,
        deadline: Instant,
    ) -> Result<pb::MountResponse, MountError> {
        if request.objects.is_empty() {
            return Ok(pb::MountResponse::default());
        }
        let _slot = match tokio::time::timeout_at(deadline, self.mount_slots.acquire()).await {
            Ok(Ok(slot)) => slot,
            Ok(Err(_)) => return Err(MountError::internal("mount limiter closed")),
            Err(_) => {
                return Err(MountError::busy(format!(
                    "the provider is serving its limit of {} mounts at once (--max-in-flight-mounts) and no slot became free before the mount deadline; the driver will retry",
                    self.options.max_in_flight_mounts.max(1)
                )));
            }
        };
        self.mount_request(request, deadline).await
    }

    /// One of the mount's own fetch slots, before `deadline` (the provider-wide Key Vault
    /// request slot is taken by the client, per request sent).
    async fn fetch_slot<'a>(
        &self,
        object: &ObjectSpec,
        limit: &'a Semaphore,
        deadline: Instant,
    ) -> Result<SemaphorePermit<'a>, MountError> {
        tokio::time::timeout_at(deadline, limit.acquire())
            .await
            .map_err(|_| {
                MountError::deadline(format!(
                    "object {object}: the mount deadline passed while its other objects were being fetched"
                ))
            })?
            .map_err(|_| MountError::internal("fetch limiter closed"))
    }

    async fn mount_request(
        &self,
        request: &MountRequest,
        deadline: Instant,
    ) -> Result<pb::MountResponse, MountError> {
        // Transient identity-service faults are retried until the mount's deadline.
        let identity =
            crate::auth::within_deadline(deadline, self.identities.resolve(request)).await?;
        // One client per vault the mount reads (the SecretProviderClass's first, then the
        // objects' own `keyvaultName`s, at most `MAX_VAULTS_PER_MOUNT`): each keeps its own
        // cache, coalescing and per-vault back-off.
        let client = self
            .vaults
            .client_in(&identity, &request.vault_url(), Some(&request.cloud))
            .map_err(|e| kv_error(None, &e))?;
        let mut own_clients: Vec<(String, Arc<VaultClient>)> = Vec::new();
        for object in &request.objects {
            let Some(vault) = &object.vault else {
                continue;
            };
            if own_clients.iter().any(|(v, _)| v == vault) {
                continue;
            }
            let client = self
                .vaults
                .client_in(
                    &identity,
                    &request.cloud.vault_url(vault),
                    Some(&request.cloud),
                )
                .map_err(|e| kv_error(Some(object), &e))?;
            own_clients.push((vault.clone(), client));
        }
        let limit = Semaphore::new(self.options.max_concurrent_fetches.max(1));
        let budget = ResponseBudget::new(self.options.max_response_bytes);
        let job = MountJob {
            request,
            client: &client,
            own_clients: &own_clients,
            limit: &limit,
            budget: &budget,
            deadline,
        };
        // All objects start at once; the semaphores bound the Key Vault calls in flight. The
        // first error (an object passing the budget included) drops every outstanding fetch.
        let mut fetches = Vec::with_capacity(request.objects.len());
        for object in &request.objects {
            fetches.push(self.mount_object(&job, object));
        }
        let per_object: Vec<Vec<MountedFile>> = futures::future::try_join_all(fetches).await?;
        let files: Vec<MountedFile> = per_object.into_iter().flatten().collect();
        let total = budget.bytes();
        if total > SECRET_SYNC_WARN_BYTES {
            tracing::warn!(
                bytes = total,
                "mount is larger than 1 MiB: syncing it to a Kubernetes Secret will fail"
            );
        }
        Ok(response(files))
    }

    /// Every file of one object (several for version history or separate cert/key files).
    async fn mount_object(
        &self,
        job: &MountJob<'_>,
        object: &ObjectSpec,
    ) -> Result<Vec<MountedFile>, MountError> {
        if !object.needs_listing() {
            return self.fetch_version(job, object, &object.version, None).await;
        }
        let listed = {
            let _permits = self.fetch_slot(object, job.limit, job.deadline).await?;
            job.client(object)
                .list_versions(object.object_type, &object.name, job.deadline)
                .await
                .map_err(|e| kv_error(Some(object), &e))?
        };
        let count = object.version_history as usize;
        let chosen = match &object.not_after {
            Some(not_after) => choose_versions_not_after(listed, not_after, count),
            None => choose_versions(listed, &object.version, count),
        }
        .map_err(|problem| {
            MountError::new(
                MountErrorKind::KeyVault(KvErrorKind::NotFound),
                format!("object {object}: {problem}"),
            )
        })?;
        if !object.is_multi_version() {
            // objectNotAfter alone: one version (the choice is never empty), written as a
            // single-version object.
            let version = chosen.first().map_or("", String::as_str);
            return self.fetch_version(job, object, version, None).await;
        }
        let mut fetches = Vec::with_capacity(chosen.len());
        for (index, version) in chosen.iter().enumerate() {
            fetches.push(self.fetch_version(job, object, version, Some(index)));
        }
        let files: Vec<Vec<MountedFile>> = futures::future::try_join_all(fetches).await?;
        Ok(files.into_iter().flatten().collect())
    }

    /// Fetches one version of an object, renders its files and charges them to the mount's
    /// response budget. Paths and ids: `<file>` and `<type>/<name>` for a single version,
    /// `<file>/<index>` and `<type>/<name>/<index>` in a version history; a `jmesPath` file is
    /// `<objectAlias>` with id `<type>/<name>#<objectAlias>`, with the same `/<index>` suffix.
    async fn fetch_version(
        &self,
        job: &MountJob<'_>,
        object: &ObjectSpec,
        version: &str,
        index: Option<usize>,
    ) -> Result<Vec<MountedFile>, MountError> {
        let suffix = index.map(|i| format!("/{i}")).unwrap_or_default();
        let base = format!("{}{suffix}", object.file_name());
        let id = format!("{}{suffix}", object.id());
        let (client, deadline, request) = (job.client(object), job.deadline, job.request);
        let fetch_error = |e: KvError| kv_error(Some(object), &e);
        let permit = self.fetch_slot(object, job.limit, deadline).await?;
        // Counted in flight until its files are charged.
        let admitted = tokio::time::timeout_at(deadline, job.budget.admit())
            .await
            .map_err(|_| {
                MountError::deadline(format!(
                    "object {object}: the mount deadline passed while its other objects were being fetched"
                ))
            })?;
        let (fetched, fetched_version) = {
            match object.object_type {
                ObjectType::Secret => {
                    let fetched = client
                        .get_secret(&object.name, version, deadline)
                        .await
                        .map_err(fetch_error)?;
                    (FetchedContent::Secret(fetched.value), fetched.version)
                }
                ObjectType::Key => {
                    let fetched = client
                        .get_key(&object.name, version, deadline)
                        .await
                        .map_err(fetch_error)?;
                    (FetchedContent::Key(fetched.value), fetched.version)
                }
                ObjectType::Cert => {
                    let fetched = client
                        .get_certificate(&object.name, version, deadline)
                        .await
                        .map_err(fetch_error)?;
                    (FetchedContent::Cert(fetched.value), fetched.version)
                }
            }
        };
        // The fetch slot is free again: conversion waits for the blocking pool, not for Key Vault.
        drop(permit);
        let (rendered, jmes_files) = self.render(object, fetched).await?;
        for warning in &rendered.warnings {
            tracing::warn!(object = %object, "{warning}");
        }
        // With objectVersionHistory, the expiry series follow the first version served (`/0`: the
        // newest, or the one objectVersion names).
        let newest = index.is_none_or(|i| i == 0);
        if let (true, Some(leaf), Some(earliest)) =
            (newest, rendered.leaf_not_after, rendered.not_after)
        {
            let served = CertificateObject {
                namespace: request.pod.namespace.clone(),
                secret_provider_class: request.secret_provider_class.clone().unwrap_or_default(),
                vault: object.vault_name(request).to_owned(),
                object_type: object.object_type.as_str().to_owned(),
                object_name: object.name.clone(),
            };
            metrics().certificate_expiry(&served, &fetched_version, leaf, earliest);
        }
        let mode = object.file_mode.unwrap_or(request.default_mode);
        let mut files: Vec<MountedFile> = rendered
            .files
            .into_iter()
            .map(|file| MountedFile {
                path: format!("{base}{}", file.suffix),
                mode,
                contents: file.contents,
                id: id.clone(),
                version: fetched_version.clone(),
            })
            .collect();
        for (entry, contents) in object.jmes_path.iter().zip(jmes_files) {
            files.push(MountedFile {
                path: format!("{}{suffix}", entry.alias),
                mode,
                contents,
                id: format!("{}#{}{suffix}", object.id(), entry.alias),
                version: fetched_version.clone(),
            });
        }
        job.budget.charge(object, &files)?;
        drop(admitted);
        Ok(files)
    }

    /// Converts fetched content to files (the object's own, then its `jmesPath` files): inline
    /// when cheap, else (always with `jmesPath`: JSON parsing and evaluation) on the bounded
    /// blocking pool.
    async fn render(
        &self,
        object: &ObjectSpec,
        fetched: FetchedContent,
    ) -> Result<(content::Rendered, Vec<Vec<u8>>), MountError> {
        let content_error = |e: content::ContentError| MountError::content(object, &e);
        let shape = (object.format, object.encoding);
        let options = self.options.content;
        if object.jmes_path.is_empty() && fetched.is_cheap() {
            return fetched
                .render(shape, &options)
                .map(|rendered| (rendered, Vec::new()))
                .map_err(content_error);
        }
        let paths: Vec<String> = object.jmes_path.iter().map(|e| e.path.clone()).collect();
        let job = move || {
            let jmes_files = if paths.is_empty() {
                Vec::new()
            } else {
                fetched.jmes_files(&paths)?
            };
            fetched
                .render(shape, &options)
                .map(|rendered| (rendered, jmes_files))
        };
        match blocking::run(job).await {
            Ok(rendered) => rendered.map_err(content_error),
            Err(BlockingError::TimedOut(limit)) => Err(MountError::limit(format!(
                "object {object}: converting its content did not finish within {limit:?} (--blocking-timeout; the blocking pool is busy or the content is too expensive to convert)"
            ))),
            Err(BlockingError::Panicked) => Err(MountError::internal(format!(
                "object {object}: converting its content failed unexpectedly"
            ))),
        }
    }
}

/// What every fetch of one mount shares.
struct MountJob<'a> {
    request: &'a MountRequest,
    /// The SecretProviderClass's vault.
    client: &'a VaultClient,
    /// The objects' own vaults.
    own_clients: &'a [(String, Arc<VaultClient>)],
    /// The mount's own `--max-concurrent-fetches` slots.
    limit: &'a Semaphore,
    budget: &'a ResponseBudget,
    deadline: Instant,
}

impl MountJob<'_> {
    /// The client of the object's vault.
    fn client(&self, object: &ObjectSpec) -> &VaultClient {
        let own = object.vault.as_ref().and_then(|vault| {
            self.own_clients
                .iter()
                .find(|(v, _)| v == vault)
                .map(|(_, client)| client.as_ref())
        });
        // Every own vault got a client before the fetches started.
        own.unwrap_or(self.client)
    }
}

#[async_trait::async_trait]
impl MountHandler for Provider {
    async fn mount(
        &self,
        request: pb::MountRequest,
        deadline: Option<Instant>,
    ) -> Result<pb::MountResponse, Status> {
        Provider::mount(self, request, deadline).await
    }
}

/// A key or certificate object: one file; a certificate's notAfter feeds the expiry metric.
fn single_file(contents: Vec<u8>) -> content::Rendered {
    let (leaf_not_after, not_after) = content::leaf_and_earliest_expiry(&contents);
    content::Rendered {
        files: vec![RenderedFile {
            suffix: "",
            contents,
        }],
        warnings: Vec::new(),
        not_after,
        leaf_not_after,
    }
}

fn effective_deadline(now: Instant, requested: Option<Instant>) -> Instant {
    let default = now + DEFAULT_DEADLINE;
    match requested {
        Some(deadline) => deadline
            .checked_sub(DEADLINE_MARGIN)
            .unwrap_or(deadline)
            .min(default),
        None => default,
    }
}

/// Upstream's version-history selection, without its N+1: enabled versions, newest first by
/// `created` (missing = epoch), starting at `start` (`""`/`latest` = newest), at most `count`.
pub fn choose_versions(
    mut versions: Vec<VersionInfo>,
    start: &str,
    count: usize,
) -> Result<Vec<String>, String> {
    versions.retain(|v| v.enabled);
    versions.sort_by_key(|v| std::cmp::Reverse(v.created.unwrap_or(0)));
    let first = if start.is_empty() || start == "latest" {
        0
    } else {
        versions
            .iter()
            .position(|v| v.version == start)
            .ok_or_else(|| format!("objectVersion {start} is not among the enabled versions"))?
    };
    let chosen: Vec<String> = versions
        .into_iter()
        .skip(first)
        .take(count)
        .map(|v| v.version)
        .collect();
    if chosen.is_empty() {
        return Err("no enabled version".into());
    }
    Ok(chosen)
}

/// `objectNotAfter`: enabled versions created at or before `not_after` (missing creation time =
/// the epoch, as [`choose_versions`]), newest first, at most `count`.
pub fn choose_versions_not_after(
    mut versions: Vec<VersionInfo>,
    not_after: &request::NotAfter,
    count: usize,
) -> Result<Vec<String>, String> {
    versions.retain(|v| v.enabled && v.created.unwrap_or(0) <= not_after.unix);
    versions.sort_by_key(|v| std::cmp::Reverse(v.created.unwrap_or(0)));
    let chosen: Vec<String> = versions
        .into_iter()
        .take(count)
        .map(|v| v.version)
        .collect();
    if chosen.is_empty() {
        return Err(format!(
            "no enabled version was created at or before objectNotAfter {}",
            crate::text::echo(&not_after.text)
        ));
    }
    Ok(chosen)
}

fn response(files: Vec<MountedFile>) -> pb::MountResponse {
    let mut response = pb::MountResponse {
        files: Vec::with_capacity(files.len()),
        object_version: Vec::with_capacity(files.len()),
        error: None,
    };
    for file in files {
        response.object_version.push(pb::ObjectVersion {
            id: file.id,
            version: file.version,
        });
        // Modes are validated to 0..=0o777, so the cast cannot truncate.
        response.files.push(pb::File {
            path: file.path,
            mode: file.mode as i32,
            contents: file.contents,
        });
    }
    response
}

fn kv_error(object: Option<&ObjectSpec>, error: &KvError) -> MountError {
    let context = object.map(|object| match object.version.is_empty() {
        true => format!("failed to get {object}"),
        false => format!("failed to get {object} (version {})", object.version),
    });
    MountError::key_vault(context, error)
}

/// One structured line per mount.
fn log_mount(
    request: Option<&MountRequest>,
    outcome: &Result<pb::MountResponse, MountError>,
    result: &str,
    seconds: f64,
) {
    let (pod, namespace, spc, objects) = match request {
        Some(r) => (
            r.pod.name.as_str(),
            r.pod.namespace.as_str(),
            r.secret_provider_class.as_deref().unwrap_or(""),
            r.objects.len(),
        ),
        None => ("", "", "", 0),
    };
    let duration_ms = (seconds * 1000.0).round() as u64;
    match outcome {
        Ok(response) => tracing::info!(
            pod,
            namespace,
            spc,
            objects,
            files = response.files.len(),
            duration_ms,
            result,
            "mount"
        ),
        Err(error) => tracing::warn!(
            pod,
            namespace,
            spc,
            objects,
            duration_ms,
            result,
            error = %crate::text::status_message(error.message()),
            "mount failed"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(version: &str, created: i64, enabled: bool) -> VersionInfo {
        VersionInfo {
            version: version.into(),
            created: Some(created),
            enabled,
        }
    }

    #[test]
    fn version_history_is_exactly_n_newest_first() {
        let listed = vec![
            v("c", 3, true),
            v("e", 1, true),
            v("b", 4, true),
            v("a", 5, true),
            v("d", 2, true),
        ];
        assert_eq!(
            choose_versions(listed.clone(), "latest", 5).unwrap(),
            ["a", "b", "c", "d", "e"]
        );
        assert_eq!(
            choose_versions(listed.clone(), "", 2).unwrap(),
            ["a", "b"],
            "exactly N, not N+1"
        );
        assert_eq!(
            choose_versions(listed.clone(), "c", 5).unwrap(),
            ["c", "d", "e"]
        );
        assert_eq!(choose_versions(listed, "", 200).unwrap().len(), 5);
    }

    #[test]
    fn version_history_skips_disabled_and_reports_missing_start() {
        let listed = vec![v("a", 5, false), v("b", 4, true)];
        assert_eq!(choose_versions(listed.clone(), "", 2).unwrap(), ["b"]);
        assert!(
            choose_versions(listed.clone(), "a", 2)
                .unwrap_err()
                .contains("objectVersion a")
        );
        assert!(choose_versions(vec![v("a", 1, false)], "", 2).is_err());
    }

    #[test]
    fn not_after_picks_the_newest_enabled_version_not_created_after_it() {
        let listed = vec![
            v("a", 100, true),
            v("b", 200, true),
            v("c", 300, false),
            v("d", 400, true),
        ];
        let at = |unix: i64| request::NotAfter {
            unix,
            text: format!("t{unix}"),
        };
        assert_eq!(
            choose_versions_not_after(listed.clone(), &at(350), 1).unwrap(),
            ["b"],
            "c is disabled, d is newer"
        );
        assert_eq!(
            choose_versions_not_after(listed.clone(), &at(200), 1).unwrap(),
            ["b"],
            "created exactly at the time counts"
        );
        assert_eq!(
            choose_versions_not_after(listed.clone(), &at(199), 1).unwrap(),
            ["a"]
        );
        assert_eq!(
            choose_versions_not_after(listed.clone(), &at(1000), 3).unwrap(),
            ["d", "b", "a"],
            "with history, it starts there"
        );
        assert_eq!(
            choose_versions_not_after(listed.clone(), &at(350), 5).unwrap(),
            ["b", "a"]
        );
        let e = choose_versions_not_after(listed, &at(99), 1).unwrap_err();
        assert_eq!(
            e,
            "no enabled version was created at or before objectNotAfter t99"
        );
    }

    fn spec(name: &str) -> ObjectSpec {
        request::parse_objects(&format!(
            "array:\n  - |\n    objectName: {name}\n    objectType: secret\n"
        ))
        .unwrap()
        .remove(0)
    }

    fn file(bytes: usize) -> MountedFile {
        MountedFile {
            path: String::new(),
            mode: 0o644,
            contents: vec![0; bytes - PER_FILE_OVERHEAD_BYTES],
            id: String::new(),
            version: String::new(),
        }
    }

    #[tokio::test]
    async fn the_budget_fails_the_object_that_passes_it() {
        let budget = ResponseBudget::new(RESPONSE_RESERVE_BYTES + 1000);
        assert!(budget.charge(&spec("a"), &[file(600)]).is_ok());
        let err = budget.charge(&spec("b"), &[file(600)]).unwrap_err();
        assert_eq!(err.code(), tonic::Code::ResourceExhausted);
        assert!(
            err.message()
                .starts_with("object secret/b: with its 600 bytes"),
            "{}",
            err.message()
        );
    }

    #[tokio::test]
    async fn the_budget_paces_fetches_by_the_largest_file_seen() {
        let budget = ResponseBudget::new(RESPONSE_RESERVE_BYTES + 1000);
        // Before any file: a first window of fetches.
        let first: Vec<_> =
            futures::future::join_all((0..BUDGET_FIRST_WINDOW).map(|_| budget.admit())).await;
        let waiting = tokio::time::timeout(Duration::from_millis(20), budget.admit()).await;
        assert!(waiting.is_err(), "the first window is full");
        drop(first);
        let one = budget.admit().await;
        budget.charge(&spec("a"), &[file(400)]).unwrap();
        drop(one);
        // 400 charged, 400 largest: one more fits (800), two do not (1200).
        let a = budget.admit().await;
        let b = tokio::time::timeout(Duration::from_millis(20), budget.admit()).await;
        assert!(b.is_err(), "a second concurrent fetch would not fit");
        let waiter = budget.admit();
        let mut waiter = std::pin::pin!(waiter);
        assert!(futures::poll!(waiter.as_mut()).is_pending());
        drop(a);
        // Alone in flight, a fetch is always admitted.
        let _b = tokio::time::timeout(Duration::from_millis(100), waiter)
            .await
            .expect("admitted once the other finished");
    }

    #[test]
    fn deadline_keeps_a_margin_and_a_ceiling() {
        let now = Instant::now();
        assert_eq!(effective_deadline(now, None), now + DEFAULT_DEADLINE);
        let asked = now + Duration::from_secs(10);
        assert_eq!(
            effective_deadline(now, Some(asked)),
            asked - DEADLINE_MARGIN
        );
        assert_eq!(
            effective_deadline(now, Some(now + Duration::from_secs(600))),
            now + DEFAULT_DEADLINE
        );
    }
}
