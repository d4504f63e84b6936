"""Isolation Forest: scikit-learn vs sg-host on the same random data, in one run.

For each size, writes N x 28 float32 rows (seeded normal) to Parquet, times scikit-learn's
IsolationForest(n_estimators=100, contamination='auto', n_jobs=-1) fit and score_samples,
then `sg-host detect` on the same file (it reports its own fit and score times, excluding I/O),
and prints the ratios.
"""
import re
import subprocess
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.ensemble import IsolationForest

sg_host = sys.argv[1]
sizes = [int(s) for s in sys.argv[2:]] or [100_000, 1_000_000]
cols = 28


def best_of(n, fn):
    best = float("inf")
    for _ in range(n):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


rows_out = []
with tempfile.TemporaryDirectory() as tmp:
    for n in sizes:
        rng = np.random.default_rng(0)
        x = rng.standard_normal((n, cols), dtype=np.float32)
        path = f"{tmp}/x{n}.parquet"
        pq.write_table(pa.table({f"f{i}": x[:, i] for i in range(cols)}), path)
        reps = 3
        clf = IsolationForest(n_estimators=100, contamination="auto", random_state=0, n_jobs=-1)
        sk_fit = best_of(reps, lambda: clf.fit(x))
        sk_score = best_of(reps, lambda: clf.score_samples(x))
        ours_fit, ours_score = float("inf"), float("inf")
        for _ in range(reps):
            out = subprocess.run(
                [sg_host, "detect", "--input", path, "--out", f"{tmp}/s.parquet", "--contamination", "auto"],
                check=True, capture_output=True, text=True,
            ).stderr
            m = re.search(r"fit ([0-9.]+) s, score ([0-9.]+) s", out)
            ours_fit, ours_score = min(ours_fit, float(m.group(1))), min(ours_score, float(m.group(2)))
        rows_out.append((n, sk_fit, ours_fit, sk_score, ours_score))

print(f"{'rows':>9} | {'sklearn fit':>11} | {'sg fit':>9} | {'fit ×':>7} | {'sklearn score':>13} | {'sg score':>9} | {'score ×':>7}")
for n, skf, of, sks, os_ in rows_out:
    print(f"{n:>9} | {skf:>10.3f}s | {of:>8.4f}s | {skf / of:>6.0f}× | {sks:>12.3f}s | {os_:>8.4f}s | {sks / os_:>6.1f}×")
