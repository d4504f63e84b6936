//! The Isolation Forest detector, except when scoring a matrix holding a marked row (its first
//! value): `666` panics (a trap), `667` answers NaN for every row, `668` answers one score too
//! few — so the host must isolate exactly the marked rows.

wit_bindgen::generate!({ path: "../../../wit/detector-1", world: "detector" });

use exports::streamguard::detector::model::{self as wire, Guest};
use sg_iforest::{Contamination, MaxSamples, Matrix, Model, Params};

struct Hostile;

fn matrix(x: &wire::Matrix) -> Result<Matrix<'_>, String> {
    Matrix::new(&x.values, x.rows as usize, x.cols as usize).map_err(|e| e.to_string())
}

impl Guest for Hostile {
    fn train(x: wire::Matrix, feature_names: Vec<String>, p: wire::Params) -> Result<Vec<u8>, String> {
        let params = Params {
            n_estimators: p.n_estimators as usize,
            max_samples: match p.max_samples {
                wire::MaxSamples::Auto => MaxSamples::Auto,
                wire::MaxSamples::Count(n) => MaxSamples::Count(n as usize),
                wire::MaxSamples::Fraction(f) => MaxSamples::Fraction(f),
            },
            max_features: p.max_features,
            contamination: match p.contamination {
                wire::Contamination::Auto => Contamination::Auto,
                wire::Contamination::Fraction(f) => Contamination::Fraction(f),
            },
            random_state: p.random_state,
        };
        let model = sg_iforest::fit(&matrix(&x)?, &feature_names, &params).map_err(|e| e.to_string())?;
        Ok(model.to_bytes())
    }

    fn score(model: Vec<u8>, x: wire::Matrix) -> Result<wire::Scores, String> {
        let model = Model::from_bytes(&model).map_err(|e| e.to_string())?;
        let mut score_samples = model.score_samples(&matrix(&x)?).map_err(|e| e.to_string())?;
        let marks: Vec<f32> = x.values.chunks(x.cols.max(1) as usize).map(|row| row[0]).collect();
        if marks.contains(&666.0) {
            panic!("hostile detector: trap on a marked row");
        }
        if marks.contains(&667.0) {
            score_samples.iter_mut().for_each(|s| *s = f64::NAN);
        }
        if marks.contains(&668.0) {
            score_samples.pop();
        }
        Ok(wire::Scores { score_samples, offset: model.offset() })
    }
}

export!(Hostile);
