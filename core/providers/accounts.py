"""Provider accounts: which account of a provider to use, and its secret in the OS keyring.

The database stores only ``keyring_ref``; the key itself lives in the OS keyring, is read when needed
and is never logged, stored elsewhere, exported or put in an error message. No usable keyring backend
is an error, never a plaintext fallback.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from keyring.backend import KeyringBackend
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.models import ProviderAccount, User
from core.errors import ConfigError, PixSimError
from core.net.http import SafeHttp
from core.providers.base import Credentials
from core.providers.registry import ProviderRegistry

KEYRING_SERVICE = "PixSim"
_NO_KEYRING = (
    "No usable OS keyring was found, so PixSim cannot {what} provider API keys. Install or unlock a "
    "keyring (GNOME Keyring or KWallet on Linux, the macOS Keychain, the Windows Credential Locker); "
    "PixSim never stores keys in plain files."
)


class SecretStore:
    """The OS keyring, refusing backends that would keep secrets in plain text."""

    def _backend(self, what: str) -> KeyringBackend:
        import keyring
        from keyring.backends import fail

        backend = keyring.get_keyring()
        name = f"{type(backend).__module__}.{type(backend).__name__}"
        if isinstance(backend, fail.Keyring) or "plaintext" in name.lower() or "Null" in name:
            raise ConfigError(_NO_KEYRING.format(what=what))
        return backend

    def get(self, ref: str) -> str | None:
        from keyring.errors import KeyringError, NoKeyringError

        try:
            backend = self._backend("read")
            return backend.get_password(KEYRING_SERVICE, ref)
        except NoKeyringError:
            raise ConfigError(_NO_KEYRING.format(what="read")) from None
        except KeyringError as exc:
            raise ConfigError(
                f"The OS keyring refused access to a provider key: {type(exc).__name__}."
            ) from None

    def set(self, ref: str, secret: str) -> None:
        from keyring.errors import KeyringError, NoKeyringError

        try:
            backend = self._backend("store")
            backend.set_password(KEYRING_SERVICE, ref, secret)
        except NoKeyringError:
            raise ConfigError(_NO_KEYRING.format(what="store")) from None
        except KeyringError as exc:
            raise ConfigError(f"The OS keyring refused to store the key: {type(exc).__name__}.") from None

    def delete(self, ref: str) -> None:
        from keyring.errors import KeyringError, PasswordDeleteError

        try:
            backend = self._backend("remove")
            backend.delete_password(KEYRING_SERVICE, ref)
        except PasswordDeleteError:
            pass  # already gone: the goal is reached
        except KeyringError as exc:
            raise ConfigError(f"The OS keyring refused to remove the key: {type(exc).__name__}.") from None


@dataclass(frozen=True)
class AccountInfo:
    """An account as the UI and CLI show it: never the key, only whether one is stored."""

    id: int
    provider_id: str
    label: str
    base_url: str | None
    enabled: bool
    has_key: bool
    last_checked_at: datetime | None
    last_check_ok: bool | None
    last_check_message: str | None


class AccountResolver:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], secrets: SecretStore | None = None
    ) -> None:
        self._sessions = sessions
        self._secrets = secrets or SecretStore()

    async def resolve(
        self, provider_id: str, account: str | int | None, *, required: bool
    ) -> tuple[int | None, Credentials]:
        """(account id, credentials) for ``account`` (a label or an id), or the only account there is."""
        stmt = select(ProviderAccount).where(
            ProviderAccount.provider_id == provider_id, ProviderAccount.enabled.is_(True)
        )
        if isinstance(account, int):
            stmt = stmt.where(ProviderAccount.id == account)
        elif isinstance(account, str):
            stmt = stmt.where(ProviderAccount.label == account)
        async with self._sessions() as session:
            rows = list(await session.scalars(stmt.order_by(ProviderAccount.id)))
        if not rows:
            if account is None and not required:
                return None, Credentials()
            named = f" named '{account}'" if account is not None else ""
            raise ConfigError(f"There is no {provider_id} account{named}. Add one under Settings → Accounts.")
        if len(rows) > 1:
            labels = ", ".join(r.label for r in rows)
            raise ConfigError(f"{provider_id} has several accounts ({labels}): choose one.")
        row = rows[0]
        api_key = self._secrets.get(row.keyring_ref) if row.keyring_ref else None
        if required and row.keyring_ref and api_key is None:
            raise ConfigError(
                f"The API key of the {provider_id} account '{row.label}' is missing from the OS keyring. "
                "Enter it again under Settings → Accounts."
            )
        return row.id, Credentials(api_key=api_key, base_url=row.base_url)


class AccountService:
    """Add, edit, check and remove provider accounts (several per provider)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        registry: ProviderRegistry,
        http: SafeHttp,
        secrets: SecretStore | None = None,
    ) -> None:
        self._sessions = sessions
        self._registry = registry
        self._http = http
        self._secrets = secrets or SecretStore()

    async def list(self, provider_id: str | None = None) -> list[AccountInfo]:
        stmt = select(ProviderAccount).order_by(ProviderAccount.provider_id, ProviderAccount.label)
        if provider_id is not None:
            stmt = stmt.where(ProviderAccount.provider_id == provider_id)
        async with self._sessions() as session:
            return [_info(row) for row in await session.scalars(stmt)]

    async def add(
        self,
        provider_id: str,
        label: str,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
    ) -> AccountInfo:
        adapter = self._registry.get(provider_id)
        label = label.strip()
        if not label:
            raise ConfigError("An account needs a name (e.g. 'personal' or 'studio').")
        api_key = (api_key or "").strip() or None
        if adapter.requires_account and api_key is None:
            raise ConfigError(f"A {adapter.display_name} account needs an API key.")
        ref = f"{provider_id}/{uuid.uuid4().hex}" if api_key else None
        if ref is not None and api_key is not None:
            self._secrets.set(ref, api_key)  # first the keyring: a row never points at nothing
        try:
            async with self._sessions() as session, session.begin():
                user_id = await session.scalar(select(User.id).where(User.username == "local"))
                row = ProviderAccount(
                    user_id=user_id,
                    provider_id=provider_id,
                    label=label,
                    keyring_ref=ref,
                    base_url=(base_url or "").strip() or None,
                )
                session.add(row)
                await session.flush()
                return _info(row)
        except IntegrityError:
            if ref is not None:
                self._secrets.delete(ref)
            raise ConfigError(f"There is already a {adapter.display_name} account named '{label}'.") from None
        except BaseException:
            if ref is not None:
                self._secrets.delete(ref)
            raise

    async def edit(
        self,
        account_id: int,
        *,
        label: str | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        enabled: bool | None = None,
    ) -> AccountInfo:
        async with self._sessions() as session, session.begin():
            row = await self._row(session, account_id)
            if label is not None:
                if not label.strip():
                    raise ConfigError("An account needs a name.")
                row.label = label.strip()
            if base_url is not None:
                row.base_url = base_url.strip() or None
            if enabled is not None:
                row.enabled = enabled
            if api_key is not None and api_key.strip():
                row.keyring_ref = row.keyring_ref or f"{row.provider_id}/{uuid.uuid4().hex}"
                self._secrets.set(row.keyring_ref, api_key.strip())
                row.last_checked_at = None
                row.last_check_ok = None
                row.last_check_message = None
            try:
                await session.flush()
            except IntegrityError:
                raise ConfigError(f"There is already a {row.provider_id} account named '{label}'.") from None
            return _info(row)

    async def remove(self, account_id: int) -> AccountInfo:
        async with self._sessions() as session, session.begin():
            row = await self._row(session, account_id)
            info = _info(row)
            await session.delete(row)
        if row.keyring_ref:
            self._secrets.delete(row.keyring_ref)
        return info

    async def check(self, account_id: int) -> AccountInfo:
        """Ask the provider whether the key works; the outcome is stored and returned (never raised)."""
        async with self._sessions() as session:
            row = await self._row(session, account_id)
            provider_id, label, keyring_ref, base_url = (
                row.provider_id,
                row.label,
                row.keyring_ref,
                row.base_url,
            )
        adapter = self._registry.get(provider_id)
        checker = self._registry.checker(provider_id)
        try:
            api_key = self._secrets.get(keyring_ref) if keyring_ref else None
            if adapter.requires_account and api_key is None:
                raise ConfigError(f"The API key of '{label}' is missing from the OS keyring: enter it again.")
            credentials = Credentials(api_key=api_key, base_url=base_url)
            if checker is None:
                ok, message = True, f"{adapter.display_name} offers no key check; the key is stored."
            else:
                http = self._http.trusting(*adapter.trusted_origins(credentials))
                ok, message = True, await checker.check_account(http, credentials)
        except PixSimError as exc:
            ok, message = False, str(exc)
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(ProviderAccount)
                .where(ProviderAccount.id == account_id)
                .values(last_checked_at=datetime.now(UTC), last_check_ok=ok, last_check_message=message)
            )
            return _info(await self._row(session, account_id))

    async def _row(self, session: AsyncSession, account_id: int) -> ProviderAccount:
        row = await session.get(ProviderAccount, account_id, populate_existing=True)
        if row is None:
            raise ConfigError(f"There is no account {account_id}.")
        return row

    async def find(self, provider_id: str, label: str) -> AccountInfo:
        async with self._sessions() as session:
            row = await session.scalar(
                select(ProviderAccount).where(
                    ProviderAccount.provider_id == provider_id, ProviderAccount.label == label
                )
            )
        if row is None:
            raise ConfigError(f"There is no {provider_id} account named '{label}'.")
        return _info(row)


def _info(row: ProviderAccount) -> AccountInfo:
    return AccountInfo(
        id=row.id,
        provider_id=row.provider_id,
        label=row.label,
        base_url=row.base_url,
        enabled=row.enabled,
        has_key=row.keyring_ref is not None,
        last_checked_at=row.last_checked_at,
        last_check_ok=row.last_check_ok,
        last_check_message=row.last_check_message,
    )
