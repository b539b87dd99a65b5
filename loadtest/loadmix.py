"""What the Locust users send: the pool mix, the job kinds and their parameters, the shape.

This module never imports locust (locust monkey-patches with gevent on import), so the
launcher and the tests can use it too. The options come from locust's command line or the
environment (``POOLLAB_LOAD_*``), and are checked here against the same job catalogue the
producer validates with, so a bad mix fails before the first job is sent.

The user's own jobs are kinds too: ``user:MODULE:FUNCTION`` (e.g. ``user:mypkg.tasks:resize``)
sends that registered job, with ``--load-user-params`` as its keyword arguments (or, per
job, ``--load-params '{"user:mypkg.tasks:resize": {...}}'``). Only the spec's form is checked
here; whether it is registered is the producer's (422) and the workers' business: nothing of
the user's code is imported by the load generator.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from poollab import jobs, userjobs
from poollab.settings import ALL_POOLS

# what each kind gets unless --load-params says otherwise: small enough that a 20 s run
# completes many jobs per pool, big enough that the kinds differ (cpu ≈ 10-25 ms of GIL,
# io = one 50 ms round trip to the upstream)
DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "noop": {"x": 1},
    "sleep": {"ms": 50},
    "cpu": {"n": 100_000},
    "io": {"ms": 50},
    "mixed": {"n": 50_000, "ms": 50},
}
DEFAULT_KINDS = "io,cpu"
DEFAULT_JOB_TIMEOUT_S = 30.0
USER_PREFIX = f"{userjobs.USER_KIND}:"
SHAPES = ("constant", "step")
ASSIGNMENTS = ("pool", "round-robin")


class MixError(ValueError):
    """A pool mix, kind list or parameter set that cannot be run."""


@dataclass(frozen=True)
class Job:
    pool: str
    # a catalogue kind, or user:MODULE:FUNCTION
    kind: str
    params: dict[str, Any]

    @property
    def name(self) -> str:
        """The request name in Locust's table: one row per pool and kind."""
        return f"{self.pool}:{self.kind}"

    @property
    def user_spec(self) -> str | None:
        """MODULE:FUNCTION of a user job, else None."""
        return self.kind.removeprefix(USER_PREFIX) if self.kind.startswith(USER_PREFIX) else None

    @property
    def task_name(self) -> str:
        """The task it is sent as by name: ``poollab.<kind>`` or ``poollab.user.<m>.<f>``."""
        spec = self.user_spec
        if spec is None:
            return jobs.CATALOGUE[self.kind].task_name
        module, function = userjobs.parse_spec(spec)
        return f"{userjobs.USER_TASK_PREFIX}{module}.{function}"

    def request_body(self) -> dict[str, Any]:
        """What ``POST /jobs`` takes for it."""
        spec = self.user_spec
        if spec is None:
            return {"pool": self.pool, "kind": self.kind, "params": self.params}
        return {"pool": self.pool, "kind": userjobs.USER_KIND, "task": spec, "params": self.params}


@dataclass(frozen=True)
class Mix:
    """What the users send: a slot per pool (repeated by its weight), a job per kind in each."""

    slots: tuple[tuple[Job, ...], ...]
    timeout_s: float
    assign: str = "pool"

    @property
    def jobs(self) -> tuple[Job, ...]:
        return tuple(job for slot in self.slots for job in slot)

    @property
    def names(self) -> list[str]:
        return sorted({job.name for job in self.jobs})

    def turns(self, offset: int, limit: int | None = None) -> Iterator[Job]:
        """Every pool's jobs in round-robin order, starting at ``offset``."""
        jobs = self.jobs
        ring = itertools.islice(itertools.cycle(jobs), offset % len(jobs), None)
        return itertools.islice(ring, limit)

    def for_user(self, number: int, limit: int | None = None) -> Iterator[Job]:
        """The jobs the ``number``-th user of a class sends, one after another.

        ``assign="pool"`` (the default) pins each user to one pool, users spread over the
        slots in turn: each pool then has its own closed loop of users, and its jobs/s is
        its own (users / latency), not held to the slowest pool's pace as it would be if
        every user went through every pool. Such a user cycles through the kinds.
        ``assign="round-robin"``: each user goes through every pool and kind in turn.
        Round robin rather than random choice either way: a short run sends every job of
        the mix as soon as there are as many users as slots.
        """
        if self.assign == "round-robin":
            return self.turns(number, limit)
        slot = self.slots[number % len(self.slots)]
        start = (number // len(self.slots)) % len(slot)
        ring = itertools.islice(itertools.cycle(slot), start, None)
        return itertools.islice(ring, limit)


def parse_pools(text: str) -> list[tuple[str, int]]:
    """``prefork,gevent:3`` → [("prefork", 1), ("gevent", 3)]: a weight repeats a pool's slot."""
    pools: list[tuple[str, int]] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, _, weight_text = part.partition(":")
        if name not in ALL_POOLS:
            raise MixError(f"unknown pool {name!r}; choose from {', '.join(ALL_POOLS)}")
        try:
            weight = int(weight_text) if weight_text else 1
        except ValueError:
            raise MixError(f"pool weight must be an integer: {part!r}") from None
        if not 1 <= weight <= 100:
            raise MixError(f"pool weight must be 1..100: {part!r}")
        pools.append((name, weight))
    if not pools:
        raise MixError("no pool given")
    return pools


def parse_kinds(text: str) -> list[str]:
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in jobs.CATALOGUE and not k.startswith(USER_PREFIX)]
    if unknown or not kinds:
        raise MixError(
            f"unknown job kind {unknown or text!r}; choose from {', '.join(jobs.KINDS)} "
            "or user:MODULE:FUNCTION"
        )
    for kind in kinds:
        if kind.startswith(USER_PREFIX):
            try:
                userjobs.parse_spec(kind.removeprefix(USER_PREFIX))
            except userjobs.UserJobError as exc:
                raise MixError(f"job kind {kind!r}: {exc}") from None
    return kinds


def parse_user_params(text: str) -> dict[str, Any]:
    """``--load-user-params``: one JSON object, the keyword arguments of every user job."""
    if not text.strip():
        return {}
    try:
        given = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MixError(f"user params are not JSON: {exc}") from None
    if not isinstance(given, dict):
        raise MixError('user params must be a JSON object, e.g. {"size": 10}')
    return given


def parse_params(
    text: str, kinds: list[str], user_params: dict[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """Per-kind parameters: the defaults, updated from a JSON object ``{"io": {"ms": 20}}``.

    A user kind's: ``user_params``, updated from its own entry in ``text`` if it has one.
    """
    given: Any = {}
    if text.strip():
        try:
            given = json.loads(text)
        except json.JSONDecodeError as exc:
            raise MixError(f"params are not JSON: {exc}") from None
    if not isinstance(given, dict) or not all(isinstance(v, dict) for v in given.values()):
        raise MixError('params must be a JSON object of objects, e.g. {"io": {"ms": 20}}')
    unknown = sorted(set(given) - set(jobs.CATALOGUE) - set(kinds))
    if unknown:
        raise MixError(f"params for unknown kind(s): {', '.join(unknown)}")
    params: dict[str, dict[str, Any]] = {}
    for kind in kinds:
        if kind.startswith(USER_PREFIX):
            # checked against the callable by the producer (422) or the worker (a failure)
            params[kind] = {**(user_params or {}), **given.get(kind, {})}
            continue
        merged = {**DEFAULT_PARAMS[kind], **given.get(kind, {})}
        try:
            # the same model the producer validates with: refused here, not by every job
            jobs.CATALOGUE[kind].params.model_validate(merged)
        except ValidationError as exc:
            raise MixError(f"params for {kind}: {exc.errors()[0]['msg']}") from None
        params[kind] = merged
    return params


def build_mix(
    pools: str,
    kinds: str,
    params: str,
    timeout_s: float,
    assign: str = "pool",
    user_params: str = "",
) -> Mix:
    if not 0 < timeout_s <= 600:
        raise MixError("job timeout must be in (0, 600] seconds")
    if assign not in ASSIGNMENTS:
        raise MixError(f"assign must be one of {', '.join(ASSIGNMENTS)}, not {assign!r}")
    kind_list = parse_kinds(kinds)
    kind_params = parse_params(params, kind_list, parse_user_params(user_params))
    slots = tuple(
        tuple(Job(pool, kind, kind_params[kind]) for kind in kind_list)
        for pool, weight in parse_pools(pools)
        for _ in range(weight)
    )
    return Mix(slots, timeout_s, assign)


def mix_from_options(options: Any) -> Mix:
    """The mix from locust's parsed options (the attributes that add_arguments defines)."""
    return build_mix(
        options.load_pools,
        options.load_kinds,
        options.load_params,
        options.load_job_timeout,
        getattr(options, "load_assign", "pool"),
        getattr(options, "load_user_params", ""),
    )


def default_pools() -> str:
    return ",".join(ALL_POOLS)


def add_arguments(parser: Any) -> None:
    """Locust's custom options; each also reads a ``POOLLAB_LOAD_*`` variable.

    ``parser`` is locust's configargparse parser (``env_var`` and ``include_in_web_ui`` are
    its keywords, known to the parser itself, not to an argument group); the options travel
    from a master to its workers with the run, and show in the web UI's form.
    """
    parser.add_argument(
        "--load-pools", env_var="POOLLAB_LOAD_POOLS", default=default_pools(),
        help="comma-separated pools, each with an optional weight: prefork,gevent:3",
    )  # fmt: skip
    parser.add_argument(
        "--load-kinds", env_var="POOLLAB_LOAD_KINDS", default=DEFAULT_KINDS,
        help=f"comma-separated job kinds ({', '.join(jobs.KINDS)}, or user:MODULE:FUNCTION "
        f"for a job registered from POOLLAB_JOBS); default {DEFAULT_KINDS}",
    )  # fmt: skip
    parser.add_argument(
        "--load-user-params", env_var="POOLLAB_LOAD_USER_PARAMS", default="",
        help='JSON object: the keyword arguments of every user:... kind, e.g. {"size": 10}',
    )  # fmt: skip
    parser.add_argument(
        "--load-params", env_var="POOLLAB_LOAD_PARAMS", default="",
        help='JSON per kind over the defaults, e.g. {"io": {"ms": 20}, "cpu": {"n": 50000}}',
    )  # fmt: skip
    parser.add_argument(
        "--load-assign", env_var="POOLLAB_LOAD_ASSIGN", choices=ASSIGNMENTS, default="pool",
        help="pool: each user keeps to one pool (default); round-robin: each goes through all",
    )  # fmt: skip
    parser.add_argument(
        "--load-job-timeout", env_var="POOLLAB_LOAD_JOB_TIMEOUT", type=float,
        default=DEFAULT_JOB_TIMEOUT_S,
        help="seconds a user waits for one job's result before it counts as failed",
    )  # fmt: skip
    parser.add_argument(
        "--load-ids-file", env_var="POOLLAB_LOAD_IDS_FILE", default="",
        include_in_web_ui=False,
        help="append 'via<TAB>pool:kind<TAB>job id<TAB>ok|error' per job here (for checks)",
    )  # fmt: skip
    parser.add_argument(
        "--load-shape", env_var="POOLLAB_LOAD_SHAPE", choices=SHAPES, default="constant",
        help="constant: -u users throughout; step: add --step-users every --step-time s",
    )  # fmt: skip
    parser.add_argument(
        "--step-users", env_var="POOLLAB_LOAD_STEP_USERS", type=int, default=5,
        help="users added at each step of the step shape",
    )  # fmt: skip
    parser.add_argument(
        "--step-time", env_var="POOLLAB_LOAD_STEP_TIME", type=float, default=10.0,
        help="seconds each step of the step shape lasts",
    )  # fmt: skip
    parser.add_argument(
        "--step-max-users", env_var="POOLLAB_LOAD_STEP_MAX_USERS", type=int, default=50,
        help="the step shape's last step; it holds that for one step, then stops",
    )  # fmt: skip


class IdsFile:
    """Every job a user reported, one line each, so a check can find each one's result.

    Opened on the first line and line-buffered: a run stopped at any point leaves whole
    lines. One file per Locust process (pass a different path to each worker).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._handle: Any = None

    def record(self, via: str, job: Job, job_id: str | None, failed: bool) -> None:
        if not self.path or job_id is None:
            return
        if self._handle is None:
            self._handle = open(self.path, "a", buffering=1)  # noqa: SIM115 (kept open)
        self._handle.write(f"{via}\t{job.name}\t{job_id}\t{'error' if failed else 'ok'}\n")

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def constant_tick(
    elapsed_s: float, users: int, spawn_rate: float, run_time_s: float | None
) -> tuple[int, float] | None:
    if run_time_s and elapsed_s >= run_time_s:
        return None
    return users, spawn_rate


def step_tick(
    elapsed_s: float,
    step_users: int,
    step_time_s: float,
    max_users: int,
    run_time_s: float | None,
) -> tuple[int, float] | None:
    """Users for a step ramp at ``elapsed_s``: step_users, 2×, 3× ... up to max_users.

    Each step holds step_time_s so the throughput at that level settles; the run stops
    after the top step (or at run_time_s, whichever comes first), so it is bounded even
    without -t. Plotting throughput per step shows where a pool saturates: the step
    after which more users add latency but no throughput.
    """
    if step_users < 1 or step_time_s <= 0 or max_users < 1:
        raise MixError("step shape needs step users ≥ 1, step time > 0 and max users ≥ 1")
    steps = math.ceil(max_users / step_users)
    if elapsed_s >= steps * step_time_s or (run_time_s and elapsed_s >= run_time_s):
        return None
    step = int(elapsed_s // step_time_s) + 1
    users = min(step * step_users, max_users)
    # spawn the whole step within a tenth of it, so most of the step runs at full level
    return users, max(1.0, step_users / max(step_time_s / 10, 0.1))
