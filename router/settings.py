"""Process settings, read once from the environment and validated at startup.

Every setting is named exactly as the environment variable (and the Function app setting) that
sets it, so an error message points at the variable to fix.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

_TABLE_NAME = r"^[A-Za-z][A-Za-z0-9]{2,62}$"


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names the environment variable."""


class Settings(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    # Azure OpenAI
    AZURE_OPENAI_ENDPOINT: str | None = Field(
        None, description="Default Azure OpenAI endpoint (https://<name>.openai.azure.com)."
    )
    AZURE_OPENAI_API_VERSION: str = Field("2024-10-21", min_length=1)
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
    MODELS_TTL_SECONDS: float = Field(60.0, gt=0, le=86400)
    # Classification
    CLASSIFIER: str = Field("learned-v2", min_length=1, description="Scorer name from the registry.")
    CLASSIFIER_MODEL: str | None = Field(None, description="Judge model; default the cheapest enabled.")
    CLASSIFIER_TIMEOUT_S: float = Field(3.0, gt=0, le=60)
    JUDGE_ENABLED: bool = True
    JUDGE_LOW: float = Field(
        0.184866, ge=0, le=1, description="Scores strictly inside (LOW, HIGH) ask the judge."
    )
    JUDGE_HIGH: float = Field(0.234878, ge=0, le=1)
    JUDGE_CACHE_SIZE: int = Field(4096, ge=0, le=1_000_000)
    # HTTP
    MAX_BODY_BYTES: int = Field(1_048_576, gt=0, le=100 * 1_048_576)
    REQUEST_TIMEOUT_S: float = Field(60.0, gt=0, le=600, description="Overall budget of one request.")
    LOG_PROMPTS: bool = False
    # Reports
    REPORT_MAX_DAYS: int = Field(92, ge=1, le=3660, description="Longest from..to range a report accepts.")
    REPORT_ROLLUP_DELAY_MINUTES: int = Field(
        60, ge=0, le=10080, description="A day is rolled up once it ended this long ago; until then, scanned."
    )
    # Reliability: fallbacks, cooldowns shared across instances, cost-record durability
    ATTEMPT_TIMEOUT_S: float = Field(30.0, gt=0, le=600, description="Cap on one upstream attempt.")
    HEALTH_TABLE: Annotated[str, Field(pattern=_TABLE_NAME)] = "health"
    HEALTH_REFRESH_S: float = Field(2.0, gt=0, le=3600, description="How stale shared cooldowns may be.")
    COOLDOWN_DEFAULT_S: float = Field(
        10.0, ge=0, le=3600, description="Cooldown after a 429 without Retry-After."
    )
    CIRCUIT_FAILURES: int = Field(3, ge=1, le=1000, description="Consecutive failures that open the circuit.")
    CIRCUIT_OPEN_S: float = Field(30.0, gt=0, le=3600, description="How long an open circuit skips a model.")
    UPSTREAM_CLIENT: Literal["openai", "aiohttp"] = Field(
        "openai",
        description="Non-streaming upstream calls: the openai SDK, or aiohttp with the SDK's token and "
        "errors (about 1 ms less CPU per call; streaming always uses the SDK).",
    )
    COST_WRITE_MODE: Literal["background", "inline"] = "background"
    COST_BUFFER_MAX: int = Field(10_000, ge=1, le=10_000_000)
    COST_BATCH_LINGER_MS: float = Field(
        50.0, ge=0, le=10_000, description="Background mode: how long records gather into one batch write."
    )

    @field_validator("AZURE_OPENAI_ENDPOINT", "TABLES_ENDPOINT")
    @classmethod
    def _https_url(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        if not v.startswith(("https://", "http://127.0.0.1", "http://localhost")):
            raise ValueError("must be an https:// URL")
        return v.rstrip("/")

    @field_validator("CLASSIFIER")
    @classmethod
    def _known_classifier(cls, v: str) -> str:
        from router.classifiers import names

        if v not in names():
            raise ValueError(f"unknown classifier; choose one of {', '.join(names())}")
        return v

    @field_validator("AZURE_CLIENT_ID", "TABLES_CONNECTION_STRING", "CLASSIFIER_MODEL")
    @classmethod
    def _empty_is_unset(cls, v: str | None) -> str | None:
        return v or None

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if not self.TABLES_ENDPOINT and not self.TABLES_CONNECTION_STRING:
            raise ValueError("TABLES_ENDPOINT (Azure) or TABLES_CONNECTION_STRING (Azurite) must be set")
        if self.JUDGE_LOW > self.JUDGE_HIGH:
            raise ValueError("JUDGE_LOW must be <= JUDGE_HIGH")
        return self


def required_settings() -> list[str]:
    """Names the deployed app must set (used by the infra checks)."""
    return [n for n, f in Settings.model_fields.items() if f.is_required()]


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    values = {name: env[name] for name in Settings.model_fields if name in env}
    try:
        return Settings(**values)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "settings"
            problems.append(f"{where}: {err['msg']}")
        raise SettingsError("invalid settings: " + "; ".join(problems)) from None
