"""drain3 (the reference Drain implementation, PyPI) over log lines, for the grouping-accuracy
tests of the `drain` dedup policy: the same parameters sg-host's policy uses (depth 4,
similarity 0.5, 100 children) and masks for block ids, IP addresses, hex and numbers.

Reads one line per input line from stdin; prints a JSON list with drain3's cluster id of each.

Usage: drain3_groups.py < lines.txt
"""

import json
import sys

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
miner = TemplateMiner(config=config)
ids = [miner.add_log_message(line.rstrip("\n"))["cluster_id"] for line in sys.stdin]
json.dump(ids, sys.stdout)
