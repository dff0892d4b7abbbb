"""The five Baton services: four departments and the KPI service."""

from __future__ import annotations

import importlib

from shared.settings import SERVICES, ServiceSettings


def settings_class(service: str) -> type[ServiceSettings]:
    """The settings class of `service` (e.g. `MarketingSettings` for "marketing")."""
    if service not in SERVICES:
        raise KeyError(f"unknown service {service!r}; one of: {', '.join(SERVICES)}")
    module = importlib.import_module(f"services.{service}.settings")
    cls: type[ServiceSettings] = module.Settings
    return cls
