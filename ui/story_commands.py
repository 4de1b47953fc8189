"""Undo/redo for story edits: one ``QUndoCommand`` per edit, run through the core loop one at a time.

An edit is first done (and checked) by the story service; only an edit that succeeded is pushed, so a
refused edit never enters the stack and writes nothing. Undo and redo then call the service again, in
order (``StoryOps`` serialises them on the core loop). Undoing a delete re-creates the row with a new
id; ``IdMap`` keeps every command's original ids pointing at the current rows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar

from PySide6.QtGui import QUndoCommand

from core.story.model import Branch, Clip, Variant
from ui.bridge import CoreBridge

if TYPE_CHECKING:
    from core.story.service import StoryService

T = TypeVar("T")
Kind = Literal["branch", "variant", "clip"]


class IdMap:
    """Original id → current id, per kind of row (rows re-created by undo get new ids)."""

    def __init__(self) -> None:
        self._moved: dict[tuple[Kind, int], int] = {}

    def current(self, kind: Kind, original: int) -> int:
        seen: set[int] = set()
        now = original
        while (kind, now) in self._moved and now not in seen:
            seen.add(now)
            now = self._moved[(kind, now)]
        return now

    def moved(self, kind: Kind, old: int, new: int) -> None:
        if old != new:
            self._moved[(kind, old)] = new

    def branch_restored(self, old: Branch, new: Branch) -> None:
        self.moved("branch", old.id, new.id)
        for before, after in zip(old.variants, new.variants, strict=False):
            self.moved("variant", before.id, after.id)


class StoryOps:
    """Runs story edits on the core loop strictly one after another, results back on the GUI thread."""

    def __init__(self, bridge: CoreBridge, service: StoryService) -> None:
        self.bridge = bridge
        self.service = service
        self.ids = IdMap()
        self._lock = asyncio.Lock()  # binds to the core loop on first use
        self.pending = 0

    def run(
        self,
        make: Callable[[], Awaitable[T]],
        on_done: Callable[[T], None],
        on_error: Callable[[BaseException], None],
    ) -> None:
        """``make`` is called on the core loop when the previous edit has finished (ids are current then)."""
        self.pending += 1

        async def serial() -> T:
            async with self._lock:
                return await make()

        def done(result: T) -> None:
            self.pending -= 1
            on_done(result)

        def failed(error: BaseException) -> None:
            self.pending -= 1
            on_error(error)

        self.bridge.call(serial(), done, failed)


class EditorHooks(Protocol):
    """What commands need from the editor window."""

    ops: StoryOps

    def story_changed(self, focus: tuple[Kind, int] | None = None) -> None: ...

    def edit_failed(self, error: BaseException) -> None: ...


class StoryCommand(QUndoCommand):
    """An edit already done once: the stack's first ``redo`` (on push) does nothing."""

    kind: Kind = "branch"

    def __init__(self, editor: EditorHooks, text: str) -> None:
        super().__init__(text)
        self.editor = editor
        self._first = True

    @property
    def ops(self) -> StoryOps:
        return self.editor.ops

    def redo(self) -> None:
        if self._first:
            self._first = False
            return
        self._run(self._apply)

    def undo(self) -> None:
        self._run(self._revert)

    def _run(self, step: Callable[[], Awaitable[int | None]]) -> None:
        def done(focus_id: int | None) -> None:
            self.editor.story_changed((self.kind, focus_id) if focus_id is not None else None)

        self.ops.run(step, done, self.editor.edit_failed)

    def _id(self, kind: Kind, original: int) -> int:
        return self.ops.ids.current(kind, original)

    async def _apply(self) -> int | None:
        raise NotImplementedError

    async def _revert(self) -> int | None:
        raise NotImplementedError


# -- add / delete (shared by branches, variants and clips) -----------------------------------------

R = TypeVar("R", Branch, Variant, Clip)


class _Presence(StoryCommand, Generic[R]):
    """Add or delete one row; undoing does the other. A kind supplies its restore and delete calls.

    ``row`` is the row as it was when it existed, keyed by its original ids (``IdMap`` finds the current
    ones), so the command can re-create it any number of times.
    """

    def __init__(self, editor: EditorHooks, row: R, text: str, *, adding: bool) -> None:
        super().__init__(editor, text)
        self.row: R = row
        self.adding = adding

    async def _restore(self, row: R) -> R:
        """Re-create ``row`` through the service (after mapping the ids it refers to to current ones)."""
        raise NotImplementedError

    async def _delete(self, current_id: int) -> R:
        """Delete the row that is now ``current_id`` through the service; returns what was deleted."""
        raise NotImplementedError

    def _rekeyed(self, removed: R) -> R:
        """What was deleted, keyed by the original ids again."""
        return replace(removed, id=self.row.id)

    def _restored(self, new: R) -> None:
        self.ops.ids.moved(self.kind, self.row.id, new.id)

    async def _create(self) -> int:
        self._restored(await self._restore(self.row))
        return self.row.id

    async def _remove(self) -> None:
        self.row = self._rekeyed(await self._delete(self._id(self.kind, self.row.id)))

    async def _apply(self) -> int | None:
        if self.adding:
            return await self._create()
        await self._remove()
        return None

    async def _revert(self) -> int | None:
        if self.adding:
            await self._remove()
            return None
        return await self._create()


class _Update(StoryCommand):
    """Change some fields of one row; undoing sets them back. A kind supplies its update call."""

    def __init__(
        self,
        editor: EditorHooks,
        row_id: int,
        before: Mapping[str, Any],
        after: Mapping[str, Any],
        text: str,
    ) -> None:
        super().__init__(editor, text)
        self.row_id = row_id  # the original id
        self.before = dict(before)
        self.after = dict(after)

    async def _update(self, current_id: int, fields: dict[str, Any]) -> None:
        raise NotImplementedError

    async def _apply(self) -> int | None:
        await self._update(self._id(self.kind, self.row_id), self.after)
        return self.row_id

    async def _revert(self) -> int | None:
        await self._update(self._id(self.kind, self.row_id), self.before)
        return self.row_id


# -- branches ------------------------------------------------------------------------------------------


class _BranchPresence(_Presence[Branch]):
    """Add or delete one branch (with its variants)."""

    kind: Kind = "branch"

    async def _restore(self, row: Branch) -> Branch:
        return await self.ops.service.restore_branch(replace(row, id=self._id("branch", row.id)))

    async def _delete(self, current_id: int) -> Branch:
        return await self.ops.service.delete_branch(current_id)

    def _rekeyed(self, removed: Branch) -> Branch:
        old = self.row
        return replace(
            removed,
            id=old.id,
            variants=tuple(
                replace(v, id=was.id, branch_id=old.id)
                for v, was in zip(removed.variants, old.variants, strict=False)
            )
            + removed.variants[len(old.variants) :],
        )

    def _restored(self, new: Branch) -> None:
        self.ops.ids.branch_restored(self.row, new)


class AddBranch(_BranchPresence):
    def __init__(self, editor: EditorHooks, branch: Branch) -> None:
        super().__init__(editor, branch, f"Add branch “{branch.name}”", adding=True)


class DeleteBranch(_BranchPresence):
    def __init__(self, editor: EditorHooks, branch: Branch) -> None:
        super().__init__(editor, branch, f"Delete branch “{branch.name}”", adding=False)


class UpdateBranch(_Update):
    """Change some fields of a branch (moving it is changing ``time_sec``)."""

    async def _update(self, current_id: int, fields: dict[str, Any]) -> None:
        await self.ops.service.update_branch(current_id, **fields)


# -- variants ------------------------------------------------------------------------------------------


class _VariantPresence(_Presence[Variant]):
    kind: Kind = "variant"

    async def _restore(self, row: Variant) -> Variant:
        return await self.ops.service.restore_variant(
            replace(row, branch_id=self._id("branch", row.branch_id))
        )

    async def _delete(self, current_id: int) -> Variant:
        return await self.ops.service.delete_variant(current_id)

    def _rekeyed(self, removed: Variant) -> Variant:
        return replace(removed, id=self.row.id, branch_id=self.row.branch_id)


class AddVariant(_VariantPresence):
    def __init__(self, editor: EditorHooks, variant: Variant) -> None:
        super().__init__(editor, variant, f"Add variant “{variant.name}”", adding=True)


class DeleteVariant(_VariantPresence):
    def __init__(self, editor: EditorHooks, variant: Variant) -> None:
        super().__init__(editor, variant, f"Remove variant “{variant.name}”", adding=False)


class UpdateVariant(_Update):
    kind: Kind = "variant"

    async def _update(self, current_id: int, fields: dict[str, Any]) -> None:
        await self.ops.service.update_variant(current_id, **fields)


class ReorderVariants(StoryCommand):
    def __init__(
        self, editor: EditorHooks, branch_id: int, before: Sequence[int], after: Sequence[int]
    ) -> None:
        super().__init__(editor, "Reorder variants")
        self.branch_id = branch_id
        self.before = list(before)
        self.after = list(after)

    async def _order(self, ids: Sequence[int]) -> int:
        current = [self._id("variant", v) for v in ids]
        await self.ops.service.reorder_variants(self._id("branch", self.branch_id), current)
        return self.branch_id

    async def _apply(self) -> int | None:
        return await self._order(self.after)

    async def _revert(self) -> int | None:
        return await self._order(self.before)


class SetDefaultVariant(StoryCommand):
    def __init__(self, editor: EditorHooks, branch_id: int, before: int | None, after: int | None) -> None:
        super().__init__(editor, "Change the default variant")
        self.branch_id = branch_id
        self.before = before
        self.after = after

    async def _set(self, variant: int | None) -> int:
        current = self._id("variant", variant) if variant is not None else None
        await self.ops.service.set_default_variant(self._id("branch", self.branch_id), current)
        return self.branch_id

    async def _apply(self) -> int | None:
        return await self._set(self.after)

    async def _revert(self) -> int | None:
        return await self._set(self.before)


# -- clips ---------------------------------------------------------------------------------------------


class _ClipPresence(_Presence[Clip]):
    kind: Kind = "clip"

    async def _restore(self, row: Clip) -> Clip:
        return await self.ops.service.restore_clip(row)

    async def _delete(self, current_id: int) -> Clip:
        return await self.ops.service.delete_clip(current_id)


class AddClip(_ClipPresence):
    def __init__(self, editor: EditorHooks, clip: Clip) -> None:
        super().__init__(editor, clip, f"Add clip “{clip.name}”", adding=True)


class DeleteClip(_ClipPresence):
    def __init__(self, editor: EditorHooks, clip: Clip) -> None:
        super().__init__(editor, clip, f"Delete clip “{clip.name}”", adding=False)


class UpdateClip(_Update):
    kind: Kind = "clip"

    async def _update(self, current_id: int, fields: dict[str, Any]) -> None:
        await self.ops.service.update_clip(current_id, **fields)
