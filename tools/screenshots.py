"""Take the README's screenshots of the real app on a throwaway embedded database.

    xvfb-run -a -s "-screen 0 1400x900x24" python tools/screenshots.py [--out docs/screenshots]

Needs a real display (Xvfb is fine); offscreen rendering has no fonts or styles worth showing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from PySide6.QtCore import QEventLoop, QTimer
from PySide6.QtWidgets import QApplication

from app.bootstrap import open_database
from app.settings import load_settings
from core.db.engine import make_async_engine, make_async_session_factory
from core.db.enums import ContentDomain, MediaType, UploadMethod
from core.db.models import LOCAL_USERNAME, Asset, User
from core.library import LibraryService
from core.runtime import CoreLoop
from ui.bridge import CoreBridge
from ui.main_window import MainWindow

SAMPLES = [
    ("Neon city flythrough", MediaType.VIDEO, "pixverse", 1280, 720, 5.0),
    ("Neon city flythrough, extended in the rain", MediaType.VIDEO, "sora", 1280, 720, 8.0),
    ("Hero portrait, keyframe 1", MediaType.IMAGE, "comfyui", 1024, 1024, None),
    ("Hero portrait, keyframe 2", MediaType.IMAGE, "comfyui", 1024, 1024, None),
    ("Forest path (variant)", MediaType.VIDEO, "sandbox", 960, 540, 6.0),
    ("Mountain path (variant)", MediaType.VIDEO, "pixverse", 960, 540, 7.5),
    ("Title theme", MediaType.AUDIO, "sandbox", None, None, 42.0),
    ("Treasure chest", MediaType.MODEL_3D, "sandbox", None, None, None),
]


def wait(ms: int) -> None:
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    app = QApplication(sys.argv)
    app.setApplicationName("PixSim")

    with tempfile.TemporaryDirectory(prefix="pixsim-shots-") as tmp:
        settings = load_settings({"PIXSIM_DATA_DIR": f"{tmp}/data", "PIXSIM_CONFIG_DIR": f"{tmp}/cfg"})
        handle = open_database(settings)
        core = CoreLoop().start()
        engine = make_async_engine(handle.url)
        sessions = make_async_session_factory(engine)
        library = LibraryService(sessions)
        description = handle.description.replace(tmp, "~/.local/share")
        try:
            window = MainWindow(library=library, bridge=CoreBridge(core), database_description=description)
            window.resize(1200, 760)
            window.show()
            wait(800)
            window.grab().save(str(args.out / "main-window-empty.png"))

            async def populate() -> None:
                from sqlalchemy import select

                async with sessions() as session, session.begin():
                    user_id = await session.scalar(select(User.id).where(User.username == LOCAL_USERNAME))
                    for title, media, provider, w, h, dur in SAMPLES:
                        session.add(
                            Asset(
                                user_id=user_id,
                                title=title,
                                media_type=media,
                                provider_id=provider,
                                width=w,
                                height=h,
                                duration_sec=dur,
                                content_domain=ContentDomain.GENERAL,
                                upload_method=UploadMethod.GENERATED,
                            )
                        )

            core.run(populate(), timeout=30)
            window.refresh()
            wait(800)
            window.grab().save(str(args.out / "main-window-library.png"))
            window.close()
        finally:
            core.run(engine.dispose(), timeout=10)
            core.stop()
            handle.close()
    print(f"screenshots written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
