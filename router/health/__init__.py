"""Which deployments to avoid right now: the pure rules (``state``) and their sync across instances
(``shared``)."""

from router.health.shared import HEALTH_PARTITION, SharedHealth
from router.health.state import HealthBoard

__all__ = ["HEALTH_PARTITION", "HealthBoard", "SharedHealth"]
