"""The ``alerts.yaml`` format: models and the loader."""

from .loaded import LoadedConfig
from .loader import load_config
from .models import CHANNELS, AlertConfig, AlertDefaults, AlertsFile, DatabaseConfig, NotifyTarget

__all__ = [
    "CHANNELS",
    "AlertConfig",
    "AlertDefaults",
    "AlertsFile",
    "DatabaseConfig",
    "LoadedConfig",
    "NotifyTarget",
    "load_config",
]
