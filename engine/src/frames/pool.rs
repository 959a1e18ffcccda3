//! A video's decoders, shared by position rather than owned by viewers: a request takes the
//! decoder that stands at or just before its frame in the same run of pictures (decoding on is
//! then cheaper than any seek), else opens one while there is room, else takes the least
//! recently used (which seeks). Named viewers and anonymous clients draw from the same pool.
//!
//! Invariants:
//! - a decoder serves one request at a time: it leaves the pool while used and comes back when
//!   the lease is dropped (an error, a client gone or a panic included), as it stands;
//! - open decoders (in use or idle) never exceed the pool's bound; a request that finds every
//!   decoder in use waits for one to come back.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::sync::lock;

/// What the pool knows of an idle decoder when choosing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Standing {
    /// Decoding on from here reaches the frame asked for without a seek, passing this many
    /// frames (`None`: it would have to seek).
    pub reach: Option<u64>,
    /// When it was last used (larger: later).
    pub last_used: u64,
}

/// Which decoder a request gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    /// The idle decoder at this place in the list.
    Take(usize),
    /// A new one: there is room.
    Open,
    /// Every decoder is in use and there is no room: wait for one.
    Wait,
}

/// The choice for a request, given the idle decoders, how many are in use, and the bound: the
/// idle decoder closest before the frame within reach; else a new one while there is room;
/// else the least recently used idle one; else wait.
pub fn choose(idle: &[Standing], in_use: usize, bound: usize) -> Choice {
    let nearest = idle
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.reach.map(|r| (r, i)))
        .min();
    if let Some((_, i)) = nearest {
        return Choice::Take(i);
    }
    if idle.len() + in_use < bound.max(1) {
        return Choice::Open;
    }
    idle.iter()
        .enumerate()
        .min_by_key(|(_, s)| s.last_used)
        .map_or(Choice::Wait, |(i, _)| Choice::Take(i))
}

struct Idle<D> {
    decoder: D,
    last_used: u64,
    since: Instant,
}

struct State<D> {
    idle: Vec<Idle<D>>,
    in_use: usize,
    clock: u64,
}

/// Decoders of one kind for one video.
pub struct Pool<D> {
    bound: usize,
    state: Mutex<State<D>>,
    returned: Condvar,
}

/// A decoder taken from the pool; it goes back when dropped.
pub struct Lease<'a, D> {
    pool: &'a Pool<D>,
    decoder: Option<D>,
}

impl<D> std::ops::Deref for Lease<'_, D> {
    type Target = D;
    fn deref(&self) -> &D {
        self.decoder.as_ref().expect("held until dropped")
    }
}

impl<D> std::ops::DerefMut for Lease<'_, D> {
    fn deref_mut(&mut self) -> &mut D {
        self.decoder.as_mut().expect("held until dropped")
    }
}

impl<D> Drop for Lease<'_, D> {
    fn drop(&mut self) {
        let mut state = lock(&self.pool.state);
        state.in_use -= 1;
        if let Some(decoder) = self.decoder.take() {
            state.clock += 1;
            let last_used = state.clock;
            state.idle.push(Idle {
                decoder,
                last_used,
                since: Instant::now(),
            });
        }
        drop(state);
        self.pool.returned.notify_all();
    }
}

impl<D> Pool<D> {
    pub fn new(bound: usize) -> Self {
        Self {
            bound: bound.max(1),
            state: Mutex::new(State {
                idle: Vec::new(),
                in_use: 0,
                clock: 0,
            }),
            returned: Condvar::new(),
        }
    }

    /// A decoder for a request: `reach` says how far an idle decoder would decode on to the
    /// frame (`None`: it would seek), `open` makes a new one. Blocking while none is free.
    pub fn take<E>(
        &self,
        reach: impl Fn(&D) -> Option<u64>,
        open: impl FnOnce() -> Result<D, E>,
    ) -> Result<Lease<'_, D>, E> {
        let mut state = lock(&self.state);
        loop {
            let standings: Vec<Standing> = state
                .idle
                .iter()
                .map(|i| Standing {
                    reach: reach(&i.decoder),
                    last_used: i.last_used,
                })
                .collect();
            match choose(&standings, state.in_use, self.bound) {
                Choice::Take(i) => {
                    let idle = state.idle.swap_remove(i);
                    state.in_use += 1;
                    return Ok(Lease {
                        pool: self,
                        decoder: Some(idle.decoder),
                    });
                }
                Choice::Open => {
                    state.in_use += 1;
                    drop(state);
                    return match open() {
                        Ok(decoder) => Ok(Lease {
                            pool: self,
                            decoder: Some(decoder),
                        }),
                        Err(e) => {
                            // Nothing comes back: only the place is given up.
                            drop(Lease {
                                pool: self,
                                decoder: None,
                            });
                            Err(e)
                        }
                    };
                }
                Choice::Wait => {
                    state = self.returned.wait(state).unwrap_or_else(|e| e.into_inner());
                }
            }
        }
    }

    /// Whether an idle decoder passes `test`.
    pub fn any_idle(&self, test: impl Fn(&D) -> bool) -> bool {
        lock(&self.state).idle.iter().any(|i| test(&i.decoder))
    }

    /// Decoders open, in use or idle.
    pub fn open(&self) -> usize {
        let state = lock(&self.state);
        state.idle.len() + state.in_use
    }

    fn idle_state(&self) -> MutexGuard<'_, State<D>> {
        lock(&self.state)
    }

    /// Closes decoders idle for `idle_for` or longer; returns when the longest idle of the
    /// others came back.
    pub fn close_idle(&self, idle_for: Duration) -> Option<Instant> {
        let mut state = self.idle_state();
        let now = Instant::now();
        state
            .idle
            .retain(|i| now.duration_since(i.since) < idle_for);
        state.idle.iter().map(|i| i.since).min()
    }

    /// When the least recently used idle decoder came back (`None`: none is idle).
    pub fn oldest_idle(&self) -> Option<Instant> {
        self.idle_state().idle.iter().map(|i| i.since).min()
    }

    /// Closes the least recently used idle decoder; `false` when none is idle (those in use
    /// are never closed).
    pub fn close_oldest(&self) -> bool {
        let mut state = self.idle_state();
        let oldest = state
            .idle
            .iter()
            .enumerate()
            .min_by_key(|(_, i)| i.last_used)
            .map(|(i, _)| i);
        match oldest {
            Some(i) => {
                state.idle.swap_remove(i);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    fn at(reach: Option<u64>, last_used: u64) -> Standing {
        Standing { reach, last_used }
    }

    #[test]
    fn the_nearest_decoder_before_the_frame_in_its_run_is_taken() {
        let idle = [at(Some(40), 9), at(None, 1), at(Some(3), 2), at(Some(0), 5)];
        assert_eq!(choose(&idle, 0, 8), Choice::Take(3));
        assert_eq!(choose(&idle[..3], 0, 8), Choice::Take(2));
    }

    #[test]
    fn without_one_in_reach_a_new_one_opens_while_there_is_room_else_the_least_recently_used() {
        let idle = [at(None, 7), at(None, 3), at(None, 5)];
        assert_eq!(choose(&idle, 1, 8), Choice::Open);
        assert_eq!(choose(&idle, 1, 4), Choice::Take(1));
        assert_eq!(choose(&[], 4, 4), Choice::Wait);
        assert_eq!(choose(&[], 0, 0), Choice::Open);
    }

    #[test]
    fn never_two_requests_on_one_decoder_and_never_more_than_the_bound() {
        // Decoders are numbers; each records whether a request is on it.
        let pool = Arc::new(Pool::<(usize, Arc<AtomicUsize>)>::new(3));
        let opened = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..12)
            .map(|t| {
                let (pool, opened) = (Arc::clone(&pool), Arc::clone(&opened));
                std::thread::spawn(move || {
                    for round in 0..20 {
                        let lease = pool
                            .take(
                                |(n, _)| ((n + t + round) % 2 == 0).then_some(1),
                                || {
                                    Ok::<_, ()>((
                                        opened.fetch_add(1, Ordering::SeqCst),
                                        Arc::new(AtomicUsize::new(0)),
                                    ))
                                },
                            )
                            .unwrap();
                        assert_eq!(lease.1.fetch_add(1, Ordering::SeqCst), 0, "shared");
                        assert!(pool.open() <= 3);
                        std::thread::sleep(Duration::from_millis(1));
                        lease.1.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(opened.load(Ordering::SeqCst), 3);
        assert_eq!(pool.open(), 3);
        assert!(pool.oldest_idle().is_some());
        assert!(pool.close_oldest());
        assert_eq!(pool.open(), 2);
        assert!(pool.close_idle(Duration::ZERO).is_none());
        assert_eq!(pool.open(), 0);
        assert!(!pool.close_oldest(), "nothing idle, nothing closed");
        assert!(pool.oldest_idle().is_none());
    }

    #[test]
    fn a_failed_open_gives_its_place_back() {
        let pool = Pool::<u8>::new(1);
        assert!(pool.take(|_| None, || Err::<u8, _>("no")).is_err());
        assert_eq!(pool.open(), 0);
        let lease = pool.take(|_| None, || Ok::<_, ()>(7)).unwrap();
        assert_eq!(*lease, 7);
    }
}
