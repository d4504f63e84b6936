"""Reads every window's ledger of an sg-host stream output with pyarrow (a reader other than
ours) and prints JSON: {"window=…": [[partition, offset], …], …} for the complete windows."""
import json
import os
import sys

import pyarrow.parquet as pq

out = sys.argv[1]
ledgers = {}
for name in sorted(os.listdir(out)):
    path = os.path.join(out, name)
    if name.startswith("window=") and os.path.exists(os.path.join(path, "_SUCCESS")):
        table = pq.read_table(os.path.join(path, "_ledger.parquet"))
        ledgers[name] = [[p, o] for p, o in zip(table.column("partition").to_pylist(), table.column("offset").to_pylist())]
print(json.dumps(ledgers))
