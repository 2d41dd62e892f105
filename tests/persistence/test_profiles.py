"""Profile files, the profiles directory and the catalog that merges the sources."""

from __future__ import annotations

import configparser
import json
import logging
from pathlib import Path

import pytest

from agent_server.persistence.memory_persistence import InMemoryPersistence
from agent_server.persistence.peewee_persistence import PeeweePersistence
from agent_server.persistence.types import AgentProfile, SubagentDefinition
from agent_server.profiles import (
    ProfileCatalog,
    load_default_profile,
    load_profiles_dir,
    profile_from_dict,
    profile_to_dict,
)

CAMEL = {
    "id": "coder",
    "name": "Coder",
    "description": "Writes code",
    "systemPrompt": "You write code.",
    "model": "claude-x",
    "tools": ["Read", "Bash"],
    "maxTurns": 10,
    "maxBudgetUsd": 2,
    "maxTokens": 16000,
    "thinkingBudgetTokens": 4000,
    "environmentVariables": {"MODE": "fast", "PORT": 8080},
    "defaultWorkspaceFiles": {"README.md": "# Hi ✓\n", "src/app.py": "print(1)\n"},
    "subagents": [
        {"name": "reviewer", "description": "Reviews", "prompt": "Review it."},
        {
            "name": "tester",
            "description": "Tests",
            "prompt": "Test it.",
            "tools": ["Bash"],
            "model": "claude-y",
        },
    ],
    "agentMd": "# Rules",
}
SNAKE = {
    "id": "coder",
    "name": "Coder",
    "description": "Writes code",
    "system_prompt": "You write code.",
    "model": "claude-x",
    "tools": ["Read", "Bash"],
    "max_turns": 10,
    "max_budget_usd": 2,
    "max_tokens": 16000,
    "thinking_budget_tokens": 4000,
    "environment_variables": {"MODE": "fast", "PORT": 8080},
    "default_workspace_files": [
        {"path": "README.md", "content": "# Hi ✓\n"},
        {"path": "src/app.py", "content": "cHJpbnQoMSkK", "encoding": "base64"},
    ],
    "subagents": CAMEL["subagents"],
    "agent_md": "# Rules",
}


def test_camel_and_snake_case_files_give_the_same_profile():
    camel = profile_from_dict(CAMEL, source="camel.yaml")
    snake = profile_from_dict(SNAKE, source="snake.yaml")

    assert camel.system_prompt == snake.system_prompt == "You write code."
    assert camel.tools == ("Read", "Bash")
    assert camel.max_turns == 10 and camel.max_budget_usd == 2.0
    assert camel.max_tokens == 16000 and camel.thinking_budget_tokens == 4000
    assert camel.environment_variables == {"MODE": "fast", "PORT": "8080"}
    assert (
        camel.subagents
        == snake.subagents
        == (
            SubagentDefinition("reviewer", "Reviews", "Review it."),
            SubagentDefinition("tester", "Tests", "Test it.", ("Bash",), "claude-y"),
        )
    )
    assert [(f.path, f.data) for f in camel.default_workspace_files] == [
        (f.path, f.data) for f in snake.default_workspace_files
    ]
    assert camel.default_workspace_files[0].size == len("# Hi ✓\n".encode())
    assert camel.agent_md == snake.agent_md == "# Rules"


def test_minimal_profile_takes_the_defaults():
    profile = profile_from_dict({"id": "tiny"}, source="tiny.yaml")
    assert profile == AgentProfile(id="tiny", name="tiny")


def test_profile_to_dict_round_trips():
    profile = profile_from_dict(CAMEL, source="camel.yaml")
    again = profile_from_dict(
        json.loads(json.dumps(profile_to_dict(profile))), source="x"
    )
    assert profile_to_dict(again) == profile_to_dict(profile)


@pytest.mark.parametrize(
    ("changes", "field", "allowed"),
    [
        ({"maxTurns": "ten"}, "maxTurns", "positive integer"),
        ({"max_turns": 0}, "maxTurns", "positive integer"),
        ({"maxBudgetUsd": "lots"}, "maxBudgetUsd", "positive number"),
        ({"tools": "Read"}, "tools", "list of strings"),
        ({"systemPrompt": ["a"]}, "systemPrompt", "string"),
        ({"thinkingBudgetTokens": 100}, "thinkingBudgetTokens", "at least 1024"),
        ({"thinkingBudgetTokens": 9000, "maxTokens": 8000}, "maxTokens", "less than"),
        ({"environmentVariables": {"DEBUG": True}}, "DEBUG", "string"),
        ({"environmentVariables": ["A=1"]}, "environmentVariables", "mapping"),
        ({"defaultWorkspaceFiles": "x"}, "defaultWorkspaceFiles", "mapping"),
        ({"subagents": [{"name": "a"}]}, "subagents[0].description", "non-empty"),
        ({"subagents": {"a": {}}}, "subagents", "list"),
        ({"id": "has space"}, "id", "letters, digits"),
        ({"colour": "red"}, "colour", "allowed fields are"),
        ({"systemPrompt": "a", "system_prompt": "b"}, "systemPrompt", "not both"),
    ],
)
def test_invalid_fields_are_named_with_what_is_allowed(changes, field, allowed):
    data = {"id": "p", **changes}
    with pytest.raises(ValueError) as caught:
        profile_from_dict(data, source="bad.yaml")
    message = str(caught.value)
    assert message.startswith("bad.yaml: ")
    assert field in message
    assert allowed in message


def write(directory: Path, name: str, text: str) -> None:
    (directory / name).write_text(text, encoding="utf-8")


def test_profiles_directory_loads_good_files_and_reports_bad_ones(tmp_path):
    write(tmp_path, "writer.yaml", "name: Writer\nsystemPrompt: You write.\n")
    write(tmp_path, "short.yml", "id: renamed\nname: Short\n")
    write(tmp_path, "data.json", json.dumps({"name": "Data", "maxTurns": 3}))
    write(tmp_path, "broken.yaml", "name: [unclosed\n")
    write(tmp_path, "list.yaml", "- just\n- a list\n")
    write(tmp_path, "wrong.json", json.dumps({"maxTurns": "many"}))
    write(tmp_path, "notes.txt", "not a profile")

    profiles, problems = load_profiles_dir(tmp_path)

    assert sorted(profiles) == ["data", "renamed", "writer"]
    assert profiles["writer"].system_prompt == "You write."
    assert profiles["data"].max_turns == 3
    assert len(problems) == 3
    by_file = {p.split(":", 1)[0]: p for p in problems}
    assert sorted(by_file) == ["broken.yaml", "list.yaml", "wrong.json"]
    assert "not valid YAML" in by_file["broken.yaml"]
    assert "mapping" in by_file["list.yaml"]
    assert "maxTurns" in by_file["wrong.json"]


def test_two_files_with_one_id_keep_the_first(tmp_path):
    write(tmp_path, "a.yaml", "id: same\nname: A\n")
    write(tmp_path, "b.yaml", "id: same\nname: B\n")
    profiles, problems = load_profiles_dir(tmp_path)
    assert profiles["same"].name == "A"
    assert problems and problems[0].startswith("b.yaml: ")


def test_a_missing_directory_is_a_problem_not_an_exception(tmp_path):
    profiles, problems = load_profiles_dir(tmp_path / "nope")
    assert profiles == {}
    assert len(problems) == 1 and "nope" in problems[0]


def test_builtin_default_profile():
    profile = load_default_profile()
    assert profile.id == "default"
    assert "/workspace" in profile.system_prompt
    assert profile.tools == ("Read", "Write", "Edit", "Bash", "Glob", "Grep", "Task")
    assert [s.name for s in profile.subagents] == ["researcher"]
    assert profile.subagents[0].tools == ("Read", "Glob", "Grep")


def test_the_builtin_profile_is_packaged():
    config = configparser.ConfigParser()
    config.read(Path(__file__).parents[2] / "setup.cfg")
    patterns = config["options.package_data"]["agent_server"].split()
    assert "default_profiles/*.yaml" in patterns


def test_catalog_precedence_directory_over_database_over_builtin(tmp_path):
    store = InMemoryPersistence(
        profiles=[
            AgentProfile(id="default", name="Default from the database"),
            AgentProfile(id="shared", name="Shared from the database"),
            AgentProfile(id="db-only", name="Only in the database"),
        ]
    )
    write(tmp_path, "shared.yaml", "name: Shared from the directory\n")
    write(tmp_path, "dir-only.yaml", "name: Only in the directory\n")
    catalog = ProfileCatalog(store, tmp_path)

    names = {s.id: s.name for s in catalog.list()}
    assert names == {
        "default": "Default from the database",
        "shared": "Shared from the directory",
        "db-only": "Only in the database",
        "dir-only": "Only in the directory",
    }
    assert catalog.get("shared").name == "Shared from the directory"
    assert catalog.get("default").name == "Default from the database"
    assert catalog.get("missing") is None


def test_catalog_without_other_sources_offers_the_builtin_default():
    catalog = ProfileCatalog(InMemoryPersistence())
    assert [s.id for s in catalog.list()] == ["default"]
    assert catalog.get("default") == load_default_profile()


def test_catalog_reads_profiles_stored_by_the_peewee_adapter(tmp_path):
    store = PeeweePersistence(f"sqlite:///{tmp_path / 'p.db'}")
    try:
        store.save_agent_profile(profile_from_dict(CAMEL, source="camel"))
        catalog = ProfileCatalog(store)
        assert sorted(s.id for s in catalog.list()) == ["coder", "default"]
        assert catalog.get("coder").subagents[1].model == "claude-y"
    finally:
        store.close()


def test_catalog_reload_and_problems_logged_once(tmp_path, caplog):
    write(tmp_path, "bad.yaml", "maxTurns: -1\n")
    catalog = ProfileCatalog(InMemoryPersistence(), tmp_path)
    caplog.set_level(logging.WARNING, logger="agent_server.profiles")

    assert catalog.get("late") is None
    write(tmp_path, "late.yaml", "name: Late\n")
    assert catalog.get("late") is None  # read once, until reload()
    catalog.reload()
    assert catalog.get("late").name == "Late"

    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert "bad.yaml: " in warnings[0] and "maxTurns" in warnings[0]
    assert catalog.problems == [warnings[0].split("skipped: ", 1)[1]]


def test_building_a_catalog_reads_nothing(tmp_path):
    # a directory that does not exist is only noticed when profiles are asked for
    catalog = ProfileCatalog(InMemoryPersistence(), tmp_path / "later")
    (tmp_path / "later").mkdir()
    write(tmp_path / "later", "x.yaml", "name: X\n")
    assert catalog.get("x").name == "X"
