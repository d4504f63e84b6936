"""The reference StreamGuard Spark job, reimplemented for benchmarks only (scripts/bench-e2e.sh).

It follows ../shared/reference/streamguard-pipeline.md: the 31 per-user features computed with
Spark DataFrame operations (bugs included: `unique_locations` counts the absent top-level
`location`, `rare_ip_ratio` divides by `avg_ip_frequency`, intervals in whole seconds), left-joined
on `user` with nulls as 0; scikit-learn's IsolationForest(contamination=0.1, n_estimators=100,
random_state=42) on the driver over the 28 raw columns; Parquet partitioned by `is_anomaly` and
`anomaly_report.json`. Timestamps are read in UTC. It reads a JSON-lines file (the job read the
same values from Kafka).

Usage: python spark_reference.py EVENTS.jsonl OUT_DIR   (prints the seconds it took)
       python spark_reference.py --compare SPARK_OUT SG_HOST_OUT   (the 28 model inputs and the
       users flagged must agree, or it exits non-zero)
"""

import json
import sys
import time

from pyspark.sql import SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, LongType, StringType, StructField, StructType

SCHEMA = StructType([
    StructField("event_id", StringType()),
    StructField("timestamp", LongType()),
    StructField("event_type", StringType()),
    StructField("source_ip", StringType()),
    StructField("destination_ip", StringType()),
    StructField("user", StringType()),
    StructField("threat_score", DoubleType()),
    StructField("status", StringType()),
    StructField("location", StringType()),
    StructField("metadata", StructType([
        StructField("hostname", StringType()),
        StructField("geo_location", StringType()),
        StructField("user_agent", StringType()),
        StructField("session_id", StringType()),
    ])),
])

TYPES = ["auth_attempt", "dns_query", "file_access", "network_connection", "process_execution"]

MODEL_INPUTS = [
    "total_events", "unique_ips", "unique_event_types", "avg_threat_score", "max_threat_score",
    "failed_events", "unusual_hour_events", "unique_locations", "failed_auth_rate",
    "unusual_hour_rate", "ip_diversity_score", "activity_days", "events_per_day", *TYPES,
    "hourly_stddev", "hourly_variance", "avg_ip_frequency", "ip_frequency_stddev", "rare_ip_count",
    "rare_ip_ratio", "avg_event_interval", "event_interval_stddev", "min_event_interval",
    "burst_events",
]


def features(events):
    """The per-user table of the reference job."""
    events = events.filter(F.col("event_id").isNotNull())
    ts = F.from_unixtime(F.floor(F.col("timestamp") / 1000)).cast("timestamp")
    events = events.withColumn("ts", ts).withColumn("hour", F.hour("ts")).withColumn("sec", F.col("ts").cast("long"))

    base = events.groupBy("user").agg(
        F.count("*").alias("total_events"),
        F.countDistinct("source_ip").alias("unique_ips"),
        F.countDistinct("event_type").alias("unique_event_types"),
        F.avg("threat_score").alias("avg_threat_score"),
        F.max("threat_score").alias("max_threat_score"),
        F.sum(F.when(F.col("status") == "failed", 1).otherwise(0)).alias("failed_events"),
        F.sum(F.when(F.col("hour").between(0, 6), 1).otherwise(0)).alias("unusual_hour_events"),
        F.countDistinct("location").alias("unique_locations"),
        F.min("ts").alias("first_seen"),
        F.max("ts").alias("last_seen"),
    )
    base = (
        base.withColumn("failed_auth_rate", F.col("failed_events") / F.col("total_events"))
        .withColumn("unusual_hour_rate", F.col("unusual_hour_events") / F.col("total_events"))
        .withColumn("ip_diversity_score", F.col("unique_ips") / F.col("total_events"))
        .withColumn("activity_days", F.datediff(F.to_date("last_seen"), F.to_date("first_seen")) + 1)
        .withColumn("events_per_day", F.col("total_events") / F.col("activity_days"))
    )
    by_type = events.groupBy("user").pivot("event_type", TYPES).count()

    hourly = events.groupBy("user", "hour").count().groupBy("user").agg(
        F.stddev_samp("count").alias("hourly_stddev"), F.var_samp("count").alias("hourly_variance"))

    per_ip = events.withColumn("n", F.count("*").over(Window.partitionBy("user", "source_ip")))
    ips = per_ip.groupBy("user").agg(
        F.avg("n").alias("avg_ip_frequency"),
        F.stddev_samp("n").alias("ip_frequency_stddev"),
        F.sum(F.when(F.col("n") == 1, 1).otherwise(0)).alias("rare_ip_count"),
    ).withColumn("rare_ip_ratio", F.col("rare_ip_count") / F.col("avg_ip_frequency"))

    gaps = events.withColumn("gap", F.col("sec") - F.lag("sec").over(Window.partitionBy("user").orderBy("sec")))
    intervals = gaps.filter(F.col("gap").isNotNull()).groupBy("user").agg(
        F.avg("gap").alias("avg_event_interval"),
        F.stddev_samp("gap").alias("event_interval_stddev"),
        F.min("gap").alias("min_event_interval"),
        F.sum(F.when(F.col("gap") < 1, 1).otherwise(0)).alias("burst_events"),
    )
    table = base
    for other in (by_type, hourly, ips, intervals):
        table = table.join(other, "user", "left")
    return table.fillna(0)


def load(out):
    """An output directory's rows (both partitions) by user, with pyarrow."""
    import glob

    import pyarrow.dataset as ds

    files = glob.glob(f"{out}/is_anomaly=*/*.parquet")
    hive = ds.partitioning(flavor="hive")
    return ds.dataset(files, format="parquet", partitioning=hive, partition_base_dir=out).to_table().to_pandas().set_index("user").sort_index()


def compare(spark_out, sg_out):
    """Exits non-zero unless both outputs hold the same users, model inputs and flags."""
    a, b = load(spark_out), load(sg_out)
    if list(a.index) != list(b.index):
        sys.exit(f"users differ: {len(a)} in Spark's output, {len(b)} in sg-host's")
    differing = [c for c in MODEL_INPUTS if not ((a[c].astype(float) - b[c].astype(float)).abs() <= 1e-9 * (1 + a[c].astype(float).abs())).all()]
    flagged = [sorted(t.index[t.is_anomaly.astype(int) == 1]) for t in (a, b)]
    if differing or flagged[0] != flagged[1]:
        sys.exit(f"outputs differ: columns {differing}; flagged {flagged[0][:5]}… vs {flagged[1][:5]}…")
    print(f"reference Spark job and spark-compat agree: {len(a)} users, {len(MODEL_INPUTS)} model inputs, {len(flagged[0])} flagged")


def main():
    if sys.argv[1] == "--compare":
        return compare(sys.argv[2], sys.argv[3])
    source, out = sys.argv[1], sys.argv[2]
    started = time.time()
    spark = (
        SparkSession.builder.master("local[*]").appName("streamguard-reference")
        .config("spark.sql.session.timeZone", "UTC").config("spark.driver.memory", "4g")
        .config("spark.ui.enabled", "false").getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    table = features(spark.read.schema(SCHEMA).json(source)).toPandas().fillna(0)

    from sklearn.ensemble import IsolationForest

    x = table[MODEL_INPUTS].to_numpy(dtype=float)
    forest = IsolationForest(contamination=0.1, n_estimators=100, random_state=42).fit(x)
    score = -forest.score_samples(x)
    span = score.max() - score.min()
    table["anomaly_score"] = score
    table["anomaly_score_normalized"] = (score - score.min()) / span if span > 0 else 0.0
    table["is_anomaly"] = (forest.predict(x) == -1).astype(int)

    written = table.drop(columns=["first_seen", "last_seen"])
    spark.createDataFrame(written).write.mode("overwrite").partitionBy("is_anomaly").parquet(out)
    flagged = table[table.is_anomaly == 1].sort_values("anomaly_score_normalized", ascending=False)
    report = {
        "total_users": int(len(table)),
        "anomalous_users": int(len(flagged)),
        "anomaly_rate": float(len(flagged) / max(len(table), 1)),
        "top_anomalies": [
            {"user": r.user, "anomaly_score": float(r.anomaly_score_normalized), "total_events": int(r.total_events),
             "avg_threat_score": float(r.avg_threat_score)}
            for r in flagged.head(10).itertuples()
        ],
    }
    with open(f"{out}/anomaly_report.json", "w") as f:
        json.dump(report, f)
    spark.stop()
    print(f"{time.time() - started:.2f}")


if __name__ == "__main__":
    main()
