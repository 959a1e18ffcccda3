use super::*;

/// The rows, labels and text of `scripts/make_adapt_goldens.py`, and its cases.
pub(crate) struct Goldens {
    pub dim: usize,
    pub rows: Vec<f32>,
    pub truth: Vec<bool>,
    pub text: Vec<f32>,
    pub value: serde_json::Value,
}

pub(crate) fn goldens() -> Goldens {
    let value: serde_json::Value =
        serde_json::from_str(include_str!("../../../tests/fixtures/adapt/goldens.json")).unwrap();
    let floats = |v: &serde_json::Value| -> Vec<f32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect()
    };
    Goldens {
        dim: value["dim"].as_u64().unwrap() as usize,
        rows: value["rows"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| floats(r))
            .collect(),
        truth: value["labels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_bool().unwrap())
            .collect(),
        text: floats(&value["text"]),
        value,
    }
}

fn relative(ours: &[f64], theirs: &[f64]) -> f64 {
    let difference: f64 = ours
        .iter()
        .zip(theirs)
        .map(|(a, b)| (a - b) * (a - b))
        .sum::<f64>()
        .sqrt();
    difference / theirs.iter().map(|b| b * b).sum::<f64>().sqrt()
}

#[test]
fn the_probe_equals_scikit_learn_and_scipy_to_1e_4() {
    let g = goldens();
    let fold = vec![0u8; g.truth.len()];
    let rows = Rows {
        vectors: &g.rows,
        dim: g.dim,
        truth: &g.truth,
        fold: &fold,
    };
    let cases = g.value["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 6);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let lambda = case["lambda"].as_f64().unwrap();
        let scale = case["scale"].as_f64().unwrap();
        let anchor: Vec<f32> = g
            .text
            .iter()
            .map(|&t| (f64::from(t) * scale) as f32)
            .collect();
        let probe = Probe::new(rows, &anchor);
        let fitted = probe
            .fit(
                &[Spec {
                    excluded: 0,
                    lambda,
                    start: None,
                }],
                &Options::default(),
            )
            .remove(0)
            .unwrap();
        assert!(fitted.converged, "{name}");
        let weight: Vec<f64> = case["weight"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let bias = case["bias"].as_f64().unwrap();
        let w_error = relative(&fitted.model.weight, &weight);
        let b_error = (fitted.model.bias - bias).abs() / bias.abs().max(1.0);
        assert!(
            w_error < 1e-4 && b_error < 1e-4,
            "{name}: weight off by {w_error:e}, bias by {b_error:e}"
        );
        if let Some(b0) = case["b0"].as_f64() {
            let ours = probe.anchor_bias(0).unwrap();
            assert!(
                (ours - b0).abs() / b0.abs().max(1.0) < 1e-6,
                "{name}: b0 {ours} vs {b0}"
            );
        }
    }
}

#[test]
fn the_gradient_is_the_objectives_slope() {
    let g = goldens();
    let n = 200;
    let rows = Rows {
        vectors: &g.rows[..n * g.dim],
        dim: g.dim,
        truth: &g.truth[..n],
        fold: &vec![0u8; n],
    };
    let anchor: Vec<f32> = g.text.iter().map(|&t| t * 20.0).collect();
    let probe = Probe::new(rows, &anchor);
    let spec = Spec {
        excluded: 0,
        lambda: 3.0,
        start: None,
    };
    let model = Linear {
        weight: (0..g.dim)
            .map(|k| f64::from(anchor[k]) + ((k * 7) % 5) as f64 * 0.3 - 0.6)
            .collect(),
        bias: -4.0,
    };
    let (_, gradient) = probe.objective(&spec, &model).unwrap();
    let step = 1e-5;
    for k in [0, 5, 17, g.dim - 1, g.dim] {
        let moved = |delta: f64| {
            let mut m = model.clone();
            if k == g.dim {
                m.bias += delta;
            } else {
                m.weight[k] += delta;
            }
            probe.objective(&spec, &m).unwrap().0
        };
        let numeric = (moved(step) - moved(-step)) / (2.0 * step);
        assert!(
            (numeric - gradient[k]).abs() <= 1e-6 + 1e-4 * gradient[k].abs(),
            "coordinate {k}: analytic {} vs finite difference {numeric}",
            gradient[k]
        );
    }
}

#[test]
fn models_fitted_together_equal_models_fitted_alone() {
    let g = goldens();
    let n = g.truth.len();
    let fold: Vec<u8> = (0..n).map(|i| ((i / 50) % 3) as u8).collect();
    let rows = Rows {
        vectors: &g.rows,
        dim: g.dim,
        truth: &g.truth,
        fold: &fold,
    };
    let anchor: Vec<f32> = g.text.iter().map(|&t| t * 14.3).collect();
    let probe = Probe::new(rows, &anchor);
    let specs: Vec<Spec> = [0b001u64, 0b010, 0b100, 0b011]
        .into_iter()
        .zip([2.0, 20.0, 0.5, 5.0])
        .map(|(excluded, lambda)| Spec {
            excluded,
            lambda,
            start: None,
        })
        .collect();
    let together = probe.fit(&specs, &Options::default());
    let mut compared = 0;
    for (spec, joint) in specs.iter().zip(&together) {
        let alone = probe
            .fit(std::slice::from_ref(spec), &Options::default())
            .remove(0);
        let (Some(joint), Some(alone)) = (joint, alone) else {
            assert!(joint.is_none(), "fitted together only");
            continue;
        };
        let error = relative(&joint.model.weight, &alone.model.weight);
        assert!(error < 1e-6, "fold mask {:b}: {error:e}", spec.excluded);
        compared += 1;
    }
    assert!(compared >= 3, "{compared}");
    // A split that leaves out every positive is not fitted.
    let positives: u64 = (0..3)
        .filter(|&f| (0..n).any(|i| fold[i] == f && g.truth[i]))
        .fold(0, |m, f| m | (1 << f));
    let none = probe.fit(
        &[Spec {
            excluded: positives,
            lambda: 1.0,
            start: None,
        }],
        &Options::default(),
    );
    assert!(none[0].is_none());
}
