//! Encoded frames shared by every viewer of every video, bounded in bytes and entries, with
//! single flight: concurrent requests for one frame wait for one decode.
//!
//! Invariants:
//! - a key names one picture for good: the video's content fingerprint, the frame, the width
//!   and the JPEG quality (a changed file has another fingerprint, so never a stale hit);
//! - for each key at most one maker runs; the others wait and take its result. A maker that
//!   fails (or gives up: the viewer moved on) leaves no entry, and a waiter then makes the
//!   frame itself, so one viewer's cancelled request never fails another's;
//! - the least recently used entries are evicted first; the bound holds after every insert.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, OnceLock};

use crate::sync::lock;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FrameKey {
    /// A hash of the video's content fingerprint.
    pub video: u64,
    pub frame: u64,
    pub width: u32,
    pub quality: u8,
}

/// Where a maker leaves its frame for the requests waiting on it (also when the cache does
/// not keep it: too big, or a cache of no entries).
type Handoff = Arc<OnceLock<Arc<Vec<u8>>>>;

enum Entry {
    /// A maker is at work on it.
    Making(Handoff),
    Ready {
        jpeg: Arc<Vec<u8>>,
        used: u64,
    },
}

#[derive(Default)]
struct Inner {
    entries: HashMap<FrameKey, Entry>,
    bytes: usize,
    ready: usize,
    clock: u64,
    made: u64,
    hits: u64,
}

pub struct FrameCache {
    max_bytes: usize,
    max_entries: usize,
    inner: Mutex<Inner>,
    done: Condvar,
}

/// Figures for the bench and the tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheCounts {
    /// Frames made (decoded and encoded) for the cache.
    pub made: u64,
    /// Requests answered from the cache, waiters on a maker included.
    pub hits: u64,
    pub entries: usize,
    pub bytes: usize,
}

/// Removes the `Making` mark if the maker returns early or panics.
struct MakingMark<'a> {
    cache: &'a FrameCache,
    key: FrameKey,
    armed: bool,
}

impl Drop for MakingMark<'_> {
    fn drop(&mut self) {
        if self.armed {
            let mut inner = lock(&self.cache.inner);
            if matches!(inner.entries.get(&self.key), Some(Entry::Making(_))) {
                inner.entries.remove(&self.key);
            }
            drop(inner);
            self.cache.done.notify_all();
        }
    }
}

impl FrameCache {
    /// A cache of at most `max_bytes` of JPEG in at most `max_entries` frames (0: none kept;
    /// concurrent requests still share one decode).
    pub fn new(max_bytes: usize, max_entries: usize) -> Self {
        Self {
            max_bytes,
            max_entries,
            inner: Mutex::new(Inner::default()),
            done: Condvar::new(),
        }
    }

    pub fn counts(&self) -> CacheCounts {
        let inner = lock(&self.inner);
        CacheCounts {
            made: inner.made,
            hits: inner.hits,
            entries: inner.ready,
            bytes: inner.bytes,
        }
    }

    /// The frame under `key`, if it is cached (no waiting, no making).
    pub fn get(&self, key: &FrameKey) -> Option<Arc<Vec<u8>>> {
        let mut inner = lock(&self.inner);
        inner.clock += 1;
        let clock = inner.clock;
        match inner.entries.get_mut(key) {
            Some(Entry::Ready { jpeg, used }) => {
                *used = clock;
                let jpeg = Arc::clone(jpeg);
                inner.hits += 1;
                Some(jpeg)
            }
            _ => None,
        }
    }

    /// The frame under `key`: cached, made by a request already at work on it, or made now
    /// by `make`.
    pub fn get_or_make<E>(
        &self,
        key: FrameKey,
        make: impl FnOnce() -> Result<Vec<u8>, E>,
    ) -> Result<Arc<Vec<u8>>, E> {
        let mut inner = lock(&self.inner);
        loop {
            inner.clock += 1;
            let clock = inner.clock;
            match inner.entries.get_mut(&key) {
                Some(Entry::Ready { jpeg, used }) => {
                    *used = clock;
                    let jpeg = Arc::clone(jpeg);
                    inner.hits += 1;
                    return Ok(jpeg);
                }
                Some(Entry::Making(handoff)) => {
                    let handoff = Arc::clone(handoff);
                    // Until its maker hands the frame over, or gives up (the entry goes).
                    loop {
                        inner = self.done.wait(inner).unwrap_or_else(|e| e.into_inner());
                        if let Some(jpeg) = handoff.get() {
                            inner.hits += 1;
                            return Ok(Arc::clone(jpeg));
                        }
                        let same = matches!(inner.entries.get(&key),
                            Some(Entry::Making(h)) if Arc::ptr_eq(h, &handoff));
                        if !same {
                            break;
                        }
                    }
                }
                None => break,
            }
        }
        let handoff = Handoff::default();
        inner
            .entries
            .insert(key, Entry::Making(Arc::clone(&handoff)));
        drop(inner);
        let mut mark = MakingMark {
            cache: self,
            key,
            armed: true,
        };
        let jpeg = Arc::new(make()?);
        mark.armed = false;
        let _ = handoff.set(Arc::clone(&jpeg));
        let mut inner = lock(&self.inner);
        inner.made += 1;
        inner.entries.remove(&key);
        if self.max_entries > 0 && jpeg.len() <= self.max_bytes {
            inner.clock += 1;
            let used = inner.clock;
            inner.bytes += jpeg.len();
            inner.ready += 1;
            inner.entries.insert(
                key,
                Entry::Ready {
                    jpeg: Arc::clone(&jpeg),
                    used,
                },
            );
            self.evict(&mut inner);
        }
        drop(inner);
        self.done.notify_all();
        Ok(jpeg)
    }

    /// Keeps `jpeg` under `key` unless the key is cached or being made (a frame encoded on
    /// the way to another; never waits, so a maker may call it).
    pub fn put(&self, key: FrameKey, jpeg: Vec<u8>) {
        let mut inner = lock(&self.inner);
        if inner.entries.contains_key(&key) || self.max_entries == 0 || jpeg.len() > self.max_bytes
        {
            return;
        }
        inner.clock += 1;
        let used = inner.clock;
        inner.made += 1;
        inner.bytes += jpeg.len();
        inner.ready += 1;
        inner.entries.insert(
            key,
            Entry::Ready {
                jpeg: Arc::new(jpeg),
                used,
            },
        );
        self.evict(&mut inner);
    }

    fn evict(&self, inner: &mut Inner) {
        while inner.bytes > self.max_bytes || inner.ready > self.max_entries {
            let oldest = inner
                .entries
                .iter()
                .filter_map(|(k, e)| match e {
                    Entry::Ready { used, .. } => Some((*used, *k)),
                    Entry::Making(_) => None,
                })
                .min();
            let Some((_, key)) = oldest else { break };
            if let Some(Entry::Ready { jpeg, .. }) = inner.entries.remove(&key) {
                inner.bytes -= jpeg.len();
                inner.ready -= 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    fn key(frame: u64) -> FrameKey {
        FrameKey {
            video: 1,
            frame,
            width: 640,
            quality: 80,
        }
    }

    /// `requests` threads ask for `frame` at once; making it takes `make_ms` and gives `bytes`
    /// bytes of the frame's number. Checks every thread got those bytes; returns the makes.
    fn at_once(
        cache: &Arc<FrameCache>,
        requests: usize,
        frame: u64,
        make_ms: u64,
        bytes: usize,
    ) -> u64 {
        let makes = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..requests)
            .map(|_| {
                let (cache, makes) = (cache.clone(), makes.clone());
                std::thread::spawn(move || {
                    cache
                        .get_or_make(key(frame), || {
                            makes.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(make_ms));
                            Ok::<_, ()>(vec![frame as u8; bytes])
                        })
                        .unwrap()
                })
            })
            .collect();
        for t in threads {
            assert_eq!(*t.join().unwrap(), vec![frame as u8; bytes]);
        }
        makes.load(Ordering::SeqCst)
    }

    #[test]
    fn many_requests_for_one_frame_make_it_once() {
        let cache = Arc::new(FrameCache::new(1 << 20, 100));
        assert_eq!(at_once(&cache, 16, 7, 50, 1000), 1);
        assert_eq!(cache.counts().made, 1);
        assert_eq!(cache.counts().hits, 15);
    }

    #[test]
    fn a_cache_that_keeps_nothing_still_makes_a_frame_once_for_requests_at_the_same_time() {
        let cache = Arc::new(FrameCache::new(1 << 20, 0));
        assert_eq!(at_once(&cache, 8, 3, 100, 10), 1);
        assert_eq!(cache.counts().entries, 0);
        // Afterwards nothing is kept: the next request makes it again.
        cache
            .get_or_make(key(3), || Ok::<_, ()>(vec![3; 10]))
            .unwrap();
        assert_eq!(cache.counts().made, 2);
    }

    #[test]
    fn a_failed_maker_leaves_the_frame_to_the_next_request() {
        let cache = FrameCache::new(1 << 20, 100);
        assert_eq!(
            cache.get_or_make(key(1), || Err("moved on")),
            Err("moved on")
        );
        let jpeg = cache.get_or_make(key(1), || Ok::<_, ()>(vec![1])).unwrap();
        assert_eq!(*jpeg, vec![1]);
    }

    #[test]
    fn the_bound_in_bytes_and_entries_holds_and_the_least_recently_used_goes() {
        let cache = FrameCache::new(3000, 100);
        for frame in 0..3 {
            cache
                .get_or_make(key(frame), || Ok::<_, ()>(vec![0; 1000]))
                .unwrap();
        }
        assert!(cache.get(&key(0)).is_some()); // 0 is now more recent than 1
        cache
            .get_or_make(key(3), || Ok::<_, ()>(vec![0; 1000]))
            .unwrap();
        let counts = cache.counts();
        assert_eq!((counts.entries, counts.bytes), (3, 3000));
        assert!(cache.get(&key(1)).is_none());
        assert!(cache.get(&key(0)).is_some());
        let few = FrameCache::new(1 << 20, 2);
        for frame in 0..5 {
            few.get_or_make(key(frame), || Ok::<_, ()>(vec![0; 10]))
                .unwrap();
        }
        assert_eq!(few.counts().entries, 2);
        let none = FrameCache::new(1 << 20, 0);
        none.get_or_make(key(0), || Ok::<_, ()>(vec![0; 10]))
            .unwrap();
        assert_eq!(none.counts().entries, 0);
    }
}
