"""Opens an sg-host output directory as a new user would, with readers other than ours, and
prints JSON: for each reader, the (user, is_anomaly) pairs it read, or the error it raised.

  pyarrow: pyarrow.dataset.dataset(OUT, partitioning="hive")
  pandas:  pandas.read_parquet(OUT)
  duckdb:  read_parquet('OUT/**/*.parquet', hive_partitioning=true)

No reader is given a flag beyond these: the layout must open as it is."""
import json
import sys

out = sys.argv[1]


def rows(users, flags):
    return sorted([str(u), int(f)] for u, f in zip(users, flags))


def read_pyarrow():
    import pyarrow.dataset as ds

    table = ds.dataset(out, format="parquet", partitioning="hive").to_table()
    return rows(table.column("user").to_pylist(), table.column("is_anomaly").to_pylist())


def read_pandas():
    import pandas as pd

    frame = pd.read_parquet(out)
    return rows(frame["user"].tolist(), frame["is_anomaly"].astype(int).tolist())


def read_duckdb():
    import duckdb

    query = f"SELECT \"user\", is_anomaly FROM read_parquet('{out}/**/*.parquet', hive_partitioning=true)"
    found = duckdb.sql(query).fetchall()
    return rows([u for u, _ in found], [f for _, f in found])


result = {}
for name, read in [("pyarrow", read_pyarrow), ("pandas", read_pandas), ("duckdb", read_duckdb)]:
    try:
        result[name] = {"rows": read()}
    except Exception as e:  # the test reports which reader failed and why
        result[name] = {"error": f"{type(e).__name__}: {e}"}
print(json.dumps(result))
