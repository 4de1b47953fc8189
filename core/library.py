"""Read access to the library for views, and the few edits the library makes: frozen dataclasses only.

Views never see ORM objects or SQL: the grid asks ``search``/``count``/``facets`` with a
``LibraryQuery``, the inspector asks ``detail`` and saves an ``AssetEdit``, the filter bar keeps
saved searches. Every query is scoped to one user (the local user by default).
"""

from __future__ import annotations

import asyncio
import enum
import re
import time
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    delete,
    exists,
    func,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import joinedload
from sqlalchemy.sql.util import ClauseAdapter

from core.db.enums import (
    ContentDomain,
    ContentRating,
    JobStatus,
    MediaType,
    ProviderRefKind,
    SyncStatus,
    UploadMethod,
)
from core.db.models import (
    LOCAL_USERNAME,
    Asset,
    AssetAdultMetadata,
    AssetBranch,
    AssetBranchVariant,
    AssetLineage,
    AssetProviderRef,
    Job,
    JobResultAsset,
    ProviderAccount,
    User,
)
from core.db.models import SavedSearch as SavedSearchRecord
from core.errors import PixSimError

if TYPE_CHECKING:  # numpy and the store load only when a similarity search first runs
    from core.embeddings.base import Embedder
    from core.embeddings.store import EmbeddingStore, SimilarHit

# -- errors --------------------------------------------------------------------------------------------


class LibraryError(PixSimError):
    """A library request cannot be done as asked (the message says why)."""


class AssetNotFound(LibraryError):
    """The asset does not exist (any more), or belongs to another user."""


class SavedSearchNotFound(LibraryError):
    """The saved search does not exist (any more)."""


class DuplicateSearchName(LibraryError):
    """Another saved search of this user already has that name."""


# -- the existing read API (grid list, seed examples) --------------------------------------------------


@dataclass(frozen=True, slots=True)
class AssetSummary:
    id: int
    media_type: MediaType
    provider_id: str
    title: str | None
    description: str | None
    width: int | None
    height: int | None
    duration_sec: float | None
    content_category: str | None
    created_at: datetime

    @property
    def display_name(self) -> str:
        return display_name(self.id, self.media_type, self.title, self.description)


@dataclass(frozen=True, slots=True)
class BranchVariantRow:
    """One row of the seed's Example 3 join: a branch point, one of its variants, and the variant video."""

    branch_id: int
    branch_name: str
    branch_tag: str
    branch_time_sec: float
    branch_frame: int | None
    variant_id: int
    variant_name: str
    variant_tag: str
    weight: float
    conditions: dict[str, Any]
    variant_asset_id: int
    variant_duration_sec: float | None


def display_name(asset_id: int, media_type: MediaType, title: str | None, description: str | None) -> str:
    """What a card calls an asset: its title, else its description, else "video #12"."""
    return title or description or f"{media_type.value.replace('_', ' ')} #{asset_id}"


def _summary(asset: Asset) -> AssetSummary:
    return AssetSummary(
        id=asset.id,
        media_type=asset.media_type,
        provider_id=asset.provider_id,
        title=asset.title,
        description=asset.description,
        width=asset.width,
        height=asset.height,
        duration_sec=asset.duration_sec,
        content_category=asset.content_category,
        created_at=asset.created_at,
    )


# -- queries -------------------------------------------------------------------------------------------


class SortOrder(enum.StrEnum):
    NEWEST = "newest"
    OLDEST = "oldest"
    NAME = "name"  # A→Z by display name (title, else description), unnamed assets last
    DURATION = "duration"  # longest first, no duration last
    SIZE = "size"  # largest first, unknown size last
    RECENTLY_USED = "recently_used"  # last used (uploaded, played, exported) first, never used last
    RELEVANCE = "relevance"  # best text match first; without text the same as NEWEST


# general < mature < adult < explicit: a "max rating" filter keeps a prefix of this order.
RATING_ORDER: tuple[ContentRating, ...] = tuple(ContentRating)
# Hidden unless the user asks for them (settings: show_age_restricted), besides age_restricted rows.
AGE_GATED_RATINGS = frozenset({ContentRating.ADULT, ContentRating.EXPLICIT})

_QUERY_VERSION = 1
_WHITESPACE = re.compile(r"\s+")


def normalize_tag(tag: str) -> str:
    """Trimmed, lower-case, inner whitespace collapsed, Unicode NFC: ``"  Red   Car "`` → ``"red car"``."""
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFC", tag)).strip().lower()


def normalize_tags(tags: Iterable[str]) -> tuple[str, ...]:
    """Normalised tags without empties or duplicates, in first-seen order."""
    return tuple(dict.fromkeys(t for t in (normalize_tag(tag) for tag in tags) if t))


# How many results "Find Similar" and "Describe" ask for (the grid pages through them).
SIMILAR_K = 120


@dataclass(frozen=True, slots=True)
class SimilarTo:
    """The "find similar" mode of a query: results in similarity order to one source, through one
    embedding model (``model``: the embedder's model id), combined with the query's other filters.

    The source is exactly one of an asset, a scene segment, a vector (a frame embedded by the caller)
    or a description (embedded with ``model``'s text embedder: CLIP). ``label`` is what the filter
    bar's chip says. ``k`` results are returned whenever that many assets and segments match.
    """

    label: str
    model: str
    asset_id: int | None = None
    segment_id: int | None = None
    vector: tuple[float, ...] | None = None
    text: str | None = None
    k: int = SIMILAR_K
    include_segments: bool = True

    def __post_init__(self) -> None:
        sources = (self.asset_id, self.segment_id, self.vector, self.text)
        if sum(s is not None for s in sources) != 1:
            raise ValueError("find-similar needs exactly one of an asset, a segment, a vector or a text")
        if self.vector is not None:
            object.__setattr__(self, "vector", tuple(float(v) for v in self.vector))
        if self.text is not None and not self.text.strip():
            raise LibraryError("Describe what you are looking for first.")
        if self.k <= 0:
            raise ValueError("k must be positive")

    @property
    def is_text(self) -> bool:
        return self.text is not None


@dataclass(frozen=True, slots=True)
class LibraryQuery:
    """What the library grid shows: filters (each empty one means "any"), full text, sort, age gate.

    Hashable, and round-trips through ``to_json``/``from_json`` for saved searches. Sets mean "any of"
    except ``tags``, which means "all of". ``created_to`` is exclusive. ``text`` matches words of the
    title, description, prompt, tags and style tags (no stemming); its last word also matches as a
    prefix, so results follow the user's typing.
    """

    media_types: frozenset[MediaType] = frozenset()
    providers: frozenset[str] = frozenset()  # made by
    on_providers: frozenset[str] = frozenset()  # holds a usable (unexpired) reference there
    tags: frozenset[str] = frozenset()
    content_domain: ContentDomain | None = None
    content_category: str | None = None
    content_ratings: frozenset[ContentRating] = frozenset()
    max_content_rating: ContentRating | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    text: str = ""
    sort: SortOrder = SortOrder.NEWEST
    # The user's setting, passed by the UI; never saved with a search (see ``to_json``).
    include_age_restricted: bool = False
    # View options, not saved with a search either. Stacking shows one card per group of
    # near-duplicates (core.embeddings.duplicates): the best-quality, then oldest, member that passes
    # the other filters, with ``AssetCard.stack_size``. ``duplicate_group`` lists one stack's members.
    stack_duplicates: bool = False
    duplicate_group: int | None = None
    # Find-similar / describe mode (not saved with a search): similarity order instead of ``sort``.
    similar_to: SimilarTo | None = None

    def __post_init__(self) -> None:
        # Accept any iterable (lists from JSON or widgets) but store frozensets, so the query hashes.
        set_ = object.__setattr__
        set_(self, "media_types", frozenset(MediaType(m) for m in self.media_types))
        set_(self, "providers", frozenset(p.strip() for p in self.providers if p.strip()))
        set_(self, "on_providers", frozenset(p.strip() for p in self.on_providers if p.strip()))
        set_(self, "tags", frozenset(normalize_tags(self.tags)))
        set_(self, "content_ratings", frozenset(ContentRating(r) for r in self.content_ratings))
        set_(self, "text", self.text.strip())
        set_(self, "sort", SortOrder(self.sort))
        if self.content_domain is not None:
            set_(self, "content_domain", ContentDomain(self.content_domain))
        if self.max_content_rating is not None:
            set_(self, "max_content_rating", ContentRating(self.max_content_rating))
        if self.content_category is not None:
            set_(self, "content_category", self.content_category.strip() or None)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict. The age gate is left out: a saved search must not switch it on later."""
        return {
            "v": _QUERY_VERSION,
            "media_types": sorted(m.value for m in self.media_types),
            "providers": sorted(self.providers),
            "on_providers": sorted(self.on_providers),
            "tags": sorted(self.tags),
            "content_domain": self.content_domain.value if self.content_domain else None,
            "content_category": self.content_category,
            "content_ratings": [r.value for r in RATING_ORDER if r in self.content_ratings],
            "max_content_rating": self.max_content_rating.value if self.max_content_rating else None,
            "created_from": self.created_from.isoformat() if self.created_from else None,
            "created_to": self.created_to.isoformat() if self.created_to else None,
            "text": self.text,
            "sort": self.sort.value,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, include_age_restricted: bool = False) -> LibraryQuery:
        """The inverse of ``to_json``; unknown keys are ignored, bad values raise ``ValueError``."""
        version = data.get("v", _QUERY_VERSION)
        if not isinstance(version, int) or version > _QUERY_VERSION:
            raise ValueError(f"this saved search was written by a newer PixSim (format {version})")

        def strings(key: str) -> list[str]:
            value = data.get(key) or []
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"{key} must be a list of strings")
            return value

        def optional(key: str) -> str | None:
            value = data.get(key)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{key} must be a string")
            return value

        def instant(key: str) -> datetime | None:
            value = optional(key)
            return datetime.fromisoformat(value) if value else None

        domain, max_rating = optional("content_domain"), optional("max_content_rating")
        return cls(
            media_types=frozenset(MediaType(v) for v in strings("media_types")),
            providers=frozenset(strings("providers")),
            on_providers=frozenset(strings("on_providers")),
            tags=frozenset(strings("tags")),
            content_domain=ContentDomain(domain) if domain else None,
            content_category=optional("content_category"),
            content_ratings=frozenset(ContentRating(v) for v in strings("content_ratings")),
            max_content_rating=ContentRating(max_rating) if max_rating else None,
            created_from=instant("created_from"),
            created_to=instant("created_to"),
            text=optional("text") or "",
            sort=SortOrder(optional("sort") or SortOrder.NEWEST.value),
            include_age_restricted=include_age_restricted,
        )


def tsquery_source(text: str) -> str | None:
    """``to_tsquery('simple', …)`` input for what the user typed: every word, the last as a prefix.

    Each whitespace-separated chunk is quoted, so operators in it are plain characters and
    PostgreSQL's own parser splits it exactly as it split the indexed text ("t-shirt", "boss_intro",
    "clip.mp4"). Chunks without a letter or digit are dropped; nothing left means no text filter.
    """
    chunks = [c for c in text.split() if any(ch.isalnum() for ch in c)]
    if not chunks:
        return None
    quoted = ["'" + c.replace("\\", "\\\\").replace("'", "''") + "'" for c in chunks]
    quoted[-1] += ":*"
    return " & ".join(quoted)


# -- what views receive --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AssetCard:
    """What a grid card shows. ``providers``: providers holding a usable reference (badges)."""

    id: int
    media_type: MediaType
    provider_id: str
    display_name: str
    width: int | None
    height: int | None
    duration_sec: float | None
    file_size_bytes: int | None
    sha256: str | None
    mime_type: str | None
    created_at: datetime
    tags: tuple[str, ...]
    content_rating: ContentRating
    age_restricted: bool
    sync_status: SyncStatus
    providers: tuple[str, ...]
    duplicate_group_id: int | None = None  # near-duplicates share it (expand: LibraryQuery.duplicate_group)
    stack_size: int = 1  # with stack_duplicates: members of this card's stack that pass the filters
    # Find-similar results: the cosine distance to the source (0 identical), and for a scene
    # segment hit the segment and where it starts (the card shows its keyframe; opening goes there).
    distance: float | None = None
    segment_id: int | None = None
    segment_start_sec: float | None = None

    @property
    def is_age_gated(self) -> bool:
        return is_age_gated(self.age_restricted, self.content_rating)


def is_age_gated(age_restricted: bool, rating: ContentRating) -> bool:
    """True for what the library hides unless the user shows age-restricted content."""
    return age_restricted or rating in AGE_GATED_RATINGS


@dataclass(frozen=True, slots=True)
class Facets:
    """Counts for the filter bar. Each dimension is counted for the query *without* its own filter,
    so the bar can show what choosing another value would give; ``total`` is the query's count."""

    total: int
    media_types: dict[MediaType, int]  # every media type, zeros included
    providers: dict[str, int]  # most assets first; selected providers are kept even at zero


@dataclass(frozen=True, slots=True)
class ProviderRefInfo:
    provider_id: str
    account_id: int | None
    account_label: str | None
    kind: ProviderRefKind
    ref: str
    url: str | None
    uploaded_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    is_origin: bool


@dataclass(frozen=True, slots=True)
class LineageLink:
    """One lineage edge seen from the inspected asset: the asset at the other end, and the edge."""

    asset: AssetCard
    edge_id: int
    operation: str
    role: str
    provider_id: str | None
    job_id: int | None
    start_sec: float | None
    end_sec: float | None
    frame: int | None
    sequence_order: int


@dataclass(frozen=True, slots=True)
class JobInfo:
    id: int
    provider_id: str
    operation: str
    params: dict[str, Any]
    status: JobStatus
    error_message: str | None
    created_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True, slots=True)
class AudioInfo:
    sample_rate: int | None
    channels: int | None
    bitrate: int | None
    codec: str | None
    bpm: float | None
    musical_key: str | None
    has_lyrics: bool | None
    is_speech: bool | None
    language: str | None


@dataclass(frozen=True, slots=True)
class Model3DInfo:
    polygon_count: int | None
    vertex_count: int | None
    file_format: str | None
    has_textures: bool
    has_animations: bool
    has_rigging: bool
    has_materials: bool


@dataclass(frozen=True, slots=True)
class AdultInfo:
    intensity_level: str | None
    tempo: str | None
    scene_type: str | None
    mood: str | None
    lighting: str | None


@dataclass(frozen=True, slots=True)
class AssetDetail:
    """Everything the inspector shows about one asset. ``card`` is the grid's card for the same asset
    (to refresh the grid after an edit). ``hidden_relatives`` counts lineage neighbours left out by
    the age gate."""

    card: AssetCard
    title: str | None
    description: str | None
    prompt: str | None
    tags: tuple[str, ...]
    style_tags: tuple[str, ...]
    content_domain: ContentDomain
    content_category: str | None
    content_rating: ContentRating
    age_restricted: bool
    searchable: bool
    provider_asset_id: str | None
    remote_url: str | None
    remote_url_expires_at: datetime | None
    original_source_url: str | None
    upload_method: UploadMethod
    width: int | None
    height: int | None
    duration_sec: float | None
    fps: float | None
    file_size_bytes: int | None
    mime_type: str | None
    sha256: str | None
    sync_status: SyncStatus
    created_at: datetime
    updated_at: datetime
    last_accessed_at: datetime | None
    provider_refs: tuple[ProviderRefInfo, ...]
    parents: tuple[LineageLink, ...]
    children: tuple[LineageLink, ...]
    hidden_relatives: int
    job: JobInfo | None
    audio: AudioInfo | None
    model_3d: Model3DInfo | None
    adult: AdultInfo | None

    @property
    def id(self) -> int:
        return self.card.id

    @property
    def media_type(self) -> MediaType:
        return self.card.media_type

    @property
    def provider_id(self) -> str:
        return self.card.provider_id

    @property
    def display_name(self) -> str:
        return self.card.display_name


_CATEGORY_MAX = 120  # assets.content_category is VARCHAR(120)
_SEARCH_NAME_MAX = 200  # saved_searches.name is VARCHAR(200)


@dataclass(frozen=True, slots=True)
class AssetEdit:
    """Changes to an asset's description and classification. ``None`` leaves a field unchanged; an
    empty string clears a text field, an empty tuple clears the tags. Tags are normalised
    (``normalize_tags``), texts trimmed."""

    title: str | None = None
    description: str | None = None
    tags: tuple[str, ...] | None = None
    content_domain: ContentDomain | None = None
    content_category: str | None = None
    content_rating: ContentRating | None = None
    age_restricted: bool | None = None

    def __post_init__(self) -> None:
        if self.tags is not None:
            object.__setattr__(self, "tags", normalize_tags(self.tags))
        if self.content_category is not None and len(self.content_category.strip()) > _CATEGORY_MAX:
            raise LibraryError(f"A content category has at most {_CATEGORY_MAX} characters.")

    @property
    def is_classification_only(self) -> bool:
        return self.title is None and self.description is None and self.tags is None

    def values(self) -> dict[str, Any]:
        """Column → new value for the fields this edit changes."""
        out: dict[str, Any] = {}
        for name in ("title", "description", "content_category"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value.strip() or None
        if self.tags is not None:
            out["tags"] = list(self.tags)
        for name in ("content_domain", "content_rating", "age_restricted"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


@dataclass(frozen=True, slots=True)
class SavedSearch:
    """A smart collection. Its ``query`` never carries the age gate: set it from the user's setting."""

    id: int
    name: str
    query: LibraryQuery
    created_at: datetime
    updated_at: datetime


# -- SQL building blocks -------------------------------------------------------------------------------

_CARD_COLUMNS = (
    Asset.id,
    Asset.media_type,
    Asset.provider_id,
    Asset.title,
    Asset.description,
    Asset.width,
    Asset.height,
    Asset.duration_sec,
    Asset.file_size_bytes,
    Asset.sha256,
    Asset.mime_type,
    Asset.created_at,
    Asset.tags,
    Asset.content_rating,
    Asset.age_restricted,
    Asset.sync_status,
    Asset.duplicate_group_id,
)

# Same expression as the ix_assets_sort_name index (core.db.models.asset.NAME_SORT_SQL).
_NAME_KEY = func.lower(func.left(func.coalesce(Asset.title, Asset.description), 100))
_SIMPLE: ColumnElement[Any] = literal_column("'simple'::regconfig")


def _ref_usable() -> ColumnElement[bool]:
    return or_(AssetProviderRef.expires_at.is_(None), AssetProviderRef.expires_at > func.now())


def _tsquery(query: LibraryQuery) -> ColumnElement[Any] | None:
    source = tsquery_source(query.text)
    return None if source is None else func.to_tsquery(_SIMPLE, source)


def _conditions(
    query: LibraryQuery, user_id: int, *, media: bool = True, providers: bool = True
) -> list[ColumnElement[bool]]:
    """WHERE terms for a query; ``media``/``providers`` False leave that dimension out (facets)."""
    terms: list[ColumnElement[bool]] = [Asset.user_id == user_id]
    if media and query.media_types:
        terms.append(Asset.media_type.in_(sorted(query.media_types)))
    if providers and query.providers:
        terms.append(Asset.provider_id.in_(sorted(query.providers)))
    if query.on_providers:
        terms.append(
            exists().where(
                AssetProviderRef.asset_id == Asset.id,
                AssetProviderRef.provider_id.in_(sorted(query.on_providers)),
                _ref_usable(),
            )
        )
    if query.tags:
        terms.append(Asset.tags.contains(sorted(query.tags)))
    if query.content_domain is not None:
        terms.append(Asset.content_domain == query.content_domain)
    if query.content_category is not None:
        terms.append(Asset.content_category == query.content_category)
    ratings = set(RATING_ORDER)
    if query.content_ratings:
        ratings &= query.content_ratings
    if query.max_content_rating is not None:
        ratings &= set(RATING_ORDER[: RATING_ORDER.index(query.max_content_rating) + 1])
    if not query.include_age_restricted:
        ratings -= AGE_GATED_RATINGS
        terms.append(~Asset.age_restricted)
    if ratings != set(RATING_ORDER):
        terms.append(Asset.content_rating.in_([r for r in RATING_ORDER if r in ratings]))
    if query.created_from is not None:
        terms.append(Asset.created_at >= query.created_from)
    if query.created_to is not None:
        terms.append(Asset.created_at < query.created_to)
    tsq = _tsquery(query)
    if tsq is not None:
        # Assets marked not searchable stay browsable but are never found by words.
        terms.append(Asset.searchable.is_(True))
        terms.append(Asset.search_vector.bool_op("@@")(tsq))
    if query.duplicate_group is not None:
        terms.append(Asset.duplicate_group_id == query.duplicate_group)
    elif query.stack_duplicates:
        terms.append(_stack_term(terms))
    return terms


def _stack_term(terms: Sequence[ColumnElement[bool]]) -> ColumnElement[bool]:
    """Keep assets in no group, and of each group the representative among the members that pass
    the same filters (``terms`` rewritten onto an alias): a filter never hides a whole stack just
    because its best member does not match. Walks ``ix_assets_duplicate_group_id`` per grouped row,
    so the grid's sort index is still used."""
    member = Asset.__table__.alias("stack_member")
    adapter = ClauseAdapter(member)
    best = (
        select(member.c.id)
        .where(member.c.duplicate_group_id == Asset.duplicate_group_id, *(adapter.traverse(t) for t in terms))
        .order_by(
            (member.c.width * member.c.height).desc().nulls_last(),
            member.c.file_size_bytes.desc().nulls_last(),
            member.c.created_at.asc(),
            member.c.id.asc(),
        )
        .limit(1)
        .scalar_subquery()
    )
    return or_(Asset.duplicate_group_id.is_(None), Asset.id == best)


def _order_by(query: LibraryQuery) -> list[ColumnElement[Any]]:
    """Every order ends with ``id`` so equal keys page stably, and has an index on ``assets``.

    With words to match, the planner weighs walking a sort index (good for common words) against
    the GIN index and a top-N sort (good for rare ones) by the column's statistics, which is why
    migration 0004 analyzes ``assets`` after adding ``search_vector``.
    """
    sort = query.sort
    if sort is SortOrder.RELEVANCE:
        tsq = _tsquery(query)
        if tsq is not None:
            return [func.ts_rank(Asset.search_vector, tsq).desc(), Asset.id.desc()]
        sort = SortOrder.NEWEST
    if sort is SortOrder.OLDEST:
        return [Asset.created_at.asc(), Asset.id.asc()]
    if sort is SortOrder.NAME:
        return [_NAME_KEY.asc().nulls_last(), Asset.id.asc()]
    if sort is SortOrder.DURATION:
        return [Asset.duration_sec.desc().nulls_last(), Asset.id.desc()]
    if sort is SortOrder.SIZE:
        return [Asset.file_size_bytes.desc().nulls_last(), Asset.id.desc()]
    if sort is SortOrder.RECENTLY_USED:
        return [Asset.last_accessed_at.desc().nulls_last(), Asset.id.desc()]
    return [Asset.created_at.desc(), Asset.id.desc()]


def search_statement(
    query: LibraryQuery, user_id: int, offset: int = 0, limit: int = 200
) -> Select[*tuple[Any, ...]]:
    """The page query of ``LibraryService.search`` (public for EXPLAIN in tests and diagnostics)."""
    return (
        select(*_CARD_COLUMNS)
        .where(*_conditions(query, user_id))
        .order_by(*_order_by(query))
        .offset(offset)
        .limit(limit)
    )


def count_statement(query: LibraryQuery, user_id: int) -> Select[*tuple[Any, ...]]:
    return select(func.count()).select_from(Asset).where(*_conditions(query, user_id))


def _card(row: Any, providers: Mapping[int, tuple[str, ...]]) -> AssetCard:
    return AssetCard(
        id=row.id,
        media_type=row.media_type,
        provider_id=row.provider_id,
        display_name=display_name(row.id, row.media_type, row.title, row.description),
        width=row.width,
        height=row.height,
        duration_sec=row.duration_sec,
        file_size_bytes=row.file_size_bytes,
        sha256=row.sha256,
        mime_type=row.mime_type,
        created_at=row.created_at,
        tags=tuple(row.tags or ()),
        content_rating=row.content_rating,
        age_restricted=row.age_restricted,
        sync_status=row.sync_status,
        providers=providers.get(row.id, ()),
        duplicate_group_id=row.duplicate_group_id,
    )


async def _badges(session: AsyncSession, asset_ids: Sequence[int]) -> dict[int, tuple[str, ...]]:
    """Provider ids holding a usable reference, per asset: one query for a whole page."""
    if not asset_ids:
        return {}
    stmt = (
        select(AssetProviderRef.asset_id, AssetProviderRef.provider_id)
        .where(AssetProviderRef.asset_id.in_(asset_ids), _ref_usable())
        .distinct()
        .order_by(AssetProviderRef.asset_id, AssetProviderRef.provider_id)
    )
    found: dict[int, list[str]] = {}
    for asset_id, provider_id in (await session.execute(stmt)).all():
        found.setdefault(asset_id, []).append(provider_id)
    return {asset_id: tuple(ids) for asset_id, ids in found.items()}


def _stacked(query: LibraryQuery) -> bool:
    """Cards stand for stacks: stacking is on and the grid is not showing one stack's members."""
    return query.stack_duplicates and query.duplicate_group is None


async def _stack_sizes(
    session: AsyncSession, query: LibraryQuery, user_id: int, rows: Sequence[Any]
) -> dict[int, int]:
    """Per duplicate group on the page: how many members pass the query's filters."""
    groups = sorted({row.duplicate_group_id for row in rows if row.duplicate_group_id is not None})
    if not groups:
        return {}
    unstacked = replace(query, stack_duplicates=False)
    stmt = (
        select(Asset.duplicate_group_id, func.count())
        .where(*_conditions(unstacked, user_id), Asset.duplicate_group_id.in_(groups))
        .group_by(Asset.duplicate_group_id)
    )
    return {group: int(n) for group, n in (await session.execute(stmt)).all() if group is not None}


def _link(edge: AssetLineage, card: AssetCard) -> LineageLink:
    return LineageLink(
        asset=card,
        edge_id=edge.id,
        operation=edge.operation,
        role=edge.parent_role,
        provider_id=edge.provider_id,
        job_id=edge.job_id,
        start_sec=edge.parent_start_sec,
        end_sec=edge.parent_end_sec,
        frame=edge.parent_frame,
        sequence_order=edge.sequence_order,
    )


_SEARCH_NAME_UNIQUE = "uq_saved_searches_user_id_name"
_SAVED_COLUMNS = (
    SavedSearchRecord.id,
    SavedSearchRecord.name,
    SavedSearchRecord.query,
    SavedSearchRecord.created_at,
    SavedSearchRecord.updated_at,
)


def _saved(record: Any) -> SavedSearch:
    return SavedSearch(
        id=record.id,
        name=record.name,
        query=LibraryQuery.from_json(record.query),
        created_at=record.created_at,
        updated_at=record.updated_at,
    )


def _search_name(name: str) -> str:
    cleaned = _WHITESPACE.sub(" ", name).strip()
    if not cleaned:
        raise LibraryError("A saved search needs a name.")
    if len(cleaned) > _SEARCH_NAME_MAX:
        raise LibraryError(f"A saved search's name has at most {_SEARCH_NAME_MAX} characters.")
    return cleaned


def _duplicate(name: str) -> DuplicateSearchName:
    return DuplicateSearchName(f'A saved search named "{name}" already exists. Choose another name.')


@dataclass
class _TagCache:
    expires: float
    tags: list[tuple[str, int]] = field(default_factory=list)


# -- the service ---------------------------------------------------------------------------------------


class LibraryService:
    # Tag completion reads every asset's tags (~90 ms at 100k assets): cached this long, and dropped
    # when this service edits tags. Tags added by jobs appear after at most this delay.
    TAG_CACHE_SECONDS = 30.0

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, username: str = LOCAL_USERNAME) -> None:
        self._sessions = sessions
        self._username = username
        self._user_id: int | None = None
        self._tag_cache: dict[bool, _TagCache] = {}
        self._store: EmbeddingStore | None = None
        self._embedders: dict[str, Embedder] = {}
        # Find-similar answers per query: the grid asks count and pages of one query at once.
        self._similar_cache: dict[LibraryQuery, tuple[float, asyncio.Future[list[SimilarHit]]]] = {}

    async def user_id(self) -> int:
        """The id of the user whose library this is (looked up once)."""
        if self._user_id is None:
            async with self._sessions() as session:
                user_id = await session.scalar(select(User.id).where(User.username == self._username))
            if user_id is None:
                raise LibraryError(f'The library has no user "{self._username}".')
            self._user_id = user_id
        return self._user_id

    # -- the grid ------------------------------------------------------------------------------------

    async def count_assets(self) -> int:
        async with self._sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(Asset)) or 0)

    async def list_assets(self, offset: int = 0, limit: int = 200) -> list[AssetSummary]:
        """Newest first; ``id`` breaks ties so paging is stable."""
        stmt = select(Asset).order_by(Asset.created_at.desc(), Asset.id.desc()).offset(offset).limit(limit)
        async with self._sessions() as session:
            return [_summary(a) for a in await session.scalars(stmt)]

    async def search(self, query: LibraryQuery, offset: int = 0, limit: int = 200) -> list[AssetCard]:
        """One page of the grid. Pages of one query never overlap or skip (every sort ends on id)."""
        if offset < 0:
            raise ValueError("offset must not be negative")
        if limit <= 0:
            return []
        if query.similar_to is not None:
            return await self._similar_page(query, offset, limit)
        user_id = await self.user_id()
        stmt = search_statement(query, user_id, offset, limit)
        async with self._sessions() as session:
            rows = (await session.execute(stmt)).all()
            badges = await _badges(session, [row.id for row in rows])
            sizes = await _stack_sizes(session, query, user_id, rows) if _stacked(query) else {}
        cards = [_card(row, badges) for row in rows]
        if sizes:
            cards = [
                replace(c, stack_size=sizes.get(c.duplicate_group_id, 1)) if c.duplicate_group_id else c
                for c in cards
            ]
        return cards

    async def count(self, query: LibraryQuery) -> int:
        if query.similar_to is not None:
            return len(await self.similar_hits(query))
        user_id = await self.user_id()
        if query.stack_duplicates and query.duplicate_group is None:
            return await self._stacked_count(query, user_id)
        stmt = count_statement(query, user_id)
        async with self._sessions() as session:
            return int(await session.scalar(stmt) or 0)

    async def _stacked_count(self, query: LibraryQuery, user_id: int) -> int:
        """Cards of a stacked grid: every group with a member passing the filters is one card. Counted
        as the flat count (index-only where the grid's is) minus grouped members plus their groups,
        instead of evaluating the representative subquery on every row (4x slower at 100k)."""
        flat = replace(query, stack_duplicates=False)
        conditions = _conditions(flat, user_id)
        grouped = select(func.count(), func.count(Asset.duplicate_group_id.distinct())).where(
            *conditions, Asset.duplicate_group_id.is_not(None)
        )
        async with self._sessions() as session:
            total = int(await session.scalar(count_statement(flat, user_id)) or 0)
            members, groups = (await session.execute(grouped)).one()
        return total - int(members) + int(groups)

    async def facets(self, query: LibraryQuery) -> Facets:
        """Counts per media type and per provider, and the query's total, from one scan.

        The scan applies every filter but media type and provider and groups by both; each facet
        then sums the pairs that pass the *other* dimension's filter.
        """
        conditions = _conditions(query, await self.user_id(), media=False, providers=False)
        if query.similar_to is not None:
            # Find-similar results: what the results hold (their own filters applied).
            hits = await self.similar_hits(query)
            conditions.append(Asset.id.in_(sorted({h.asset_id for h in hits})))
        stmt = (
            select(Asset.media_type, Asset.provider_id, func.count())
            .where(*conditions)
            .group_by(Asset.media_type, Asset.provider_id)
        )
        async with self._sessions() as session:
            pairs = (await session.execute(stmt)).all()

        def media_ok(media_type: MediaType) -> bool:
            return not query.media_types or media_type in query.media_types

        def provider_ok(provider_id: str) -> bool:
            return not query.providers or provider_id in query.providers

        media_counts = dict.fromkeys(MediaType, 0)
        provider_counts = dict.fromkeys(sorted(query.providers), 0)
        total = 0
        for media_type, provider_id, n in pairs:
            if provider_ok(provider_id):
                media_counts[media_type] += n
            if media_ok(media_type):
                provider_counts[provider_id] = provider_counts.get(provider_id, 0) + n
                if provider_ok(provider_id):
                    total += n
        ordered = dict(sorted(provider_counts.items(), key=lambda item: (-item[1], item[0])))
        return Facets(total=total, media_types=media_counts, providers=ordered)

    async def all_tags(
        self, prefix: str = "", limit: int = 20, *, include_age_restricted: bool = False
    ) -> list[str]:
        """Tags starting with ``prefix`` (normalised), most used first, for completion.

        Tags of age-gated assets are suggested only when ``include_age_restricted``.
        """
        cached = self._tag_cache.get(include_age_restricted)
        if cached is None or cached.expires < time.monotonic():
            tag = func.unnest(Asset.tags).table_valued("tag").render_derived()
            conditions = _conditions(
                LibraryQuery(include_age_restricted=include_age_restricted), await self.user_id()
            )
            stmt = (
                select(tag.c.tag, func.count())
                .select_from(Asset)
                .join(tag, literal_column("true"))
                .where(*conditions)
                .group_by(tag.c.tag)
                .order_by(func.count().desc(), tag.c.tag)
            )
            async with self._sessions() as session:
                rows = (await session.execute(stmt)).all()
            cached = _TagCache(time.monotonic() + self.TAG_CACHE_SECONDS, [(t, n) for t, n in rows])
            self._tag_cache[include_age_restricted] = cached
        wanted = normalize_tag(prefix)
        return [t for t, _ in cached.tags if t.startswith(wanted)][: max(limit, 0)]

    # -- find similar ----------------------------------------------------------------------------

    SIMILAR_CACHE_SECONDS = 15.0

    def set_embedders(self, embedders: Sequence[Embedder]) -> None:
        """The embedders the app has loaded (the visual signature, CLIP when installed): describe
        searches embed their words with the text-capable one. Cached answers are dropped."""
        self._embedders = {e.model_id: e for e in embedders}
        self._similar_cache.clear()

    @property
    def text_model(self) -> str | None:
        """The model id of a loaded embedder that embeds text (CLIP), if any."""
        return next((name for name, e in self._embedders.items() if e.supports_text), None)

    def forget_similar(self) -> None:
        """Drop cached find-similar answers (after indexing stored new vectors)."""
        self._similar_cache.clear()

    @property
    def embedding_store(self) -> EmbeddingStore:
        if self._store is None:
            from core.embeddings.store import EmbeddingStore

            self._store = EmbeddingStore(self._sessions, username=self._username)
        return self._store

    async def similar_hits(self, query: LibraryQuery) -> list[SimilarHit]:
        """The find-similar results of ``query`` (nearest first), from the embedding store with the
        query's filters; one search serves the count and every page for a few seconds."""
        if query.similar_to is None:
            raise ValueError("not a find-similar query")
        now = time.monotonic()
        for key in [k for k, (at, _) in self._similar_cache.items() if now - at > self.SIMILAR_CACHE_SECONDS]:
            del self._similar_cache[key]
        cached = self._similar_cache.get(query)
        if cached is None:
            future = asyncio.ensure_future(self._find_similar(query))
            cached = self._similar_cache[query] = (now, future)
            while len(self._similar_cache) > 8:
                del self._similar_cache[next(iter(self._similar_cache))]
        try:
            return await asyncio.shield(cached[1])
        except Exception:
            if self._similar_cache.get(query) is cached:
                del self._similar_cache[query]  # asking again tries again
            raise

    async def _find_similar(self, query: LibraryQuery) -> list[SimilarHit]:
        similar = query.similar_to
        assert similar is not None
        if not query.stack_duplicates or query.duplicate_group is not None:
            return await self._nearest(query, similar.k)
        # Stacked: the nearest member of each group of near-duplicates stands for its group. The
        # store searches unstacked (a stack's representative may be the source itself, which is
        # left out: its near-duplicates must still show) with room for the members folded away.
        hits = await self._nearest(replace(query, stack_duplicates=False), similar.k * 2)
        grouped = sorted({h.asset_id for h in hits if h.segment_id is None})
        async with self._sessions() as session:
            rows = await session.execute(
                select(Asset.id, Asset.duplicate_group_id).where(
                    Asset.id.in_(grouped), Asset.duplicate_group_id.is_not(None)
                )
            )
            groups = {row.id: row.duplicate_group_id for row in rows}
        seen: set[int] = set()
        kept = []
        for hit in hits:
            group = groups.get(hit.asset_id) if hit.segment_id is None else None
            if group is not None:
                if group in seen:
                    continue
                seen.add(group)
            kept.append(hit)
        return kept[: similar.k]

    async def _nearest(self, query: LibraryQuery, k: int) -> list[SimilarHit]:
        similar = query.similar_to
        assert similar is not None
        store = self.embedding_store
        filters = replace(query, similar_to=None)
        segments = similar.include_segments
        if similar.text is not None:
            embedder = self._embedders.get(similar.model)
            if embedder is None or not embedder.supports_text:
                raise LibraryError(
                    "Describing what you look for needs CLIP: install it in Settings → Models, "
                    "or run `pixsim models install clip`."
                )
            return await store.search_text(
                similar.text,
                embedder,  # type: ignore[arg-type]  # supports_text: a TextEmbedder
                filters,
                k,
                include_segments=segments,
            )
        model_id = await self._model_id(similar.model)
        if similar.asset_id is not None:
            return await store.similar_to_asset(
                model_id, similar.asset_id, query=filters, k=k, include_segments=segments
            )
        if similar.segment_id is not None:
            return await store.similar_to_segment(
                model_id, similar.segment_id, query=filters, k=k, include_segments=segments
            )
        assert similar.vector is not None
        return await store.similar(model_id, similar.vector, query=filters, k=k, include_segments=segments)

    async def _model_id(self, model: str) -> int:
        for info in await self.embedding_store.models():
            if info.name == model:
                return info.id
        raise LibraryError(
            f"Nothing has been indexed with {model} yet. Indexing runs in the background "
            "(Transfers and Jobs shows its progress); try again when it is done."
        )

    async def _similar_page(self, query: LibraryQuery, offset: int, limit: int) -> list[AssetCard]:
        hits = (await self.similar_hits(query))[offset : offset + limit]
        if not hits:
            return []
        user_id = await self.user_id()
        wanted = sorted({h.asset_id for h in hits})
        stmt = select(*_CARD_COLUMNS).where(Asset.id.in_(wanted), Asset.user_id == user_id)
        async with self._sessions() as session:
            rows = (await session.execute(stmt)).all()
            badges = await _badges(session, wanted)
            sizes = await _stack_sizes(session, query, user_id, rows) if _stacked(query) else {}
        by_id = {row.id: _card(row, badges) for row in rows}
        cards = []
        for hit in hits:
            card = by_id.get(hit.asset_id)
            if card is None:
                continue  # deleted since the search ran
            cards.append(
                replace(
                    card,
                    distance=hit.distance,
                    segment_id=hit.segment_id,
                    segment_start_sec=hit.start_sec if hit.segment_id is not None else None,
                    stack_size=sizes.get(card.duplicate_group_id, 1) if card.duplicate_group_id else 1,
                )
            )
        return cards

    # -- the inspector -------------------------------------------------------------------------------

    async def detail(self, asset_id: int, *, include_age_restricted: bool = False) -> AssetDetail:
        """Everything about one asset in five queries, however large its lineage.

        The asset itself is always returned (the caller holds its id); lineage neighbours the age
        gate hides are left out and counted in ``hidden_relatives``.
        """
        user_id = await self.user_id()
        async with self._sessions() as session:
            asset = await session.scalar(
                select(Asset)
                .where(Asset.id == asset_id, Asset.user_id == user_id)
                .options(
                    joinedload(Asset.audio_metadata),
                    joinedload(Asset.model_3d_metadata),
                    joinedload(Asset.adult_metadata),
                )
            )
            if asset is None:
                raise AssetNotFound(f"Asset {asset_id} is not in the library.")
            ref_rows = (
                await session.execute(
                    select(AssetProviderRef, ProviderAccount.label)
                    .outerjoin(ProviderAccount, ProviderAccount.id == AssetProviderRef.account_id)
                    .where(AssetProviderRef.asset_id == asset_id)
                    .order_by(
                        AssetProviderRef.is_origin.desc(), AssetProviderRef.provider_id, AssetProviderRef.id
                    )
                )
            ).all()
            as_parent = AssetLineage.parent_asset_id == asset_id
            edge_rows = (
                await session.execute(
                    select(AssetLineage, *_CARD_COLUMNS)
                    .join(
                        Asset,
                        or_(
                            and_(as_parent, Asset.id == AssetLineage.child_asset_id),
                            and_(
                                AssetLineage.child_asset_id == asset_id,
                                Asset.id == AssetLineage.parent_asset_id,
                            ),
                        ),
                    )
                    .order_by(AssetLineage.sequence_order, AssetLineage.id)
                )
            ).all()
            badges = await _badges(session, [asset_id, *(row.id for row in edge_rows)])
            made_by = select(JobResultAsset.job_id).where(JobResultAsset.asset_id == asset_id)
            edge_jobs = {
                row[0].job_id
                for row in edge_rows
                if row[0].child_asset_id == asset_id and row[0].job_id is not None
            }
            job = await session.scalar(
                select(Job)
                .where(or_(Job.id.in_(made_by), Job.id.in_(sorted(edge_jobs))))
                .order_by(case((Job.id.in_(made_by), 0), else_=1), Job.created_at.desc(), Job.id.desc())
                .limit(1)
            )

        parents: list[LineageLink] = []
        children: list[LineageLink] = []
        hidden = 0
        for row in edge_rows:
            edge: AssetLineage = row[0]
            card = _card(row, badges)
            if not include_age_restricted and card.is_age_gated:
                hidden += 1
            elif edge.child_asset_id == asset_id:
                parents.append(_link(edge, card))
            else:
                children.append(_link(edge, card))

        audio, model_3d, adult = asset.audio_metadata, asset.model_3d_metadata, asset.adult_metadata
        return AssetDetail(
            card=_card(asset, badges),
            title=asset.title,
            description=asset.description,
            prompt=asset.prompt,
            tags=tuple(asset.tags),
            style_tags=tuple(asset.style_tags),
            content_domain=asset.content_domain,
            content_category=asset.content_category,
            content_rating=asset.content_rating,
            age_restricted=asset.age_restricted,
            searchable=asset.searchable,
            provider_asset_id=asset.provider_asset_id,
            remote_url=asset.remote_url,
            remote_url_expires_at=asset.remote_url_expires_at,
            original_source_url=asset.original_source_url,
            upload_method=asset.upload_method,
            width=asset.width,
            height=asset.height,
            duration_sec=asset.duration_sec,
            fps=asset.fps,
            file_size_bytes=asset.file_size_bytes,
            mime_type=asset.mime_type,
            sha256=asset.sha256,
            sync_status=asset.sync_status,
            created_at=asset.created_at,
            updated_at=asset.updated_at,
            last_accessed_at=asset.last_accessed_at,
            provider_refs=tuple(
                ProviderRefInfo(
                    provider_id=ref.provider_id,
                    account_id=ref.account_id,
                    account_label=label,
                    kind=ref.ref_kind,
                    ref=ref.provider_ref,
                    url=ref.url,
                    uploaded_at=ref.uploaded_at,
                    expires_at=ref.expires_at,
                    last_used_at=ref.last_used_at,
                    is_origin=ref.is_origin,
                )
                for ref, label in ref_rows
            ),
            parents=tuple(parents),
            children=tuple(children),
            hidden_relatives=hidden,
            job=None
            if job is None
            else JobInfo(
                id=job.id,
                provider_id=job.provider_id,
                operation=job.operation_type,
                params=dict(job.params),
                status=job.status,
                error_message=job.error_message,
                created_at=job.created_at,
                finished_at=job.finished_at,
            ),
            audio=None if audio is None else AudioInfo(**_columns(audio, AudioInfo)),
            model_3d=None if model_3d is None else Model3DInfo(**_columns(model_3d, Model3DInfo)),
            adult=None if adult is None else AdultInfo(**_columns(adult, AdultInfo)),
        )

    async def update(
        self, asset_id: int, edit: AssetEdit, *, include_age_restricted: bool = False
    ) -> AssetDetail:
        """Apply an edit and return the asset as it now is."""
        values = edit.values()
        user_id = await self.user_id()
        async with self._sessions() as session, session.begin():
            if values:
                stmt = (
                    update(Asset)
                    .where(Asset.id == asset_id, Asset.user_id == user_id)
                    .values(**values)
                    .returning(Asset.id)
                    .execution_options(synchronize_session=False)
                )
                found = await session.scalar(stmt)
            else:
                found = await session.scalar(
                    select(Asset.id).where(Asset.id == asset_id, Asset.user_id == user_id)
                )
            if found is None:
                raise AssetNotFound(f"Asset {asset_id} is not in the library.")
        if "tags" in values:
            self._tag_cache.clear()
        return await self.detail(asset_id, include_age_restricted=include_age_restricted)

    async def update_many(self, asset_ids: Iterable[int], edit: AssetEdit) -> int:
        """Set classification fields (domain, category, rating, age restriction) on many assets at
        once. Returns how many assets were changed; ids that are not in the library are skipped."""
        if not edit.is_classification_only:
            raise ValueError(
                "update_many changes classification fields only (not title, description or tags)"
            )
        ids = sorted(set(asset_ids))
        values = edit.values()
        if not ids or not values:
            return 0
        user_id = await self.user_id()
        stmt = (
            update(Asset)
            .where(Asset.id.in_(ids), Asset.user_id == user_id)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        async with self._sessions() as session, session.begin():
            result = await session.execute(stmt)
        self._tag_cache.clear()  # age gate changes move tags in or out of the suggestions
        return int(getattr(result, "rowcount", 0))

    # -- saved searches ------------------------------------------------------------------------------

    async def save_search(self, name: str, query: LibraryQuery, *, replace: bool = False) -> SavedSearch:
        """Keep ``query`` under ``name``. An existing name is refused (``DuplicateSearchName``)
        unless ``replace``, which overwrites that search's query."""
        name = _search_name(name)
        stmt = pg_insert(SavedSearchRecord).values(
            user_id=await self.user_id(), name=name, query=query.to_json()
        )
        if replace:
            stmt = stmt.on_conflict_do_update(
                constraint=_SEARCH_NAME_UNIQUE,
                set_={"query": stmt.excluded.query, "updated_at": func.now()},
            )
        else:
            stmt = stmt.on_conflict_do_nothing(constraint=_SEARCH_NAME_UNIQUE)
        async with self._sessions() as session, session.begin():
            row = (await session.execute(stmt.returning(*_SAVED_COLUMNS))).one_or_none()
        if row is None:
            raise _duplicate(name)
        return _saved(row)

    async def saved_searches(self) -> list[SavedSearch]:
        """This user's saved searches, by name."""
        stmt = (
            select(*_SAVED_COLUMNS)
            .where(SavedSearchRecord.user_id == await self.user_id())
            .order_by(func.lower(SavedSearchRecord.name), SavedSearchRecord.id)
        )
        async with self._sessions() as session:
            return [_saved(row) for row in (await session.execute(stmt)).all()]

    async def rename_search(self, search_id: int, name: str) -> SavedSearch:
        name = _search_name(name)
        stmt = (
            update(SavedSearchRecord)
            .where(SavedSearchRecord.id == search_id, SavedSearchRecord.user_id == await self.user_id())
            .values(name=name, updated_at=func.now())
            .returning(*_SAVED_COLUMNS)
            .execution_options(synchronize_session=False)
        )
        try:
            async with self._sessions() as session, session.begin():
                row = (await session.execute(stmt)).one_or_none()
        except IntegrityError as exc:
            if _SEARCH_NAME_UNIQUE in str(exc.orig):
                raise _duplicate(name) from None
            raise
        if row is None:
            raise SavedSearchNotFound(f"There is no saved search {search_id}.")
        return _saved(row)

    async def delete_search(self, search_id: int) -> None:
        stmt = (
            delete(SavedSearchRecord)
            .where(SavedSearchRecord.id == search_id, SavedSearchRecord.user_id == await self.user_id())
            .returning(SavedSearchRecord.id)
            .execution_options(synchronize_session=False)
        )
        async with self._sessions() as session, session.begin():
            deleted = (await session.execute(stmt)).one_or_none()
        if deleted is None:
            raise SavedSearchNotFound(f"There is no saved search {search_id}.")

    # -- seed examples -------------------------------------------------------------------------------

    async def find_by_category(
        self,
        content_category: str,
        *,
        content_domain: ContentDomain | None = None,
        intensity_level: str | None = None,
        mood: str | None = None,
        scene_type: str | None = None,
        lighting: str | None = None,
    ) -> list[AssetSummary]:
        """The seed's Example 2: a content category narrowed by the domain metadata table."""
        stmt = select(Asset).where(Asset.content_category == content_category)
        if content_domain is not None:
            stmt = stmt.where(Asset.content_domain == content_domain)
        meta_filters = {
            AssetAdultMetadata.intensity_level: intensity_level,
            AssetAdultMetadata.mood: mood,
            AssetAdultMetadata.scene_type: scene_type,
            AssetAdultMetadata.lighting: lighting,
        }
        wanted = [column == value for column, value in meta_filters.items() if value is not None]
        if wanted:
            stmt = stmt.join(AssetAdultMetadata).where(*wanted)
        stmt = stmt.order_by(Asset.created_at.desc(), Asset.id.desc())
        async with self._sessions() as session:
            return [_summary(a) for a in await session.scalars(stmt)]

    async def branch_variants(self, source_asset_id: int) -> list[BranchVariantRow]:
        """The seed's Example 3: every branch of a video with its variants, loaded in one query."""
        stmt = (
            select(AssetBranch, AssetBranchVariant, Asset)
            .join(AssetBranchVariant, AssetBranchVariant.branch_id == AssetBranch.id)
            .join(Asset, AssetBranchVariant.variant_asset_id == Asset.id)
            .where(AssetBranch.source_asset_id == source_asset_id)
            .order_by(AssetBranch.branch_time_sec, AssetBranchVariant.display_order, AssetBranchVariant.id)
        )
        async with self._sessions() as session:
            rows = (await session.execute(stmt)).all()
        return [
            BranchVariantRow(
                branch_id=branch.id,
                branch_name=branch.branch_name,
                branch_tag=branch.branch_tag,
                branch_time_sec=branch.branch_time_sec,
                branch_frame=branch.branch_frame,
                variant_id=variant.id,
                variant_name=variant.variant_name,
                variant_tag=variant.variant_tag,
                weight=variant.weight,
                conditions=dict(variant.conditions),
                variant_asset_id=asset.id,
                variant_duration_sec=asset.duration_sec,
            )
            for branch, variant, asset in rows
        ]


def _columns(record: object, target: type[Any]) -> dict[str, Any]:
    """The attributes of ``record`` named like the fields of the dataclass ``target``."""
    return {f.name: getattr(record, f.name) for f in fields(target)}
