"""docs/configuration.md documents every setting, and only real ones."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from switchboard_shared.runtime.settings import ProviderSettings, Settings

DOC = Path(__file__).parents[2] / "docs" / "configuration.md"


def documented() -> set[str]:
    return set(re.findall(r"`SWITCHBOARD_([A-Z0-9_<>]+)`", DOC.read_text()))


def test_every_setting_is_documented() -> None:
    names = documented()
    missing = [f for f in Settings.model_fields if f.upper() not in names]
    missing += [
        f"<P>__{f.upper()}"
        for f in ProviderSettings.model_fields
        if f"<P>__{f.upper()}" not in names
    ]
    # provider groups are documented once, as <P>__FIELD
    missing = [
        m
        for m in missing
        if m not in {"simulator", "vocode", "voxpria", "vapi", "retell", "elevenlabs"}
    ]
    assert not missing, f"settings missing from docs/configuration.md: {missing}"


def test_documented_settings_exist() -> None:
    real = {f.upper() for f in Settings.model_fields}
    for group in ("<P>", "SIMULATOR", "VOCODE", "VOXPRIA", "VAPI", "RETELL", "ELEVENLABS"):
        real |= {f"{group}__{f.upper()}" for f in ProviderSettings.model_fields}
    unknown = sorted(documented() - real)
    assert not unknown, f"docs/configuration.md names settings that do not exist: {unknown}"


def test_setting_one_simulator_variable_keeps_the_other_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SWITCHBOARD_SIMULATOR__BASE_URL", "http://sim:8000")
    simulator = Settings().simulator
    assert simulator.base_url == "http://sim:8000"
    assert simulator.api_key.get_secret_value() == "sim-api-key"
    assert simulator.callback_secret.get_secret_value() == "sim-callback-secret"
    assert simulator.from_number == "+15005550000"
