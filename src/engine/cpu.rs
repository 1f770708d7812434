//! The CPU pool for decoding, preprocessing and post-processing: rayon's
//! global pool (one thread per core), kept off the async runtime so a 4K JPEG
//! never stalls the HTTP accept loop or the health probes.

use std::panic::AssertUnwindSafe;

use tokio::sync::oneshot;

use crate::{Error, Result};

/// Runs `work` on the CPU pool and awaits its result. A panic inside becomes
/// an internal error for this request only.
pub async fn run<T, F>(work: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    rayon::spawn(move || {
        let result = std::panic::catch_unwind(AssertUnwindSafe(work)).unwrap_or_else(|_| {
            Err(Error::Internal(
                "worker panicked while processing the request".into(),
            ))
        });
        let _ = tx.send(result);
    });
    rx.await
        .map_err(|_| Error::Internal("CPU pool dropped the request".into()))?
}
