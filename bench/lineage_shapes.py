"""Synthetic lineage with the shapes real libraries have, for the lineage graph's benchmark and tests.

Assets come in projects of a few dozen to a few hundred: stills (text to image), stills brought to
life (image to video), chains of extends, fan-outs of variants extended from one moment of a story
video, transitions between two stills (two parents) and storyboards of three or four keyframe stills
(three or four parents); now and then a remix reaches into an earlier project. Deterministic per seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

PROVIDERS = ("sandbox", "pixverse", "sora", "comfyui")


@dataclass(frozen=True, slots=True)
class SynthNode:
    id: int
    media_type: str  # "image" | "video"
    provider_id: str
    title: str


@dataclass(frozen=True, slots=True)
class SynthEdge:
    parent: int
    child: int
    operation: str
    role: str
    provider_id: str
    start_sec: float | None = None
    frame: int | None = None
    sequence_order: int = 0


def synthetic_lineage(count: int, seed: int = 7) -> tuple[list[SynthNode], list[SynthEdge]]:
    """About ``count`` assets (exactly ``count``: the last project is cut short) and their edges."""
    rng = random.Random(seed)
    nodes: list[SynthNode] = []
    edges: list[SynthEdge] = []
    earlier_videos: list[int] = []

    def add(media: str, provider: str, title: str) -> int | None:
        if len(nodes) >= count:
            return None
        node = SynthNode(len(nodes) + 1, media, provider, title)
        nodes.append(node)
        return node.id

    project = 0
    while len(nodes) < count:
        project += 1
        provider = rng.choice(PROVIDERS)
        stills = [
            s
            for s in (add("image", provider, f"p{project} still {i}") for i in range(rng.randint(4, 12)))
            if s
        ]
        videos: list[int] = []
        for _ in range(rng.randint(3, 14)):
            if len(nodes) >= count or not stills:
                break
            shape = rng.random()
            if shape < 0.25:  # a still brought to life
                child = add("video", provider, f"p{project} alive")
                if child:
                    edges.append(SynthEdge(rng.choice(stills), child, "image_to_video", "source", provider))
                    videos.append(child)
            elif shape < 0.45:  # a chain of extends
                prev = add("video", provider, f"p{project} chain")
                if prev:
                    videos.append(prev)
                for _ in range(rng.randint(2, 8)):
                    nxt = add("video", provider, f"p{project} chain+")
                    if not nxt or not prev:
                        break
                    edges.append(SynthEdge(prev, nxt, "video_extend", "source", provider, start_sec=4.0))
                    videos.append(nxt)
                    prev = nxt
            elif shape < 0.65:  # a story with variants from one moment
                story = add("video", provider, f"p{project} story")
                if story:
                    videos.append(story)
                    moment = round(rng.uniform(1.0, 6.0), 1)
                    for _ in range(rng.randint(2, 6)):
                        variant = add("video", rng.choice(PROVIDERS), f"p{project} variant")
                        if variant:
                            edges.append(
                                SynthEdge(
                                    story, variant, "video_extend", "source", provider, start_sec=moment
                                )
                            )
                            videos.append(variant)
            elif shape < 0.8 and len(stills) >= 2:  # a transition: two parents
                child = add("video", provider, f"p{project} transition")
                if child:
                    first, last = rng.sample(stills, 2)
                    edges.append(SynthEdge(first, child, "transition", "first_frame", provider))
                    edges.append(SynthEdge(last, child, "transition", "last_frame", provider))
                    videos.append(child)
            elif len(stills) >= 4:  # a storyboard: three or four keyframes
                child = add("video", provider, f"p{project} storyboard")
                if child:
                    frames = sorted(rng.sample(range(0, 120), 4))
                    for order, still in enumerate(rng.sample(stills, rng.randint(3, 4))):
                        edges.append(
                            SynthEdge(
                                still, child, "text_to_video", "keyframe", provider,
                                frame=frames[order], sequence_order=order,
                            )
                        )  # fmt: skip
                    videos.append(child)
        if earlier_videos and videos and rng.random() < 0.15:
            child = add("video", "pixverse", f"p{project} remix")
            if child:
                edges.append(SynthEdge(rng.choice(earlier_videos), child, "remix", "reference", "pixverse"))
        earlier_videos.extend(videos[:3])
    return nodes, edges
