"""Opens an sg-host output directory with pyarrow (a reader other than ours) and prints JSON:
per-partition row counts, the schema, the key-value metadata and every row."""
import json
import sys

import pyarrow.dataset as ds
import pyarrow.parquet as pq

out = sys.argv[1]
# The report beside the partitions is not Parquet (same layout as the reference job).
dataset = ds.dataset(out, format="parquet", partitioning="hive", exclude_invalid_files=True)
table = dataset.to_table()
partitions = {}
metadata = {}
compression = None
for fragment in dataset.get_fragments():
    part = fragment.path.split("is_anomaly=")[1].split("/")[0]
    md = pq.read_metadata(fragment.path)
    partitions[part] = partitions.get(part, 0) + md.num_rows
    kv = md.metadata or {}
    metadata = {k.decode(): v.decode() for k, v in kv.items() if k.startswith(b"streamguard.")}
    if md.num_row_groups:
        compression = md.row_group(0).column(0).compression
print(json.dumps({
    "partitions": partitions,
    "columns": [f.name for f in table.schema],
    "types": {f.name: str(f.type) for f in table.schema},
    "metadata": metadata,
    "compression": compression,
    "rows": table.to_pylist(),
}, default=str))
