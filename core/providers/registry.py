"""The provider registry, fed by the ``pixsim.providers`` entry point group.

Built-in adapters register exactly as third-party ones do: each entry point names a class (or a
factory) that takes no arguments and returns an adapter. A plugin that fails to load is reported
(``failures``) and skipped; it never stops the app.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

from core.errors import ConfigError, InvalidParameter
from core.providers.base import (
    Provider,
    SupportsAccountCheck,
    SupportsCancel,
    SupportsGenerate,
    SupportsUpload,
)

log = logging.getLogger(__name__)
ENTRY_POINT_GROUP = "pixsim.providers"


@dataclass(frozen=True)
class PluginFailure:
    entry_point: str
    message: str


class ProviderRegistry:
    def __init__(self) -> None:
        self._adapters: dict[str, Provider] = {}
        self.failures: list[PluginFailure] = []

    @classmethod
    def from_entry_points(cls, found: Iterable[EntryPoint] | None = None) -> ProviderRegistry:
        registry = cls()
        points = list(found if found is not None else entry_points(group=ENTRY_POINT_GROUP))
        for point in sorted(points, key=lambda p: p.name):
            registry.load(point)
        return registry

    def load(self, point: EntryPoint) -> None:
        label = f"{point.name} = {point.value}"
        try:
            factory = point.load()
            adapter = factory()
            if not isinstance(adapter, Provider):
                raise TypeError(f"{type(adapter).__name__} is not a provider adapter")
            if adapter.provider_id in self._adapters:
                raise ValueError(f"provider id '{adapter.provider_id}' is already registered")
        except Exception as exc:  # a broken plugin is reported, never fatal
            log.error("provider plugin %s failed to load: %s", label, exc)
            self.failures.append(PluginFailure(label, f"{type(exc).__name__}: {exc}"))
            return
        self.register(adapter)

    def register(self, adapter: Provider) -> None:
        self._adapters[adapter.provider_id] = adapter

    async def aclose(self) -> None:
        """Release what adapters hold open (ComfyUI's progress sockets)."""
        for adapter in self._adapters.values():
            close = getattr(adapter, "aclose", None)
            if close is None:
                continue
            try:
                await close()
            except Exception:  # one adapter's failure must not keep the others open
                log.exception("provider %s failed to close", adapter.provider_id)

    def get(self, provider_id: str) -> Provider:
        try:
            return self._adapters[provider_id]
        except KeyError:
            known = ", ".join(sorted(self._adapters)) or "none"
            raise ConfigError(f"Unknown provider '{provider_id}' (known: {known}).") from None

    def uploader(self, provider_id: str) -> SupportsUpload:
        adapter = self.get(provider_id)
        if not isinstance(adapter, SupportsUpload):
            raise InvalidParameter(
                f"{adapter.display_name} cannot keep media made elsewhere under an id of its own; "
                "such media is sent along with each generation request instead.",
                provider_id=provider_id,
                code="no_upload",
            )
        return adapter

    def generator(self, provider_id: str) -> SupportsGenerate:
        adapter = self.get(provider_id)
        if not isinstance(adapter, SupportsGenerate):
            raise InvalidParameter(
                f"{adapter.display_name} does not generate media.", provider_id=provider_id
            )
        return adapter

    def canceller(self, provider_id: str) -> SupportsCancel | None:
        adapter = self.get(provider_id)
        return adapter if isinstance(adapter, SupportsCancel) else None

    def checker(self, provider_id: str) -> SupportsAccountCheck | None:
        adapter = self.get(provider_id)
        return adapter if isinstance(adapter, SupportsAccountCheck) else None

    def ids(self) -> list[str]:
        return sorted(self._adapters)

    def all(self) -> list[Provider]:
        return [self._adapters[k] for k in self.ids()]
