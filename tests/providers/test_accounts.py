"""Provider accounts: keys only in the OS keyring, never in the database, logs or errors."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import keyring
import pytest
from keyring.backends import fail
from sqlalchemy import select, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.engine import make_async_engine, make_async_session_factory
from core.db.models import ProviderAccount
from core.errors import ConfigError
from core.net.http import SafeHttp
from core.net.policy import UrlPolicy
from core.providers.accounts import KEYRING_SERVICE, AccountResolver, AccountService
from core.providers.registry import ProviderRegistry
from tests.fakes.http_server import FakeHttpServer
from tests.fakes.pixverse import FakePixverse
from tests.memory_keyring import MemoryKeyring

SECRET = "sk-live-very-secret-0123456789"


@pytest.fixture(autouse=True)
def _in_memory_keyring(memory_keyring: MemoryKeyring) -> None:
    """Every test here uses the in-memory keyring (tests/conftest.py), never the OS one."""


@pytest.fixture
async def sessions(db_url: URL) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_async_engine(db_url)
    yield make_async_session_factory(engine)
    await engine.dispose()


@pytest.fixture
async def accounts(
    sessions: async_sessionmaker[AsyncSession], server: FakeHttpServer
) -> AsyncIterator[AccountService]:
    http = SafeHttp(UrlPolicy.trusting([server.base_url]))
    yield AccountService(sessions, ProviderRegistry.from_entry_points(), http)
    await http.aclose()


async def test_add_stores_the_key_in_the_keyring_and_only_a_reference_in_the_database(
    accounts: AccountService,
    sessions: async_sessionmaker[AsyncSession],
    memory_keyring: MemoryKeyring,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    info = await accounts.add("pixverse", "studio", api_key=SECRET)
    assert info.has_key and info.label == "studio"
    async with sessions() as session:
        row = await session.get(ProviderAccount, info.id)
        assert row is not None and row.keyring_ref is not None
        dump = await session.scalar(text("SELECT row_to_json(a)::text FROM provider_accounts a"))
    assert SECRET not in (dump or "")
    assert memory_keyring.get_password(KEYRING_SERVICE, row.keyring_ref) == SECRET
    assert SECRET not in repr(info) and SECRET not in caplog.text
    _, credentials = await AccountResolver(sessions).resolve("pixverse", "studio", required=True)
    assert credentials.api_key == SECRET and SECRET not in repr(credentials)


async def test_several_accounts_per_provider_and_clear_errors(accounts: AccountService) -> None:
    await accounts.add("pixverse", "personal", api_key="k1")
    await accounts.add("pixverse", "studio", api_key="k2")
    with pytest.raises(ConfigError, match="already a Pixverse account named 'studio'"):
        await accounts.add("pixverse", "studio", api_key="k3")
    with pytest.raises(ConfigError, match="needs an API key"):
        await accounts.add("pixverse", "empty")
    assert [a.label for a in await accounts.list("pixverse")] == ["personal", "studio"]


async def test_a_failed_insert_leaves_no_orphan_key(
    accounts: AccountService, memory_keyring: MemoryKeyring
) -> None:
    await accounts.add("pixverse", "studio", api_key="k1")
    with pytest.raises(ConfigError):
        await accounts.add("pixverse", "studio", api_key="k2")
    assert sorted(memory_keyring._secrets.values()) == ["k1"]


async def test_edit_rekeys_and_remove_deletes_the_key(
    accounts: AccountService, memory_keyring: MemoryKeyring, sessions: async_sessionmaker[AsyncSession]
) -> None:
    info = await accounts.add("pixverse", "studio", api_key="old")
    edited = await accounts.edit(info.id, label="main", api_key="new", enabled=False)
    assert (edited.label, edited.enabled) == ("main", False)
    assert list(memory_keyring._secrets.values()) == ["new"]
    await accounts.remove(info.id)
    assert memory_keyring._secrets == {}
    async with sessions() as session:
        assert await session.scalar(select(ProviderAccount.id)) is None


async def test_check_reports_a_working_and_a_refused_key(
    accounts: AccountService, server: FakeHttpServer
) -> None:
    FakePixverse(server, api_key="good-key")
    good = await accounts.add("pixverse", "good", api_key="good-key", base_url=server.base_url)
    bad = await accounts.add("pixverse", "bad", api_key=SECRET, base_url=server.base_url)
    checked = await accounts.check(good.id)
    assert checked.last_check_ok is True and checked.last_checked_at is not None
    refused = await accounts.check(bad.id)
    assert refused.last_check_ok is False
    assert refused.last_check_message and SECRET not in refused.last_check_message


async def test_sandbox_needs_no_key(accounts: AccountService) -> None:
    info = await accounts.add("sandbox", "offline")
    assert not info.has_key
    assert (await accounts.check(info.id)).last_check_ok is True


async def test_no_usable_keyring_is_a_clear_error_never_a_plaintext_fallback(
    accounts: AccountService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        with pytest.raises(ConfigError, match=r"No usable OS keyring.*never stores keys in plain files"):
            await accounts.add("pixverse", "studio", api_key=SECRET)
    finally:
        keyring.set_keyring(previous)
    async with sessions() as session:
        assert await session.scalar(select(ProviderAccount.id)) is None
