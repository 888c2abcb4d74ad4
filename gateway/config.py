"""Configuration: one YAML file, validated per plugin section, every error at once.

Loading rules:

* Scalars follow the YAML 1.2 core schema, not YAML 1.1: only ``true``/``false`` are
  booleans (``NO``, ``on``, ``y`` stay strings, so a country code or a community
  string is never turned into ``False``), integers are decimal unless written ``0x``
  or ``0o`` (``010`` is ten, not eight), and ``1:30`` is a string.
* A key that appears twice in one mapping is an error (YAML would let the last win).
* ``${NAME}`` and ``${NAME:-default}`` inside a string take the value of an
  environment variable. Where the config is printed, secrets are redacted: every
  ``pydantic.SecretStr`` field (communities, keys, passphrases), whether its value came
  from the environment or was written in clear, and the password of a URL
  (``socket://user:password@host:port``); other values show as they are, wherever
  they came from (a scenario path from ``${...}`` is no secret).
* Every problem is reported as ``FILE:LINE: key.path: message``; unknown keys and
  unknown plugin names get a "did you mean".
"""

from __future__ import annotations

import difflib
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic
import yaml

REDACTED = "********"
CORE_SECTION = "gateway"

Path_ = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(Exception):
    """The configuration is unusable; ``problems`` lists every reason."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


# --------------------------------------------------------------------------- YAML ------


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core-schema scalars and position tracking."""


_Loader.yaml_implicit_resolvers = {}
for _tag, _regexp, _first in (
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$",
     list("-+0123456789")),
    ("tag:yaml.org,2002:float",
     r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
     r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$", list("-+.0123456789")),
):
    _Loader.add_implicit_resolver(_tag, re.compile(_regexp), list(_first))


def _construct_bool(loader: _Loader, node: yaml.Node) -> bool:
    return loader.construct_scalar(node).lower() == "true"


def _construct_int(loader: _Loader, node: yaml.Node) -> int:
    text = loader.construct_scalar(node)
    if text.startswith(("0x", "0o")):
        return int(text, 0)
    return int(text, 10)


_Loader.add_constructor("tag:yaml.org,2002:bool", _construct_bool)
_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass
class ConfigDocument:
    """A parsed YAML document with the line of every key and the secret paths."""

    file: str
    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)
    #: the paths of secret values (``SecretStr`` fields, found by the validation)
    secrets: set[Path_] = field(default_factory=set)
    #: what reading found (duplicate keys, unset ${ENV}, aliases); validation reports
    #: these together with its own, so that every problem is listed at once
    problems: list[Problem] = field(default_factory=list)
    #: dotted paths whose value reading had to replace (an unset variable reads as "",
    #: an alias as null): validation problems there are consequences, not news
    replaced: set[str] = field(default_factory=set)

    def merge_problems(self, found: list[Problem]) -> list[Problem]:
        """The reading problems plus ``found``, less the validation problems at or below
        a value that reading replaced."""
        extra = [p for p in found if not any(
            p.path == r or p.path.startswith(r + ".") for r in self.replaced)]
        return sorted([*self.problems, *extra], key=lambda p: (p.line or 0, p.path))

    def line_of(self, path: Path_) -> int | None:
        """Line of ``path``, or of its closest ancestor that has one."""
        p = tuple(path)
        while p:
            if p in self.lines:
                return self.lines[p]
            p = p[:-1]
        return self.lines.get((), None)


def _to_python(node: yaml.Node, path: Path_, doc: ConfigDocument, loader: _Loader,
               problems: list[Problem], environ: typing.Mapping[str, str],
               seen: set[int] | None = None) -> Any:
    seen = set() if seen is None else seen
    if id(node) in seen:
        # an alias (*name): a self-reference would recurse forever and nested aliases
        # multiply ("billion laughs"); a config file has no need for them
        problems.append(Problem(doc.file, doc.line_of(path), _dotted(path),
                                "YAML aliases (*name) are not supported: write the value out"))
        doc.replaced.add(_dotted(path))
        return None
    seen.add(id(node))
    doc.lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        out: dict[Any, Any] = {}
        for knode, vnode in node.value:
            key = loader.construct_object(knode, deep=True)
            if not isinstance(key, (str, int)):
                problems.append(Problem(doc.file, knode.start_mark.line + 1, _dotted(path),
                                        f"keys must be strings, not {type(key).__name__}"))
                continue
            if key in out:
                problems.append(Problem(
                    doc.file, knode.start_mark.line + 1, _dotted(path + (key,)),
                    f"duplicate key (first given on line {doc.lines[path + (key,)]})"))
                continue
            doc.lines[path + (key,)] = knode.start_mark.line + 1
            out[key] = _to_python(vnode, path + (key,), doc, loader, problems, environ, seen)
            doc.lines[path + (key,)] = knode.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(v, path + (i,), doc, loader, problems, environ, seen)
                for i, v in enumerate(node.value)]
    value = loader.construct_object(node, deep=True)
    if isinstance(value, str) and "${" in value:
        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in environ:
                return environ[name]
            if default is not None:
                return default
            problems.append(Problem(doc.file, node.start_mark.line + 1, _dotted(path),
                                    f"environment variable {name!r} is not set"))
            doc.replaced.add(_dotted(path))
            return ""
        value = _ENV.sub(sub, value)
    return value


def parse_yaml(text: str, file: str, *, environ: typing.Mapping[str, str] | None = None
               ) -> ConfigDocument:
    """Parse ``text``. A YAML syntax error raises :class:`ConfigError` at once; what is
    wrong with the content (duplicate keys, unset variables) is kept in
    ``doc.problems`` and raised by the validation, with its own problems."""
    environ = os.environ if environ is None else environ
    doc = ConfigDocument(file=file, data=None)
    problems: list[Problem] = []
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            doc.data = {}
        else:
            doc.data = _to_python(node, (), doc, loader, problems, environ)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        msg = " ".join(s for s in (exc.context, exc.problem) if s) or "YAML syntax error"
        raise ConfigError([Problem(file, line, "", f"YAML syntax error: {msg}")]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([Problem(file, None, "", f"YAML error: {exc}")]) from None
    finally:
        loader.dispose()
    doc.problems = problems
    if not isinstance(doc.data, dict):
        raise ConfigError([*problems, Problem(file, doc.line_of(()), "",
                                              "the configuration must be a mapping of sections")])
    return doc


def _dotted(path: Path_) -> str:
    return ".".join(str(p) for p in path)


# --------------------------------------------------------------------- models ----------


class Section(pydantic.BaseModel):
    """Base of every config model: unknown keys are errors, values are immutable, and a
    boolean is only ``true`` or ``false`` (pydantic alone would read ``"no"``, ``"off"``
    or ``0`` as False, undoing the YAML 1.2 rule above)."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    @pydantic.field_validator("*", mode="before")
    @classmethod
    def _strict_bools(cls, value: Any, info: pydantic.ValidationInfo) -> Any:
        field_info = cls.model_fields.get(info.field_name or "")
        if field_info is not None and not isinstance(value, bool):
            kinds = _unwrap(field_info.annotation)
            if bool in kinds and not any(k in (int, float, str) for k in kinds):
                if value is not None or type(None) not in kinds:
                    raise ValueError("must be true or false")
        return value


class CoreSettings(Section):
    """The ``gateway:`` section: settings of the core itself."""

    name: str = pydantic.Field("bms-gateway", min_length=1, max_length=64,
                               description="Name of this gateway in logs and sysName.")
    state_dir: Path | None = pydantic.Field(
        None, description="Directory for persistent state (alarm log); none = no persistence.")
    watchdog: bool = pydantic.Field(
        True, description="Feed systemd's watchdog while every source keeps publishing "
        "(READY/STOPPING are always sent under Type=notify).")


@dataclass(frozen=True)
class GatewayConfig:
    """A validated configuration."""

    file: str
    core: CoreSettings
    sections: dict[str, pydantic.BaseModel]  #: enabled plugins only
    disabled: frozenset[str]
    document: ConfigDocument

    def section(self, name: str) -> Any:
        return self.sections.get(name)

    def enabled(self, name: str) -> bool:
        return name in self.sections

    def redacted(self) -> dict[str, Any]:
        """The configuration as given (``${...}`` substituted), with every secret
        replaced by ``********``: each value of a secret field (``pydantic.SecretStr``:
        communities, keys, passphrases), from the environment or written in clear, in
        disabled sections too, and the password in a URL's user information."""
        return redact(self.document)


def _secret_paths(value: Any, path: Path_) -> set[Path_]:
    """The paths of every ``SecretStr`` inside a validated model."""
    if isinstance(value, pydantic.SecretStr):
        return {path}
    if isinstance(value, pydantic.BaseModel):
        return {p for k in type(value).model_fields
                for p in _secret_paths(getattr(value, k), path + (k,))}
    if isinstance(value, (list, tuple)):
        return {p for i, v in enumerate(value) for p in _secret_paths(v, path + (i,))}
    if isinstance(value, dict):
        return {p for k, v in value.items() for p in _secret_paths(v, path + (k,))}
    return set()


_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def redact_url_password(text: str) -> str:
    """``scheme://user:********@host...`` for ``scheme://user:password@host...``. The
    password may hold ``/`` or ``@``: the user information ends at the last ``@``."""
    m = _URL_SCHEME.match(text)
    if m is None:
        return text
    userinfo, at, host = text[m.end():].rpartition("@")
    if not at or ":" not in userinfo:
        return text
    return f"{m.group()}{userinfo.split(':', 1)[0]}:{REDACTED}@{host}"


def redact(doc: ConfigDocument) -> Any:
    def walk(value: Any, path: Path_) -> Any:
        if path in doc.secrets:
            return REDACTED
        if isinstance(value, dict):
            return {k: walk(v, path + (k,)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, path + (i,)) for i, v in enumerate(value)]
        if isinstance(value, str):
            return redact_url_password(value)
        return value
    return walk(doc.data, ())


def _unwrap(annotation: Any) -> list[Any]:
    """The concrete types inside Optional/Union/Annotated/list/dict annotations."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [t for a in typing.get_args(annotation) for t in _unwrap(a)]
    return [annotation]


def _model_at(model: type[pydantic.BaseModel], loc: Path_) -> type[pydantic.BaseModel] | None:
    """The model class that validates the mapping at ``loc`` below ``model``."""
    current: Any = model
    for part in loc:
        if isinstance(current, type) and issubclass(current, pydantic.BaseModel):
            if not isinstance(part, str) or part not in current.model_fields:
                return None
            candidates = _unwrap(current.model_fields[part].annotation)
        else:
            origin = typing.get_origin(current)
            args = typing.get_args(current)
            if origin in (list, tuple) and args and isinstance(part, int):
                candidates = _unwrap(args[0])
            elif origin is dict and len(args) == 2:
                candidates = _unwrap(args[1])
            else:
                return None
        models = [c for c in candidates
                  if (isinstance(c, type) and issubclass(c, pydantic.BaseModel))
                  or typing.get_origin(c) in (list, tuple, dict)]
        if len(models) != 1:
            return None
        current = models[0]
    if isinstance(current, type) and issubclass(current, pydantic.BaseModel):
        return current
    return None


def _suggest(word: str, choices: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _data_path(data: Any, loc: Path_) -> Path_:
    """Keep the parts of a pydantic ``loc`` that address real data (drop union tags)."""
    out: list[str | int] = []
    cur = data
    for i, part in enumerate(loc):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur):
            cur = cur[part]
        elif i != len(loc) - 1:
            continue  # a union member's tag, not a key of the data
        out.append(part)
    return tuple(out)


def validation_problems(doc: ConfigDocument, exc: pydantic.ValidationError,
                        model: type[pydantic.BaseModel], value: Any, *,
                        prefix: Path_ = ()) -> list[Problem]:
    """Turn a pydantic error into ``FILE:LINE: key.path: message`` problems."""
    out: list[Problem] = []
    for err in exc.errors(include_url=False):
        loc = _data_path(value, tuple(err["loc"]))
        path = prefix + loc
        msg = err["msg"]
        if err["type"] == "extra_forbidden" and loc:
            parent = _model_at(model, loc[:-1])
            msg = "unknown key" + (_suggest(str(loc[-1]), parent.model_fields) if parent else "")
        elif err["type"] == "value_error" and "error" in err.get("ctx", {}):
            msg = str(err["ctx"]["error"])
        elif err["type"] == "missing":
            msg = "required key is missing"
        out.append(Problem(doc.file, doc.line_of(path), _dotted(path), msg))
    return out


def validate_model(doc: ConfigDocument, model: type[pydantic.BaseModel]) -> Any:
    """Validate a whole document against one model (scenario files and the like)."""
    try:
        value = model.model_validate(doc.data)
    except pydantic.ValidationError as exc:
        raise ConfigError(doc.merge_problems(
            validation_problems(doc, exc, model, doc.data))) from None
    if doc.problems:
        raise ConfigError(doc.merge_problems([]))
    return value


def validate_document(doc: ConfigDocument, models: dict[str, type[pydantic.BaseModel]]
                      ) -> GatewayConfig:
    """Validate every section of ``doc`` against the registered ``models``.

    ``models`` maps plugin section names to their pydantic models; the ``gateway``
    core section is always known. Raises :class:`ConfigError` listing every problem.
    """
    problems: list[Problem] = []
    known = {CORE_SECTION: CoreSettings, **models}
    sections: dict[str, pydantic.BaseModel] = {}
    disabled: set[str] = set()
    core = CoreSettings()
    for key, value in doc.data.items():
        if key not in known:
            problems.append(Problem(
                doc.file, doc.line_of((key,)), str(key),
                f"unknown section: no plugin named {key!r} is installed"
                + _suggest(str(key), known)))
            continue
        model = known[key]
        if value is None:
            value = {}
        if key != CORE_SECTION and isinstance(value, dict) and "enabled" in value:
            enabled = value["enabled"]
            if not isinstance(enabled, bool):
                problems.append(Problem(doc.file, doc.line_of((key, "enabled")),
                                        f"{key}.enabled", "must be true or false"))
                continue
            value = {k: v for k, v in value.items() if k != "enabled"}
            if not enabled:
                disabled.add(key)
        try:
            validated = model.model_validate(value)
        except pydantic.ValidationError as exc:
            problems.extend(validation_problems(doc, exc, model, value, prefix=(key,)))
            continue
        doc.secrets |= _secret_paths(validated, (key,))  # redacted, enabled or not
        if key == CORE_SECTION:
            core = validated
        elif key not in disabled:
            sections[key] = validated
    if problems or doc.problems:
        raise ConfigError(doc.merge_problems(problems))
    return GatewayConfig(file=doc.file, core=core, sections=sections,
                         disabled=frozenset(disabled), document=doc)


def load_config(path: str | os.PathLike[str], models: dict[str, type[pydantic.BaseModel]], *,
                environ: typing.Mapping[str, str] | None = None) -> GatewayConfig:
    """Read, parse and validate a config file."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem(file, None, "", f"cannot read: {exc}")]) from None
    doc = parse_yaml(text, file, environ=environ)
    if not any(key != CORE_SECTION for key in doc.data):
        # an empty file (or only the core section) would start a gateway doing nothing
        what = "is empty" if not doc.data else f"has only the {CORE_SECTION!r} section"
        raise ConfigError([*doc.problems, Problem(
            file, None, "", f"the configuration {what}: no plugin is enabled, nothing would "
            f"run; add a section for each plugin to run (installed: {', '.join(sorted(models))}"
            f"; the core's is {CORE_SECTION!r}); see config/example.yaml")])
    return validate_document(doc, models)


def config_from_mapping(data: dict[str, Any], models: dict[str, type[pydantic.BaseModel]], *,
                        file: str = "<built-in default>") -> GatewayConfig:
    """Validate an in-memory configuration (the built-in default)."""
    return validate_document(ConfigDocument(file=file, data=data), models)
