"""Tables and figures from the JSON-lines files that ``compare_methods.py --progress`` writes
(one line per evaluation): per method and width, mean ± standard error over seeds at every
step reached by all seeds, the learning curves and the capacity x budget map.

    python experiments/plot_progress.py FILE.jsonl [FILE.jsonl ...] --out DIR [--title T]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from sigdist.reports.figures import capacity_map_figure, learning_curves_figure
from sigdist.reports.grid import summarize, summary_table

KEYS = ("method", "model.width_g")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+")
    parser.add_argument("--out", required=True)
    parser.add_argument("--title", default="")
    args = parser.parse_args()
    rows = [json.loads(line) for path in args.files for line in Path(path).read_text().splitlines()
            if line.strip()]
    seeds = defaultdict(set)
    for row in rows:
        seeds[tuple(row[k] for k in KEYS)].add(row["seed"])
    # only the steps every seed of a cell reached, so each mean is over the same seeds
    counts = defaultdict(int)
    for row in rows:
        counts[(*(row[k] for k in KEYS), row["step"])] += 1
    complete = [r for r in rows if counts[(*(r[k] for k in KEYS), r["step"])]
                == len(seeds[tuple(r[k] for k in KEYS)])]
    summary = summarize(complete, KEYS)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(summary_table(summary, KEYS) + "\n")
    print(summary_table(summary, KEYS))
    learning_curves_figure(summary, KEYS, title=args.title).savefig(out / "learning_curves.png",
                                                                    dpi=100)
    budgets = sorted({e["step"] for e in summary})
    shared = [b for b in budgets if len({e["model.width_g"] for e in summary if e["step"] == b})
              == len({e["model.width_g"] for e in summary})]
    if shared:
        chosen = [e for e in summary if e["step"] in shared[:3] or e["step"] == shared[-1]]
        capacity_map_figure(chosen, x_key="model.width_g", line_key="method",
                            title=args.title).savefig(out / "capacity_map.png", dpi=100)


if __name__ == "__main__":
    main()
