//! A features component for a contract major (7) that `sg-host` does not know.

wit_bindgen::generate!({ path: "wit", world: "features" });

struct Component;

impl exports::streamguard::features::extractor::Guest for Component {
    fn describe() -> String {
        "from the future".into()
    }
}

export!(Component);
