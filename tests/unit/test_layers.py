"""The import graph stays layered: the domain imports nothing of ours but the domain,
shared code never imports a service, and services never import each other."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
SHARED = ROOT / "shared/src/switchboard_shared"
SERVICE_PACKAGES = {
    path.name: path
    for path in sorted(ROOT.glob("services/*/src/switchboard_*"))
    if path.is_dir() and path.name.startswith("switchboard_")
}


def imported_modules(package: Path) -> Iterator[tuple[Path, str]]:
    for source in package.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield source, alias.name
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                yield source, node.module


def ours(module: str) -> bool:
    return module.split(".")[0].startswith("switchboard")


def test_there_are_services_to_check() -> None:
    assert {"switchboard_api", "switchboard_dialer", "switchboard_notifier"} <= set(
        SERVICE_PACKAGES
    )


def test_the_domain_imports_only_the_domain() -> None:
    wrong = [
        f"{source.relative_to(ROOT)}: {module}"
        for source, module in imported_modules(SHARED / "domain")
        if ours(module) and not module.startswith("switchboard_shared.domain")
    ]
    assert not wrong


def test_shared_code_never_imports_a_service() -> None:
    wrong = [
        f"{source.relative_to(ROOT)}: {module}"
        for source, module in imported_modules(SHARED)
        if module.split(".")[0] in SERVICE_PACKAGES or module.split(".")[0] == "switchboard"
    ]
    assert not wrong


@pytest.mark.parametrize("service", sorted(SERVICE_PACKAGES))
def test_a_service_never_imports_another(service: str) -> None:
    others = set(SERVICE_PACKAGES) - {service}
    wrong = [
        f"{source.relative_to(ROOT)}: {module}"
        for source, module in imported_modules(SERVICE_PACKAGES[service])
        if module.split(".")[0] in others or module.split(".")[0] == "switchboard"
    ]
    assert not wrong
