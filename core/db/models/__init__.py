"""Every model, importable from one place (alembic's autogenerate needs them all registered)."""

from core.db.base import Base
from core.db.models.account import ProviderAccount
from core.db.models.asset import Asset, AssetProviderRef
from core.db.models.cache import CacheEntry
from core.db.models.embedding import Embedding, EmbeddingModel
from core.db.models.job import Job, JobResultAsset
from core.db.models.lineage import AssetBranch, AssetBranchVariant, AssetClip, AssetLineage
from core.db.models.metadata import (
    Asset3DMetadata,
    AssetAdultMetadata,
    AssetAudioMetadata,
    AssetTemporalSegment,
)
from core.db.models.search import SavedSearch
from core.db.models.user import LOCAL_USERNAME, User

__all__ = [
    "LOCAL_USERNAME",
    "Asset",
    "Asset3DMetadata",
    "AssetAdultMetadata",
    "AssetAudioMetadata",
    "AssetBranch",
    "AssetBranchVariant",
    "AssetClip",
    "AssetLineage",
    "AssetProviderRef",
    "AssetTemporalSegment",
    "Base",
    "CacheEntry",
    "Embedding",
    "EmbeddingModel",
    "Job",
    "JobResultAsset",
    "ProviderAccount",
    "SavedSearch",
    "User",
]
