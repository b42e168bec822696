"""Run a dialect's corpus on the local engine in this process and print the verdicts as JSON.

``python -m tests.parity.run_local bigquery`` — the parity suites start it with another ``TZ`` to
show the machine's time zone does not move an answer.
"""

from __future__ import annotations

import json
import sys
import time

from steps.backends.sql_local import LocalSql
from tests.parity.corpus import verdict


def main(dialect: str) -> dict[str, object]:
    corpus = __import__(f"tests.parity.{dialect}_corpus", fromlist=["CASES"])
    counts = {"right": 0, "refused": 0, "wrong": 0}
    wrong = []
    for case in corpus.CASES:
        outcome, detail = verdict(case, lambda case=case: LocalSql(dialect).run(case.sql, case.params)[0])
        counts[outcome] += 1
        if outcome == "wrong":
            wrong.append(f"{case.sql}: {detail}")
    return {"utc_offset_seconds": time.localtime().tm_gmtoff, "counts": counts, "wrong": wrong}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))
