//! The records an embedding file keeps after its body: every frame's scene-cut measures, and
//! which frames reused the vector before theirs (`skip_similar`).

use serde::{Deserialize, Serialize};

/// The scene-cut measures of frames `0..change.len()` (every frame, sampled or not), in the
/// order decoded: `change[n]` compares frame n with frame n - 1, `persist[n]` with the few
/// frames before that (the smallest difference); NaN where a frame did not decode.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SceneRecord {
    pub change: Vec<f32>,
    pub persist: Vec<f32>,
}

impl SceneRecord {
    /// Frames measured so far (from frame 0).
    pub fn measured(&self) -> u64 {
        self.change.len() as u64
    }

    /// Sets frame `n`'s measures: the next frame, or one measured again after a resume (the
    /// detector re-reads a few frames before the first new one to know what came before).
    pub fn set(&mut self, n: u64, change: f32, persist: f32) {
        let n = n as usize;
        if n < self.change.len() {
            self.change[n] = change;
            self.persist[n] = persist;
        } else if n == self.change.len() {
            self.change.push(change);
            self.persist.push(persist);
        }
    }
}

/// What skipping similar frames did: which frames got a copy of the previous frame's vector
/// instead of their own.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SkipRecord {
    /// The threshold: mean absolute difference of the model's input image, in thousandths of
    /// a grey level (0-255 scale).
    pub threshold_milli_levels: u32,
    /// Frames (ascending) whose vector was copied from the frame before, not embedded.
    pub reused: Vec<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scene_measures_are_set_in_order_or_measured_again() {
        let mut scene = SceneRecord::default();
        scene.set(0, 0.0, 0.0);
        scene.set(1, 5.0, 5.0);
        scene.set(3, 9.0, 9.0); // not the next frame: ignored
        scene.set(1, 6.0, 6.0); // measured again after a resume
        assert_eq!(scene.change, [0.0, 6.0]);
        assert_eq!(scene.measured(), 2);
    }
}
