"""Config loading: YAML traps, line numbers, every error at once, secrets redacted."""

from __future__ import annotations

import json
import textwrap

import pydantic
import pytest

from gateway import cli
from gateway.config import (
    REDACTED,
    ConfigError,
    Section,
    config_from_mapping,
    load_config,
    parse_yaml,
    validate_document,
)


class Inner(Section):
    port: int = 1
    host: str = "127.0.0.1"


class Demo(Section):
    community: pydantic.SecretStr | None = None
    count: int = 3
    flag: bool = False
    label: str = ""
    inner: Inner = Inner()
    items: list[Inner] = []


MODELS = {"demo": Demo}


def load(tmp_path, text: str, environ=None):
    f = tmp_path / "gw.yaml"
    f.write_text(textwrap.dedent(text))
    return load_config(f, MODELS, environ=environ or {})


def problems(tmp_path, text: str, environ=None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text, environ)
    return [str(p) for p in info.value.problems]


def test_yaml_12_scalars_no_norway_no_octal(tmp_path):
    doc = parse_yaml("a: NO\nb: 010\nc: on\nd: true\ne: 0x1F\nf: 1:30\ng: 0o17\nh: ~\n", "x")
    assert doc.data == {"a": "NO", "b": 10, "c": "on", "d": True, "e": 31, "f": "1:30",
                        "g": 15, "h": None}


def test_valid_config_and_defaults(tmp_path):
    cfg = load(tmp_path, """
        gateway:
          name: site-7
        demo:
          count: 5
          inner: {port: 1161}
    """)
    assert cfg.core.name == "site-7"
    assert cfg.section("demo").count == 5
    assert cfg.section("demo").inner.port == 1161
    assert cfg.enabled("demo")


def test_enabled_false_keeps_plugin_off(tmp_path):
    cfg = load(tmp_path, "demo:\n  enabled: false\n  count: 2\n")
    assert not cfg.enabled("demo")
    assert cfg.disabled == {"demo"}


@pytest.mark.parametrize("text, what", [("", "is empty"), ("# nothing yet\n", "is empty"),
                                        ("gateway:\n  name: x\n",
                                         "has only the 'gateway' section")])
def test_a_file_without_any_plugin_section_is_refused_and_names_the_sections(
        tmp_path, text, what):
    """Issue 13: an empty file used to start a gateway with nothing enabled."""
    assert [p.replace(f"{tmp_path}/", "") for p in problems(tmp_path, text)] == [
        f"gw.yaml: the configuration {what}: no plugin is enabled, nothing would run; add "
        "a section for each plugin to run (installed: demo; the core's is 'gateway'); see "
        "config/example.yaml"]


BAD = [
    pytest.param("demo:\n  count: 1\n  count: 2\n",
                 ["gw.yaml:3: demo.count: duplicate key (first given on line 2)"], id="duplicate-key"),
    pytest.param("demo:\n  cuont: 1\n",
                 ["gw.yaml:2: demo.cuont: unknown key; did you mean 'count'?"], id="unknown-key"),
    pytest.param("demo:\n  inner:\n    prot: 9\n",
                 ["gw.yaml:3: demo.inner.prot: unknown key; did you mean 'port'?"],
                 id="unknown-nested-key"),
    pytest.param("demo:\n  items:\n    - port: 1\n    - hots: x\n",
                 ["gw.yaml:4: demo.items.1.hots: unknown key; did you mean 'host'?"],
                 id="unknown-key-in-list"),
    pytest.param("demo:\n  count: lots\n",
                 ["gw.yaml:2: demo.count: Input should be a valid integer, unable to parse "
                  "string as an integer"], id="wrong-type"),
    pytest.param("demo:\n  flag: NO\n",
                 ["gw.yaml:2: demo.flag: must be true or false"], id="yaml11-no-is-not-false"),
    pytest.param("dmeo:\n  count: 1\n",
                 ["gw.yaml:1: dmeo: unknown section: no plugin named 'dmeo' is installed; "
                  "did you mean 'demo'?"], id="unknown-plugin"),
    pytest.param("demo:\n  community: ${GW_MISSING}\n",
                 ["gw.yaml:2: demo.community: environment variable 'GW_MISSING' is not set"],
                 id="bad-env-reference"),
    pytest.param("demo:\n  count: [1,\n", "gw.yaml:3: YAML syntax error: ",
                 id="yaml-syntax-error"),
    pytest.param("- just\n- a list\n",
                 ["gw.yaml:1: the configuration must be a mapping of sections"], id="not-a-mapping"),
    pytest.param("demo: &x\n  items: [*x]\n",
                 ["gw.yaml:2: demo.items.0: YAML aliases (*name) are not supported: write the "
                  "value out"], id="self-referencing-alias"),
    pytest.param("a: &a [1, 2]\nb: &b [*a, *a]\ndemo: {items: [*b, *b]}\n",
                 "gw.yaml:1: a: unknown section", id="alias-bomb"),
    pytest.param("demo:\n  enabled: maybe\n",
                 ["gw.yaml:2: demo.enabled: must be true or false"], id="enabled-not-bool"),
]


@pytest.mark.parametrize(("text", "expected"), BAD)
def test_bad_configs_name_file_line_key(tmp_path, text, expected):
    got = problems(tmp_path, text)
    if isinstance(expected, str):  # the first problem's start; the rest is PyYAML's wording
        assert got and got[0].startswith(f"{tmp_path}/{expected}")
        assert any("YAML syntax error" in g or "aliases" in g for g in got)
    else:
        assert got == [f"{tmp_path}/{e}" for e in expected]


@pytest.mark.parametrize(("text", "expected"), BAD)
def test_bad_configs_exit_78_from_check_config(tmp_path, capsys, text, expected, monkeypatch):
    f = tmp_path / "gw.yaml"
    f.write_text(text)
    monkeypatch.setattr(cli, "config_models", lambda pm: MODELS)
    monkeypatch.delenv("GW_MISSING", raising=False)
    assert cli.main(["check-config", str(f)]) == 78
    err = capsys.readouterr().err
    assert "configuration rejected" in err
    for e in [expected] if isinstance(expected, str) else expected:
        assert f"{tmp_path}/{e}" in err


def test_reading_and_validation_problems_are_reported_together(tmp_path):
    got = problems(tmp_path, """\
        demo:
          count: 1
          count: 2
          community: ${GW_UNSET}
          lable: x
        dmeo: {}
        """)
    assert got == [f"{tmp_path}/{e}" for e in (
        "gw.yaml:3: demo.count: duplicate key (first given on line 2)",
        "gw.yaml:4: demo.community: environment variable 'GW_UNSET' is not set",
        "gw.yaml:5: demo.lable: unknown key; did you mean 'label'?",
        "gw.yaml:6: dmeo: unknown section: no plugin named 'dmeo' is installed; "
        "did you mean 'demo'?")]


def test_all_problems_reported_at_once(tmp_path):
    got = problems(tmp_path, "demo:\n  count: x\n  flag: 3\n  nope: 1\nother: {}\n")
    assert len(got) == 4
    assert [g.split(":")[1] for g in got] == ["2", "3", "4", "5"]


def test_env_substitution_and_redaction(tmp_path):
    cfg = load(tmp_path, "demo:\n  community: ${GW_COMM}\n  label: x-${GW_SITE:-none}\n",
               environ={"GW_COMM": "s3cret"})
    assert cfg.section("demo").community.get_secret_value() == "s3cret"
    assert cfg.section("demo").label == "x-none"
    shown = cfg.redacted()
    assert shown["demo"]["community"] == REDACTED
    assert "s3cret" not in repr(cfg.section("demo")) and "s3cret" not in str(shown)


def test_only_secrets_are_redacted_not_every_value_from_the_environment(tmp_path):
    """A value substituted from ${...} shows as it is unless its field is a secret."""
    cfg = load(tmp_path, "demo:\n  label: ${GW_LABEL}\n  community: ${GW_COMM}\n"
               "  inner: {host: '${GW_HOST:-10.0.0.9}'}\n",
               environ={"GW_LABEL": "/srv/scenarios/cell-ramp.yaml", "GW_COMM": "s3cret"})
    shown = cfg.redacted()
    assert shown["demo"] == {"label": "/srv/scenarios/cell-ramp.yaml", "community": REDACTED,
                             "inner": {"host": "10.0.0.9"}}
    cfg = load(tmp_path, "demo:\n  enabled: false\n  community: ${GW_COMM}\n"
               "  label: ${GW_LABEL}\n", environ={"GW_LABEL": "shown", "GW_COMM": "s3cret"})
    assert cfg.redacted()["demo"] == {"enabled": False, "community": REDACTED,
                                      "label": "shown"}


def test_the_password_of_a_url_is_redacted(tmp_path):
    cfg = load(tmp_path, "demo:\n  label: socket://admin:${GW_PW}@10.0.0.1:4001\n"
               "  items: [{host: 'rfc2217://u:p@w@h:1'}, {host: 'socket://10.0.0.2:4001'}]\n",
               environ={"GW_PW": "s3cr/t"})
    shown = cfg.redacted()["demo"]
    assert shown["label"] == f"socket://admin:{REDACTED}@10.0.0.1:4001"
    assert shown["items"] == [{"host": f"rfc2217://u:{REDACTED}@h:1"},
                              {"host": "socket://10.0.0.2:4001"}]


def test_secret_fields_are_redacted_even_when_written_in_clear(tmp_path):
    cfg = load(tmp_path, "demo:\n  community: written-in-the-file\n  label: shown\n")
    shown = cfg.redacted()
    assert shown["demo"] == {"community": REDACTED, "label": "shown"}
    cfg = load(tmp_path, "demo:\n  enabled: false\n  community: in-a-disabled-section\n")
    assert cfg.redacted()["demo"]["community"] == REDACTED


def test_a_duplicate_key_hides_no_other_problem(tmp_path):
    got = problems(tmp_path, "demo:\n  count: x\n  count: 3\n  inner: {port: y}\n")
    assert got == [f"{tmp_path}/gw.yaml:2: demo.count: Input should be a valid integer, "
                   "unable to parse string as an integer",  # the value kept: the first
                   f"{tmp_path}/gw.yaml:3: demo.count: duplicate key (first given on line 2)",
                   f"{tmp_path}/gw.yaml:4: demo.inner.port: Input should be a valid integer, "
                   "unable to parse string as an integer"]


def test_check_config_print_redacts(tmp_path, capsys, monkeypatch):
    f = tmp_path / "gw.yaml"
    f.write_text("demo:\n  community: ${GW_COMM}\n")
    monkeypatch.setattr(cli, "config_models", lambda pm: MODELS)
    monkeypatch.setenv("GW_COMM", "s3cret")
    assert cli.main(["check-config", "--print", str(f)]) == 0
    out = capsys.readouterr().out
    assert REDACTED in out and "s3cret" not in out and "OK (plugins enabled: demo)" in out


def test_unreadable_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "missing.yaml", MODELS)
    assert "cannot read" in str(info.value)


def test_in_memory_mapping_validates_too():
    with pytest.raises(ConfigError) as info:
        config_from_mapping({"demo": {"count": "x"}}, MODELS)
    assert str(info.value.problems[0]).startswith("<built-in default>: demo.count:")


def test_null_section_means_defaults():
    doc = parse_yaml("demo:\n", "f.yaml")
    cfg = validate_document(doc, MODELS)
    assert cfg.section("demo") == Demo()


def test_check_config_print_shows_a_scenario_path_from_the_environment(tmp_path, capsys,
                                                                     monkeypatch):
    """The real plugins' models: a simulator scenario named by ${...} is printed, the SNMP
    community next to it is not."""
    scenario = tmp_path / "faults.yaml"
    scenario.write_text("steps: []\n")
    f = tmp_path / "gw.yaml"
    f.write_text("rs485_bms:\n  buses:\n    - name: sim\n      simulate:\n"
                 "        scenario: ${GW_SCENARIO}\n"
                 "snmp_agent:\n  port: 16161\n  v2c:\n    community: ${GW_COMM}\n")
    monkeypatch.setenv("GW_SCENARIO", str(scenario))
    monkeypatch.setenv("GW_COMM", "s3cret")
    assert cli.main(["check-config", "--print", str(f)]) == 0
    out = capsys.readouterr().out
    printed = json.loads(out[:out.rindex("}") + 1])
    assert printed["rs485_bms"]["buses"][0]["simulate"]["scenario"] == str(scenario)
    assert printed["snmp_agent"]["v2c"]["community"] == REDACTED and "s3cret" not in out
