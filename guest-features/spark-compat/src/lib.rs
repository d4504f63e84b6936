//! The `spark-compat` features component: the legacy Spark job's 31 columns, bugs included.
sg_features_core::features_component!(SparkCompat);
