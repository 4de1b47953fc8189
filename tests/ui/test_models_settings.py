"""Settings → Models with a real HTTP server on 127.0.0.1 and a tiny but real CLIP (ONNX): status,
Install with progress and Cancel, Remove, and the window loading the new models afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot
from sqlalchemy.engine import URL

from core.embeddings import clip
from core.embeddings.models import ModelSpec, install_model
from core.net.http import SafeHttp
from core.net.policy import UrlPolicy
from core.runtime import CoreLoop
from tests.embeddings.test_models import TIMEOUT, leftovers, serve
from tests.embeddings.tiny_clip import write_model
from tests.fakes.http_server import FakeHttpServer, Slow
from tests.memory_keyring import MemoryKeyring
from ui.bridge import CoreBridge
from ui.settings_dialog import GIB, ModelsPage, SettingsDialog, SettingsValues

WAIT = 30_000


@dataclass
class Net:
    server: FakeHttpServer
    http: SafeHttp
    spec: ModelSpec
    published: dict[str, bytes]


@pytest.fixture
def net(core: CoreLoop, tmp_path: Path) -> Iterator[Net]:
    source = tmp_path / "published"
    write_model(source, words=["cat"])
    published = {
        n: (source / n).read_bytes() for n in (clip.IMAGE_GRAPH, clip.TEXT_GRAPH, clip.VOCAB, clip.MERGES)
    }

    async def start() -> Net:
        server = await FakeHttpServer().__aenter__()
        http = SafeHttp(UrlPolicy.trusting([server.base_url]), timeout=TIMEOUT)
        return Net(server, http, serve(server, published), published)

    found = core.run(start(), timeout=30)
    yield found

    async def stop() -> None:
        await found.http.aclose()
        await found.server.close()

    core.run(stop(), timeout=30)


def page(qtbot: QtBot, core: CoreLoop, net: Net, data_dir: Path) -> ModelsPage:
    widget = ModelsPage(CoreBridge(core), data_dir, net.http, specs={"clip": net.spec})
    qtbot.addWidget(widget)
    widget.show()
    return widget


def test_install_shows_progress_then_the_installed_status_and_remove_undoes_it(
    qtbot: QtBot, core: CoreLoop, net: Net, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    models = page(qtbot, core, net, data_dir)
    qtbot.waitUntil(lambda: models.clip_status.text().startswith("Not installed"), timeout=WAIT)
    assert "pixsim models install clip" in models.clip_status.text()
    assert models.install_button.isEnabled() and not models.remove_button.isEnabled()

    with qtbot.waitSignal(models.models_changed, timeout=WAIT):
        models.install_button.click()
        assert models.progress.isVisible() and models.cancel_button.isVisible()
        assert not models.install_button.isEnabled()
    qtbot.waitUntil(lambda: models.clip_status.text().startswith("Installed"), timeout=WAIT)
    status = models.clip_status.text()
    assert "unverified tokenizer files: vocab.json, merges.txt" in status, status
    assert not models.progress.isVisible() and not models.cancel_button.isVisible()
    assert models.install_button.text() == "Reinstall" and models.remove_button.isEnabled()
    assert (data_dir / "models" / "clip-vit-b32" / clip.IMAGE_GRAPH).read_bytes() == net.published[
        clip.IMAGE_GRAPH
    ]

    with qtbot.waitSignal(models.models_changed, timeout=WAIT):
        models.remove_button.click()
    qtbot.waitUntil(lambda: models.clip_status.text().startswith("Not installed"), timeout=WAIT)
    assert leftovers(data_dir) == []


def test_cancel_keeps_nothing(qtbot: QtBot, core: CoreLoop, net: Net, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    net.server.fail("GET", f"/clip/{clip.TEXT_GRAPH}", Slow(chunk_size=64, interval_s=0.05))
    models = page(qtbot, core, net, data_dir)
    qtbot.waitUntil(lambda: models.install_button.isEnabled(), timeout=WAIT)
    models.install_button.click()
    qtbot.waitUntil(lambda: "file 2 of 4" in models.progress.format(), timeout=WAIT)
    models.cancel_button.click()
    qtbot.waitUntil(lambda: not models.installing, timeout=WAIT)
    qtbot.waitUntil(lambda: "Not installed (download" in models.clip_status.text(), timeout=WAIT)
    assert models.clip_status.text().startswith("Install cancelled; nothing was kept. Not installed")
    assert leftovers(data_dir) == [] and models.install_button.isEnabled()


def test_a_failed_install_says_why(qtbot: QtBot, core: CoreLoop, net: Net, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    tampered = net.published[clip.TEXT_GRAPH][:-1] + b"\x00"
    net.server.add_file(f"/clip/{clip.TEXT_GRAPH}", tampered)  # same size, different bytes
    models = page(qtbot, core, net, data_dir)
    qtbot.waitUntil(lambda: models.install_button.isEnabled(), timeout=WAIT)
    models.install_button.click()
    qtbot.waitUntil(lambda: models.clip_status.text().startswith("Not installed:"), timeout=WAIT)
    assert "does not match" in models.clip_status.text()
    assert models.install_button.isEnabled() and leftovers(data_dir) == []


def test_the_settings_dialog_has_the_models_tab_and_reports_changes(
    qtbot: QtBot, core: CoreLoop, net: Net, tmp_path: Path
) -> None:
    dialog = SettingsDialog(
        SettingsValues(None, None, tmp_path / "cache", 20 * GIB, 4, False),
        accounts=None,
        bridge=CoreBridge(core),
        data_dir=tmp_path / "data",
        http=net.http,
    )
    qtbot.addWidget(dialog)
    tabs = [dialog.tabs.tabText(i) for i in range(dialog.tabs.count())]
    assert tabs[-1] == "Models" and dialog.tabs.widget(len(tabs) - 1) is dialog.models_page
    dialog.models_page.specs = {"clip": net.spec}
    qtbot.waitUntil(lambda: dialog.models_page.install_button.isEnabled(), timeout=WAIT)
    with qtbot.waitSignal(dialog.models_changed, timeout=WAIT):
        dialog.models_page.install_button.click()

    without = SettingsDialog(
        SettingsValues(None, None, tmp_path / "cache", 20 * GIB, 4, False),
        accounts=None,
        bridge=CoreBridge(core),
    )
    qtbot.addWidget(without)
    assert not without.models_page.install_button.isEnabled()
    assert "once PixSim has started" in without.models_page.clip_status.text()


def test_an_installed_clip_is_loaded_by_the_window_indexed_and_suggests_a_classification(
    qtbot: QtBot, core: CoreLoop, net: Net, db_url: URL, tmp_path: Path, memory_keyring: MemoryKeyring
) -> None:
    """After an install the window loads CLIP off the GUI thread: the indexer builds its vectors,
    Describe is offered, and the inspector suggests a classification that only Apply saves."""
    from tests.ui.test_similar import make_app, wait_indexed

    apps = make_app(qtbot, core, db_url, tmp_path)
    app = next(apps)
    try:
        window = app.window
        wait_indexed(qtbot, app)
        assert not window.filter_bar.describe_action.isEnabled()
        data_dir = tmp_path / "data"
        core.run(install_model("clip", data_dir, net.http, spec=net.spec), timeout=60)
        window.load_embedders()  # what Settings → Models does after an install
        qtbot.waitUntil(lambda: len(window.embedders) == 2, timeout=WAIT)
        assert window.filter_bar.describe_action.isEnabled() and window.similarity_model == clip.MODEL_ID
        qtbot.waitUntil(lambda: app.vectors() >= 2 * 9, timeout=WAIT)  # every asset and scene, for CLIP too

        # The indexing pass stacks the red pictures as near-duplicates (when it lands before this
        # point depends on the machine's load): unstack them so the poppy has its own card.
        window.filter_bar.stack_check.setChecked(False)
        qtbot.waitUntil(lambda: window.asset_model.rowCount() == 7, timeout=WAIT)
        poppy = app.ids["poppy"]
        qtbot.waitUntil(lambda: window.asset_model.row_of(poppy) is not None, timeout=WAIT)
        window.asset_view.setCurrentIndex(window.asset_model.index(window.asset_model.row_of(poppy) or 0))
        inspector = window.inspector
        qtbot.waitUntil(lambda: inspector.suggestion_box.isVisibleTo(inspector), timeout=WAIT)
        assert inspector.suggestion_label.text().startswith("Suggested: ")
        suggestion = inspector.suggestions
        assert suggestion is not None
        detail = inspector.detail
        assert detail is not None and detail.content_category is None, "nothing applied unasked"
        inspector.suggestion_apply.click()
        qtbot.waitUntil(
            lambda: (
                inspector.detail is not None
                and inspector.detail.content_category == suggestion.category.value
            ),
            timeout=WAIT,
        )
        assert inspector.detail is not None and inspector.detail.content_domain == suggestion.domain_value
    finally:
        next(apps, None)
