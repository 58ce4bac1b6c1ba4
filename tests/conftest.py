"""The cluster harness test takes the local cluster down and up again, so it runs before every test
that uses the cluster."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: "tests/harness/" not in item.nodeid)
