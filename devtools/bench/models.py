"""What the benchmark passes between its parts and writes out: pydantic models, so the JSON it
prints (``--json``) and the files its child processes hand back are checked on the way in."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

SINGLE_CONNECTION = "single-connection"
"""The baseline measurement's run: OurAPI's real requests/s one at a time (``limit.py``)."""


class Workload(BaseModel):
    """The fixed, seeded world every run replays: BigChat's history up to ``frozen_at``."""

    model_config = ConfigDict(frozen=True)

    seed: int
    epoch: float
    """Unix time the world began; a constant, so every bench replays the same history."""
    frozen_at: float
    """BigChat's clock stands still here: the workload is exactly what happened by then."""
    conversation_rate: float
    page_size: int
    events: int
    """Events /events serves for [epoch, frozen_at]: what every run must apply."""
    conversations: int
    starts: int
    messages: int
    transfers: int
    ends: int
    advisors: int
    """Distinct advisors a chat is ever assigned to: the agents OurAPI must end up holding."""

    @property
    def end(self) -> float:
        """A cursor at or past this has fetched the whole workload."""
        return self.frozen_at + 1

    @property
    def conversation_ids(self) -> list[int]:
        return list(range(1, self.conversations + 1))


class Applied(BaseModel):
    """One applied event, as the naive baseline reports it."""

    event_at: float
    finished_at: float


class NaiveOutput(BaseModel):
    """What ``python -m devtools.bench.naive`` writes when it is done."""

    applied: list[Applied]
    errors: list[str] = Field(default_factory=list)


class SingleConnection(BaseModel):
    """What ``python -m devtools.bench.limit`` writes: OurAPI one request at a time."""

    requests: int
    """Timed requests (``POST /chats/{id}/messages``), after ``warmup`` untimed ones."""
    warmup: int
    seconds: float
    requests_per_s: float
    ms_per_request: float
    """Mean: ``seconds / requests``."""
    p50_ms: float
    p99_ms: float
    errors: list[str] = Field(default_factory=list)


class RequestCount(BaseModel):
    """One line of OurAPI's ``GET /_standin/stats``."""

    method: str
    route: str
    status: int
    count: int


class OurApiStats(BaseModel):
    total: int
    requests: list[RequestCount]

    def count(self, method: str, route: str, *, ok_only: bool = True) -> int:
        return sum(
            r.count
            for r in self.requests
            if r.method == method and r.route == route and (not ok_only or r.status < 300)
        )


class BigChatStats(BaseModel):
    total: int


class RunResult(BaseModel):
    """One line of the report; the first nine fields are the issue's ``--json`` shape."""

    name: str
    events: int
    events_per_s: float
    requests_per_event: float
    lag_p50_s: float
    lag_p99_s: float
    cpu_s_per_1000_events: float
    peak_rss_mb: float
    verified: bool
    # Extras, for reading the figures above.
    expected_events: int
    wall_s: float
    ourapi_requests: int
    bigchat_requests: int
    bigchat_requests_per_event: float
    cpu_s: float
    rss_growth_mb: float | None = None
    """RSS when the last event was applied minus RSS once a tenth were (None if not sampled)."""
    concurrency: int = 1
    ourapi_max_in_flight: int = 1
    dead: int = 0
    exit_code: int | None = None
    verify_detail: str = ""
    requests_by_route: dict[str, int] = Field(default_factory=dict)
    # The single-connection run's own figures (None, and left out of the JSON, for the others).
    requests_per_s: float | None = None
    ms_per_request: float | None = None
    # The distributed rows' own (None, and left out of the JSON, for the others).
    workers: int | None = None
    """Worker processes in the several-workers mode."""
    partitions: int | None = None
    settle_s: float | None = None
    """Seconds from starting the workers until they had split the partitions (not measured)."""
    startup_cpu_s: float | None = None
    """The workers' CPU until then (imports, joining), left out of ``cpu_s``."""
    machine_cpu_busy: float | None = None
    """Share of the machine's CPU (all cores, every process) busy while the run worked."""
    standins_cpu_s: float | None = None
    """BigChat's and OurAPI's stand-ins' CPU while the run worked (they share the machine)."""
    postgres_cpu_s: float | None = None
    """The CPU of the PostgreSQL backends of the run's database meanwhile (a local server)."""
    nats_cpu_s: float | None = None
    """The local nats-server's CPU meanwhile (all its clients')."""
    other_cpu_s: float | None = None
    """The machine's busy CPU meanwhile that none of the above accounts for: other programs, the
    kernel, PostgreSQL's background processes. Large: the row shared the machine."""
    published_per_s: float | None = None
    """Entries the one poller published to JetStream per second: the ceiling of what the
    workers can apply together."""


class Target(BaseModel):
    name: str
    wanted: str
    measured: str
    met: bool | None
    """None: the runs it needs were not part of this bench."""


class BenchReport(BaseModel):
    workload: Workload
    latency_ms: float
    runs: list[RunResult]
    targets: list[Target] = Field(default_factory=list)
    lag_definition: str = (
        "finished_at - max(event_at, run start): the backlog is pre-generated, so an event's "
        "lag counts from when the run began, or from when it happened if later"
    )
