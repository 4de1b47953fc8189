"""Operations a provider offers, and the typed parameter specification of each.

The UI builds a form from an ``Operation``'s params; the CLI parses ``--param k=v`` with the same
specification; the job runner validates with it before anything reaches a provider. Parameters that
name input media hold asset ids (the seed's ``video_asset_id``), never provider URLs or ids: the runner
resolves them through the transfer engine, and records a lineage edge for each with its role.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.db.enums import MediaType, ParentRole
from core.errors import InvalidParameter


class ParamKind(enum.StrEnum):
    TEXT = "text"  # one line
    PROMPT = "prompt"  # multi-line text
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    CHOICE = "choice"  # one of ``choices``
    ASSET = "asset"  # one input asset id
    ASSETS = "assets"  # an ordered list of input asset ids
    KEYFRAMES = "keyframes"  # [{"asset_id": int, "frame": int, "action": str?}, ...] (storyboards)
    JSON = "json"  # a JSON object (a ComfyUI workflow)

    @property
    def is_input(self) -> bool:
        return self in (ParamKind.ASSET, ParamKind.ASSETS, ParamKind.KEYFRAMES)


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Param:
    name: str
    kind: ParamKind
    label: str = ""
    required: bool = False
    default: Any = None
    help: str = ""
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    max_length: int | None = None
    # Input params: which media the provider accepts, and the part the input plays in the lineage.
    media_types: tuple[MediaType, ...] = ()
    role: str = ParentRole.SOURCE.value
    # Input params: the name of a FLOAT param holding where in this input the new media starts
    # (an extend from 10.5 s); it becomes the lineage edge's parent_start_sec.
    start_param: str | None = None
    max_items: int | None = None
    advanced: bool = False

    @property
    def title(self) -> str:
        return self.label or self.name.replace("_", " ").capitalize()

    def coerce(self, value: Any, provider_id: str | None = None) -> Any:
        """``value`` (from JSON, a form, or a CLI string) as this parameter's type, or InvalidParameter."""
        try:
            return self._coerce(value)
        except (ValueError, TypeError) as exc:
            raise InvalidParameter(
                f"Parameter '{self.name}': {exc}", provider_id=provider_id, code="invalid_parameter"
            ) from None

    def _coerce(self, value: Any) -> Any:
        kind = self.kind
        if kind in (ParamKind.TEXT, ParamKind.PROMPT):
            text = str(value)
            if kind is ParamKind.TEXT and "\n" in text:
                raise ValueError("must be a single line")
            if self.max_length is not None and len(text) > self.max_length:
                raise ValueError(f"is {len(text)} characters long; at most {self.max_length} are allowed")
            return text
        if kind is ParamKind.BOOL:
            if isinstance(value, bool):
                return value
            lowered = str(value).strip().lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
            raise ValueError(f"expected true or false, got {value!r}")
        if kind is ParamKind.INT:
            number = _int(value)
            self._check_range(number)
            return number
        if kind is ParamKind.FLOAT:
            real = float(value)
            if not math.isfinite(real):
                raise ValueError("must be a finite number")
            self._check_range(real)
            return real
        if kind is ParamKind.CHOICE:
            text = str(value)
            if text not in self.choices:
                raise ValueError(f"{text!r} is not one of {', '.join(self.choices)}")
            return text
        if kind is ParamKind.ASSET:
            return _asset_id(value)
        if kind is ParamKind.ASSETS:
            items = _json_list(value) if isinstance(value, str) and value.strip().startswith("[") else value
            if isinstance(items, str):
                items = [part for part in items.split(",") if part.strip()]
            if not isinstance(items, Sequence) or isinstance(items, str | bytes):
                raise ValueError("expected a list of asset ids")
            ids = [_asset_id(item) for item in items]
            if not ids:
                raise ValueError("needs at least one asset")
            if self.max_items is not None and len(ids) > self.max_items:
                raise ValueError(f"takes at most {self.max_items} assets")
            return ids
        if kind is ParamKind.KEYFRAMES:
            items = _json_list(value) if isinstance(value, str) else value
            if not isinstance(items, Sequence) or not items:
                raise ValueError("expected a non-empty list of {asset_id, frame, action}")
            frames: list[dict[str, Any]] = []
            for item in items:
                if not isinstance(item, Mapping):
                    raise ValueError("each keyframe is an object {asset_id, frame, action}")
                frame = _int(item.get("frame"))
                if frame < 0:
                    raise ValueError("a keyframe's frame must be 0 or more")
                keyframe: dict[str, Any] = {"asset_id": _asset_id(item.get("asset_id")), "frame": frame}
                if item.get("action"):
                    keyframe["action"] = str(item["action"])
                frames.append(keyframe)
            if [f["frame"] for f in frames] != sorted(f["frame"] for f in frames):
                raise ValueError("keyframes must be in frame order")
            return frames
        if kind is ParamKind.JSON:
            obj = json.loads(value) if isinstance(value, str) else value
            if not isinstance(obj, dict):
                raise ValueError("expected a JSON object")
            return obj
        raise ValueError(f"unknown kind {kind}")

    def _check_range(self, number: float) -> None:
        if self.minimum is not None and number < self.minimum:
            raise ValueError(f"{number} is below the minimum {_fmt(self.minimum)}")
        if self.maximum is not None and number > self.maximum:
            raise ValueError(f"{number} is above the maximum {_fmt(self.maximum)}")

    def to_json(self) -> dict[str, Any]:
        """A plain description (for plugins' UIs, `pixsim providers --json`, documentation)."""
        out: dict[str, Any] = {"name": self.name, "kind": self.kind.value, "label": self.title}
        for key in ("required", "default", "help", "minimum", "maximum", "max_length", "start_param"):
            value = getattr(self, key)
            if value not in (None, False, ""):
                out[key] = value
        if self.choices:
            out["choices"] = list(self.choices)
        if self.kind.is_input:
            out["media_types"] = [m.value for m in self.media_types]
            out["role"] = self.role
        return out


@dataclass(frozen=True)
class LineageInput:
    """One input of a job as a lineage edge: parent asset, role, where in the parent, and order."""

    asset_id: int
    role: str
    sequence_order: int = 0
    parent_frame: int | None = None
    parent_start_sec: float | None = None
    transformation: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Operation:
    id: str  # core.db.enums.OperationType values, or a plugin's own
    label: str
    output: MediaType
    params: tuple[Param, ...]
    description: str = ""

    def param(self, name: str) -> Param:
        for param in self.params:
            if param.name == name:
                return param
        raise KeyError(name)

    @property
    def input_params(self) -> tuple[Param, ...]:
        return tuple(p for p in self.params if p.kind.is_input)

    def validate(self, values: Mapping[str, Any], provider_id: str | None = None) -> dict[str, Any]:
        """Coerced values with defaults filled in; every problem named at once in one InvalidParameter."""
        known = {p.name for p in self.params}
        problems = [f"unknown parameter '{name}'" for name in values if name not in known]
        out: dict[str, Any] = {}
        for param in self.params:
            raw = values.get(param.name)
            if raw is None or raw == "":
                if param.required:
                    problems.append(f"'{param.name}' is required")
                elif param.default is not None:
                    out[param.name] = param.default
                continue
            try:
                out[param.name] = param.coerce(raw, provider_id)
            except InvalidParameter as exc:
                problems.append(str(exc).removeprefix("Parameter "))
        if problems:
            allowed = ", ".join(p.name for p in self.params)
            raise InvalidParameter(
                f"{self.label}: " + "; ".join(problems) + f". Parameters: {allowed}.",
                provider_id=provider_id,
                code="invalid_parameter",
            )
        return out

    def lineage_inputs(self, values: Mapping[str, Any]) -> list[LineageInput]:
        """The lineage edges the inputs in (validated) ``values`` make, in parameter order."""
        edges: list[LineageInput] = []
        scalars = {p.name: values[p.name] for p in self.params if not p.kind.is_input and p.name in values}
        recorded = {k: v for k, v in scalars.items() if not isinstance(v, dict)}
        for param in self.input_params:
            value = values.get(param.name)
            if value is None:
                continue
            if param.kind is ParamKind.ASSET:
                start = values.get(param.start_param) if param.start_param else None
                edges.append(
                    LineageInput(
                        value,
                        param.role,
                        parent_start_sec=float(start) if start is not None else None,
                        transformation=dict(recorded),
                    )
                )
            elif param.kind is ParamKind.ASSETS:
                edges.extend(
                    LineageInput(asset_id, param.role, order, transformation=dict(recorded))
                    for order, asset_id in enumerate(value)
                )
            else:
                for order, keyframe in enumerate(value):
                    transformation = {**recorded, "frame_position": keyframe["frame"]}
                    if "action" in keyframe:
                        transformation["action"] = keyframe["action"]
                    edges.append(
                        LineageInput(
                            keyframe["asset_id"],
                            param.role,
                            order,
                            # As the seed records it: the frame of the new video this keyframe anchors.
                            parent_frame=keyframe["frame"],
                            transformation=transformation,
                        )
                    )
        return edges

    def input_asset_ids(self, values: Mapping[str, Any]) -> list[int]:
        return [edge.asset_id for edge in self.lineage_inputs(values)]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "label": self.label,
            "output": self.output.value,
            "description": self.description,
            "params": [p.to_json() for p in self.params],
        }


def _int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected a whole number, got {value!r}")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"expected a whole number, got {value}")
        return int(value)
    if value is None:
        raise ValueError("a whole number is required")
    return int(str(value).strip())


def _asset_id(value: Any) -> int:
    try:
        number = _int(value)
    except ValueError:
        raise ValueError(f"expected an asset id, got {value!r}") from None
    if number <= 0:
        raise ValueError(f"expected an asset id, got {value!r}")
    return number


def _json_list(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg})") from None


def _fmt(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)
