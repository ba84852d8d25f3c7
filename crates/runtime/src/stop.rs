//! The stop signal shared by a pool's slots and by supervised processes.

use tokio::sync::watch;

/// Resolves once `stop` says true (or its sender is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard returned by wait_for must not live across other awaits.
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// Whether a stop was asked for.
pub(crate) fn is_stopped(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow()
}
