"""Agent profiles: parsing profile files, and the catalog that merges their sources.

A profile comes from one of three places; a later one overrides an earlier one with the
same id: the built-in ``default`` (agent_server/default_profiles/default.yaml), the
persistence adapter's store, then one file per profile in AGENT_PROFILES_DIR.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from agent_server.persistence.base import PersistenceAdapter
from agent_server.persistence.types import (
    AgentProfile,
    AgentProfileSummary,
    SubagentDefinition,
    WorkspaceFile,
)

logger = logging.getLogger(__name__)

DEFAULT_PROFILE_ID = "default"
PROFILE_SUFFIXES = (".yaml", ".yml", ".json")
_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

# file key (camelCase) -> AgentProfile field; snake_case keys are accepted too
_FIELDS = {
    "id": "id",
    "name": "name",
    "description": "description",
    "systemPrompt": "system_prompt",
    "model": "model",
    "tools": "tools",
    "subagents": "subagents",
    "defaultWorkspaceFiles": "default_workspace_files",
    "environmentVariables": "environment_variables",
    "maxTurns": "max_turns",
    "maxBudgetUsd": "max_budget_usd",
    "agentMd": "agent_md",
    "maxTokens": "max_tokens",
    "thinkingBudgetTokens": "thinking_budget_tokens",
}
_SUBAGENT_KEYS = ("name", "description", "prompt", "tools", "model")


def profile_from_dict(data: Mapping[str, Any], *, source: str) -> AgentProfile:
    """Build a profile from a file's mapping; ValueError "<source>: <what is wrong>"."""
    try:
        return _parse(data)
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from None


def profile_to_dict(profile: AgentProfile) -> dict[str, Any]:
    """The profile in the file format (camelCase keys), JSON-serialisable."""
    out: dict[str, Any] = {
        "id": profile.id,
        "name": profile.name,
        "description": profile.description,
        "systemPrompt": profile.system_prompt,
        "model": profile.model,
        "tools": list(profile.tools),
        "subagents": [
            {
                "name": s.name,
                "description": s.description,
                "prompt": s.prompt,
                "tools": None if s.tools is None else list(s.tools),
                "model": s.model,
            }
            for s in profile.subagents
        ],
        "defaultWorkspaceFiles": [
            {"path": f.path, "content": f.content, "encoding": f.encoding}
            for f in profile.default_workspace_files
        ],
        "environmentVariables": dict(profile.environment_variables),
        "maxTurns": profile.max_turns,
        "maxBudgetUsd": profile.max_budget_usd,
        "agentMd": profile.agent_md,
        "maxTokens": profile.max_tokens,
        "thinkingBudgetTokens": profile.thinking_budget_tokens,
    }
    return out


def load_profiles_dir(path: str | Path) -> tuple[dict[str, AgentProfile], list[str]]:
    """Every profile file in ``path`` by id, and the problems of the files skipped."""
    directory = Path(path)
    profiles: dict[str, AgentProfile] = {}
    problems: list[str] = []
    try:
        files = sorted(
            p
            for p in directory.iterdir()
            if p.suffix.lower() in PROFILE_SUFFIXES and p.is_file()
        )
    except OSError as exc:
        return {}, [f"{directory}: cannot read the profiles directory ({exc.strerror})"]
    for file in files:
        try:
            profile = _load_file(file)
        except ValueError as exc:
            problems.append(str(exc))
            continue
        if profile.id in profiles:
            problems.append(
                f"{file.name}: profile id {profile.id!r} is already used by another "
                "file; this one is skipped"
            )
            continue
        profiles[profile.id] = profile
    return profiles, problems


def load_default_profile() -> AgentProfile:
    """The built-in ``default`` profile shipped with the package."""
    resource = resources.files("agent_server").joinpath("default_profiles/default.yaml")
    data = yaml.safe_load(resource.read_text(encoding="utf-8"))
    data.setdefault("id", DEFAULT_PROFILE_ID)
    return profile_from_dict(data, source="default_profiles/default.yaml")


class ProfileCatalog:
    """Every profile the server offers: directory over database over built-in."""

    def __init__(
        self, persistence: PersistenceAdapter, directory: str | Path | None = None
    ) -> None:
        self._persistence = persistence
        self._directory = Path(directory) if directory is not None else None
        self._lock = threading.Lock()
        self._loaded = False
        self._default: AgentProfile | None = None
        self._from_dir: dict[str, AgentProfile] = {}
        self._problems: list[str] = []
        self._logged: set[str] = set()

    def list(self) -> list[AgentProfileSummary]:
        """Summaries of every profile, sorted by id, each id once."""
        self._ensure_loaded()
        by_id: dict[str, AgentProfileSummary] = {}
        if self._default is not None:
            by_id[self._default.id] = self._default.summary()
        for summary in self._persistence.list_agent_profiles():
            by_id[summary.id] = summary
        for profile in self._from_dir.values():
            by_id[profile.id] = profile.summary()
        return [by_id[k] for k in sorted(by_id)]

    def get(self, profile_id: str) -> AgentProfile | None:
        """The profile with this id from the highest-ranking source, or None."""
        self._ensure_loaded()
        if profile_id in self._from_dir:
            return self._from_dir[profile_id]
        profile = self._persistence.load_agent_profile(profile_id)
        if profile is not None:
            return profile
        if self._default is not None and profile_id == self._default.id:
            return self._default
        return None

    def reload(self) -> None:
        """Read the built-in profile and the profiles directory again."""
        default = load_default_profile()
        from_dir: dict[str, AgentProfile] = {}
        problems: list[str] = []
        if self._directory is not None:
            from_dir, problems = load_profiles_dir(self._directory)
        with self._lock:
            self._default, self._from_dir = default, from_dir
            self._problems = problems
            self._loaded = True
            fresh = [p for p in problems if p not in self._logged]
            self._logged.update(fresh)
        for problem in fresh:
            logger.warning("agent profile skipped: %s", problem)

    @property
    def problems(self) -> list[str]:
        """Why files of the profiles directory were skipped at the last (re)load."""
        self._ensure_loaded()
        return list(self._problems)

    def _ensure_loaded(self) -> None:
        # lazy, so that building the catalog does no I/O
        if not self._loaded:
            self.reload()


# -- parsing ----------------------------------------------------------------------------


def _load_file(file: Path) -> AgentProfile:
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{file.name}: cannot read the file ({exc})") from None
    try:
        if file.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            data = yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        kind = "JSON" if file.suffix.lower() == ".json" else "YAML"
        detail = " ".join(str(exc).split())
        raise ValueError(f"{file.name}: not valid {kind}: {detail}") from None
    if not isinstance(data, Mapping):
        raise ValueError(
            f"{file.name}: a profile file must hold a mapping of fields, "
            f"not {_kind(data)}"
        )
    data = dict(data)
    data.setdefault("id", file.stem)
    return profile_from_dict(data, source=file.name)


def _parse(data: Mapping[str, Any]) -> AgentProfile:
    if not isinstance(data, Mapping):
        raise ValueError(f"a profile must be a mapping of fields, not {_kind(data)}")
    values = _normalise_keys(data)
    out: dict[str, Any] = {}
    profile_id = values.get("id")
    if not isinstance(profile_id, str) or not _ID_PATTERN.match(profile_id):
        raise ValueError(
            f"'id' must be 1-128 letters, digits, '.', '_' or '-', got {profile_id!r}"
        )
    out["id"] = profile_id
    out["name"] = _optional(values, "name", _string) or profile_id
    for key in ("description", "model", "agent_md"):
        out[key] = _optional(values, key, _string)
    if "system_prompt" in values:
        out["system_prompt"] = _string("systemPrompt", values["system_prompt"])
    if "tools" in values:
        out["tools"] = _string_list("tools", values["tools"])
    out["subagents"] = tuple(_subagents(values.get("subagents") or []))
    out["default_workspace_files"] = tuple(
        _workspace_files(values.get("default_workspace_files") or {})
    )
    out["environment_variables"] = _environment(
        values.get("environment_variables") or {}
    )
    out["max_turns"] = _optional(values, "max_turns", _positive_int)
    out["max_budget_usd"] = _optional(values, "max_budget_usd", _positive_number)
    max_tokens = _optional(values, "max_tokens", _positive_int)
    if max_tokens is not None:
        out["max_tokens"] = max_tokens
    thinking = _optional(values, "thinking_budget_tokens", _positive_int)
    if thinking is not None:
        limit = out.get("max_tokens", AgentProfile.max_tokens)
        if not 1024 <= thinking < limit:
            raise ValueError(
                f"'thinkingBudgetTokens' must be at least 1024 and less than "
                f"maxTokens ({limit}), got {thinking}"
            )
    out["thinking_budget_tokens"] = thinking
    return AgentProfile(**out)


def _normalise_keys(data: Mapping[str, Any]) -> dict[str, Any]:
    snake_to_camel = {snake: camel for camel, snake in _FIELDS.items()}
    values: dict[str, Any] = {}
    unknown = []
    for key, value in data.items():
        if key in _FIELDS:
            field = _FIELDS[key]
        elif key in snake_to_camel:
            field = key
        else:
            unknown.append(str(key))
            continue
        if field in values:
            raise ValueError(f"give {snake_to_camel[field]!r} or {field!r}, not both")
        values[field] = value
    if unknown:
        raise ValueError(
            f"unknown field(s) {', '.join(map(repr, unknown))}; allowed fields are "
            f"{', '.join(_FIELDS)} (snake_case works too)"
        )
    return values


def _optional(values: dict, key: str, check: Callable[[str, Any], Any]) -> Any:
    value = values.get(key)
    if value is None:
        return None
    camel = {snake: camel for camel, snake in _FIELDS.items()}[key]
    return check(camel, value)


def _string(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name!r} must be a string, got {_kind(value)}")
    return value


def _string_list(name: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{name!r} must be a list of strings, got {value!r}")
    return tuple(value)


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name!r} must be a positive integer, got {value!r}")
    return value


def _positive_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"{name!r} must be a positive number, got {value!r}")
    return float(value)


def _subagents(value: Any) -> list[SubagentDefinition]:
    if not isinstance(value, list):
        raise ValueError(
            "'subagents' must be a list of {name, description, prompt, tools?, "
            f"model?}}, got {_kind(value)}"
        )
    out = []
    for i, item in enumerate(value):
        where = f"subagents[{i}]"
        if not isinstance(item, Mapping):
            raise ValueError(f"{where!r} must be a mapping, got {_kind(item)}")
        unknown = [str(k) for k in item if k not in _SUBAGENT_KEYS]
        if unknown:
            raise ValueError(
                f"{where!r} has unknown field(s) {', '.join(map(repr, unknown))}; "
                f"allowed are {', '.join(_SUBAGENT_KEYS)}"
            )
        for key in ("name", "description", "prompt"):
            if not isinstance(item.get(key), str) or not item[key]:
                raise ValueError(f"'{where}.{key}' must be a non-empty string")
        tools = item.get("tools")
        model = item.get("model")
        out.append(
            SubagentDefinition(
                name=item["name"],
                description=item["description"],
                prompt=item["prompt"],
                tools=None if tools is None else _string_list(f"{where}.tools", tools),
                model=None if model is None else _string(f"{where}.model", model),
            )
        )
    names = [s.name for s in out]
    if len(set(names)) != len(names):
        raise ValueError("'subagents' names must be different from each other")
    return out


def _workspace_files(value: Any) -> list[WorkspaceFile]:
    if isinstance(value, Mapping):
        items = [{"path": p, "content": c} for p, c in value.items()]
    elif isinstance(value, list):
        items = value
    else:
        raise ValueError(
            "'defaultWorkspaceFiles' must be a mapping of path to content or a list "
            f"of {{path, content, encoding?}}, got {_kind(value)}"
        )
    out = []
    for i, item in enumerate(items):
        where = f"defaultWorkspaceFiles[{i}]"
        if not isinstance(item, Mapping):
            raise ValueError(f"{where!r} must be a mapping, got {_kind(item)}")
        path, content = item.get("path"), item.get("content")
        encoding = item.get("encoding") or "utf-8"
        if not isinstance(path, str) or not path.strip("/"):
            raise ValueError(f"'{where}.path' must be a non-empty string")
        if not isinstance(content, str):
            raise ValueError(f"'{where}.content' of {path!r} must be a string")
        if encoding not in ("utf-8", "base64"):
            raise ValueError(
                f"'{where}.encoding' must be 'utf-8' or 'base64', got {encoding!r}"
            )
        file = WorkspaceFile(path=path.lstrip("/"), content=content, encoding=encoding)
        try:
            size = len(file.data)
        except ValueError:
            raise ValueError(
                f"'{where}.content' of {path!r} is not valid base64"
            ) from None
        out.append(WorkspaceFile(file.path, content, encoding, size=size))
    return out


def _environment(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise ValueError(
            f"'environmentVariables' must be a mapping of names to strings, "
            f"got {_kind(value)}"
        )
    out = {}
    for key, item in value.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"'environmentVariables' has an invalid name {key!r}")
        if isinstance(item, bool) or not isinstance(item, (str, int, float)):
            raise ValueError(
                f"'environmentVariables.{key}' must be a string (quote it in YAML), "
                f"got {item!r}"
            )
        out[key] = str(item)
    return out


def _kind(value: Any) -> str:
    return "nothing" if value is None else f"a {type(value).__name__}"
