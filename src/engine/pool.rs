//! Models shared between functions are loaded once: the pool hands out one
//! inference queue (one session, one worker thread) per model file.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Mutex,
};

use super::{
    session::{load_session, ModelInfo, SessionOptions},
    InferenceQueue, QueueConfig,
};

pub struct ModelPool {
    session: SessionOptions,
    queues: Mutex<HashMap<PathBuf, InferenceQueue>>,
}

impl ModelPool {
    pub fn new(session: SessionOptions) -> Self {
        Self {
            session,
            queues: Mutex::new(HashMap::new()),
        }
    }

    pub fn session_options(&self) -> &SessionOptions {
        &self.session
    }

    /// The queue of `path`, loading the model on first use. `check` validates
    /// the model before its worker starts (it runs on every call, so a second
    /// function with different expectations is refused too).
    pub fn queue(
        &self,
        path: &Path,
        label: &str,
        config: QueueConfig,
        check: impl FnOnce(&ModelInfo) -> Result<(), String>,
    ) -> Result<InferenceQueue, String> {
        let key = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        let mut queues = self
            .queues
            .lock()
            .map_err(|_| "model pool lock poisoned".to_owned())?;
        if let Some(queue) = queues.get(&key) {
            check(queue.info())?;
            return Ok(queue.clone());
        }
        let (session, info) = load_session(path, &self.session, config.max_batch)?;
        check(&info)?;
        let queue = InferenceQueue::start(session, info, config, label, self.session.device);
        queues.insert(key, queue.clone());
        metrics::gauge!("nuclio_ort_models_loaded").set(queues.len() as f64);
        Ok(queue)
    }

    pub fn loaded(&self) -> usize {
        self.queues.lock().map(|q| q.len()).unwrap_or(0)
    }
}
