"""BILLING_SYNC_WEB_CONCURRENCY: how many portal worker processes the web process runs."""

from __future__ import annotations

import os

import pytest

from sync.settings import Settings, SettingsError


def test_given_no_variable_when_read_then_one_worker_per_cpu() -> None:
    assert Settings.from_env({}).web_concurrency == (os.cpu_count() or 1)
    assert Settings().web_concurrency == (os.cpu_count() or 1)


def test_given_a_count_when_read_then_that_many_workers() -> None:
    assert Settings.from_env({"BILLING_SYNC_WEB_CONCURRENCY": "3"}).web_concurrency == 3


@pytest.mark.parametrize("raw", ["0", "-1", "many", "1000"])
def test_given_an_unusable_count_when_read_then_the_error_names_the_variable(raw: str) -> None:
    with pytest.raises(SettingsError, match="BILLING_SYNC_WEB_CONCURRENCY"):
        Settings.from_env({"BILLING_SYNC_WEB_CONCURRENCY": raw})
