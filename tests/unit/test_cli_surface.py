"""The CLI's surface, walked from kms.cli.build_parser(): help text for every flag and argument, one way to name
a key (--key-id, never a positional or --key), --version, KMS_OUTPUT checked like --output, and a description for
each attestation relaxation. A command added without these fails here (its bad-input cases:
tests/e2e/cli_cases.py)."""

from __future__ import annotations

import argparse

import pytest

from kms import __version__
from kms.attestation.policy import RELAXATIONS
from kms.cli import build_parser, main
from kms.commands import attestation_flags
from tests.e2e.test_cli_errors import leaf_parsers

LEAVES = leaf_parsers()


def _actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions
            if not isinstance(a, argparse._HelpAction | argparse._VersionAction | argparse._SubParsersAction)]


@pytest.mark.parametrize("command", sorted(LEAVES))
def test_every_flag_and_argument_has_help(command: str) -> None:
    missing = [a.option_strings[0] if a.option_strings else a.dest for a in _actions(LEAVES[command])
               if not (a.help or "").strip() or a.help == argparse.SUPPRESS]
    assert not missing, f"kms {command}: no help for {missing}"


@pytest.mark.parametrize("command", sorted(LEAVES))
def test_a_key_is_named_one_way(command: str) -> None:
    for action in _actions(LEAVES[command]):
        if action.dest == "key_id":
            assert action.option_strings == ["--key-id"], f"kms {command}: {action.option_strings or 'positional'}"
        assert "--key" not in action.option_strings or command.startswith(("enclave", "validator import")), command


def test_the_walk_reaches_every_group() -> None:
    groups = {name.split()[0] for name in LEAVES}
    top = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert groups == set(top.choices)
    assert "key grant" not in LEAVES and "key revoke" not in LEAVES  # one grant system: kms grant


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"kms (Enclave KMS) {__version__}"


def test_kms_output_is_checked_like_the_flag(monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("KMS_OUTPUT", "yaml")
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["key", "list"])
    err = capsys.readouterr().err
    assert exit_.value.code == 1 and "--output" in err and "KMS_OUTPUT='yaml'" in err and len(err.splitlines()) == 1
    monkeypatch.setenv("KMS_OUTPUT", "json")
    assert build_parser().parse_args(["key", "list"]).output == "json"


def test_each_relaxation_says_what_it_accepts() -> None:
    assert set(attestation_flags._RELAXED) == set(RELAXATIONS)
