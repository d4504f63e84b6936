use super::*;

fn c(n: f64) -> f64 {
    2.0 * ((n - 1.0).ln() + EULER_GAMMA) - 2.0 * (n - 1.0) / n
}

/// One tree, ψ = 4: root splits feature 0 at 0.5; the left leaf got 1 training point, the right 3.
fn hand_model() -> Model {
    let tree = Tree::from_parts(
        vec![0, 0, 0],
        vec![0.5, 0.0, 0.0],
        vec![1, 1, 2],
        vec![2, 1, 2],
        vec![0.0, 1.0 + average_path_length(1), 1.0 + average_path_length(3)],
        1,
    );
    Model::new(Params { n_estimators: 1, ..Params::default() }, vec!["a".into(), "b".into()], 4, 4, vec![tree])
}

#[test]
fn hand_worked_forest_scores() {
    let m = hand_model();
    let x = [0.0f32, 9.0, 1.0, 9.0, f32::NAN, 0.0];
    let s = m.score_samples(&Matrix::new(&x, 3, 2).unwrap()).unwrap();
    let c4 = c(4.0);
    assert!((s[0] - -(2f64.powf(-1.0 / c4))).abs() < 1e-15, "{s:?}");
    let right = 1.0 + c(3.0);
    assert!((s[1] - -(2f64.powf(-right / c4))).abs() < 1e-15);
    // NaN goes right.
    assert_eq!(s[2], s[1]);
}

#[test]
fn same_seed_same_model_and_scores() {
    let data: Vec<f32> = (0..2000).map(|i| ((i * 7919) % 1000) as f32 / 10.0).collect();
    let x = Matrix::new(&data, 500, 4).unwrap();
    let names: Vec<String> = (0..4).map(|i| format!("f{i}")).collect();
    let p = Params { random_state: 7, ..Params::default() };
    let a = fit(&x, &names, &p).unwrap();
    let b = fit(&x, &names, &p).unwrap();
    assert_eq!(a, b);
    let other = fit(&x, &names, &Params { random_state: 8, ..p }).unwrap();
    assert_ne!(a, other);
    // 10% contamination flags 10% of the training set (no ties here).
    let flagged = a.predict(&x).unwrap().iter().filter(|&&p| p == -1).count();
    assert_eq!(flagged, 50);
}

#[test]
fn artefact_round_trips_and_is_checked() {
    let data: Vec<f32> = (0..300).map(|i| (i % 17) as f32).collect();
    let x = Matrix::new(&data, 100, 3).unwrap();
    let names: Vec<String> = vec!["x".into(), "y".into(), "z".into()];
    let m = fit(&x, &names, &Params::default()).unwrap();
    let back = Model::from_bytes(&m.to_bytes()).unwrap();
    assert_eq!(back, m);
    assert_eq!(back.score_samples(&x).unwrap(), m.score_samples(&x).unwrap());
    let err = back.check_features(&["x".into(), "y".into()]).unwrap_err();
    assert!(err.to_string().contains("trained on 3 features [x, y, z]"), "{err}");
    let bad = String::from_utf8(m.to_bytes()).unwrap().replace("\"format_version\":1", "\"format_version\":99");
    assert!(Model::from_bytes(bad.as_bytes()).unwrap_err().to_string().contains("format version 99"));
}

#[test]
fn constant_and_nan_inputs_do_not_crash() {
    let data = vec![1.0f32; 40];
    let x = Matrix::new(&data, 20, 2).unwrap();
    let names: Vec<String> = vec!["a".into(), "b".into()];
    let m = fit(&x, &names, &Params::default()).unwrap();
    let s = m.score_samples(&x).unwrap();
    assert!(s.iter().all(|v| v.is_finite() && *v == s[0]));
    let nan = vec![f32::NAN; 40];
    let m = fit(&Matrix::new(&nan, 20, 2).unwrap(), &names, &Params::default()).unwrap();
    assert!(m.score_samples(&x).unwrap().iter().all(|v| v.is_finite()));
}

#[test]
fn max_samples_follows_scikit_learn() {
    let p = |m| Params { max_samples: m, ..Params::default() };
    assert_eq!(p(MaxSamples::Auto).subsample_size(14).unwrap(), 14);
    assert_eq!(p(MaxSamples::Auto).subsample_size(10_000).unwrap(), 256);
    assert_eq!(p(MaxSamples::Count(500)).subsample_size(100).unwrap(), 100);
    assert_eq!(p(MaxSamples::Fraction(0.5)).subsample_size(100).unwrap(), 50);
    assert!(p(MaxSamples::Fraction(1.5)).subsample_size(100).is_err());
}
