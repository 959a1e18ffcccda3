use super::*;

/// A seeded sequence for the synthetic rows.
struct Rng(u64);

impl Rng {
    fn normal(&mut self) -> f32 {
        let mut uniform = || {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            ((self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        let (u, v) = (uniform(), uniform());
        ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
    }

    fn direction(&mut self, dim: usize) -> Vec<f32> {
        let v: Vec<f32> = (0..dim).map(|_| self.normal()).collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / n).collect()
    }
}

/// Scenes of 40 frames, each near its own direction (frames of a scene are near copies);
/// `positive(scene)` says which are labelled; `concept` is added to positive scenes.
fn scenes(
    scenes: usize,
    dim: usize,
    positive: impl Fn(usize) -> bool,
    concept: f32,
) -> (Vec<f32>, Vec<bool>, Vec<f32>) {
    let mut rng = Rng(0x5EED);
    let shared = rng.direction(dim);
    let idea = rng.direction(dim);
    let (mut rows, mut truth) = (Vec::new(), Vec::new());
    for s in 0..scenes {
        let scene = rng.direction(dim);
        for _ in 0..40 {
            let mut v: Vec<f32> = (0..dim)
                .map(|k| 0.7 * shared[k] + 0.6 * scene[k] + 0.03 * rng.normal())
                .collect();
            if positive(s) {
                v.iter_mut().zip(&idea).for_each(|(x, c)| *x += concept * c);
            }
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            rows.extend(v.into_iter().map(|x| x / n));
            truth.push(positive(s));
        }
    }
    // The text: mostly the shared direction, a little of the concept.
    let text: Vec<f32> = {
        let v: Vec<f32> = (0..dim).map(|k| 0.8 * shared[k] + 0.2 * idea[k]).collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / n).collect()
    };
    (rows, truth, text)
}

fn training(rows: Vec<f32>, truth: Vec<bool>, text: Vec<f32>, dim: usize) -> Training<'static> {
    let n = truth.len();
    Training {
        rows: TrainingRows {
            vectors: Cow::Owned(rows),
            dim,
            truth,
            video: vec![0; n],
            frame: (0..n as u64).collect(),
            stretch: vec![0; n],
            videos: vec![("v".into(), 30.0)],
        },
        text,
        logit_scale: 30.0,
        request: AdaptRequest::new("p"),
        hold_out: None,
        threads: 2,
    }
}

#[test]
fn a_frame_level_split_would_have_leaked() {
    // Which scenes are labelled says nothing a model could learn (no shared concept): only
    // memorising the scenes themselves scores them.
    let labelled = |s: usize| (s * 7 + 3) % 5 < 2;
    let (rows, truth, text) = scenes(30, 32, labelled, 0.0);
    let t = training(rows, truth.clone(), text, 32);
    let blocked = train(&t, &|_, _| {}).unwrap();
    // The same rows with every fifth frame a fold: neighbours (near copies) on both sides.
    let n = truth.len();
    let row_fold: Vec<u8> = (0..n).map(|i| (i % 5) as u8).collect();
    let video = vec![0u32; n];
    let blocks = folds::blocks(&truth, &video);
    let block_fold = blocks.iter().map(|b| row_fold[b.start]).collect();
    let frame_level = FoldPlan {
        folds: 5,
        blocks,
        block_fold,
        row_fold,
        notes: Vec::new(),
    };
    let leaked = train_planned(
        &t,
        &frame_level,
        &Splits::blocked(5),
        "frames".into(),
        &|_, _| {},
    )
    .unwrap();
    let (honest, leaky) = (
        blocked.report.adapted.ap.unwrap(),
        leaked.report.adapted.ap.unwrap(),
    );
    assert!(
        leaky > 0.95,
        "a frame-level split scores memorised scenes: {leaky}"
    );
    assert!(
        honest < leaky - 0.2,
        "blocked {honest} vs frame-level {leaky}"
    );
}

#[test]
fn a_shared_concept_is_learnt_and_measured_on_unseen_segments() {
    let labelled = |s: usize| s % 3 == 1;
    let (rows, truth, text) = scenes(24, 32, labelled, 0.6);
    let t = training(rows, truth, text, 32);
    let trained = train(&t, &|_, _| {}).unwrap();
    let r = &trained.report;
    assert_eq!(r.folds, 5);
    assert!(
        r.adapted.ap.unwrap() > r.zero_shot.ap.unwrap() + 0.1,
        "adapted {:?} vs zero-shot {:?}",
        r.adapted,
        r.zero_shot
    );
    let d = r.differences.ap.unwrap();
    assert!(
        d.low <= d.point && d.point <= d.high && d.low > 0.0,
        "{d:?}"
    );
    assert_eq!(r.by_alpha.len(), 11);
    assert_eq!(
        r.by_alpha[0].metrics.ap, r.zero_shot.ap,
        "α = 0 is zero-shot"
    );
    // Tip-Adapter on the same rows, the baseline, runs and is measured the same way.
    let mut tip = t;
    tip.request.method = Method::Tip;
    let tip = train(&tip, &|_, _| {}).unwrap();
    assert!(tip.report.tip_beta.is_some() && tip.report.lambda.is_none());
    assert!(tip.report.adapted.ap.unwrap() > tip.report.zero_shot.ap.unwrap());
}
