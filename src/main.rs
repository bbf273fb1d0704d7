//! Binary entry point: parse flags, wire the parts together, serve (or run an operator tool).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use akv_csi_provider::flags::{self, Cli, Command, Flags};
use akv_csi_provider::provider::Provider;
use akv_csi_provider::request::cloud;
use akv_csi_provider::server::{self, Server};
use akv_csi_provider::telemetry::{self, HealthConfig};
use akv_csi_provider::{BUILD_VERSION, tools};
use clap::Parser;
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let cli = Cli::parse_from(flags::go_style_args(
        std::env::args_os().map(|a| a.to_string_lossy().into_owned()),
    ));
    let flags = &cli.flags;
    if flags.version {
        println!(
            "{}",
            serde_json::json!({ "version": BUILD_VERSION, "buildDate": option_env!("AKV_CSI_PROVIDER_BUILD_DATE").unwrap_or("") })
        );
        return ExitCode::SUCCESS;
    }
    if let Err(e) = telemetry::init_logging(flags.log_format_json, flags.verbosity) {
        eprintln!("cannot set up logging: {e}");
        return ExitCode::FAILURE;
    }
    akv_csi_provider::blocking::configure(flags.blocking_limits());
    akv_csi_provider::content::pfx_limits::configure(flags.pfx_limits());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match &cli.command {
        None => runtime.block_on(serve(flags)),
        Some(Command::Check { files }) => {
            let (report, ok) = tools::check(files, &flags.request_defaults());
            print!("{report}");
            return if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            };
        }
        Some(Command::Mount(args)) => runtime.block_on(async {
            let provider = Provider::new(flags.transport()?, flags.provider_options());
            let versions = tools::mount(args, &provider).await?;
            print!("{versions}");
            Ok(())
        }),
        Some(Command::Probe(args)) => runtime.block_on(async {
            let endpoint = args.endpoint.as_deref().unwrap_or(&flags.endpoint);
            print!("{}", tools::probe(endpoint, args.timeout).await?);
            Ok(())
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("akv-csi-provider: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Serves the driver until SIGTERM/SIGINT. Every listener is bound before anything is served,
/// so a port or socket that cannot be bound is a startup error.
async fn serve(flags: &Flags) -> Result<(), String> {
    if !flags.metrics_backend.eq_ignore_ascii_case("prometheus") {
        return Err(format!(
            "unsupported metrics backend {:?}: only prometheus is supported",
            flags.metrics_backend
        ));
    }
    let defaults = flags.request_defaults();
    let variable = std::env::var_os(cloud::AZURE_ENVIRONMENT_FILEPATH).filter(|v| !v.is_empty());
    if let Some(note) = cloud::check_startup(&defaults, variable.as_deref())? {
        tracing::warn!("{note}");
    }
    warn_inert_flags(flags);
    let options = flags.provider_options();
    options.auth.check_token_proxy()?;
    let endpoint = server::parse_endpoint(&flags.endpoint).map_err(|e| e.to_string())?;
    let provider = Arc::new(Provider::new(flags.transport()?, options));

    if let server::Endpoint::Unix(path) = &endpoint {
        server::socket::wait_for_handover(path, flags.socket_handover_timeout)
            .await
            .map_err(|e| e.to_string())?;
    }
    let grpc = Server::bind_with(&endpoint, &flags.bind_options())
        .await
        .map_err(|e| e.to_string())?;
    telemetry::metrics().configure_expiry(flags.expiry_options());
    telemetry::metrics().set_max_object_names(flags.metrics_max_object_names);
    let metrics = telemetry::bind_metrics(
        SocketAddr::new(flags.metrics_bind_address, flags.prometheus_port),
        telemetry::metrics(),
    )
    .await
    .map_err(|e| e.to_string())?
    .with_limits(flags.http_limits());
    let health = telemetry::bind_health(
        SocketAddr::new(flags.healthz_bind_address, flags.healthz_port),
        HealthConfig {
            path: flags.healthz_path.clone(),
            endpoint: grpc.endpoint().clone(),
            timeout: flags.healthz_timeout,
        },
    )
    .await
    .map_err(|e| e.to_string())?
    .with_limits(flags.http_limits());
    tracing::info!(
        version = BUILD_VERSION,
        endpoint = %grpc.endpoint(),
        metrics = %metrics.local_addr(),
        health = %health.local_addr(),
        "akv-csi-provider started"
    );

    let stop = CancellationToken::new();
    tokio::spawn({
        let stop = stop.clone();
        async move {
            shutdown_signal().await;
            tracing::info!("shutting down: no new connections, waiting for in-flight mounts");
            stop.cancel();
        }
    });
    // Certificate-expiry series age out even when nobody scrapes /metrics.
    tokio::spawn({
        let stop = stop.clone();
        let interval = telemetry::expiry_prune_interval(flags.certificate_expiry_retention);
        async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    _ = ticks.tick() => telemetry::metrics().prune_expiry(),
                }
            }
        }
    });
    let metrics_task = tokio::spawn(metrics.serve(stop.clone().cancelled_owned()));
    let health_task = tokio::spawn(health.serve(stop.clone().cancelled_owned()));
    let served = grpc
        .serve(
            provider,
            stop.clone().cancelled_owned(),
            flags.shutdown_grace_period,
        )
        .await;
    stop.cancel();
    let _ = tokio::join!(metrics_task, health_task);
    served.map_err(|e| e.to_string())
}

/// Flags accepted for compatibility with the Go provider that have no effect in this build.
fn warn_inert_flags(flags: &Flags) {
    if flags.enable_pprof {
        tracing::warn!(
            "--enable-pprof is accepted for compatibility; this provider has no pprof endpoint"
        );
    }
    let klog = flags.inert_klog_flags();
    if !klog.is_empty() {
        tracing::warn!(
            flags = %klog.join(" "),
            "klog flags of the Go provider are accepted and have no effect: logs go to stderr, verbosity is -v (or RUST_LOG)"
        );
    }
    if !flags.custom_user_agent.is_empty() {
        tracing::warn!("--custom-user-agent has no effect (as in the Go provider)");
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            // Without signal handlers, Ctrl-C is the only way out.
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
