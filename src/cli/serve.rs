//! `offboard serve`: the service, until SIGTERM/SIGINT. SIGHUP reloads the policy
//! (validated first; an invalid file keeps the old one).

use std::path::Path;

use tokio_util::sync::CancellationToken;

use super::CliError;
use offboard_core::{
    app::{Application, Role},
    config::Config,
    policy::PolicyError,
};

pub(super) async fn run(config_path: &Path, role: Role) -> Result<(), CliError> {
    let config = Config::load(config_path, false)?;
    let app = Application::build(config, role).await?;
    tracing::info!(addr = %app.local_addr(), ?role, "offboard listening");
    let shutdown = CancellationToken::new();
    spawn_signal_handlers(shutdown.clone(), app.policy_reloader());
    app.run_until_stopped(shutdown)
        .await
        .map_err(|e| CliError::Failed(e.into()))?;
    tracing::info!("offboard stopped");
    Ok(())
}

#[cfg(unix)]
fn spawn_signal_handlers(
    shutdown: CancellationToken,
    reload: impl Fn() -> Result<(), PolicyError> + Send + Sync + 'static,
) {
    use tokio::signal::unix::{SignalKind, signal};
    tokio::spawn(async move {
        let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
        ) else {
            tracing::error!("cannot install signal handlers");
            return;
        };
        loop {
            tokio::select! {
                _ = term.recv() => { tracing::info!("SIGTERM: shutting down"); break; }
                _ = int.recv() => { tracing::info!("SIGINT: shutting down"); break; }
                _ = hup.recv() => { let _ = reload(); }
            }
        }
        shutdown.cancel();
    });
}

#[cfg(not(unix))]
fn spawn_signal_handlers(
    shutdown: CancellationToken,
    _reload: impl Fn() -> Result<(), PolicyError> + Send + Sync + 'static,
) {
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        shutdown.cancel();
    });
}
