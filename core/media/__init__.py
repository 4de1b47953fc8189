"""Media files: facts and frames read from their bytes (``probe``), and the Sandbox's renders (``render``)."""

from core.media.probe import MediaFacts, frame_at, last_frame, probe, read_image

__all__ = ["MediaFacts", "frame_at", "last_frame", "probe", "read_image"]
