"""Resolve which account of a provider to use, and its secret from the OS keyring.

The database stores only ``keyring_ref``; the key itself is read from the keyring when needed and is
never logged, stored elsewhere or put in an error message.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.models import ProviderAccount
from core.errors import ConfigError
from core.providers.base import Credentials

KEYRING_SERVICE = "PixSim"


class SecretStore:
    """The OS keyring. No usable backend is an error, never a plaintext fallback."""

    def get(self, ref: str) -> str | None:
        import keyring
        from keyring.errors import KeyringError, NoKeyringError

        try:
            return keyring.get_password(KEYRING_SERVICE, ref)
        except NoKeyringError:
            raise ConfigError(
                "No usable OS keyring was found, so PixSim cannot read provider API keys. Install or "
                "unlock a keyring (GNOME Keyring, KWallet, macOS Keychain, Windows Credential Locker)."
            ) from None
        except KeyringError as exc:
            raise ConfigError(
                f"The OS keyring refused access to a provider key: {type(exc).__name__}."
            ) from None


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
