"""e2e fixtures: one real gunicorn gateway per module in front of one local upstream."""

from __future__ import annotations

import pytest

from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import GatewayProcess


@pytest.fixture(scope="module")
def e2e_upstream():
    up = FakeUpstream().start()
    yield up
    up.stop()


@pytest.fixture(scope="module")
def gateway_process(tmp_path_factory, e2e_upstream):
    gw = GatewayProcess(tmp_path_factory.mktemp("gw"), e2e_upstream.url, env={"ZENGATE_SETTINGS_TTL": "0"})
    gw.start_settled(e2e_upstream)
    yield gw
    gw.stop()


@pytest.fixture
def up(e2e_upstream):
    e2e_upstream.reset()
    return e2e_upstream


@pytest.fixture
def gw(gateway_process, up):
    gateway_process.set_setting("require_auth", False)
    return gateway_process
