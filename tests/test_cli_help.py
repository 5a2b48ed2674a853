"""Every command-line option of `anisoscan` and `python -m anisoscan.bench` says what it does."""

from __future__ import annotations

import argparse

import pytest
from anisoscan import cli, params
from anisoscan.bench import __main__ as bench_main


class _Parsed(Exception):
    pass


def _parser_of(main) -> argparse.ArgumentParser:
    """The parser a main() builds, caught where it would parse."""
    original = argparse.ArgumentParser.parse_args

    def catch(self, *args, **kwargs):
        raise _Parsed(self)

    argparse.ArgumentParser.parse_args = catch
    try:
        main([])
    except _Parsed as parsed:
        return parsed.args[0]
    finally:
        argparse.ArgumentParser.parse_args = original
    raise AssertionError("main() did not parse its arguments")


def _options(parser: argparse.ArgumentParser, path: str):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _options(sub, f"{path} {name}")
        elif not isinstance(action, argparse._HelpAction):
            yield path, action


@pytest.mark.parametrize("main, prog", [(cli.main, "anisoscan"), (bench_main.main, "python -m anisoscan.bench")])
def test_every_option_has_help(main, prog):
    options = list(_options(_parser_of(main), prog))
    assert len(options) > 20
    missing = [f"{path} {'/'.join(a.option_strings) or a.dest}" for path, a in options if not a.help]
    assert not missing, f"options without help text: {missing}"


@pytest.mark.parametrize("main, prog", [(cli.main, "anisoscan"), (bench_main.main, "python -m anisoscan.bench")])
def test_options_that_set_a_parameter_describe_it_as_the_schema_does(main, prog):
    schema = {**{s.name: s for s in params.SCHEMA if s.phase == "search"},
              **{s.name: s for s in params.SCHEMA if s.phase == "build"}}
    named = [(path, a) for path, a in _options(_parser_of(main), prog) if a.dest in schema]
    assert named, "no option sets an index parameter"
    wrong = [f"{path} --{a.dest}" for path, a in named if not a.help.startswith(schema[a.dest].description)]
    assert not wrong, f"options whose help is not the schema's description: {wrong}"
