//! The run's chart cache: each distinct `(endpoint, chart_id)` is looked up with
//! ShowAutopilotChart once per run, and concurrent lookups of one chart share a single request.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use crate::cce::model::Chart;

/// Charts by `(endpoint, chart_id)`. A failed lookup is not remembered: the next caller tries
/// again (the lookup itself retries like any GET).
#[derive(Debug, Default)]
pub struct ChartCache {
    cells: Mutex<HashMap<ChartKey, Arc<ChartCell>>>,
}

/// `(endpoint, chart_id)`.
type ChartKey = (String, String);
/// Filled once, by the first lookup that succeeds.
type ChartCell = OnceCell<Arc<Chart>>;

impl ChartCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// The chart, from the cache or from `fetch`. While one caller's `fetch` runs, others asking
    /// for the same chart wait for its answer instead of sending their own.
    pub async fn get_or_fetch<E, F, Fut>(
        &self,
        endpoint: &str,
        chart_id: &str,
        fetch: F,
    ) -> Result<Arc<Chart>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Chart, E>>,
    {
        let cell = {
            let mut cells = self
                .cells
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            cells
                .entry((endpoint.to_owned(), chart_id.to_owned()))
                .or_default()
                .clone()
        };
        cell.get_or_try_init(|| async { fetch().await.map(Arc::new) })
            .await
            .cloned()
    }

    /// A chart already looked up, without fetching.
    pub fn cached(&self, endpoint: &str, chart_id: &str) -> Option<Arc<Chart>> {
        let cells = self
            .cells
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        cells
            .get(&(endpoint.to_owned(), chart_id.to_owned()))
            .and_then(|cell| cell.get().cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    fn chart(id: &str) -> Chart {
        Chart {
            id: id.into(),
            name: "web".into(),
            version: "1.0.0".into(),
            ..Chart::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_lookups_of_one_chart_share_one_fetch() {
        let cache = ChartCache::new();
        let fetches = AtomicUsize::new(0);
        let fetch = |id: &'static str| {
            let fetches = &fetches;
            move || async move {
                fetches.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok::<_, ()>(chart(id))
            }
        };
        let (a, b, c) = tokio::join!(
            cache.get_or_fetch("e1", "c1", fetch("c1")),
            cache.get_or_fetch("e1", "c1", fetch("c1")),
            cache.get_or_fetch("e1", "c1", fetch("c1")),
        );
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        assert!(a.is_ok() && b.is_ok() && c.is_ok());
        // Another endpoint or chart is its own lookup; a cached one is not fetched again.
        cache.get_or_fetch("e2", "c1", fetch("c1")).await.unwrap();
        cache.get_or_fetch("e1", "c2", fetch("c2")).await.unwrap();
        cache.get_or_fetch("e1", "c1", fetch("c1")).await.unwrap();
        assert_eq!(fetches.load(Ordering::SeqCst), 3);
        assert_eq!(cache.cached("e1", "c2").unwrap().id, "c2");
        assert!(cache.cached("e3", "c1").is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_lookup_is_tried_again_by_the_next_caller() {
        let cache = ChartCache::new();
        let failed: Result<Arc<Chart>, &str> =
            cache.get_or_fetch("e", "c", || async { Err("503") }).await;
        assert_eq!(failed.unwrap_err(), "503");
        let ok: Result<Arc<Chart>, &str> = cache
            .get_or_fetch("e", "c", || async { Ok(chart("c")) })
            .await;
        assert_eq!(ok.unwrap().name, "web");
    }
}
