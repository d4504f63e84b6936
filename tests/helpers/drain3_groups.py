"""drain3 (the reference Drain implementation, PyPI) over log lines, for the grouping-accuracy
tests of the `drain` dedup policy: the same parameters sg-host's policy uses (depth 4,
similarity 0.5, 100 children) and masks for block ids, IP addresses, hex and numbers.

Reads one line per input line from stdin; prints a JSON list with drain3's cluster id of each.
With `--repeat N`, mines the lines N times, each with a fresh miner, and prints
`{"ids": [...], "seconds": S}` with the fastest pass's time (for scripts/bench-templates.sh).

Usage: drain3_groups.py [--repeat N] < lines.txt
"""

import json
import sys
import time

from drain3 import TemplateMiner
from drain3.masking import MaskingInstruction
from drain3.template_miner_config import TemplateMinerConfig

config = TemplateMinerConfig()
config.drain_depth = 4
config.drain_sim_th = 0.5
config.drain_max_children = 100
config.parametrize_numeric_tokens = True
config.masking_instructions = [
    MaskingInstruction(r"blk_-?\d+", "BLK"),
    MaskingInstruction(r"/?\d{1,3}(\.\d{1,3}){3}(:\d+)?", "IP"),
    MaskingInstruction(r"0[xX][0-9a-fA-F]+", "HEX"),
    MaskingInstruction(r"(?<![A-Za-z0-9_])[-+]?\d+(\.\d+)?(?![A-Za-z0-9_])", "NUM"),
]
config.profiling_enabled = False
lines = [line.rstrip("\n") for line in sys.stdin]


def mine():
    miner = TemplateMiner(config=config)
    return [miner.add_log_message(line)["cluster_id"] for line in lines]


if len(sys.argv) == 3 and sys.argv[1] == "--repeat":
    best = None
    for _ in range(int(sys.argv[2])):
        started = time.perf_counter()
        ids = mine()
        took = time.perf_counter() - started
        best = took if best is None else min(best, took)
    json.dump({"ids": ids, "seconds": best}, sys.stdout)
else:
    json.dump(mine(), sys.stdout)
