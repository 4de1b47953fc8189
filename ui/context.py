"""What the main window needs from the core once it is up (built on the core loop after the window is
shown, so start-up stays fast). Plain references to core services; ``ui`` never imports ``app``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

if TYPE_CHECKING:
    from core.embeddings.indexer import Indexer
    from core.embeddings.store import EmbeddingStore
    from core.importer import ImportService
    from core.jobs.runner import JobRunner
    from core.jobs.service import JobService
    from core.net.http import SafeHttp
    from core.providers.accounts import AccountService
    from core.providers.registry import ProviderRegistry
    from core.segments import SegmentService
    from core.story.service import StoryService
    from core.thumbnails import ThumbnailService
    from core.transfer.service import TransferService


@dataclass(frozen=True)
class WindowServices:
    sessions: async_sessionmaker[AsyncSession]
    registry: ProviderRegistry
    transfers: TransferService
    jobs: JobService
    runner: JobRunner
    accounts: AccountService
    importer: ImportService
    thumbnails: ThumbnailService
    story: StoryService
    # Similarity search and analysis (issue 7). Optional so a window can run without them (tests
    # of other features); find-similar, scenes and the Models settings need them.
    segments: SegmentService | None = None
    embeddings: EmbeddingStore | None = None
    indexer: Indexer | None = None
    http: SafeHttp | None = None  # downloads of model files
    data_dir: Path | None = None  # where models are installed
