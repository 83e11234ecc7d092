"""Fixtures the fault tests share with the app tests."""

from tests.app.conftest import empty_home  # noqa: F401
