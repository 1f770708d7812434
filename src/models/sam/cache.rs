//! The embedding cache: LRU by entries and bytes, with single-flight.
//!
//! A SAM session is many clicks on one frame; the encoder is the expensive
//! part (hundreds of ms on a GPU for ViT-H), the decoder a few ms. Keyed on a
//! hash of the image bytes (not a frame number: the Nuclio contract carries
//! only the image) and the encoder, so identical frames from any client hit.
//!
//! Single-flight: concurrent first requests for one frame (several users, or a
//! client retrying) wait for one computation instead of each running the
//! encoder. The computation runs in its own task, so a client that gives up
//! does not waste it: the result still lands in the cache for its next click.

use std::{
    collections::{BTreeMap, HashMap},
    future::Future,
    sync::{Arc, Mutex},
};

use tokio::sync::watch;

use super::Embedding;
use crate::{Error, Result};

/// Hash of the image bytes (128-bit xxh3: collisions would silently answer
/// for the wrong frame) and of the encoder that produced the embedding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey {
    pub image: u128,
    pub model: u64,
}

impl CacheKey {
    pub fn new(image_bytes: &[u8], model: u64) -> Self {
        Self {
            image: xxhash_rust::xxh3::xxh3_128(image_bytes),
            model,
        }
    }
}

/// How a request got its embedding (the `result` label of the cache metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Already cached: no decode, no encoder.
    Hit,
    /// This request ran the encoder.
    Miss,
    /// Another request was already encoding this frame; this one waited for it.
    Coalesced,
}

impl Lookup {
    pub fn as_str(self) -> &'static str {
        match self {
            Lookup::Hit => "hit",
            Lookup::Miss => "miss",
            Lookup::Coalesced => "coalesced",
        }
    }
}

#[derive(Clone)]
enum Flight {
    Pending,
    Done(Arc<Embedding>),
    Failed,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<CacheKey, (Arc<Embedding>, u64)>,
    /// Last-use tick → key, oldest first.
    order: BTreeMap<u64, CacheKey>,
    tick: u64,
    bytes: usize,
    pending: HashMap<CacheKey, watch::Receiver<Flight>>,
}

impl Inner {
    fn get(&mut self, key: &CacheKey) -> Option<Arc<Embedding>> {
        self.tick += 1;
        let tick = self.tick;
        let (value, used) = self.entries.get_mut(key)?;
        self.order.remove(used);
        *used = tick;
        self.order.insert(tick, *key);
        Some(value.clone())
    }

    fn insert(
        &mut self,
        key: CacheKey,
        value: Arc<Embedding>,
        max_entries: usize,
        max_bytes: usize,
    ) {
        let size = value.bytes();
        if max_entries == 0 || size > max_bytes {
            return;
        }
        if let Some((old, used)) = self.entries.remove(&key) {
            self.order.remove(&used);
            self.bytes -= old.bytes();
        }
        while self.entries.len() >= max_entries || self.bytes + size > max_bytes {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            if let Some((old, _)) = self.entries.remove(&oldest) {
                self.bytes -= old.bytes();
            }
        }
        self.tick += 1;
        self.order.insert(self.tick, key);
        self.entries.insert(key, (value, self.tick));
        self.bytes += size;
    }
}

/// Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct EmbeddingCache {
    inner: Arc<Mutex<Inner>>,
    max_entries: usize,
    max_bytes: usize,
}

/// Clears the pending slot of a computation however it ends (error, panic,
/// runtime shutdown), so waiters never hang and the key can be retried.
struct FlightGuard {
    cache: EmbeddingCache,
    key: CacheKey,
    tx: watch::Sender<Flight>,
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        if let Ok(mut inner) = self.cache.inner.lock() {
            inner.pending.remove(&self.key);
        }
        if matches!(*self.tx.borrow(), Flight::Pending) {
            let _ = self.tx.send(Flight::Failed);
        }
    }
}

impl EmbeddingCache {
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner::default())),
            max_entries,
            max_bytes,
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>> {
        self.inner
            .lock()
            .map_err(|_| Error::Internal("embedding cache lock poisoned".into()))
    }

    /// `(entries, bytes)` currently held.
    pub fn usage(&self) -> (usize, usize) {
        self.inner
            .lock()
            .map(|i| (i.entries.len(), i.bytes))
            .unwrap_or((0, 0))
    }

    /// The cached embedding for `key`, or the result of `compute` (run once
    /// for all concurrent callers with the same key). Errors are not cached:
    /// a waiter whose leader failed computes for itself and so reports its
    /// own error.
    pub async fn get_or_compute<F, Fut>(
        &self,
        key: CacheKey,
        compute: F,
    ) -> Result<(Arc<Embedding>, Lookup)>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Embedding>> + Send + 'static,
    {
        let (tx, rx) = watch::channel(Flight::Pending);
        let waiting = {
            let mut inner = self.lock()?;
            if let Some(hit) = inner.get(&key) {
                return Ok((hit, Lookup::Hit));
            }
            match inner.pending.get(&key) {
                Some(other) => Some(other.clone()),
                None => {
                    inner.pending.insert(key, rx);
                    None
                }
            }
        };
        if let Some(mut other) = waiting {
            if let Ok(flight) = other.wait_for(|f| !matches!(f, Flight::Pending)).await {
                if let Flight::Done(embedding) = &*flight {
                    return Ok((embedding.clone(), Lookup::Coalesced));
                }
            }
            return Ok((Arc::new(compute().await?), Lookup::Miss));
        }
        let guard = FlightGuard {
            cache: self.clone(),
            key,
            tx,
        };
        let work = compute();
        let task = tokio::spawn(async move {
            let result = work.await.map(Arc::new);
            if let Ok(embedding) = &result {
                let cache = &guard.cache;
                if let Ok(mut inner) = cache.inner.lock() {
                    // Cached before the pending slot goes, so no request sees neither.
                    inner.insert(key, embedding.clone(), cache.max_entries, cache.max_bytes);
                    inner.pending.remove(&key);
                }
                let _ = guard.tx.send(Flight::Done(embedding.clone()));
            }
            drop(guard);
            result
        });
        let embedding = task
            .await
            .map_err(|e| Error::Internal(format!("embedding task failed: {e}")))??;
        Ok((embedding, Lookup::Miss))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn embedding(value: f32) -> Embedding {
        Embedding {
            tensor: ndarray::ArrayD::from_elem(ndarray::IxDyn(&[1, 4]), value),
            width: 1,
            height: 1,
        }
    }

    fn key(n: u8) -> CacheKey {
        CacheKey::new(&[n], 7)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_misses_compute_once() {
        let cache = EmbeddingCache::new(8, 1 << 20);
        let runs = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (cache, runs) = (cache.clone(), runs.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_compute(key(1), move || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        Ok(embedding(1.0))
                    })
                    .await
                    .map(|(_, lookup)| lookup)
            }));
        }
        let mut lookups = Vec::new();
        for t in tasks {
            lookups.push(t.await.unwrap().unwrap());
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(lookups.iter().filter(|l| **l == Lookup::Miss).count(), 1);
        let (_, again) = cache
            .get_or_compute(key(1), || async { Ok(embedding(2.0)) })
            .await
            .unwrap();
        assert_eq!(again, Lookup::Hit);
    }

    #[tokio::test]
    async fn evicts_least_recently_used_by_entries_and_bytes() {
        let cache = EmbeddingCache::new(2, 1 << 20);
        for n in [1, 2] {
            cache
                .get_or_compute(key(n), || async { Ok(embedding(0.0)) })
                .await
                .unwrap();
        }
        // Touch 1, so 2 is the oldest when 3 arrives.
        assert_eq!(
            cache
                .get_or_compute(key(1), || async { Ok(embedding(0.0)) })
                .await
                .unwrap()
                .1,
            Lookup::Hit
        );
        cache
            .get_or_compute(key(3), || async { Ok(embedding(0.0)) })
            .await
            .unwrap();
        assert_eq!(cache.usage().0, 2);
        assert_eq!(
            cache
                .get_or_compute(key(1), || async { Ok(embedding(0.0)) })
                .await
                .unwrap()
                .1,
            Lookup::Hit
        );
        assert_eq!(
            cache
                .get_or_compute(key(2), || async { Ok(embedding(0.0)) })
                .await
                .unwrap()
                .1,
            Lookup::Miss
        );

        let one = embedding(0.0).bytes();
        let small = EmbeddingCache::new(100, 2 * one);
        for n in 0..5 {
            small
                .get_or_compute(key(n), || async { Ok(embedding(0.0)) })
                .await
                .unwrap();
        }
        assert_eq!(small.usage(), (2, 2 * one));
        let none = EmbeddingCache::new(0, 1 << 20);
        none.get_or_compute(key(1), || async { Ok(embedding(0.0)) })
            .await
            .unwrap();
        assert_eq!(none.usage(), (0, 0));
    }

    #[tokio::test]
    async fn failures_are_not_cached() {
        let cache = EmbeddingCache::new(4, 1 << 20);
        let err = cache
            .get_or_compute(key(1), || async { Err(Error::EmptyImage) })
            .await
            .unwrap_err();
        assert!(matches!(err, Error::EmptyImage));
        let (_, lookup) = cache
            .get_or_compute(key(1), || async { Ok(embedding(1.0)) })
            .await
            .unwrap();
        assert_eq!(lookup, Lookup::Miss);
    }
}
