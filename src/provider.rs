//! One mount, end to end: parse and validate the request, resolve the identity, fetch every object
//! concurrently (bounded), convert, and answer with the files in SecretProviderClass order.
//!
//! A mount succeeds whole or fails whole: the first failing object fails the mount, nothing
//! partial is returned. Errors are gRPC statuses whose message names the object
//! (`objectType/objectName`) and the problem, and never carries secret material.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;
use tonic::{Code, Status};

use crate::auth::{AuthOptions, Identities};
use crate::content::{self, ContentOptions, RenderedFile};
use crate::keyvault::{
    KeyVaultOptions, KvError, KvErrorKind, VaultClient, VaultClients, VersionInfo,
};
use crate::pb;
use crate::request::{self, MountRequest, ObjectSpec, ObjectType, RequestDefaults};
use crate::server::MountHandler;
use crate::telemetry::metrics;
use crate::transport::Transport;

/// The driver's default gRPC receive limit: a larger response cannot be delivered.
pub const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;
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
    pub auth: AuthOptions,
    pub keyvault: KeyVaultOptions,
}

impl Default for ProviderOptions {
    fn default() -> Self {
        Self {
            request: RequestDefaults::default(),
            content: ContentOptions::default(),
            max_concurrent_fetches: 64,
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
        Self {
            options,
            identities,
            vaults,
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
            .map_err(|e| Status::invalid_argument(e.0));
        let outcome = match &parsed {
            Ok(request) => self.mount_request(request, deadline).await,
            Err(status) => Err(status.clone()),
        };
        let seconds = started.elapsed().as_secs_f64();
        let result = result_class(&outcome);
        metrics().mount_finished(result, seconds);
        log_mount(parsed.as_ref().ok(), &outcome, result, seconds);
        outcome
    }

    async fn mount_request(
        &self,
        request: &MountRequest,
        deadline: Instant,
    ) -> Result<pb::MountResponse, Status> {
        if request.objects.is_empty() {
            return Ok(pb::MountResponse::default());
        }
        // Auth errors already name the mode, the status and Entra's error code.
        let identity = self
            .identities
            .resolve(request)
            .await
            .map_err(|e| Status::unauthenticated(format!("failed to authenticate: {e}")))?;
        let client = self
            .vaults
            .client(&identity, &request.vault_url())
            .map_err(|e| kv_status(None, &e))?;
        let limit = Arc::new(Semaphore::new(self.options.max_concurrent_fetches.max(1)));
        // All objects start at once; the semaphore bounds the Key Vault calls in flight.
        let mut fetches = Vec::with_capacity(request.objects.len());
        for object in &request.objects {
            fetches.push(self.mount_object(request, &client, object, &limit, deadline));
        }
        let per_object: Vec<Vec<MountedFile>> = futures::future::try_join_all(fetches).await?;
        let files: Vec<MountedFile> = per_object.into_iter().flatten().collect();
        let total: usize = files.iter().map(|f| f.contents.len() + f.path.len()).sum();
        if total > MAX_RESPONSE_BYTES - 64 * 1024 {
            return Err(Status::resource_exhausted(format!(
                "mount of {} files is {total} bytes, above what the driver accepts by default (4 MiB gRPC limit); split the SecretProviderClass",
                files.len()
            )));
        }
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
        request: &MountRequest,
        client: &VaultClient,
        object: &ObjectSpec,
        limit: &Semaphore,
        deadline: Instant,
    ) -> Result<Vec<MountedFile>, Status> {
        if !object.is_multi_version() {
            let base = object.file_name().to_string();
            return self
                .fetch_version(
                    request,
                    client,
                    object,
                    &object.version,
                    base,
                    object.id(),
                    limit,
                    deadline,
                )
                .await;
        }
        let listed = {
            let _permit = limit
                .acquire()
                .await
                .map_err(|_| Status::internal("fetch limiter closed"))?;
            client
                .list_versions(object.object_type, &object.name, deadline)
                .await
                .map_err(|e| kv_status(Some(object), &e))?
        };
        let chosen = choose_versions(listed, &object.version, object.version_history as usize)
            .map_err(|problem| Status::not_found(format!("object {object}: {problem}")))?;
        let mut fetches = Vec::with_capacity(chosen.len());
        for (index, version) in chosen.iter().enumerate() {
            let base = format!("{}/{index}", object.file_name());
            let id = format!("{}/{index}", object.id());
            fetches.push(
                self.fetch_version(request, client, object, version, base, id, limit, deadline),
            );
        }
        let files: Vec<Vec<MountedFile>> = futures::future::try_join_all(fetches).await?;
        Ok(files.into_iter().flatten().collect())
    }

    /// Fetches one version of an object and renders its files under `base`.
    #[allow(clippy::too_many_arguments)]
    async fn fetch_version(
        &self,
        request: &MountRequest,
        client: &VaultClient,
        object: &ObjectSpec,
        version: &str,
        base: String,
        id: String,
        limit: &Semaphore,
        deadline: Instant,
    ) -> Result<Vec<MountedFile>, Status> {
        let fetch_error = |e: KvError| kv_status(Some(object), &e);
        let content_error =
            |e: content::ContentError| Status::failed_precondition(format!("object {object}: {e}"));
        let (rendered, fetched_version) = {
            let _permit = limit
                .acquire()
                .await
                .map_err(|_| Status::internal("fetch limiter closed"))?;
            match object.object_type {
                ObjectType::Secret => {
                    let fetched = client
                        .get_secret(&object.name, version, deadline)
                        .await
                        .map_err(fetch_error)?;
                    let rendered = content::render_secret(
                        &fetched.value,
                        object.format,
                        object.encoding,
                        &self.options.content,
                    )
                    .map_err(content_error)?;
                    (rendered, fetched.version)
                }
                ObjectType::Key => {
                    let fetched = client
                        .get_key(&object.name, version, deadline)
                        .await
                        .map_err(fetch_error)?;
                    let pem = content::render_key(&fetched.value).map_err(content_error)?;
                    (single_file(pem), fetched.version)
                }
                ObjectType::Cert => {
                    let fetched = client
                        .get_certificate(&object.name, version, deadline)
                        .await
                        .map_err(fetch_error)?;
                    (
                        single_file(content::render_certificate(&fetched.value)),
                        fetched.version,
                    )
                }
            }
        };
        for warning in &rendered.warnings {
            tracing::warn!(object = %object, "{warning}");
        }
        if let Some(not_after) = rendered.not_after {
            metrics().certificate_expiry(
                &request.vault_name,
                object.object_type.as_str(),
                &object.name,
                not_after,
            );
        }
        let mode = object.file_mode.unwrap_or(request.default_mode);
        Ok(rendered
            .files
            .into_iter()
            .map(|file| MountedFile {
                path: format!("{base}{}", file.suffix),
                mode,
                contents: file.contents,
                id: id.clone(),
                version: fetched_version.clone(),
            })
            .collect())
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
    let not_after = content::certificate_expiries(&contents).into_iter().min();
    content::Rendered {
        files: vec![RenderedFile {
            suffix: "",
            contents,
        }],
        warnings: Vec::new(),
        not_after,
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

fn kv_status(object: Option<&ObjectSpec>, error: &KvError) -> Status {
    let code = match error.kind {
        KvErrorKind::NotFound => Code::NotFound,
        KvErrorKind::Forbidden => Code::PermissionDenied,
        KvErrorKind::Unauthenticated => Code::Unauthenticated,
        KvErrorKind::Throttled => Code::ResourceExhausted,
        KvErrorKind::DeadlineExceeded => Code::DeadlineExceeded,
        KvErrorKind::Unavailable => Code::Unavailable,
        KvErrorKind::InvalidResponse | KvErrorKind::Other => Code::Internal,
    };
    match object {
        Some(object) if object.version.is_empty() => {
            Status::new(code, format!("failed to get {object}: {error}"))
        }
        Some(object) => Status::new(
            code,
            format!(
                "failed to get {object} (version {}): {error}",
                object.version
            ),
        ),
        None => Status::new(code, error.message.clone()),
    }
}

/// Bounded result class for metrics and logs.
fn result_class(outcome: &Result<pb::MountResponse, Status>) -> &'static str {
    match outcome {
        Ok(_) => "ok",
        Err(status) => match status.code() {
            Code::InvalidArgument => "invalid_argument",
            Code::NotFound => "not_found",
            Code::PermissionDenied => "permission_denied",
            Code::Unauthenticated => "unauthenticated",
            Code::ResourceExhausted => "resource_exhausted",
            Code::DeadlineExceeded => "deadline_exceeded",
            Code::Unavailable => "unavailable",
            Code::FailedPrecondition => "failed_precondition",
            Code::Unimplemented => "unimplemented",
            _ => "internal",
        },
    }
}

/// One structured line per mount.
fn log_mount(
    request: Option<&MountRequest>,
    outcome: &Result<pb::MountResponse, Status>,
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
        Err(status) => tracing::warn!(
            pod,
            namespace,
            spc,
            objects,
            duration_ms,
            result,
            error = status.message(),
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
