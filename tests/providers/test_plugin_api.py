"""The plugin API: operations validate parameters the way the UI and CLI rely on, and the registry
finds built-in and third-party adapters through the same entry points."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from core.db.enums import MediaType, ParentRole
from core.errors import ConfigError, InvalidParameter
from core.providers.base import SupportsGenerate, SupportsUpload
from core.providers.registry import ProviderRegistry
from core.providers.spec import Operation, Param, ParamKind

EXTEND = Operation(
    id="video_extend",
    label="Extend a video",
    output=MediaType.VIDEO,
    params=(
        Param(
            "video_asset_id",
            ParamKind.ASSET,
            required=True,
            media_types=(MediaType.VIDEO,),
            start_param="start_sec",
        ),
        Param("start_sec", ParamKind.FLOAT, minimum=0),
        Param("prompt", ParamKind.PROMPT, required=True, max_length=20),
        Param("seed", ParamKind.INT, default=7, minimum=0, maximum=100),
        Param("quality", ParamKind.CHOICE, default="540p", choices=("360p", "540p")),
        Param("loop", ParamKind.BOOL, default=False),
    ),
)


def test_cli_strings_are_coerced_and_defaults_filled() -> None:
    values = EXTEND.validate({"video_asset_id": "12", "start_sec": "10.5", "prompt": "rain", "loop": "yes"})
    assert values == {
        "video_asset_id": 12,
        "start_sec": 10.5,
        "prompt": "rain",
        "seed": 7,
        "quality": "540p",
        "loop": True,
    }


def test_every_problem_is_named_at_once() -> None:
    with pytest.raises(InvalidParameter) as caught:
        EXTEND.validate({"prompt": "x" * 21, "seed": "101", "quality": "4k", "colour": "red"})
    message = str(caught.value)
    for expected in (
        "unknown parameter 'colour'",
        "'video_asset_id' is required",
        "at most 20",
        "above the maximum 100",
        "'4k' is not one of 360p, 540p",
    ):
        assert expected in message
    assert caught.value.retryable is False


@pytest.mark.parametrize("bad", ["abc", "0", "-3", "1.5", True])
def test_asset_ids_must_be_positive_whole_numbers(bad: object) -> None:
    with pytest.raises(InvalidParameter, match="video_asset_id"):
        EXTEND.validate({"video_asset_id": bad, "prompt": "p"})


def test_lineage_of_an_extend_records_where_in_the_parent_it_starts() -> None:
    values = EXTEND.validate({"video_asset_id": 12, "start_sec": 10.5, "prompt": "rain"})
    (edge,) = EXTEND.lineage_inputs(values)
    assert (edge.asset_id, edge.role, edge.parent_start_sec) == (12, ParentRole.SOURCE.value, 10.5)
    assert edge.transformation["prompt"] == "rain"


def test_keyframes_give_one_edge_each_with_frame_order_and_action() -> None:
    storyboard = Operation(
        id="text_to_video",
        label="Storyboard",
        output=MediaType.VIDEO,
        params=(Param("keyframes", ParamKind.KEYFRAMES, role=ParentRole.KEYFRAME.value),),
    )
    values = storyboard.validate(
        {"keyframes": '[{"asset_id": 5, "frame": 48, "action": "zoom_in"}, {"asset_id": 6, "frame": 132}]'}
    )
    edges = storyboard.lineage_inputs(values)
    assert [(e.asset_id, e.role, e.parent_frame, e.sequence_order) for e in edges] == [
        (5, "keyframe", 48, 0),
        (6, "keyframe", 132, 1),
    ]
    assert edges[0].transformation == {"frame_position": 48, "action": "zoom_in"}
    with pytest.raises(InvalidParameter, match="frame order"):
        storyboard.validate({"keyframes": [{"asset_id": 5, "frame": 9}, {"asset_id": 6, "frame": 3}]})


def test_the_specification_serialises_for_plugins_and_forms() -> None:
    spec = EXTEND.to_json()
    assert spec["params"][0] == {
        "name": "video_asset_id",
        "kind": "asset",
        "label": "Video asset id",
        "required": True,
        "start_param": "start_sec",
        "media_types": ["video"],
        "role": "source",
    }


def test_builtin_providers_come_from_entry_points() -> None:
    registry = ProviderRegistry.from_entry_points()
    assert {"sandbox", "pixverse", "sora", "comfyui"} <= set(registry.ids())
    assert registry.failures == []
    assert all(
        isinstance(registry.get(p), SupportsGenerate) for p in ("sandbox", "pixverse", "sora", "comfyui")
    )
    # Sora keeps no foreign uploads: asking for one is a clear error, not an AttributeError.
    assert not isinstance(registry.get("sora"), SupportsUpload)
    with pytest.raises(InvalidParameter, match="sent along with each generation request"):
        registry.uploader("sora")


class _ThirdParty:
    provider_id = "acme"
    display_name = "Acme Video"
    description = "A plugin from another package."
    requires_account = False

    def origin_reference(self, provider_asset_id: str, media_type: MediaType) -> None:
        return None

    def download_source(self, ref: object, credentials: object) -> None:
        return None

    def trusted_origins(self, credentials: object) -> list[str]:
        return []


def test_a_third_party_plugin_registers_like_a_builtin_and_a_broken_one_is_reported() -> None:
    points = [
        EntryPoint("acme", f"{__name__}:_ThirdParty", "pixsim.providers"),
        EntryPoint("broken", "no_such_module_xyz:Adapter", "pixsim.providers"),
        EntryPoint("notanadapter", "pathlib:PurePath", "pixsim.providers"),
    ]
    registry = ProviderRegistry.from_entry_points(points)
    assert registry.ids() == ["acme"]
    assert registry.get("acme").display_name == "Acme Video"
    assert sorted(f.entry_point.split(" ")[0] for f in registry.failures) == ["broken", "notanadapter"]
    with pytest.raises(ConfigError, match="Unknown provider 'nope' \\(known: acme\\)"):
        registry.get("nope")
    with pytest.raises(InvalidParameter, match="does not generate"):
        registry.generator("acme")
