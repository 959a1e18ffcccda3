//! One model's L-BFGS state, stepped from outside: the probe evaluates every running model's
//! trial point in one pass over the rows, then lets each model take or shorten its step.
//!
//! Invariants: `x`, `f` and `g` are always an evaluated point; a step is taken only when it
//! lowers the objective by Armijo's rule; a pair (s, y) joins the history only with positive
//! curvature, so the two-loop recursion stays a descent direction (else it is dropped).

use std::collections::VecDeque;

/// L-BFGS's memory.
const HISTORY: usize = 10;
/// Armijo's sufficient decrease.
const ARMIJO: f64 = 1e-4;

/// One model's L-BFGS state.
pub(super) struct State {
    pub(super) x: Vec<f64>,
    pub(super) f: f64,
    pub(super) g: Vec<f64>,
    pub(super) s: VecDeque<Vec<f64>>,
    pub(super) y: VecDeque<Vec<f64>>,
    pub(super) direction: Vec<f64>,
    pub(super) slope: f64,
    pub(super) step: f64,
    pub(super) trial: Vec<f64>,
    pub(super) trial_f: f64,
    pub(super) trial_g: Vec<f64>,
    pub(super) iterations: usize,
    pub(super) done: bool,
    pub(super) converged: bool,
    /// Steps in a row that barely lowered the objective.
    pub(super) flat: usize,
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

impl State {
    pub(super) fn new(x: Vec<f64>) -> Self {
        Self {
            x,
            f: f64::INFINITY,
            g: Vec::new(),
            s: VecDeque::new(),
            y: VecDeque::new(),
            direction: Vec::new(),
            slope: 0.0,
            step: 1.0,
            trial: Vec::new(),
            trial_f: 0.0,
            trial_g: Vec::new(),
            iterations: 0,
            done: false,
            converged: false,
            flat: 0,
        }
    }

    /// Keeps counting iterations from `done` (a fit that goes on in float64).
    pub(super) fn counting(mut self, done: usize) -> Self {
        self.iterations = done;
        self
    }

    pub(super) fn check(&mut self, tolerance: f64) {
        if self.g.iter().all(|g| g.abs() <= tolerance) {
            self.done = true;
            self.converged = true;
        }
    }

    /// The L-BFGS direction (two-loop recursion) and the first trial point.
    pub(super) fn begin_step(&mut self, max_iterations: usize) {
        if self.iterations >= max_iterations {
            self.done = true;
            return;
        }
        let mut q: Vec<f64> = self.g.iter().map(|g| -g).collect();
        let k = self.s.len();
        let mut alpha = vec![0.0; k];
        for i in (0..k).rev() {
            let rho = 1.0 / dot(&self.y[i], &self.s[i]);
            alpha[i] = rho * dot(&self.s[i], &q);
            for (q, y) in q.iter_mut().zip(&self.y[i]) {
                *q -= alpha[i] * y;
            }
        }
        let gamma = match (self.s.back(), self.y.back()) {
            (Some(s), Some(y)) => dot(s, y) / dot(y, y),
            _ => 1.0,
        };
        q.iter_mut().for_each(|q| *q *= gamma);
        for i in 0..k {
            let rho = 1.0 / dot(&self.y[i], &self.s[i]);
            let beta = rho * dot(&self.y[i], &q);
            for (q, s) in q.iter_mut().zip(&self.s[i]) {
                *q += (alpha[i] - beta) * s;
            }
        }
        let mut slope = dot(&self.g, &q);
        if !(slope < 0.0) {
            // Not a descent direction (rounding): forget the history, go downhill.
            self.s.clear();
            self.y.clear();
            q = self.g.iter().map(|g| -g).collect();
            slope = -dot(&self.g, &self.g);
        }
        self.step = if self.s.is_empty() {
            // No curvature known yet: a first step of length at most 1.
            (1.0 / slope.abs().sqrt()).min(1.0)
        } else {
            1.0
        };
        self.direction = q;
        self.slope = slope;
        self.set_trial();
    }

    fn set_trial(&mut self) {
        self.trial = self
            .x
            .iter()
            .zip(&self.direction)
            .map(|(x, d)| x + self.step * d)
            .collect();
    }

    /// Takes the trial point if it lowers the objective enough; else shortens the step.
    /// Whether this model's line search is over.
    pub(super) fn try_accept(
        &mut self,
        last_trial: bool,
        tolerance: f64,
        noise_floor: f64,
    ) -> bool {
        let enough =
            self.trial_f.is_finite() && self.trial_f <= self.f + ARMIJO * self.step * self.slope;
        if !enough {
            // What the step could still gain is below what the objective's rounding lets us
            // see (float32 products): the model is at its optimum as far as it can be told.
            if -self.slope <= noise_floor * self.f.abs().max(1.0) {
                self.done = true;
                self.converged = true;
                return true;
            }
            if last_trial || self.step < 1e-20 {
                // No step lowers the objective within rounding: as far as it goes.
                self.done = true;
                self.converged = self.g.iter().all(|g| g.abs() <= tolerance * 100.0);
                return true;
            }
            // The minimum of the quadratic through f, the slope and the trial's value.
            let curvature = self.trial_f - self.f - self.slope * self.step;
            let next = if curvature > 0.0 && self.trial_f.is_finite() {
                -self.slope * self.step * self.step / (2.0 * curvature)
            } else {
                0.1 * self.step
            };
            self.step = next.clamp(0.1 * self.step, 0.5 * self.step);
            self.set_trial();
            return false;
        }
        let s: Vec<f64> = self.trial.iter().zip(&self.x).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = self
            .trial_g
            .iter()
            .zip(&self.g)
            .map(|(a, b)| a - b)
            .collect();
        let decrease = self.f - self.trial_f;
        if dot(&s, &y) > 1e-12 * dot(&s, &s).sqrt() * dot(&y, &y).sqrt() {
            if self.s.len() == HISTORY {
                self.s.pop_front();
                self.y.pop_front();
            }
            self.s.push_back(s);
            self.y.push_back(y);
        }
        self.x = std::mem::take(&mut self.trial);
        self.f = self.trial_f;
        self.g = std::mem::take(&mut self.trial_g);
        self.iterations += 1;
        self.check(tolerance);
        if decrease <= 1e-15 * self.f.abs().max(1e-300) {
            self.flat += 1;
            if self.flat >= 3 {
                self.done = true;
                self.converged = self.g.iter().all(|g| g.abs() <= tolerance * 100.0);
            }
        } else {
            self.flat = 0;
        }
        true
    }
}
