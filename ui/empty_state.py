"""The library's empty state: what the library is for and how to fill it."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from resources import resource_path

HEADING = "Your library is empty"
BODY = (
    "<p>PixSim keeps every image, video, audio clip and 3D model you make, whichever AI provider "
    "made it, and lets you use any of them on any other provider.</p>"
    "<p><b>Import</b>: drag files or folders from your desktop onto this window, or choose "
    "<b>File → Import…</b></p>"
    "<p><b>Generate</b>: choose <b>Create → Generate…</b> (the offline <b>Sandbox</b> needs no "
    "account); results land here with their lineage.</p>"
    "<p>New here? <b>Load the demo library</b>: about thirty assets made offline, with lineage, a "
    "branching story and clips.</p>"
)


class EmptyLibraryView(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("emptyLibrary")
        icon = QLabel()
        icon.setPixmap(QIcon(str(resource_path("icons", "pixsim.svg"))).pixmap(QSize(96, 96)))
        icon.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.heading = QLabel(HEADING)
        self.heading.setObjectName("emptyHeading")
        self.heading.setAlignment(Qt.AlignmentFlag.AlignCenter)
        font = self.heading.font()
        font.setPointSizeF(font.pointSizeF() * 1.6)
        font.setBold(True)
        self.heading.setFont(font)
        self.body = QLabel(BODY)
        self.body.setObjectName("emptyBody")
        self.body.setTextFormat(Qt.TextFormat.RichText)
        self.body.setWordWrap(True)
        self.body.setAlignment(Qt.AlignmentFlag.AlignCenter)
        # Wrapped rich text in a stacked page gets its one-line height unless told its real one.
        self.body.setFixedWidth(520)
        self.body.setMinimumHeight(self.body.heightForWidth(520))

        self.buttons = QHBoxLayout()
        self.buttons.addStretch(1)
        self.buttons.addStretch(1)

        layout = QVBoxLayout(self)
        layout.addStretch(2)
        layout.addWidget(icon)
        layout.addSpacing(12)
        layout.addWidget(self.heading)
        layout.addSpacing(6)
        layout.addWidget(self.body, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addSpacing(12)
        layout.addLayout(self.buttons)
        layout.addStretch(3)

    def add_actions(self, buttons: list[QPushButton]) -> None:
        """Buttons under the explanation (Import, Load Demo Library), centred."""
        for button in buttons:
            self.buttons.insertWidget(self.buttons.count() - 1, button)
