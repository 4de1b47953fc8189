"""The Generate dialog: a form built from a provider operation's parameter specification.

Providers declare their operations with typed ``Param``s (core.providers.spec); this dialog turns each
into a widget, pre-fills input parameters with the assets selected in the library, and validates with
the same ``Operation.validate`` the job service uses, showing every problem at once before anything is
queued. It returns a ``GenerateRequest``; the caller creates the job.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QIntValidator
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.db.enums import MediaType
from core.errors import InvalidParameter
from core.providers.spec import Operation, Param, ParamKind
from core.text import article

_INT32_MAX = 2_147_483_647


@dataclass(frozen=True)
class InputAsset:
    """An asset offered as an input (the library's selection)."""

    id: int
    name: str
    media_type: MediaType

    @property
    def label(self) -> str:
        return f"#{self.id} {self.name} ({self.media_type.value.replace('_', ' ')})"


@dataclass(frozen=True)
class ProviderChoice:
    provider_id: str
    display_name: str
    description: str
    operations: tuple[Operation, ...]
    # (account id, label); empty when the provider needs none and has none.
    accounts: tuple[tuple[int, str], ...] = ()
    requires_account: bool = False


@dataclass(frozen=True)
class GenerateRequest:
    provider_id: str
    account_id: int | None
    operation_id: str
    params: dict[str, Any]


class _Field:
    """One parameter's widget, and how to read it back (None: left empty)."""

    def __init__(self, widget: QWidget, read: Callable[[], Any]) -> None:
        self.widget = widget
        self.read = read


class GenerateDialog(QDialog):
    request_ready = Signal(object)  # GenerateRequest, when the user confirms a valid form

    def __init__(
        self,
        providers: Sequence[ProviderChoice],
        inputs: Sequence[InputAsset] = (),
        *,
        provider_id: str | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("generateDialog")
        self.setWindowTitle("Generate")
        self.setMinimumWidth(560)
        self._providers = [p for p in providers if p.operations]
        self._inputs = list(inputs)
        self._fields: dict[str, _Field] = {}

        self.provider_box = QComboBox()
        self.provider_box.setObjectName("providerBox")
        for choice in self._providers:
            self.provider_box.addItem(choice.display_name, choice.provider_id)
        self.account_box = QComboBox()
        self.account_box.setObjectName("accountBox")
        self.operation_box = QComboBox()
        self.operation_box.setObjectName("operationBox")
        self.description = QLabel()
        self.description.setWordWrap(True)
        self.description.setObjectName("operationDescription")
        self.description.setStyleSheet("color: palette(placeholder-text);")

        head = QFormLayout()
        head.addRow("Provider", self.provider_box)
        head.addRow("Account", self.account_box)
        head.addRow("Operation", self.operation_box)
        head.addRow(self.description)

        self.form_host = QWidget()
        self.form = QFormLayout(self.form_host)
        self.form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.errors = QLabel()
        self.errors.setObjectName("formErrors")
        self.errors.setWordWrap(True)
        self.errors.setStyleSheet("color: #d04040;")
        self.errors.hide()

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.generate_button = self.buttons.addButton("Generate", QDialogButtonBox.ButtonRole.AcceptRole)
        self.generate_button.setObjectName("generateButton")
        self.buttons.accepted.connect(self._submit)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addLayout(head)
        layout.addWidget(self.form_host)
        layout.addWidget(self.errors)
        layout.addStretch(1)
        layout.addWidget(self.buttons)

        self.provider_box.currentIndexChanged.connect(self._provider_changed)
        self.operation_box.currentIndexChanged.connect(self._operation_changed)
        if provider_id is not None:
            index = self.provider_box.findData(provider_id)
            if index >= 0:
                self.provider_box.setCurrentIndex(index)
        self._provider_changed()

    # -- public ---------------------------------------------------------------------------------

    @property
    def provider(self) -> ProviderChoice | None:
        index = self.provider_box.currentIndex()
        return self._providers[index] if 0 <= index < len(self._providers) else None

    @property
    def operation(self) -> Operation | None:
        provider = self.provider
        index = self.operation_box.currentIndex()
        if provider is None or not 0 <= index < len(provider.operations):
            return None
        return provider.operations[index]

    def select_operation(self, operation_id: str) -> None:
        provider = self.provider
        if provider is None:
            return
        for index, op in enumerate(provider.operations):
            if op.id == operation_id:
                self.operation_box.setCurrentIndex(index)
                return

    def field(self, name: str) -> QWidget:
        return self._fields[name].widget

    def raw_values(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, field in self._fields.items():
            value = field.read()
            if value is not None and value != "":
                values[name] = value
        return values

    def request(self) -> GenerateRequest:
        """The validated request; raises InvalidParameter naming every problem."""
        provider, operation = self.provider, self.operation
        if provider is None or operation is None:
            raise InvalidParameter("Choose a provider and an operation.")
        if provider.requires_account and self.account_box.currentData() is None:
            raise InvalidParameter(
                f"{provider.display_name} needs an account: add one under Settings → Accounts."
            )
        params = operation.validate(self.raw_values(), provider.provider_id)
        for param in operation.input_params:
            self._check_input_types(param, params.get(param.name))
        return GenerateRequest(provider.provider_id, self.account_box.currentData(), operation.id, params)

    # -- building the form ----------------------------------------------------------------------

    def _provider_changed(self) -> None:
        provider = self.provider
        self.operation_box.blockSignals(True)
        self.operation_box.clear()
        self.account_box.clear()
        if provider is not None:
            for op in provider.operations:
                self.operation_box.addItem(op.label, op.id)
            for account_id, label in provider.accounts:
                self.account_box.addItem(label, account_id)
            if not provider.accounts:
                self.account_box.addItem(
                    "no account needed"
                    if not provider.requires_account
                    else "no account: add one in Settings",
                    None,
                )
            self.setToolTip(provider.description)
        self.account_box.setEnabled(self.account_box.count() > 1)
        self.operation_box.blockSignals(False)
        self._choose_operation_for_inputs()
        self._operation_changed()

    def _choose_operation_for_inputs(self) -> None:
        """With a selection, start on an operation that takes it (a video selected → extend)."""
        provider = self.provider
        if provider is None or not self._inputs:
            return
        kinds = {a.media_type for a in self._inputs}
        for index, op in enumerate(provider.operations):
            accepted = {m for p in op.input_params for m in p.media_types}
            if kinds & accepted:
                self.operation_box.setCurrentIndex(index)
                return

    def _operation_changed(self) -> None:
        while self.form.rowCount():
            self.form.removeRow(0)
        self._fields = {}
        self.errors.hide()
        operation = self.operation
        self.description.setText(operation.description if operation else "")
        if operation is None:
            return
        unused = list(self._inputs)
        for param in operation.params:
            field = self._make_field(param, unused)
            field.widget.setObjectName(f"param_{param.name}")
            if param.help:
                field.widget.setToolTip(param.help)
            label = QLabel(param.title + (" *" if param.required else ""))
            label.setToolTip(param.help)
            self.form.addRow(label, field.widget)
            self._fields[param.name] = field

    def _make_field(self, param: Param, unused: list[InputAsset]) -> _Field:
        kind = param.kind
        if kind is ParamKind.PROMPT:
            edit = QPlainTextEdit()
            edit.setPlaceholderText(param.help or "Describe what you want")
            edit.setFixedHeight(84)
            if param.default:
                edit.setPlainText(str(param.default))
            return _Field(edit, edit.toPlainText)
        if kind is ParamKind.TEXT:
            line = QLineEdit(str(param.default or ""))
            return _Field(line, line.text)
        if kind is ParamKind.BOOL:
            box = QCheckBox()
            box.setChecked(bool(param.default))
            return _Field(box, box.isChecked)
        if kind is ParamKind.CHOICE:
            combo = QComboBox()
            if not param.required and param.default is None:
                combo.addItem("(provider default)", None)
            for choice in param.choices:
                combo.addItem(choice, choice)
            if param.default is not None:
                combo.setCurrentIndex(max(0, combo.findData(param.default)))
            return _Field(combo, combo.currentData)
        if kind is ParamKind.INT:
            return self._int_field(param)
        if kind is ParamKind.FLOAT:
            spin = QDoubleSpinBox()
            spin.setDecimals(3)
            spin.setRange(
                param.minimum if param.minimum is not None else -1e9,
                param.maximum if param.maximum is not None else 1e9,
            )
            optional = param.default is None and not param.required
            if optional:
                spin.setSpecialValueText("(default)")
                spin.setMinimum(spin.minimum() - 1)
                spin.setValue(spin.minimum())
            else:
                spin.setValue(float(param.default or 0))
            floor = spin.minimum()
            return _Field(spin, lambda: None if optional and spin.value() == floor else spin.value())
        if kind is ParamKind.ASSET:
            return self._asset_field(param, unused)
        if kind is ParamKind.ASSETS:
            combo_list = QLineEdit(", ".join(str(a.id) for a in self._matching(param, unused)))
            combo_list.setPlaceholderText("asset ids, in order: 12, 15, 18")
            return _Field(combo_list, combo_list.text)
        if kind is ParamKind.KEYFRAMES:
            return self._keyframes_field(param, unused)
        return self._json_field(param)

    def _int_field(self, param: Param) -> _Field:
        low = int(param.minimum) if param.minimum is not None else -_INT32_MAX
        high = int(param.maximum) if param.maximum is not None else _INT32_MAX
        if high > _INT32_MAX or low < -_INT32_MAX:
            line = QLineEdit("" if param.default is None else str(param.default))
            line.setValidator(QIntValidator(max(low, -_INT32_MAX), _INT32_MAX))
            line.setPlaceholderText("(default)" if param.default is None else "")
            return _Field(line, line.text)
        spin = QSpinBox()
        optional = param.default is None and not param.required
        if optional:
            spin.setRange(low - 1 if low > -_INT32_MAX else low, high)
            spin.setSpecialValueText("(default)")
            spin.setValue(spin.minimum())
        else:
            spin.setRange(low, high)
            start = param.default if param.default is not None else max(low, 0)
            spin.setValue(min(high, max(low, int(start))))
        floor = spin.minimum()
        return _Field(spin, lambda: None if optional and spin.value() == floor else spin.value())

    def _matching(self, param: Param, unused: list[InputAsset]) -> list[InputAsset]:
        return [a for a in unused if not param.media_types or a.media_type in param.media_types]

    def _asset_field(self, param: Param, unused: list[InputAsset]) -> _Field:
        combo = QComboBox()
        combo.setEditable(False)
        if not param.required:
            combo.addItem("(none)", None)
        matching = self._matching(param, self._inputs)
        for asset in matching:
            combo.addItem(asset.label, asset.id)
        if not matching:
            kinds = " or ".join(m.value for m in param.media_types) or "asset"
            combo.addItem(f"select {article(kinds)} {kinds} in the library first", None)
        # Give each input param a different selected asset, in selection order.
        first_unused = next((a for a in self._matching(param, unused)), None)
        if first_unused is not None:
            combo.setCurrentIndex(combo.findData(first_unused.id))
            unused.remove(first_unused)
        return _Field(combo, combo.currentData)

    def _keyframes_field(self, param: Param, unused: list[InputAsset]) -> _Field:
        table = QTableWidget(0, 3)
        table.setHorizontalHeaderLabels(["Image", "Frame", "Action"])
        header = table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        table.verticalHeader().hide()
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.setMinimumHeight(110)
        for order, asset in enumerate(self._matching(param, self._inputs)):
            row = table.rowCount()
            table.insertRow(row)
            item = QTableWidgetItem(asset.label)
            item.setData(Qt.ItemDataRole.UserRole, asset.id)
            item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
            table.setItem(row, 0, item)
            table.setItem(row, 1, QTableWidgetItem(str(order * 24)))
            table.setItem(row, 2, QTableWidgetItem(""))

        def read() -> list[dict[str, Any]] | None:
            frames: list[dict[str, Any]] = []
            for row in range(table.rowCount()):
                first, frame, action = (table.item(row, c) for c in range(3))
                if first is None:
                    continue
                entry: dict[str, Any] = {"asset_id": first.data(Qt.ItemDataRole.UserRole)}
                entry["frame"] = frame.text().strip() if frame is not None else ""
                if action is not None and action.text().strip():
                    entry["action"] = action.text().strip()
                frames.append(entry)
            return frames or None

        return _Field(table, read)

    def _json_field(self, param: Param) -> _Field:
        host = QWidget()
        edit = QPlainTextEdit()
        edit.setPlaceholderText(param.help or "A JSON object")
        edit.setFixedHeight(110)
        load = QPushButton("Load from file…")
        load.setObjectName(f"load_{param.name}")

        def choose() -> None:
            dialog = QFileDialog(self, f"Choose {param.title.lower()}", "", "JSON (*.json);;All files (*)")
            dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
            dialog.fileSelected.connect(
                lambda path: edit.setPlainText(Path(path).read_text(encoding="utf-8"))
            )
            dialog.open()

        load.clicked.connect(choose)
        layout = QHBoxLayout(host)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(edit, 1)
        layout.addWidget(load, 0, Qt.AlignmentFlag.AlignTop)

        def read() -> Any:
            text = edit.toPlainText().strip()
            if not text:
                return None
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                return text  # validate() names the problem

        return _Field(host, read)

    # -- validation -----------------------------------------------------------------------------

    def _check_input_types(self, param: Param, value: Any) -> None:
        if value is None or not param.media_types:
            return
        known = {a.id: a for a in self._inputs}
        ids = (
            [value]
            if param.kind is ParamKind.ASSET
            else list(value)
            if param.kind is ParamKind.ASSETS
            else []
        )
        for asset_id in ids:
            asset = known.get(asset_id)
            if asset is not None and asset.media_type not in param.media_types:
                kinds = " or ".join(m.value for m in param.media_types)
                raise InvalidParameter(
                    f"'{param.title}' needs {article(kinds)} {kinds}; {asset.label} is not."
                )

    def _submit(self) -> None:
        try:
            request = self.request()
        except InvalidParameter as exc:
            self.errors.setText(str(exc))
            self.errors.show()
            return
        self.errors.hide()
        self.request_ready.emit(request)
        self.accept()
