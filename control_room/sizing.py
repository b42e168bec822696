"""The sizing policy: from an input size, a catalog and a task's history, the size to run it on.

Pure (no I/O): :meth:`Policy.decide` takes a :class:`~steps.core.contract.SizingRequest` and the
task's past :class:`~steps.core.contract.Observation` s and returns a
:class:`~steps.core.contract.SizingDecision` whose ``reason`` is one line a person can check.

How it predicts, in order of trust:

1. **Learned** (``source="policy"``), once a task has ``min_history`` successful runs: peak memory
   against input size fitted on a log-log scale with Theil-Sen (the median of pairwise slopes, so
   one odd run does not bend the line), shifted up to a high quantile of the residuals (memory
   must be covered, not matched on average). Duration is fitted per instance type when that type
   has enough runs, otherwise from a pooled "vCPU-seconds" model scaled by ``vCPU^alpha``, where
   alpha is measured from two sizes with their own fits, else ``cpu_scaling`` of the target.
2. **Declared factor** (``source="policy"``): ``bytes_per_row x rows`` plus a process overhead.
3. **Rules** (``source="rules"``): the first ``rules.yaml`` rule matching the task.
4. **Default** (``source="default"``): the task's declared resources, else the catalog's safe
   default for the target.

Whatever the prediction, every OOM the task had teaches a floor: an OOM at capacity ``S`` with
input ``N`` means ``memory(N) > S``, scaled to the current input with the fitted slope. A retry
after an OOM (``previous_outcome="oom"``) always gets more memory than the size that failed.
Among the options that fit the predicted memory with ``headroom`` and meet the deadline, the
cheapest predicted cost wins (hourly price when no duration can be predicted).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeGuard

from control_room.catalog import Catalog, Option, Rules
from control_room.fits import AffineFit, LogFit, fit_affine, fit_log, median
from steps.core.contract import Observation, Outcome, SizingDecision, SizingRequest, SizingTarget
from steps.core.display import format_bytes, format_duration
from steps.core.quantities import QuantityError, format_cpu, format_memory, memory_bytes

GIB = 2**30
#: Spare memory over the high-quantile peak when headroom is taken over the typical peak.
QUANTILE_MARGIN = 1.05
#: An OOM at capacity S proves the need is above S; the floor is put this much above it.
OOM_STEP = 1.1
#: Runs after which the residuals' high quantile is trusted instead of the blanket headroom, and
#: the least headroom over the typical peak kept then.
SPREAD_RUNS = 10
LEARNED_MIN_HEADROOM = 1.1
#: After an OOM with retries left, capacity grows geometrically towards the catalog's largest
#: size (so the last attempt gets it), but at most this factor per retry.
MAX_ESCALATION = 4.0


# ----------------------------------------------------------------------------- formatting


# ----------------------------------------------------------------------------- the policy


@dataclass(frozen=True)
class MemoryModel:
    """Peak memory learned from a task's successful runs: a power law and an affine line."""

    runs: int
    fit: LogFit | None
    affine: AffineFit | None
    types: str  # the instance type the runs used, or "N types"


@dataclass(frozen=True)
class DurationModel:
    """Per-instance-type duration fits, and a pooled vCPU-seconds fit for the types never tried."""

    per_type: dict[tuple[str, int], LogFit]
    pooled: LogFit | None
    cpu_scaling: float

    def predict(self, input_bytes: int, option: Option) -> float | None:
        if input_bytes <= 0:
            return None
        fit = self.per_type.get((option.instance_type, option.count))
        if fit is not None:
            return fit.predict(input_bytes)
        if self.pooled is None:
            return None
        return float(self.pooled.predict(input_bytes) / option.total_vcpu**self.cpu_scaling)


@dataclass(frozen=True)
class Prediction:
    """What the policy expects of the next attempt, and where the memory figure came from."""

    memory: float | None
    basis: str
    source: str  # policy | rules | default
    memory_fit: LogFit | None = None
    #: The typical (median-line) peak for a learned fit; headroom is taken over this figure.
    typical: float | None = None


class Policy:
    """Chooses sizes from a :class:`Catalog` and :class:`Rules`; stateless between calls."""

    def __init__(self, catalog: Catalog, rules: Rules) -> None:
        self.catalog = catalog
        self.rules = rules
        # Fits depend on the history alone. The store hands out the same list object while a
        # task's history is unchanged, so fits are memoised on that object's identity (the memo
        # keeps the list alive, so an id is never reused while cached). A transparent cache.
        self._memo: dict[tuple[int, int, int], tuple[Sequence[Observation], MemoryModel, DurationModel]] = {}
        self._memo_lock = threading.Lock()

    def _learned(self, history: Sequence[Observation]) -> tuple[MemoryModel, DurationModel]:
        if not isinstance(history, list):
            return self.memory_model(history), self.duration_model(history)
        key = (id(history), len(history), id(history[-1]) if history else 0)  # an append is a miss
        with self._memo_lock:
            hit = self._memo.get(key)
        if hit is not None and hit[0] is history:
            return hit[1], hit[2]
        models = (self.memory_model(history), self.duration_model(history))
        with self._memo_lock:
            if len(self._memo) >= 256:
                self._memo.pop(next(iter(self._memo)))
            self._memo[key] = (history, *models)
        return models

    def memory_model(self, history: Sequence[Observation]) -> MemoryModel:
        """The memory fits of ``history``'s newest successful runs (None below ``min_history``)."""
        succeeded = [
            o
            for o in history
            if o.outcome == Outcome.SUCCEEDED and (o.peak_memory_bytes or 0) > 0 and o.input_bytes > 0
        ][-self.rules.history_window :]
        if len(succeeded) < self.rules.min_history:
            return MemoryModel(len(succeeded), None, None, "")
        sizes = [o.input_bytes for o in succeeded]
        peaks = [float(o.peak_memory_bytes or 0) for o in succeeded]
        fit = fit_log(sizes, peaks, self.rules.memory_quantile)
        affine = fit_affine(sizes, peaks, self.rules.memory_quantile)
        types = sorted({o.instance_type or "?" for o in succeeded})
        return MemoryModel(len(succeeded), fit, affine, types[0] if len(types) == 1 else f"{len(types)} types")

    # -- capacities

    def capacity_of(self, observation: Observation) -> int | None:
        """Memory the attempt had (all workers together); None when it cannot be known."""
        option = self.catalog.find(observation.target, observation.instance_type, observation.instance_count)
        if option is not None:
            return option.total_memory
        if observation.memory:
            try:
                return memory_bytes(observation.memory) * max(1, observation.instance_count)
            except QuantityError:
                return None
        return None

    def _candidates(self, request: SizingRequest) -> list[Option]:
        options = self.catalog.for_target(request.target)
        declared = request.declared or {}
        gpu_needed = int(declared.get("gpu") or 0)
        declared_type = self.catalog.find(request.target, declared.get("instance_type"))
        if declared_type is not None and declared_type.gpu:
            gpu_needed = max(gpu_needed, declared_type.gpu)
        options = [o for o in options if (o.gpu >= gpu_needed if gpu_needed else o.gpu == 0)]
        if request.target == SizingTarget.SAGEMAKER:
            count = max(1, int(declared.get("instance_count") or 1))
            options = [o.with_count(count) for o in options]
        return options

    # -- predictions

    def _oom_floor(self, history: Sequence[Observation], input_bytes: int, slope: float) -> tuple[float, str]:
        """The least memory the OOMs in ``history`` prove the current input needs (0 without OOMs)."""
        floor = 0.0
        note = ""
        for obs in history:
            if obs.outcome != Outcome.OOM:
                continue
            capacity = self.capacity_of(obs)
            if capacity is None or obs.input_bytes <= 0 or input_bytes <= 0:
                continue
            scaled = capacity * OOM_STEP * (input_bytes / obs.input_bytes) ** slope
            if scaled > floor:
                floor = scaled
                note = f"OOM on {obs.instance_type or format_bytes(capacity)} at {format_bytes(obs.input_bytes)}"
        return floor, note

    def predict_memory(
        self, request: SizingRequest, history: Sequence[Observation], related: Sequence[Observation] = ()
    ) -> Prediction:
        model = self._learned(history)[0]
        where = f"{request.pipeline}/{request.task}"
        fit, affine = model.fit, model.affine
        if fit is not None and request.input_bytes > 0:
            # Two robust laws, a power law and an overhead-plus-per-byte line: where they
            # disagree (typically on a spike beyond most history), the larger one is trusted.
            peak = fit.predict(request.input_bytes, quantile=True, cautious=True)
            typical = fit.predict(request.input_bytes, cautious=True)
            if affine is not None:
                peak = max(peak, affine.predict(request.input_bytes, quantile=True))
                typical = max(typical, affine.predict(request.input_bytes))
            basis = f"learned peak {format_bytes(peak)} from {fit.n} runs on {model.types} (R² {fit.r2:.2f})"
            return Prediction(peak, basis, "policy", fit, typical)
        overhead = self.rules.process_overhead_bytes
        if request.bytes_per_row and request.input_rows > 0:
            per_row, note = float(request.bytes_per_row), "declared"
            observed = self._observed_bytes_per_row(history)
            if observed is not None:
                # The declared figure is a guess; a run of this task measured it.
                per_row, note = (
                    observed[0],
                    f"measured by {observed[1]} run(s) (declared {request.bytes_per_row:g} set aside):",
                )
            peak = per_row * request.input_rows + overhead
            learned_from = (
                f"no history of {where} yet"
                if not model.runs
                else f"{model.runs} of the {self.rules.min_history} runs of {where} needed to learn"
            )
            figure = f"{per_row:g}" if note == "declared" else f"{per_row:,.0f}"
            basis = (
                f"{note} {figure} bytes/row x {request.input_rows:,} rows = "
                f"{format_bytes(peak - overhead)} + {format_bytes(overhead)} process overhead = {format_bytes(peak)} "
                f"({learned_from})"
            )
            return Prediction(peak, basis, "policy")
        early = self._scaled_from_runs(history, request.input_bytes)
        if early is not None:
            peak, run = early
            basis = (
                f"peak {format_bytes(run.peak_memory_bytes or 0)} at {format_bytes(run.input_bytes)} scaled to "
                f"{format_bytes(peak)} ({model.runs} of the {self.rules.min_history} runs of {where} needed to learn)"
            )
            return Prediction(peak, basis, "policy")
        borrowed = self._borrowed_prior(request, related)
        if borrowed is not None:
            peak, tasks = borrowed
            basis = (
                f"no history of {where} yet; borrowed the highest peak per input byte of {tasks} = {format_bytes(peak)}"
            )
            return Prediction(peak, basis, "policy")
        history_note = "no history" if not model.runs else f"only {model.runs} run(s) of history"
        factor_note = "no bytes_per_row" if not request.bytes_per_row else "no row count"
        return Prediction(None, f"{history_note} and {factor_note} for {where}", "rules")

    @staticmethod
    def _succeeded(history: Sequence[Observation]) -> list[Observation]:
        return [
            o
            for o in history
            if o.outcome == Outcome.SUCCEEDED and (o.peak_memory_bytes or 0) > 0 and o.input_bytes > 0
        ]

    def _observed_bytes_per_row(self, history: Sequence[Observation]) -> tuple[float, int] | None:
        """Bytes per input row the task's successful runs used over the process overhead (the most
        any run used), and how many runs say so; None before a run with rows succeeded."""
        runs = [o for o in self._succeeded(history) if o.input_rows and o.input_rows > 0]
        if not runs:
            return None
        overhead = self.rules.process_overhead_bytes
        return max(max(float(o.peak_memory_bytes or 0) - overhead, 0.0) / float(o.input_rows) for o in runs), len(runs)

    def _scaled_from_runs(self, history: Sequence[Observation], input_bytes: int) -> tuple[float, Observation] | None:
        """Before a fit can be trusted, each successful run of a task with no ``bytes_per_row`` still
        bounds the need: its peak scaled linearly to today's input (never down), the largest."""
        runs = self._succeeded(history)
        if not runs or input_bytes <= 0:
            return None
        scaled = [(float(o.peak_memory_bytes or 0) * max(input_bytes / o.input_bytes, 1.0), o) for o in runs]
        return max(scaled, key=lambda item: item[0])

    def _borrowed_prior(self, request: SizingRequest, related: Sequence[Observation]) -> tuple[float, str] | None:
        """A new task's prior from the other tasks of its pipeline on the same target: the highest
        peak per input byte they showed, applied to this input (cautious: one OOM at most teaches
        the rest)."""
        if request.input_bytes <= 0:
            return None
        runs = [
            o
            for o in self._succeeded(related)
            if o.task != request.task and o.target == request.target and o.pipeline == request.pipeline
        ]
        if not runs:
            return None
        ratio = max(float(o.peak_memory_bytes or 0) / o.input_bytes for o in runs)
        names = sorted({o.task for o in runs})
        label = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        return ratio * request.input_bytes + self.rules.process_overhead_bytes, f"{request.pipeline}/{{{label}}}"

    def duration_model(self, history: Sequence[Observation]) -> DurationModel:
        """Duration fits from ``history``, built once per decision and asked once per option."""
        usable = [o for o in history if o.outcome == Outcome.SUCCEEDED and o.duration_seconds > 0 and o.input_bytes > 0]
        usable = usable[-self.rules.history_window :]
        by_type: dict[tuple[str, int], list[Observation]] = {}
        for obs in usable:
            by_type.setdefault((obs.instance_type or "", obs.instance_count), []).append(obs)
        per_type: dict[tuple[str, int], LogFit] = {}
        for key, runs in by_type.items():
            if key[0] and len(runs) >= self.rules.min_history:
                fit = fit_log([o.input_bytes for o in runs], [o.duration_seconds for o in runs])
                if fit is not None:
                    per_type[key] = fit
        cores_of: dict[tuple[str, int], float] = {}
        for obs in usable:
            ran_on = self.catalog.find(obs.target, obs.instance_type, obs.instance_count)
            cores_of[(obs.instance_type or "", obs.instance_count)] = (
                ran_on.total_vcpu if ran_on is not None else _cpu_of(obs)
            )
        target = usable[-1].target if usable else SizingTarget.POD
        measured = self._learned_scaling(per_type, cores_of, usable)
        alpha = measured if measured is not None else self.rules.scaling_for(target)
        sizes: list[float] = []
        work: list[float] = []
        for obs in usable:
            cores = cores_of[(obs.instance_type or "", obs.instance_count)]
            if cores:
                sizes.append(obs.input_bytes)
                work.append(obs.duration_seconds * cores**alpha)
        pooled = fit_log(sizes, work) if len(sizes) >= self.rules.min_history else None
        return DurationModel(per_type, pooled, alpha)

    @staticmethod
    def _learned_scaling(
        per_type: dict[tuple[str, int], LogFit], cores_of: dict[tuple[str, int], float], usable: Sequence[Observation]
    ) -> float | None:
        """How duration falls with vCPUs, measured once two sizes each have their own fit:
        the median over pairs of ``-dlog(duration)/dlog(vCPU)`` at the median input, in [0, 1]."""
        fitted = [(cores_of.get(key, 0.0), fit) for key, fit in per_type.items() if cores_of.get(key, 0.0) > 0]
        if len(fitted) < 2:
            return None
        reference = median([float(o.input_bytes) for o in usable])
        estimates = []
        for i, (cores_a, fit_a) in enumerate(fitted):
            for cores_b, fit_b in fitted[i + 1 :]:
                if abs(math.log(cores_a / cores_b)) > 0.1:
                    ratio = math.log(fit_a.predict(reference) / fit_b.predict(reference))
                    estimates.append(min(max(-ratio / math.log(cores_a / cores_b), 0.0), 1.0))
        return median(estimates) if estimates else None

    # -- the decision

    def decide(
        self,
        request: SizingRequest,
        history: Sequence[Observation] = (),
        related: Sequence[Observation] | Callable[[], Sequence[Observation]] = (),
    ) -> SizingDecision:
        """The size for ``request``, given the task's past observations (any order) and, for a
        task with none, the other tasks' of its pipeline (``related``: a list, or a function that
        reads it, called only when needed)."""
        candidates = self._candidates(request)
        if not candidates:
            return SizingDecision(
                target=request.target,
                instance_type=str((request.declared or {}).get("instance_type") or ""),
                reason=f"the catalog has no {request.target} options; using the declared resources",
                source="default",
            )
        if callable(related):
            related = related() if not self._succeeded(history) else ()
        prediction = self.predict_memory(request, history, related)
        slope = prediction.memory_fit.slope if prediction.memory_fit else 1.0
        floor, floor_note = self._oom_floor(history, request.input_bytes, slope)
        failed_capacity = 0
        if (request.previous_outcome or "").lower() == Outcome.OOM:
            declared_count = int((request.declared or {}).get("instance_count") or 1)
            count = request.previous_instance_count or declared_count
            previous = self.catalog.find(request.target, request.previous_instance_type, count)
            if previous is None and request.previous_instance_type is None:
                previous = self._declared_option(request)
            if previous is not None:
                previous = previous.with_count(max(1, count)) if request.target != SizingTarget.POD else previous
                failed_capacity = previous.total_memory
                if failed_capacity * OOM_STEP > floor:
                    floor = failed_capacity * OOM_STEP
                    floor_note = f"attempt {request.attempt - 1} ran out of memory on {previous.label}"
        elif not request.previous_outcome:
            earlier = self.earlier_oom(request, history)
            if earlier is not None:
                failed_capacity, label, attempt = earlier
                if failed_capacity * OOM_STEP >= floor:  # on a tie, say it is this run's retry
                    floor = failed_capacity * OOM_STEP
                    floor_note = f"attempt {attempt} of run {request.run_id} ran out of memory on {label}"

        size_text = format_bytes(request.input_bytes) + " input" if request.input_bytes else "input size unknown"
        if prediction.memory is not None or floor > 0:
            memory = max(prediction.memory or 0.0, floor)
            basis = prediction.basis if prediction.memory is not None else floor_note
            if floor > (prediction.memory or 0.0) and prediction.memory is not None:
                basis += f", raised to {format_bytes(floor)} by {floor_note}"
            source = prediction.source if prediction.memory is not None else "policy"
            need = memory * self.rules.headroom
            if prediction.typical is not None and prediction.memory is not None and floor <= prediction.memory:
                # Headroom over the typical peak, and the high-quantile peak covered too: stacking
                # both margins would buy memory no run ever used. Once enough runs measure the
                # spread, the measured high quantile replaces the blanket headroom (never under
                # LEARNED_MIN_HEADROOM): 30% over a peak that varies 5% cost 10-15% over the oracle.
                fitted = prediction.memory_fit
                margin = LEARNED_MIN_HEADROOM if fitted is not None and fitted.n >= SPREAD_RUNS else self.rules.headroom
                need = max(prediction.typical * margin, memory * QUANTILE_MARGIN)
            escalation = self._escalation(request, candidates, failed_capacity)
            if escalation is not None and escalation[0] > need:
                need = escalation[0]
                basis += f"; {escalation[1]}"
            return self._choose(
                request, history, candidates, memory, need, f"{size_text}; {basis}", source, failed_capacity
            )
        return self._fallback(request, candidates, f"{size_text}; {prediction.basis}", failed_capacity)

    @staticmethod
    def _escalation(request: SizingRequest, candidates: list[Option], failed: int) -> tuple[float, str] | None:
        """After an OOM, the memory the retry needs so that the attempts left reach the largest
        size: the last one gets it, earlier ones grow geometrically towards it (at most
        :data:`MAX_ESCALATION` per retry). None when the attempts left are unknown or no bigger
        size exists: a run must never fail on memory while a bigger size was there to try."""
        if not failed or request.retries_left is None:
            return None
        largest = max(o.total_memory for o in candidates)
        if largest <= failed:
            return None
        if request.retries_left <= 0:
            return float(largest), f"the last attempt gets the largest size ({format_bytes(largest)})"
        factor = min((largest / failed) ** (1 / (request.retries_left + 1)), MAX_ESCALATION)
        left = f"{request.retries_left} retr{'y' if request.retries_left == 1 else 'ies'} left"
        return failed * max(factor, OOM_STEP), f"x{max(factor, OOM_STEP):.1f} after the OOM ({left})"

    def earlier_oom(self, request: SizingRequest, history: Sequence[Observation]) -> tuple[int, str, int] | None:
        """The memory, label and attempt of this run's latest attempt of the task when it ran out
        of memory (None otherwise), read from ``history`` rather than from attempt numbers.

        Argo retries a sized task without telling the sizing node how the last try ended; the
        watcher records an OOM-killed pod as an observation of the run, so the newest
        observation of the same run says whether this request is a retry after an OOM.
        """
        latest = None
        for obs in history:  # oldest first: the last one of this run is its latest attempt
            if obs.run_id == request.run_id and obs.pipeline == request.pipeline and obs.task == request.task:
                latest = obs
        if latest is None or latest.outcome != Outcome.OOM:
            return None
        capacity = self.capacity_of(latest)
        if capacity is None:
            return None
        option = self.catalog.find(latest.target, latest.instance_type, latest.instance_count)
        label = option.label if option is not None else format_bytes(capacity)
        return capacity, label, latest.attempt

    def _declared_option(self, request: SizingRequest) -> Option | None:
        declared = request.declared or {}
        found = self.catalog.find(
            request.target, declared.get("instance_type"), int(declared.get("instance_count") or 1)
        )
        if found is not None or request.target != SizingTarget.POD or not declared.get("memory"):
            return found
        try:
            memory = memory_bytes(str(declared["memory"]))
        except QuantityError:
            return None
        return Option(SizingTarget.POD, "declared", 0.0, memory, 0, 0.0)

    def _choose(
        self,
        request: SizingRequest,
        history: Sequence[Observation],
        candidates: list[Option],
        memory: float,
        need: float,
        basis: str,
        source: str,
        failed_capacity: int,
    ) -> SizingDecision:
        headroom_pct = round((self.rules.headroom - 1) * 100)
        scored: list[tuple[float, Option, float | None, bool, bool]] = []
        durations = self._learned(history)[1]
        for option in candidates:
            duration = durations.predict(request.input_bytes, option)
            fits = option.total_memory >= need and option.total_memory > failed_capacity
            on_time = duration is None or request.deadline_seconds is None or duration <= request.deadline_seconds
            cost = option.total_hourly * duration / 3600 if duration is not None else option.total_hourly
            scored.append((cost, option, duration, fits, on_time))
        good = [s for s in scored if s[3] and s[4]]
        if good:
            cost, option, duration, _, _ = min(good, key=lambda s: (s[0], s[1].total_memory, s[1].total_hourly))
            verdict = f"{option.label} is the cheapest that fits with {headroom_pct}% headroom"
            if request.deadline_seconds is not None and duration is not None:
                verdict += f" and meets the {format_duration(request.deadline_seconds)} deadline"
        else:
            fitting = [s for s in scored if s[3]]
            if fitting:
                cost, option, duration, _, _ = min(fitting, key=lambda s: (s[2] or 0.0, s[0]))
                verdict = (
                    f"no option meets the {format_duration(request.deadline_seconds or 0)} deadline; "
                    f"{option.label} is the fastest that fits"
                )
            else:
                cost, option, duration, _, _ = max(scored, key=lambda s: (s[1].total_memory, -s[0]))
                verdict = f"nothing fits {format_bytes(need)}; {option.label} is the largest in the catalog"
        return self._decision(request, option, memory, duration, basis + "; " + verdict, source)

    def _fallback(
        self, request: SizingRequest, candidates: list[Option], basis: str, failed_capacity: int
    ) -> SizingDecision:
        rule = self.rules.match(request.pipeline, request.task, request.target)
        option: Option | None = None
        if rule is not None and request.input_bytes > 0:
            step = rule.step_for(request.input_bytes)
            option = self.catalog.find(request.target, step.instance_type, step.instance_count)
            limit = "any size" if step.up_to_bytes is None else f"<= {format_bytes(step.up_to_bytes)}"
            source = "rules"
            verdict = f"rule for {request.target} inputs {limit} ({self.rules.source.rsplit('/', 1)[-1]})"
        if option is None:
            source = "default"
            declared = self._declared_option(request)
            if declared is not None and declared.instance_type != "declared":
                option, verdict = declared, "the declared size (no matching rule)"
            else:
                option = self.catalog.default(request.target)
                verdict = "the catalog's safe default (no matching rule)"
                if declared is not None:
                    option = min(
                        (o for o in candidates if o.total_memory >= declared.total_memory),
                        key=lambda o: o.total_hourly,
                        default=option,
                    )
                    verdict = "the cheapest catalog size holding the declared memory (no matching rule)"
        if option.total_memory <= failed_capacity:
            bigger = [o for o in candidates if o.total_memory > failed_capacity * OOM_STEP]
            if bigger:
                option = min(bigger, key=lambda o: (o.total_hourly, o.total_memory))
                verdict += f", one size up after an OOM on {format_bytes(failed_capacity)}"
        return self._decision(request, option, None, None, f"{basis}; {option.label}: {verdict}", source)

    def _decision(
        self,
        request: SizingRequest,
        option: Option,
        memory: float | None,
        duration: float | None,
        reason: str,
        source: str,
    ) -> SizingDecision:
        cost = option.total_hourly * duration / 3600 if duration is not None else None
        tail = f": ${option.total_hourly:.2f}/h"
        if duration is not None:
            tail += f", ~{format_duration(duration)}"
        pod = request.target == SizingTarget.POD
        return SizingDecision(
            target=request.target,
            instance_type=option.instance_type,
            instance_count=option.count,
            cpu=format_cpu(option.vcpu) if pod else None,
            memory=format_memory(option.memory_bytes) if pod else None,
            predicted_duration_seconds=round(duration, 1) if _finite(duration) else None,
            # A prediction past 2^63 bytes (an input declared absurdly big) is "at least that".
            predicted_peak_memory_bytes=min(int(memory), 2**63 - 1) if _finite(memory) else None,
            # Four significant digits: a task of seconds costs millionths of a dollar, not $0.0000.
            predicted_cost_usd=float(f"{cost:.4g}") if _finite(cost) else None,
            reason=reason + tail,
            source=source,
        )


def _finite(value: float | None) -> TypeGuard[float]:
    return value is not None and math.isfinite(value)


def _cpu_of(observation: Observation) -> float:
    if not observation.cpu:
        return 0.0
    try:
        from steps.core.quantities import cpu_cores

        return cpu_cores(observation.cpu) * max(1, observation.instance_count)
    except QuantityError:
        return 0.0
