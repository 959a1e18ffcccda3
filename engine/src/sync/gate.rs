//! Who gets the cores: a click or seek before the next frame of playback, playback before
//! prefetch, and all of the viewers' work before background work (indexing, building display
//! proxies); within a priority, cheap work (a few pictures) before a costly seek, and a client
//! with less work running before one with more.
//!
//! Invariants:
//! - at most `slots` pieces of viewer work decode or encode at once (one per core); a waiting
//!   piece of higher priority is always let in before one of lower priority;
//! - a costly piece waits behind cheap ones of its priority for [`COSTLY_MAX_WAIT`] at most,
//!   then in arrival order: it is never starved;
//! - a named client with work running waits behind clients without (a fair share: one client
//!   looping over requests cannot take the cores from the others); only beyond
//!   [`MAX_WAITING_PER_SLOT`] pieces waiting per slot is the server saturated
//!   ([`Gate::saturated`]: answered 429, come back later) — a page's burst of thumbnails is
//!   ordered, not refused;
//! - background work never waits longer than `max_wait` for its turn, so an index job keeps
//!   progressing while viewers are active (and catches up when they stop);
//! - a [`Reservation`] keeps one slot from viewer work while it is held (the display proxy
//!   being made where a viewer looks: a core of its own, so it is never starved), but viewer
//!   work always keeps at least one slot;
//! - a permit frees its slot when dropped, panics included.

use std::collections::HashMap;
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

/// What a piece of viewer work is expected to cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Cost {
    /// A few pictures at most: the display proxy, or a decoder that decodes on to the frame.
    Cheap,
    /// A seek in the video: up to a whole GOP of full-size pictures.
    Costly,
}

/// A costly piece waits at most this long behind cheap ones of its priority.
pub const COSTLY_MAX_WAIT: Duration = Duration::from_millis(250);

/// Pieces waiting per slot beyond which the server is saturated.
pub const MAX_WAITING_PER_SLOT: usize = 64;

/// Who waits for a slot.
struct Ticket {
    id: u64,
    priority: Priority,
    cost: Cost,
    /// 0: anonymous (each request a client of its own).
    client: u64,
    since: Instant,
}

/// Background work waits this long after the last viewer work ended before it runs at full
/// speed: playback asks every 33 ms, so a shorter quiet spell is only a gap between frames.
const QUIET: Duration = Duration::from_millis(150);

/// Viewer work waiting or running beyond this many per slot counts as load: playback frames
/// are then sent smaller.
const LOADED_PER_SLOT: usize = 2;

#[derive(Default)]
struct State {
    running: usize,
    reserved: usize,
    waiting: Vec<Ticket>,
    next_ticket: u64,
    /// Pieces running per named client.
    running_by_client: HashMap<u64, usize>,
    last_viewer_work: Option<Instant>,
}

impl State {
    /// The ticket to let in next: by priority; a young costly piece after cheap ones; a client
    /// with less running first; then in arrival order.
    fn first(&self, now: Instant) -> Option<u64> {
        self.waiting
            .iter()
            .min_by_key(|t| {
                let young_and_costly =
                    t.cost == Cost::Costly && now.duration_since(t.since) < COSTLY_MAX_WAIT;
                let running = match t.client {
                    0 => 0,
                    c => self.running_by_client.get(&c).copied().unwrap_or(0),
                };
                (t.priority, young_and_costly, running, t.id)
            })
            .map(|t| t.id)
    }
}

pub struct Gate {
    slots: usize,
    state: Mutex<State>,
    changed: Condvar,
}

/// A slot of the gate, held while decoding or encoding.
pub struct Permit<'a> {
    gate: &'a Gate,
    client: u64,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut state = lock(&self.gate.state);
        state.running -= 1;
        if self.client != 0 {
            if let Some(n) = state.running_by_client.get_mut(&self.client) {
                *n -= 1;
                if *n == 0 {
                    state.running_by_client.remove(&self.client);
                }
            }
        }
        state.last_viewer_work = Some(Instant::now());
        drop(state);
        self.gate.changed.notify_all();
    }
}

/// A slot kept from viewer work while held (see [`Gate::reserve`]).
pub struct Reservation<'a> {
    gate: &'a Gate,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        lock(&self.gate.state).reserved -= 1;
        self.gate.changed.notify_all();
    }
}

impl Gate {
    /// Keeps one slot from viewer work until the reservation is dropped (viewers keep one at
    /// least); work running now finishes.
    pub fn reserve(&self) -> Reservation<'_> {
        lock(&self.state).reserved += 1;
        Reservation { gate: self }
    }

    fn viewer_slots(&self, state: &State) -> usize {
        self.slots.saturating_sub(state.reserved).max(1)
    }

    pub fn new(slots: usize) -> Self {
        Self {
            slots: slots.max(1),
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        }
    }

    /// Waits for a slot: free, and no more urgent work waiting for one.
    pub fn enter(&self, priority: Priority) -> Permit<'_> {
        self.enter_as(priority, Cost::Cheap, 0)
    }

    /// Waits for a slot for work of `priority` expected to cost `cost`, for `client` (0:
    /// anonymous): see the order at the top of the module.
    pub fn enter_as(&self, priority: Priority, cost: Cost, client: u64) -> Permit<'_> {
        let mut state = lock(&self.state);
        state.next_ticket += 1;
        let id = state.next_ticket;
        state.waiting.push(Ticket {
            id,
            priority,
            cost,
            client,
            since: Instant::now(),
        });
        loop {
            if state.running < self.viewer_slots(&state) && state.first(Instant::now()) == Some(id)
            {
                break;
            }
            // Woken when a slot frees; at least this often, as costly pieces come of age.
            state = self
                .changed
                .wait_timeout(state, COSTLY_MAX_WAIT / 2)
                .map(|(s, _)| s)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        state.waiting.retain(|t| t.id != id);
        state.running += 1;
        if client != 0 {
            *state.running_by_client.entry(client).or_default() += 1;
        }
        state.last_viewer_work = Some(Instant::now());
        drop(state);
        // Another slot may be free for the next in line.
        self.changed.notify_all();
        Permit { gate: self, client }
    }

    /// Whether new work should be refused for now: more waits already than the cores can do
    /// soon.
    pub fn saturated(&self) -> bool {
        lock(&self.state).waiting.len() >= self.slots * MAX_WAITING_PER_SLOT
    }

    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Whether viewers ask for more than the cores can do now.
    pub fn loaded(&self) -> bool {
        let state = lock(&self.state);
        state.running + state.waiting.len() > self.slots * LOADED_PER_SLOT
    }

    /// Whether viewers are active: work running or waiting, or some ended a moment ago.
    pub fn viewers_active(&self) -> bool {
        let state = lock(&self.state);
        Self::active(&state)
    }

    fn active(state: &State) -> bool {
        state.running > 0
            || !state.waiting.is_empty()
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

    /// Lets `pieces` (name, priority, cost, client) queue one after another behind a held
    /// slot, frees it, and returns the order they ran in.
    fn order_of(pieces: &[(&'static str, Priority, Cost, u64)], hold: u64) -> Vec<&'static str> {
        let gate = Arc::new(Gate::new(1));
        let order = Arc::new(Mutex::new(Vec::new()));
        let held = gate.enter_as(Priority::Seek, Cost::Cheap, hold);
        let mut threads = Vec::new();
        for &(name, priority, cost, client) in pieces {
            let (gate, order) = (gate.clone(), order.clone());
            threads.push(std::thread::spawn(move || {
                let _permit = gate.enter_as(priority, cost, client);
                lock(&order).push(name);
                std::thread::sleep(Duration::from_millis(5));
            }));
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(held);
        for t in threads {
            t.join().unwrap();
        }
        let order = lock(&order).clone();
        order
    }

    #[test]
    fn cheap_work_goes_before_a_young_costly_seek_and_a_busy_client_after_an_idle_one() {
        let order = order_of(
            &[
                ("costly", Priority::Seek, Cost::Costly, 0),
                ("cheap", Priority::Seek, Cost::Cheap, 0),
                ("prefetch", Priority::Prefetch, Cost::Cheap, 0),
            ],
            7,
        );
        assert_eq!(order, ["cheap", "costly", "prefetch"]);
        // Client 7 holds the slot; its next piece waits behind client 8's, though it came
        // first. (Both cheap, both seeks.)
        let gate = Arc::new(Gate::new(2));
        let held = gate.enter_as(Priority::Seek, Cost::Cheap, 7);
        let blocker = gate.enter_as(Priority::Seek, Cost::Cheap, 9);
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut threads = Vec::new();
        for (name, client) in [("greedy", 7), ("other", 8)] {
            let (gate, order) = (gate.clone(), order.clone());
            threads.push(std::thread::spawn(move || {
                let _permit = gate.enter_as(Priority::Seek, Cost::Cheap, client);
                lock(&order).push(name);
            }));
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(blocker);
        std::thread::sleep(Duration::from_millis(50));
        drop(held);
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*lock(&order), ["other", "greedy"]);
    }

    #[test]
    fn a_costly_seek_is_not_starved_by_a_stream_of_cheap_work() {
        let gate = Arc::new(Gate::new(1));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        // Four clients asking cheap work back to back, for as long as the costly one waits.
        let cheap: Vec<_> = (0..4)
            .map(|_| {
                let (gate, stop) = (gate.clone(), stop.clone());
                std::thread::spawn(move || {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let _permit = gate.enter_as(Priority::Seek, Cost::Cheap, 0);
                        std::thread::sleep(Duration::from_millis(2));
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(30));
        let started = Instant::now();
        drop(gate.enter_as(Priority::Seek, Cost::Costly, 0));
        let waited = started.elapsed();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in cheap {
            t.join().unwrap();
        }
        assert!(waited >= Duration::from_millis(100), "{waited:?}");
        assert!(waited < COSTLY_MAX_WAIT * 4, "{waited:?}");
    }

    #[test]
    fn too_much_waiting_work_is_saturation() {
        let gate = Arc::new(Gate::new(1));
        let held = gate.enter(Priority::Seek);
        assert!(!gate.saturated());
        let waiting: Vec<_> = (0..MAX_WAITING_PER_SLOT as u64)
            .map(|c| {
                let gate = gate.clone();
                std::thread::spawn(move || drop(gate.enter_as(Priority::Prefetch, Cost::Cheap, c)))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        assert!(gate.saturated());
        drop(held);
        for t in waiting {
            t.join().unwrap();
        }
        assert!(!gate.saturated());
    }

    #[test]
    fn a_reservation_keeps_a_slot_from_viewers_but_never_the_last() {
        let gate = Arc::new(Gate::new(2));
        let reserved = gate.reserve();
        let first = gate.enter(Priority::Seek);
        let waiting = {
            let gate = Arc::clone(&gate);
            std::thread::spawn(move || {
                let started = Instant::now();
                drop(gate.enter(Priority::Seek));
                started.elapsed()
            })
        };
        std::thread::sleep(Duration::from_millis(100));
        drop(first);
        assert!(waiting.join().unwrap() >= Duration::from_millis(90));
        // With one slot, and with every slot reserved, viewers still get one.
        let one = Gate::new(1);
        let _all = (one.reserve(), one.reserve());
        drop(one.enter(Priority::Play));
        drop(reserved);
        let (a, b) = (gate.enter(Priority::Seek), gate.enter(Priority::Seek));
        drop((a, b));
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
