//! Any bytes as a model file: refused, or loaded and then scored without a panic or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(model) = sg_iforest::Model::from_bytes(data) {
        let n = model.feature_names().len();
        let x = vec![1.0f32; n.max(1) * 2];
        if let Ok(m) = sg_iforest::Matrix::new(&x[..n * 2], 2, n) {
            let _ = model.score_samples(&m);
        }
    }
});
