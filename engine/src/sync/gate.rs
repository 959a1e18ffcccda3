//! Who gets the cores: a click or seek before the next frame of playback, playback before
//! prefetch, and all of the viewers' work before background work (indexing, building display
//! proxies).
//!
//! Invariants:
//! - at most `slots` pieces of viewer work decode or encode at once (one per core); a waiting
//!   piece of higher priority is always let in before one of lower priority;
//! - background work never waits longer than `max_wait` for its turn, so an index job keeps
//!   progressing while viewers are active (and catches up when they stop);
//! - a permit frees its slot when dropped, panics included.

use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::lock;

/// What a piece of viewer work is for, most urgent first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    /// A click, a seek, a paused frame: the viewer is waiting for exactly this frame.
    Seek = 0,
    /// The next frame of playback.
    Play = 1,
    /// Frames ahead of the playhead.
    Prefetch = 2,
}

const PRIORITIES: usize = 3;

/// Background work waits this long after the last viewer work ended before it runs at full
/// speed: playback asks every 33 ms, so a shorter quiet spell is only a gap between frames.
const QUIET: Duration = Duration::from_millis(150);

/// Viewer work waiting or running beyond this many per slot counts as load: playback frames
/// are then sent smaller.
const LOADED_PER_SLOT: usize = 2;

#[derive(Default)]
struct State {
    running: usize,
    waiting: [usize; PRIORITIES],
    last_viewer_work: Option<Instant>,
}

pub struct Gate {
    slots: usize,
    state: Mutex<State>,
    changed: Condvar,
}

/// A slot of the gate, held while decoding or encoding.
pub struct Permit<'a> {
    gate: &'a Gate,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut state = lock(&self.gate.state);
        state.running -= 1;
        state.last_viewer_work = Some(Instant::now());
        drop(state);
        self.gate.changed.notify_all();
    }
}

impl Gate {
    pub fn new(slots: usize) -> Self {
        Self {
            slots: slots.max(1),
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        }
    }

    /// Waits for a slot: free, and no more urgent work waiting for one.
    pub fn enter(&self, priority: Priority) -> Permit<'_> {
        let p = priority as usize;
        let mut state = lock(&self.state);
        state.waiting[p] += 1;
        while state.running >= self.slots || state.waiting[..p].iter().any(|&w| w > 0) {
            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        state.waiting[p] -= 1;
        state.running += 1;
        state.last_viewer_work = Some(Instant::now());
        Permit { gate: self }
    }

    /// Whether viewers ask for more than the cores can do now.
    pub fn loaded(&self) -> bool {
        let state = lock(&self.state);
        state.running + state.waiting.iter().sum::<usize>() > self.slots * LOADED_PER_SLOT
    }

    /// Whether viewers are active: work running or waiting, or some ended a moment ago.
    pub fn viewers_active(&self) -> bool {
        let state = lock(&self.state);
        Self::active(&state)
    }

    fn active(state: &State) -> bool {
        state.running > 0
            || state.waiting.iter().any(|&w| w > 0)
            || state.last_viewer_work.is_some_and(|t| t.elapsed() < QUIET)
    }

    /// Background work's turn: returns at once when no viewer is active, else when they have
    /// been quiet for a moment, and after `max_wait` at the latest. Returns how long it waited.
    pub fn background_turn(&self, max_wait: Duration) -> Duration {
        let started = Instant::now();
        let mut state = lock(&self.state);
        while Self::active(&state) {
            let waited = started.elapsed();
            if waited >= max_wait {
                break;
            }
            let (next, _) = self
                .changed
                .wait_timeout(state, (max_wait - waited).min(QUIET))
                .unwrap_or_else(|e| e.into_inner());
            state = next;
        }
        started.elapsed()
    }
}

/// The process's gate: one slot per core.
pub fn gate() -> &'static Gate {
    static GATE: OnceLock<Gate> = OnceLock::new();
    GATE.get_or_init(|| {
        Gate::new(
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
        )
    })
}

/// How long background work (an index batch, a proxy frame) waits at most while viewers are
/// active: it then gets about a batch's time in every second.
pub const BACKGROUND_MAX_WAIT: Duration = Duration::from_millis(1000);

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn never_more_running_than_slots() {
        let gate = Arc::new(Gate::new(2));
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let (gate, running, most) = (gate.clone(), running.clone(), most.clone());
                std::thread::spawn(move || {
                    let priority = [Priority::Seek, Priority::Play, Priority::Prefetch][i % 3];
                    let _permit = gate.enter(priority);
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    running.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_seek_goes_before_waiting_prefetch() {
        let gate = Arc::new(Gate::new(1));
        let order = Arc::new(Mutex::new(Vec::new()));
        let held = gate.enter(Priority::Play);
        let mut threads = Vec::new();
        for (name, priority) in [("prefetch", Priority::Prefetch), ("seek", Priority::Seek)] {
            let (gate, order) = (gate.clone(), order.clone());
            threads.push(std::thread::spawn(move || {
                let _permit = gate.enter(priority);
                lock(&order).push(name);
            }));
            // The prefetch is queued first.
            std::thread::sleep(Duration::from_millis(30));
        }
        drop(held);
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*lock(&order), ["seek", "prefetch"]);
    }

    #[test]
    fn background_work_waits_for_viewers_but_not_forever() {
        let gate = Gate::new(1);
        assert!(gate.background_turn(Duration::from_secs(5)) < Duration::from_millis(5));
        let permit = gate.enter(Priority::Play);
        let waited = gate.background_turn(Duration::from_millis(200));
        assert!(waited >= Duration::from_millis(200), "{waited:?}");
        drop(permit);
        // Just after viewer work ended: waits for the quiet spell, no longer.
        let waited = gate.background_turn(Duration::from_secs(5));
        assert!(waited >= Duration::from_millis(100) && waited < Duration::from_secs(2));
        assert!(!gate.viewers_active());
    }
}
