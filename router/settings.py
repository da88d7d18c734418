"""Process settings, read once from the environment and validated at startup.

Every setting is named exactly as the environment variable (and the Function app setting) that
sets it, so an error message points at the variable to fix.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping
from functools import cached_property
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from router.callers.modes import check_entra_settings, parse_auth_modes
from router.classifiers import names
from router.endpoint_policy import DEFAULT_SUFFIXES, LOOPBACK_HOSTS, EndpointPolicy, parse_suffixes
from router.errors import SettingsError

_TABLE_NAME = r"^[A-Za-z][A-Za-z0-9]{2,62}$"
# Azure's front ends end every HTTP response after 230 s, whatever the plan or functionTimeout
# (learn.microsoft.com/azure/azure-functions/functions-scale#timeout); a request's budget stays below it,
# with room for classification, the cost record and the host's proxy hop.
HTTP_RESPONSE_LIMIT_S = 230.0
MAX_REQUEST_TIMEOUT_S = 220.0
# NCRONTAB (six fields, seconds first), as the Functions timer trigger reads it.
_NCRONTAB = r"^\S+( \S+){5}$"


class Settings(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    # Azure OpenAI
    AZURE_OPENAI_ENDPOINT: str | None = Field(
        None, description="Default Azure OpenAI endpoint (https://<name>.openai.azure.com)."
    )
    AZURE_OPENAI_API_VERSION: str = Field("2024-10-21", min_length=1)
    ALLOWED_ENDPOINT_SUFFIXES: str = Field(
        DEFAULT_SUFFIXES,
        description="Comma list of host suffixes a model endpoint (which gets the managed identity's "
        "token) must end with.",
    )
    ALLOW_LOOPBACK_ENDPOINTS: bool = Field(
        False, description="Accept http(s)://localhost|127.0.0.1|[::1] endpoints: local runs and tests only."
    )
    AZURE_CLIENT_ID: str | None = Field(
        None, description="Client id of the user-assigned managed identity; unset = DefaultAzureCredential."
    )
    # Table Storage: exactly one of the two
    TABLES_ENDPOINT: str | None = Field(None, description="https://<account>.table.core.windows.net")
    TABLES_CONNECTION_STRING: str | None = Field(None, description="Azurite/local only.")
    MODELS_TABLE: Annotated[str, Field(pattern=_TABLE_NAME)] = "models"
    COSTS_TABLE: Annotated[str, Field(pattern=_TABLE_NAME)] = "costs"
    COSTS_ROLLUP_TABLE: Annotated[str, Field(pattern=_TABLE_NAME)] = Field(
        "costsdaily", description="Daily cost roll-ups for reports (recomputed for closed days)."
    )
    TABLES_CONNECT_TIMEOUT_S: float = Field(
        3.0, gt=0, le=300, description="Table Storage connect timeout (the SDK's default is 300 s)."
    )
    TABLES_READ_TIMEOUT_S: float = Field(
        10.0, gt=0, le=300, description="Table Storage wait for a response (the SDK's default is 300 s)."
    )
    MODELS_TTL_SECONDS: float = Field(60.0, gt=0, le=86400)
    # Classification
    CLASSIFIER: str = Field("learned-v2", min_length=1, description="Scorer name from the registry.")
    CLASSIFIER_MODEL: str | None = Field(None, description="Judge model; default the cheapest enabled.")
    CLASSIFIER_TIMEOUT_S: float = Field(3.0, gt=0, le=60)
    JUDGE_ENABLED: bool = True
    JUDGE_LOW: float = Field(
        0.1912, ge=0, le=1, description="Scores in [LOW, HIGH] ask the judge (calibrated for learned-v2)."
    )
    JUDGE_HIGH: float = Field(0.2036, ge=0, le=1)
    JUDGE_SCALE: tuple[float, ...] = Field(
        (
            0.1912,
            0.19236,
            0.1936,
            0.19448,
            0.1956,
            0.1969,
            0.19818,
            0.1993,
            0.2005,
            0.20202,
            0.2036,
        ),
        description="The scorer's score for judge answers 0, 0.1, ..., 1 (comma list, any count >= 2, "
        "non-decreasing; by router calibrate, for learned-v2); 0,1 takes the answer as it is.",
    )
    JUDGE_CACHE_SIZE: int = Field(4096, ge=0, le=1_000_000)
    JUDGE_MAX_SHIFT: float = Field(
        0.3, ge=0, le=1, description="Most the judge may move the scorer's score, either way."
    )
    CONVERSATION_AFFINITY: bool = Field(
        True,
        description="Chat follow-ups stay on the conversation's model (its prompt cache) unless the turn "
        "needs a more capable one.",
    )
    # HTTP
    MAX_BODY_BYTES: int = Field(1_048_576, gt=0, le=100 * 1_048_576)
    REQUEST_TIMEOUT_S: float = Field(
        60.0,
        gt=0,
        le=MAX_REQUEST_TIMEOUT_S,
        description="Overall budget of one request; at most 220 s (the platform ends responses at 230 s).",
    )
    LOG_PROMPTS: bool = False
    DOCS_ENABLED: bool = Field(
        default_factory=lambda: not under_functions_host(os.environ),
        description="Serve /api/docs (Swagger UI, whose page loads its script from a public CDN). "
        "Default: off under the Functions host, on elsewhere; /api/openapi.json is always served.",
    )
    # Bill limits: what one call may ask a deployment for
    MAX_CHOICES: int = Field(4, ge=1, le=128, description="Largest `n` a chat call may ask for (else 400).")
    MAX_OUTPUT_TOKENS: int = Field(
        32768, ge=1, le=10_000_000,
        description="Largest max_tokens / max_completion_tokens: 400 on a pinned model, clamped on auto.",
    )  # fmt: skip
    MAX_UPSTREAM_BYTES: int = Field(
        8 * 1024 * 1024, ge=1024, le=1024 * 1024 * 1024,
        description="Largest upstream response body (answer, error or whole stream); beyond it 502.",
    )  # fmt: skip
    STREAM_IDLE_TIMEOUT_S: float = Field(
        30.0, gt=0, le=600, description="Longest silence between two chunks of an upstream stream."
    )
    # Reports
    REPORT_MAX_DAYS: int = Field(92, ge=1, le=3660, description="Longest from..to range a report accepts.")
    REPORT_ROLLUP_DELAY_MINUTES: int = Field(
        60, ge=0, le=10080, description="A day is rolled up once it ended this long ago; until then, scanned."
    )
    ROLLUP_SCHEDULE: Annotated[str, Field(pattern=_NCRONTAB)] = Field(
        "0 */15 * * * *", description="NCRONTAB schedule of the timer function that rolls up closed days."
    )
    ROLLUP_LOOKBACK_DAYS: int = Field(
        7, ge=1, le=92, description="How many closed days back each timer run checks for a missing roll-up."
    )
    # Reliability: fallbacks, cooldowns shared across instances, cost-record durability
    ATTEMPT_TIMEOUT_S: float = Field(30.0, gt=0, le=600, description="Cap on one upstream attempt.")
    HEALTH_TABLE: Annotated[str, Field(pattern=_TABLE_NAME)] = "health"
    HEALTH_REFRESH_S: float = Field(2.0, gt=0, le=3600, description="How stale shared cooldowns may be.")
    COOLDOWN_DEFAULT_S: float = Field(
        10.0, ge=0, le=3600, description="Cooldown after a 429 without Retry-After."
    )
    COOLDOWN_MAX_S: float = Field(
        300.0, gt=0, le=3600, description="Longest cooldown one Retry-After or one shared health row sets."
    )
    CIRCUIT_FAILURES: int = Field(3, ge=1, le=1000, description="Consecutive failures that open the circuit.")
    CIRCUIT_OPEN_S: float = Field(30.0, gt=0, le=3600, description="How long an open circuit skips a model.")
    # Capacity across a model's backends (router.pipeline.backends)
    RATELIMIT_WINDOW_S: float = Field(
        60.0, gt=0, le=3600,
        description="How long a backend's x-ratelimit-remaining-* hint holds when Azure sends no reset time.",
    )  # fmt: skip
    CAPACITY_SHARE_BELOW_TOKENS: int = Field(
        10_000, ge=0, le=100_000_000,
        description="A backend reporting fewer remaining tokens (or 0 requests) is told to other instances.",
    )  # fmt: skip
    UPSTREAM_CLIENT: Literal["openai", "aiohttp"] = Field(
        "openai",
        description="Non-streaming upstream calls: the openai SDK, or aiohttp with the SDK's token and "
        "errors (about 1 ms less CPU per call; streaming always uses the SDK).",
    )
    COST_WRITE_MODE: Literal["background", "inline"] = "background"
    COST_BUFFER_MAX: int = Field(
        10_000, ge=1, le=10_000_000,
        description="Cost records held in memory (queued, being written, parked); beyond it they are "
        "logged in full and dropped from memory.",
    )  # fmt: skip
    COST_AWAIT_MS: float = Field(
        300.0, ge=0, le=60_000,
        description="Under the Functions host: how long an invocation waits for its cost record to be "
        "stored before logging it in full for replay (0 = do not wait).",
    )  # fmt: skip
    COST_DRAIN_S: float = Field(
        10.0, ge=0, le=600, description="Shutdown: how long to wait for cost-record writes before logging."
    )
    COST_BATCH_LINGER_MS: float = Field(
        50.0, ge=0, le=10_000, description="Background mode: how long records gather into one batch write."
    )

    # Budgets and rate limits per caller and team (router.callers)
    BUDGETS_TABLE: Annotated[str, Field(pattern=_TABLE_NAME)] = Field(
        "budgets", description="Budget limits, spend counters and shared per-minute token counts."
    )
    BUDGET_LIMITS_TTL_S: float = Field(
        30.0, gt=0, le=86400,
        description="How long a caller's or team's limits are cached; a CLI change is seen within it.",
    )  # fmt: skip
    TPM_SYNC_S: float = Field(
        1.0, gt=0, le=60,
        description="How often each instance shares its per-caller token counts (the rate limit's bound).",
    )  # fmt: skip

    # Quality: sampled shadow comparisons against the most capable model (router.quality)
    QUALITY_SAMPLE_RATE: float = Field(
        0.0, ge=0, le=1, description="Share of eligible calls also answered by the baseline and judged."
    )
    QUALITY_JUDGE_MODEL: str | None = Field(None, description="Pairwise judge; default the most capable.")
    QUALITY_TABLE: Annotated[str, Field(pattern=_TABLE_NAME)] = "quality"
    QUALITY_STORE_TEXT: bool = Field(False, description="Keep prompts and answers (needed for export).")
    QUALITY_MAX_USD_PER_DAY: float | None = Field(
        1.0,
        ge=0,
        description="Shadow + judge spend per UTC day across instances (approximate); unset = none.",
    )

    # Callers: who may call, and who each call is attributed to (router.callers; README "Teams and budgets")
    AUTH_MODE: str = Field(
        "function-key",
        description="How callers authenticate: function-key (the Functions host checks a shared key; every "
        "caller is anonymous), entra (bearer tokens validated in-process), keys (router keys), or a comma "
        "list (any listed mode may authenticate a request).",
    )
    AUTH_TENANT_ID: str | None = Field(None, description="entra: the tenant whose tokens are accepted.")
    AUTH_AUDIENCE: str | None = Field(
        None, description="entra: comma list of accepted audiences (api://<app> and/or the client id)."
    )
    AUTH_TEAM_CLAIM: str | None = Field(
        None, description="entra: the token claim naming the caller's team; unset = the caller id."
    )
    AUTH_METADATA_URL: str | None = Field(
        None,
        description="entra: OpenID metadata URL; default Microsoft's for AUTH_TENANT_ID. Only an https URL "
        "on an Entra login host, or loopback under ALLOW_LOOPBACK_ENDPOINTS.",
    )
    AUTH_KEYS_REFRESH_S: float = Field(
        3600.0, ge=60, le=86400, description="entra: signing keys are re-fetched this often (background)."
    )
    AUTH_KEYS_MIN_REFRESH_S: float = Field(
        60.0, ge=0, le=3600, description="entra: an unknown kid re-fetches the keys at most this often."
    )
    AUTH_CLOCK_SKEW_S: float = Field(120.0, ge=0, le=600, description="entra: leeway on exp and nbf.")
    CALLERS_TABLE: Annotated[str, Field(pattern=_TABLE_NAME)] = Field(
        "callers", description="keys: router keys (salted hashes only) and callers' teams."
    )
    CALLERS_CACHE_TTL_S: float = Field(
        30.0, ge=0, le=3600,
        description="keys: how long a key row is trusted without re-reading it (a revoke takes effect "
        "within this time).",
    )  # fmt: skip

    @field_validator("AZURE_OPENAI_ENDPOINT", "TABLES_ENDPOINT")
    @classmethod
    def _empty_url_is_unset(cls, v: str | None) -> str | None:
        return v.rstrip("/") if v else None

    @field_validator("ALLOWED_ENDPOINT_SUFFIXES")
    @classmethod
    def _suffixes(cls, v: str) -> str:
        return ",".join(parse_suffixes(v))

    @field_validator("CLASSIFIER")
    @classmethod
    def _known_classifier(cls, v: str) -> str:
        if v not in names():
            raise ValueError(f"unknown classifier; choose one of {', '.join(names())}")
        return v

    @field_validator("AUTH_MODE")
    @classmethod
    def _auth_modes(cls, v: str) -> str:
        return ",".join(parse_auth_modes(v))

    @field_validator(
        "AZURE_CLIENT_ID", "TABLES_CONNECTION_STRING", "CLASSIFIER_MODEL", "QUALITY_JUDGE_MODEL",
        "AUTH_TENANT_ID", "AUTH_AUDIENCE", "AUTH_TEAM_CLAIM", "AUTH_METADATA_URL",
    )  # fmt: skip
    @classmethod
    def _empty_is_unset(cls, v: str | None) -> str | None:
        return v or None

    @field_validator("JUDGE_SCALE", mode="before")
    @classmethod
    def _comma_list(cls, v: object) -> object:
        """``0,0.5,1``; a JSON list ``[0, 0.5, 1]`` or a tuple's text ``(0.0, 1.0)`` reads the same."""
        if not isinstance(v, str):
            return v
        return [p.strip() for p in v.strip().strip("[]()").split(",")]

    @field_validator("JUDGE_SCALE")
    @classmethod
    def _monotone_scale(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if len(v) < 2:
            raise ValueError("needs at least two points (scores for judge answers 0 and 1)")
        if any(not 0 <= p <= 1 for p in v):
            raise ValueError("points must be in [0, 1]")
        if any(b < a for a, b in itertools.pairwise(v)):
            raise ValueError("points must be non-decreasing (a harder answer may not lower the score)")
        return v

    @field_validator("QUALITY_MAX_USD_PER_DAY", mode="before")
    @classmethod
    def _empty_cap_is_none(cls, v: object) -> object:
        return None if v == "" else v

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if not self.TABLES_ENDPOINT and not self.TABLES_CONNECTION_STRING:
            raise ValueError("TABLES_ENDPOINT (Azure) or TABLES_CONNECTION_STRING (Azurite) must be set")
        if self.JUDGE_LOW > self.JUDGE_HIGH:
            raise ValueError("JUDGE_LOW must be <= JUDGE_HIGH")
        if max(self.COOLDOWN_DEFAULT_S, self.CIRCUIT_OPEN_S) > self.COOLDOWN_MAX_S:
            raise ValueError("COOLDOWN_DEFAULT_S and CIRCUIT_OPEN_S must be <= COOLDOWN_MAX_S")
        why = self.AZURE_OPENAI_ENDPOINT and self.endpoint_policy.problem(self.AZURE_OPENAI_ENDPOINT)
        if why:
            raise ValueError(f"AZURE_OPENAI_ENDPOINT {why}")
        if self.TABLES_ENDPOINT:
            _check_tables_endpoint(self.TABLES_ENDPOINT, self.ALLOW_LOOPBACK_ENDPOINTS)
        if "entra" in self.auth_modes:
            check_entra_settings(
                self.AUTH_TENANT_ID, self.AUTH_AUDIENCE, self.AUTH_METADATA_URL, self.ALLOW_LOOPBACK_ENDPOINTS
            )
        return self

    @property
    def auth_modes(self) -> tuple[str, ...]:
        """``AUTH_MODE`` as its modes (validated: known names, no repeats)."""
        return tuple(self.AUTH_MODE.split(","))

    @cached_property
    def endpoint_policy(self) -> EndpointPolicy:
        """Which hosts may receive the Azure OpenAI token (models' endpoints and AZURE_OPENAI_ENDPOINT)."""
        return EndpointPolicy(parse_suffixes(self.ALLOWED_ENDPOINT_SUFFIXES), self.ALLOW_LOOPBACK_ENDPOINTS)


def _check_tables_endpoint(url: str, allow_loopback: bool) -> None:
    """The storage token's endpoint: https (any host: sovereign clouds, custom domains, a path for an
    emulator account), plain http only to loopback when allowed."""
    parts = urlsplit(url)
    if parts.username or parts.password or parts.query or parts.fragment or not parts.hostname:
        raise ValueError("TABLES_ENDPOINT must be a plain https:// URL")
    if parts.scheme == "https" or (
        allow_loopback and parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS
    ):
        return
    raise ValueError("TABLES_ENDPOINT must be an https:// URL")


def under_functions_host(env: Mapping[str, str]) -> bool:
    """Running in Azure Functions (or ``func start``): the host sets these, nothing else does."""
    return bool(env.get("FUNCTIONS_WORKER_RUNTIME") or env.get("WEBSITE_INSTANCE_ID"))


def required_settings() -> list[str]:
    """Names the deployed app must set (used by the infra checks)."""
    return [n for n, f in Settings.model_fields.items() if f.is_required()]


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    values: dict[str, object] = {name: env[name] for name in Settings.model_fields if name in env}
    values.setdefault("DOCS_ENABLED", not under_functions_host(env))
    try:
        return Settings(**values)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "settings"
            problems.append(f"{where}: {err['msg']}")
        raise SettingsError("invalid settings: " + "; ".join(problems)) from None
