"""The ``alerts.yaml`` format: models and the loader."""

from .loaded import LoadedConfig
from .loader import load_config
from .models import CHANNELS, AlertConfig, AlertDefaults, AlertsFile, DatabaseConfig, NotifyTarget
from .routes import Route, RoutedBy
from .targets import recipients_of

__all__ = [
    "CHANNELS",
    "AlertConfig",
    "AlertDefaults",
    "AlertsFile",
    "DatabaseConfig",
    "LoadedConfig",
    "NotifyTarget",
    "Route",
    "RoutedBy",
    "load_config",
    "recipients_of",
]
