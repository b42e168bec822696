"""The page in headless Chromium against a real service holding real decisions and observations."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.control_room.conftest import TOKEN, Served
from tests.control_room.pixels import Image, boxes, hex_colour, read_png

pytestmark = [pytest.mark.browser, pytest.mark.integration]

#: (run, input GB, peak GiB): a small, a large and a middle day for one pod task.
DAYS = [("day-1", 1.5, 3.0), ("day-2", 6.0, 13.0), ("day-3", 3.0, 6.5), ("day-4", 4.5, 9.5)]


def post(url: str, path: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        url + path,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as response:
        return json.load(response)


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("chromium is not installed: apt-get install -y chromium (listed in .ci/apt-packages.txt)")
    return found


def browse(url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        *extra,
        url,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=90)


def test_the_page_charts_each_tasks_input_sizes_and_chosen_sizes_with_real_values(
    served: Served, tmp_path: Path
) -> None:
    decisions = {}
    for run_id, gb, peak_gib in DAYS:
        decision = post(
            served.url,
            "/v1/sizing",
            {"pipeline": "recipes", "task": "extract", "run_id": run_id, "input_bytes": int(gb * 1e9)},
        )
        decisions[run_id] = decision
        post(
            served.url,
            "/v1/observations",
            {
                "pipeline": "recipes",
                "task": "extract",
                "run_id": run_id,
                "attempt": 1,
                "outcome": "succeeded",
                "input_bytes": int(gb * 1e9),
                "instance_type": decision["instance_type"],
                "cpu": decision["cpu"],
                "memory": decision["memory"],
                "duration_seconds": 300 * gb,
                "peak_memory_bytes": int(peak_gib * 2**30),
                "cost_usd": round(0.01 * gb, 4),
            },
        )

    page = browse(f"{served.url}/?token={TOKEN}", tmp_path / "profile", "--dump-dom")
    assert page.returncode == 0, page.stderr[-2000:]
    dom = page.stdout
    assert '<svg class="task-chart" data-pipeline="recipes" data-task="extract"' in dom
    bars = re.findall(
        r'<rect class="input-bar[^"]*"[^>]*data-run-id="([^"]+)" data-input-bytes="(\d+)" data-instance-type="([^"]+)"',
        dom,
    )
    assert [(run, int(size)) for run, size, _ in bars] == [(run, int(gb * 1e9)) for run, gb, _ in DAYS]
    assert [kind for _, _, kind in bars] == [decisions[run]["instance_type"] for run, _, _ in DAYS]
    costs = re.findall(r'<circle class="cost-point"[^>]*data-run-id="([^"]+)" data-cost-usd="([0-9.]+)"', dom)
    assert [(run, float(cost)) for run, cost in costs] == [(run, round(0.01 * gb, 4)) for run, gb, _ in DAYS]
    assert 'class="cost-line"' in dom
    # the largest day has the tallest bar
    heights = {
        run: float(h)
        for h, run in re.findall(r'<rect class="input-bar[^"]*"[^>]*height="([0-9.]+)" data-run-id="([^"]+)"', dom)
    }
    assert set(heights) == {run for run, _, _ in DAYS}
    assert max(heights, key=heights.__getitem__) == "day-2"
    # the chosen sizes' memory and the peak each run really used
    chosen = re.findall(r'<rect class="chosen-bar"[^>]*data-run-id="([^"]+)" data-capacity-bytes="(\d+)"', dom)
    from control_room.catalog import load_catalog

    catalog = load_catalog()
    expected = {o.instance_type: o.total_memory for o in catalog.for_target("pod")}
    assert [(run, int(b)) for run, b in chosen] == [
        (run, expected[decisions[run]["instance_type"]]) for run, _, _ in DAYS
    ]
    peaks = re.findall(r'<circle class="peak-point"[^>]*data-run-id="([^"]+)" data-peak-bytes="(\d+)"', dom)
    assert [(run, int(b)) for run, b in peaks] == [(run, int(p * 2**30)) for run, _, p in DAYS]
    # the last decisions, with their reasons, newest first
    rows = re.findall(r'<tr class="decision" data-run-id="([^"]+)">.*?<td class="reason">([^<]+)</td>', dom)
    assert [run for run, _ in rows] == ["day-4", "day-3", "day-2", "day-1"]
    assert rows[0][1].startswith("4.2 GiB input; learned peak ")
    assert rows[-1][1].startswith("1.4 GiB input; no history and no bytes_per_row for recipes/extract")

    screenshot = tmp_path / "page.png"
    shot = browse(
        f"{served.url}/?token={TOKEN}", tmp_path / "profile2", f"--screenshot={screenshot}", "--window-size=1280,900"
    )
    assert shot.returncode == 0, shot.stderr[-2000:]
    data = screenshot.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 20_000
    shutil.copy(screenshot, Path("/tmp") / "headrace-control-room-page.png")
    _check_the_picture(read_png(data), [expected[decisions[run]["instance_type"]] for run, _, _ in DAYS])


def _check_the_picture(image: Image, capacities: list[int]) -> None:
    """What a person sees: a bar per run as tall as its input, a bar as tall as the memory chosen
    with the peak used as a dot at its height inside it, the cost drawn over each run's column
    (the page's colours; the legend's swatches are above ``chart_top``)."""
    chart_top = 150
    inputs = boxes(image, hex_colour("#93c5fd"), top=chart_top)
    chosen = boxes(image, hex_colour("#a7f3d0"), top=chart_top)
    peaks = boxes(image, hex_colour("#065f46"), top=chart_top)
    assert len(inputs) == len(chosen) == len(peaks) == len(DAYS), (inputs, chosen, peaks)
    unit = inputs[0].height / DAYS[0][1]  # pixels per GB
    for box, (_, gb, _) in zip(inputs, DAYS, strict=True):
        assert box.width > 20 and abs(box.height - gb * unit) <= 2, (box, gb)
    memory_unit = chosen[0].height / capacities[0]  # pixels per byte of memory
    baseline = chosen[0].bottom
    for bar, dot, capacity, (_, _, peak_gib) in zip(chosen, peaks, capacities, DAYS, strict=True):
        assert abs(bar.height - capacity * memory_unit) <= 2, (bar, capacity)
        assert bar.left <= dot.left and dot.right <= bar.right, "the peak dot sits in its run's bar"
        centre = (dot.top + dot.bottom) / 2
        assert abs((baseline - centre) - peak_gib * 2**30 * memory_unit) <= 3, (dot, peak_gib)
    cost = boxes(image, hex_colour("#b45309"), top=chart_top)
    for box in inputs:
        assert any(c.left <= box.right and box.left <= c.right for c in cost), f"no cost drawn over {box}"


def test_the_page_without_a_token_asks_to_sign_in(served: Served, tmp_path: Path) -> None:
    page = browse(served.url + "/", tmp_path / "profile", "--dump-dom")
    assert "Sign in: open this page once as" in page.stdout
    assert "task-chart" not in page.stdout


def _pod_hourly(cpu: float, gib: float) -> float:
    """A pod's price from the shipped catalog's own per-vCPU and per-GiB rates (read from its YAML)."""
    import yaml

    from control_room.catalog import DEFAULT_CATALOG

    pod = yaml.safe_load(Path(DEFAULT_CATALOG).read_text())["pod"]
    return cpu * float(pod["vcpu_hourly_usd"]) + gib * float(pod["gib_hourly_usd"])


def test_the_page_prices_unbilled_runs_filters_by_pipeline_and_task_and_links_each_decision_to_its_run(
    served: Served, tmp_path: Path
) -> None:
    # Local and backfilled runs report durations but no bill: the page prices them itself.
    runs = {"nightly": ["n-1", "n-2", "n-3"], "hourly": ["h-1"]}
    hourly: dict[str, float] = {}
    for pipeline, run_ids in runs.items():
        for index, run_id in enumerate(run_ids, start=1):
            decision = post(
                served.url,
                "/v1/sizing",
                {
                    "pipeline": pipeline,
                    "task": "cards",
                    "run_id": run_id,
                    "input_bytes": 1000 * index,
                    "input_rows": 1000 * index,
                    "bytes_per_row": 65536,
                },
            )
            post(
                served.url,
                "/v1/observations",
                {
                    "pipeline": pipeline,
                    "task": "cards",
                    "run_id": run_id,
                    "attempt": 1,
                    "outcome": "succeeded",
                    "input_bytes": 1000 * index,
                    "instance_type": decision["instance_type"],
                    "cpu": decision["cpu"],
                    "memory": decision["memory"],
                    "duration_seconds": 2.0 * index,
                    "peak_memory_bytes": 200 * 2**20,
                },
            )
            cpu, memory = decision["cpu"], decision["memory"]
            vcpu = float(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu)
            gib = float(memory[:-2]) / 1024 if memory.endswith("Mi") else float(memory[:-2])
            hourly[run_id] = _pod_hourly(vcpu, gib)

    dom = browse(f"{served.url}/?token={TOKEN}&pipeline=nightly&task=cards", tmp_path / "p1", "--dump-dom").stdout
    assert re.findall(r'<svg class="task-chart" data-pipeline="([^"]+)"', dom) == ["nightly"]
    costs = re.findall(r'<circle class="cost-point"[^>]*data-run-id="([^"]+)" data-cost-usd="([0-9.e-]+)"', dom)
    assert [run for run, _ in costs] == ["n-1", "n-2", "n-3"]
    expected = [hourly[run] * seconds / 3600 for run, seconds in (("n-1", 2.0), ("n-2", 4.0), ("n-3", 6.0))]
    assert [float(cost) for _, cost in costs] == pytest.approx(expected, rel=1e-6)
    top = re.search(r'class="label cost-axis-top"[^>]*data-cost-usd="([0-9.e-]+)">([^<]+)<', dom)
    assert top is not None and float(top.group(1)) == pytest.approx(max(expected), rel=1e-6)
    assert top.group(2).endswith("µ$"), "a cost axis scaled to the data, not to $1.00"
    assert '<option value="nightly" selected="">nightly</option>' in dom
    links = re.findall(r'<a class="run-link" href="/\?run=([^"]+)">', dom)
    assert links == ["n-3", "n-2", "n-1"]
    assert len(re.findall(r'<td class="reason">', dom)) == 3

    dom = browse(f"{served.url}/?token={TOKEN}&run=h-1", tmp_path / "p2", "--dump-dom").stdout
    rows = re.findall(r'<tr class="decision" data-run-id="([^"]+)">.*?<td class="reason">([^<]+)</td>', dom)
    assert [run for run, _ in rows] == ["h-1"]
    assert "declared 65536 bytes/row x 1,000 rows" in rows[0][1]

    screenshot = tmp_path / "filtered.png"
    shot = browse(
        f"{served.url}/?token={TOKEN}&pipeline=nightly",
        tmp_path / "p3",
        f"--screenshot={screenshot}",
        "--window-size=1280,900",
    )
    assert shot.returncode == 0 and screenshot.read_bytes().startswith(b"\x89PNG")
    shutil.copy(screenshot, Path("/tmp") / "headrace-control-room-filtered.png")


def test_a_backfill_s_runs_sit_on_the_page_in_run_date_order_labelled_by_date(served: Served, tmp_path: Path) -> None:
    # A backfill decides many dates in one afternoon, and not always in date order.
    for run_id, day, rows in (("b-3", "2026-11-03", 3000), ("b-1", "2026-11-01", 1000), ("b-2", "2026-11-02", 2000)):
        decision = post(
            served.url,
            "/v1/sizing",
            {
                "pipeline": "backfilled",
                "task": "cards",
                "run_id": run_id,
                "input_bytes": rows,
                "input_rows": rows,
                "bytes_per_row": 65536,
                "run_date": day,
            },
        )
        observed = {"pipeline": "backfilled", "task": "cards", "run_id": run_id, "attempt": 1, "outcome": "succeeded"}
        observed |= {"input_bytes": rows, "instance_type": decision["instance_type"], "duration_seconds": 3.0}
        observed |= {"peak_memory_bytes": 200 * 2**20}
        post(served.url, "/v1/observations", observed)
    dom = browse(f"{served.url}/?token={TOKEN}&pipeline=backfilled", tmp_path / "p", "--dump-dom").stdout
    bars = re.findall(r'<rect class="input-bar[^"]*"[^>]*data-run-id="([^"]+)"[^>]*data-run-date="([^"]+)"', dom)
    assert bars == [("b-1", "2026-11-01"), ("b-2", "2026-11-02"), ("b-3", "2026-11-03")]
    labels = re.findall(r'<text class="label date-label"[^>]*data-run-id="([^"]+)">([^<]+)</text>', dom)
    assert labels == [("b-1", "11-01"), ("b-2", "11-02"), ("b-3", "11-03")]
    assert "pod-500m" not in "".join(text for _, text in labels), "the x axis is dates, not instance types"
    # Against static peak sizing: 200 MiB peaks with 30% headroom fit the smallest pod, 512Mi.
    static = re.search(
        r'<code>([^<]+)</code>\): <span class="static-total" data-cost-usd="([0-9.e-]+)"[^>]*>([^<]+)<', dom
    )
    assert static is not None and static.group(1) == "pod-500m-512Mi"
    assert float(static.group(2)) == pytest.approx(_pod_hourly(0.5, 0.5) * 9.0 / 3600, rel=1e-6)
    assert static.group(3).endswith("more")  # the declared guess put one run on 1Gi
    screenshot = tmp_path / "backfilled.png"
    shot = browse(
        f"{served.url}/?token={TOKEN}", tmp_path / "p2", f"--screenshot={screenshot}", "--window-size=1280,900"
    )
    assert shot.returncode == 0 and screenshot.read_bytes().startswith(b"\x89PNG")
    shutil.copy(screenshot, Path("/tmp") / "headrace-control-room-backfill.png")


def test_a_run_that_ran_out_of_memory_is_marked_red_on_the_page(served: Served, tmp_path: Path) -> None:
    """The OOM attempt and the retry one size up are both on the chart; the OOM one is red."""
    base = {"pipeline": "tight", "task": "join", "run_id": "t-1", "input_bytes": 2 * 10**9}
    first = post(served.url, "/v1/sizing", {**base, "attempt": 1})
    observed = {**base, "instance_type": first["instance_type"], "duration_seconds": 60.0}
    post(served.url, "/v1/observations", {**observed, "attempt": 1, "outcome": "oom"})
    second = post(
        served.url,
        "/v1/sizing",
        {**base, "attempt": 2, "previous_outcome": "oom", "previous_instance_type": first["instance_type"]},
    )
    post(
        served.url,
        "/v1/observations",
        {**observed, "instance_type": second["instance_type"], "attempt": 2, "outcome": "succeeded"},
    )

    dom = browse(f"{served.url}/?token={TOKEN}&pipeline=tight", tmp_path / "p", "--dump-dom").stdout
    bars = re.findall(
        r'<rect class="(input-bar[^"]*)"[^>]*data-instance-type="([^"]+)"[^>]*data-outcome="([^"]*)"', dom
    )
    assert bars == [
        ("input-bar oom", first["instance_type"], "oom"),
        ("input-bar", second["instance_type"], "succeeded"),
    ]
    screenshot = tmp_path / "oom.png"
    shot = browse(
        f"{served.url}/?token={TOKEN}&pipeline=tight",
        tmp_path / "p2",
        f"--screenshot={screenshot}",
        "--window-size=1280,900",
    )
    assert shot.returncode == 0, shot.stderr[-2000:]
    image = read_png(screenshot.read_bytes())
    red = boxes(image, hex_colour("#dc2626"), top=150)  # below the legend's swatch
    blue = boxes(image, hex_colour("#93c5fd"), top=150)
    assert len(red) == 1 and len(blue) == 1, (red, blue)
    assert red[0].right < blue[0].left and red[0].height == blue[0].height  # same input, first attempt first
