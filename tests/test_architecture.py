"""The layout issue's rules, enforced: no import cycle in ``router`` and no function over 60 lines."""

from __future__ import annotations

from tests import architecture


def test_the_router_package_has_no_import_cycle():
    assert architecture.cycles(architecture.graph()) == []


def test_the_checker_sees_function_level_imports_and_finds_cycles():
    # The checker itself must be able to fail: a two-module cycle through a function-level import.
    edges = {
        "router.a": [architecture.Import("router.b", 3, in_function=False)],
        "router.b": [architecture.Import("router.a", 9, in_function=True)],
        "router.c": [architecture.Import("router.a", 1, in_function=False)],
    }
    assert architecture.cycles(edges) == [["router.a", "router.b"]]
    graph = architecture.graph()
    cli_imports = {(i.target, i.in_function) for i in graph["router.cli"]}
    assert ("router.dev.run", True) in cli_imports  # imported inside run_dev
    assert ("router.settings", False) in cli_imports


def test_no_function_in_the_router_package_is_longer_than_60_lines():
    assert architecture.long_functions() == []
