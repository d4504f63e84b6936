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
fn hostile_artefacts_are_refused_with_the_reason() {
    let data: Vec<f32> = (0..300).map(|i| (i % 17) as f32).collect();
    let x = Matrix::new(&data, 100, 3).unwrap();
    let names: Vec<String> = vec!["x".into(), "y".into(), "z".into()];
    let m = fit(&x, &names, &Params { n_estimators: 4, ..Params::default() }).unwrap();
    let good: serde_json::Value = serde_json::from_slice(&m.to_bytes()).unwrap();
    let refused = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut v = good.clone();
        edit(&mut v);
        Model::from_bytes(&serde_json::to_vec(&v).unwrap()).unwrap_err().to_string()
    };
    // The depth bomb: one leaf declaring a depth of 4e9 would make every walk loop 4e9 times.
    let bomb = refused(&|v| {
        v["trees"][0] = serde_json::json!({"feature": [0], "threshold": [0.0], "left": [0], "right": [0], "value": [1.0], "depth": 4_000_000_000u32});
    });
    assert!(bomb.contains("depth 4000000000 is more than ⌈log2 ψ⌉ = 7"), "{bomb}");
    let shallow = refused(&|v| v["trees"][1]["depth"] = serde_json::json!(v["trees"][1]["depth"].as_u64().unwrap() - 1));
    assert!(shallow.contains("below the tree depth"), "{shallow}");
    let deep = refused(&|v| {
        v["max_samples"] = serde_json::json!(1 << 16);
        v["trees"][1]["depth"] = serde_json::json!(v["trees"][1]["depth"].as_u64().unwrap() + 1);
    });
    assert!(deep.contains("but the deepest leaf is at"), "{deep}");
    let wide = refused(&|v| v["max_samples"] = serde_json::json!(2));
    assert!(wide.contains("more than 2ψ − 1 = 3"), "{wide}");
    // A threshold beyond f32 (JSON has no NaN or infinity) is refused by the reader itself.
    let infinite = refused(&|v| v["trees"][2]["threshold"][0] = serde_json::json!(1e39));
    assert!(infinite.contains("number out of range"), "{infinite}");
    let many = refused(&|v| {
        let tree = v["trees"][0].clone();
        v["trees"] = serde_json::Value::Array(vec![tree; 10_001]);
    });
    assert!(many.contains("10001 trees"), "{many}");
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

/// Every way of walking (the group-wise top levels and lanes of shallow and usual trees, the
/// linked nodes of deep ones, partial blocks and groups) reaches the leaf that the plain
/// node-by-node float walk reaches, NaN, infinities and signed zeros included.
#[test]
fn every_walk_reaches_the_leaf_of_the_plain_walk() {
    let specials = [f32::NAN, -0.0, 0.0, f32::INFINITY, f32::NEG_INFINITY, f32::MIN_POSITIVE, -1e-40];
    let (rows, cols) = (9_000, 5);
    let data: Vec<f32> = (0..rows * cols)
        .map(|i| match i % 97 {
            k if k < specials.len() => specials[k],
            _ => (((i as u64 * 2_654_435_761) % 10_007) as f32 - 5_000.0) / 997.0,
        })
        .collect();
    let x = Matrix::new(&data, rows, cols).unwrap();
    let names: Vec<String> = (0..cols).map(|i| format!("f{i}")).collect();
    for max_samples in [MaxSamples::Count(4), MaxSamples::Auto, MaxSamples::Count(8_500)] {
        let p = Params { n_estimators: 7, max_samples, contamination: Contamination::Auto, ..Params::default() };
        let m = fit(&x, &names, &p).unwrap();
        for n in [rows, 1_000, 77, 1] {
            let part = Matrix::new(&data[..n * cols], n, cols).unwrap();
            let got = m.score_samples(&part).unwrap();
            let norm = m.trees().len() as f64 * average_path_length(m.max_samples());
            for (r, g) in got.iter().enumerate() {
                let row = &data[r * cols..(r + 1) * cols];
                let mean: f64 = m.trees().iter().map(|t| t.path_length(row)).sum();
                assert_eq!(*g, -libm::exp2(-mean / norm), "max_samples {max_samples:?}, {n} rows, row {r}");
            }
        }
    }
}

/// The walk's integer keys order f32 values as `<=` does; NaN above everything, −0 = +0.
#[test]
fn keys_order_floats_as_splits_do() {
    let values = [f32::NEG_INFINITY, f32::MIN, -1.5, -f32::MIN_POSITIVE, -1e-45, -0.0, 0.0, 1e-45, 1.0, f32::MAX, f32::INFINITY];
    for &a in &values {
        for &b in &values {
            assert_eq!(walk::key(a) <= walk::key(b), a <= b, "{a} <= {b}");
        }
        assert!(walk::key(f32::NAN) > walk::key(a));
        assert!(walk::key(-f32::NAN) > walk::key(a));
    }
}

/// Trees whose thresholds are values the rows hold (ties go left), NaN, infinities and signed
/// zeros in the rows, leaves at every level, shallow (lanes only), usual (group-wise top
/// levels) and deep (linked nodes): every walk reaches the plain walk's leaf.
#[test]
fn ties_and_special_values_walk_as_the_plain_walk() {
    let ties = [-1.0f32, -0.0, 0.0, 0.5, 1.0];
    let row_values = [-1.0f32, -0.0, 0.0, 0.5, 1.0, 0.25, f32::NAN, f32::INFINITY, f32::NEG_INFINITY];
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |n: usize| {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) as usize % n
    };
    let cols = 3;
    let rows = 1_000;
    let data: Vec<f32> = (0..rows * cols).map(|_| row_values[next(row_values.len())]).collect();
    let x = Matrix::new(&data, rows, cols).unwrap();
    for depth in [2u32, 8, 13] {
        // Grown breadth-first from the root: a node below the root is a leaf one time in six.
        let (mut feature, mut threshold, mut left, mut right, mut value) = (vec![], vec![], vec![], vec![], vec![]);
        let mut deepest = 0u32;
        let mut todo = vec![(0usize, 0u32)];
        feature.push(0);
        threshold.push(0.0);
        left.push(0);
        right.push(0);
        value.push(0.0);
        while let Some((node, d)) = todo.pop() {
            deepest = deepest.max(d);
            if d == depth || (d > 0 && next(6) == 0) {
                value[node] = f64::from(d) + node as f64 / 1e6;
                continue;
            }
            feature[node] = next(cols) as u32;
            threshold[node] = ties[next(ties.len())];
            for side in 0..2 {
                let child = feature.len();
                feature.push(0);
                threshold.push(0.0);
                left.push(child as u32);
                right.push(child as u32);
                value.push(0.0);
                if side == 0 { left[node] = child as u32 } else { right[node] = child as u32 }
                todo.push((child, d + 1));
            }
        }
        let tree = Tree::from_parts(feature, threshold, left, right, value, deepest);
        let names: Vec<String> = (0..cols).map(|i| format!("f{i}")).collect();
        let m = Model::new(Params { n_estimators: 1, ..Params::default() }, names, rows, 256, vec![tree]);
        let got = m.score_samples(&x).unwrap();
        let norm = average_path_length(256);
        for (r, g) in got.iter().enumerate() {
            let path = m.trees()[0].path_length(&data[r * cols..(r + 1) * cols]);
            assert_eq!(*g, -libm::exp2(-path / norm), "depth {depth}, row {r}");
        }
    }
}

#[test]
fn contributions_add_up_to_the_isolation_deficit() {
    // 300 rows on a grid in 4 features; row 0 is far out in feature 2 only.
    let mut data: Vec<f32> = (0..1200).map(|i| ((i * 7919) % 97) as f32).collect();
    data[2] = 10_000.0;
    let x = Matrix::new(&data, 300, 4).unwrap();
    let names: Vec<String> = (0..4).map(|i| format!("f{i}")).collect();
    let m = fit(&x, &names, &Params::default()).unwrap();
    let all = m.contributions(&x).unwrap();
    let c = average_path_length(m.max_samples());
    let scores = m.score_samples(&x).unwrap();
    for (r, row) in all.chunks_exact(4).enumerate() {
        // score = −2^(−E[h]/c)  ⇒  E[h] = −c · log2(−score)
        let mean_path = -c * (-scores[r]).log2();
        let total: f64 = row.iter().sum();
        assert!((total - (c - mean_path)).abs() < 1e-9, "row {r}: {total} vs {}", c - mean_path);
    }
    let top = m.explain(&x, 2).unwrap();
    assert_eq!(top[0][0].feature, 2, "{:?}", top[0]);
    assert!(top[0][0].contribution > 0.0 && top[0][0].contribution > 3.0 * top[0][1].contribution, "{:?}", top[0]);
    assert_eq!(m.typical().len(), 4);
    // The baseline: a share r of the training rows scores below score_at_rate(r).
    let t = m.score_at_rate(0.1).unwrap();
    let below = scores.iter().filter(|&&s| s < t).count();
    assert!((25..=35).contains(&below), "{below} of 300 below the 10 % threshold");
    let back = Model::from_bytes(&m.to_bytes()).unwrap();
    assert_eq!(back.score_at_rate(0.005), m.score_at_rate(0.005));
}

#[test]
fn medians_are_numpy_nanmedian() {
    // Columns: odd count with a NaN, even count with ±0 in the middle, all NaN, one value.
    let nan = f32::NAN;
    let rows: [[f32; 4]; 6] = [
        [3.0, -0.0, nan, nan],
        [nan, 5.0, nan, nan],
        [1.0, 0.0, nan, 7.5],
        [9.0, -2.0, nan, nan],
        [2.0, 0.0, nan, nan],
        [4.0, -0.0, nan, nan],
    ];
    let data: Vec<f32> = rows.iter().flatten().copied().collect();
    let x = Matrix::new(&data, 6, 4).unwrap();
    // numpy.nanmedian of each column.
    let got = medians(&x);
    assert_eq!(got, vec![Some(3.0), Some(0.0), None, Some(7.5)]);
    assert!(got[1].unwrap().is_sign_positive(), "the two middle values are -0 and +0 in total order: their mean is +0");
}
