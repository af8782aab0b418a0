"""Per-item table of the region-sets sweep: `python experiments/region_sets/per_item.py [runs/region_sets]`.

Reads every job's result.json and writes `region_sets_items.md` next to this file: for each item of the data set
and each job (region algorithm, overlap), region accuracy inside / outside as the mean over the item's seeds, and
the judge's readings of the outside on those seeds. `dualsampler-figures` averages over all items; this table
shows which items and regions fail."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any

from dualsampler.runner.results import read_results

HERE = Path(__file__).parent


def job_label(result: dict[str, Any]) -> str:
    """`<algorithm> <overlap>`, e.g. `fused 4`."""
    return f"{result['dual']['algorithm']} {result['config']['overlap_factor']}"


def cell(rows: list[dict[str, Any]]) -> str:
    """`inside / outside` accuracy of one item's rows (their mean over seeds; `-` where a region was not read)."""
    def mean(key: str) -> str:
        values = [row[key] for row in rows if isinstance(row.get(key), (int, float))]
        return f"{sum(values) / len(values):.2f}" if values else "-"
    return f"{mean('region_accuracy/inside')} / {mean('region_accuracy/outside')}"


def table(results: list[dict[str, Any]]) -> str:
    """The markdown table: one line per item (in the data set's order), one column per job, then the outside
    readings over all jobs."""
    results = sorted(results, key=lambda r: (r["dual"]["algorithm"], r["config"]["overlap_factor"]))
    items = list(dict.fromkeys(row["item"] for result in results for row in result["per_seed"]))
    head = ["item", *map(job_label, results), "judge/outside over all jobs"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for item in items:
        per_job = [[row for row in result["per_seed"] if row["item"] == item] for result in results]
        readings = Counter(row.get("judge/outside", "-") for rows in per_job for row in rows)
        read = ", ".join(f"{text} x{count}" for text, count in readings.most_common())
        lines.append(f"| {item} | " + " | ".join(map(cell, per_job)) + f" | {read} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Write `region_sets_items.md` from the sweep folder given (default `runs/region_sets`) and print it."""
    sweep = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/region_sets")
    text = ("Region accuracy `inside / outside` per item and job (mean over the item's seeds; inside: the mean over "
            "the item's regions)\n\n" + table(read_results(sweep)))
    (HERE / "region_sets_items.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
