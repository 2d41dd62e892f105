"""/openapi.json describes every route the app serves, with every method."""

from __future__ import annotations

import re

PATH_PARAM = re.compile(r"<(?:[a-z_]+:)?([a-z_]+)>")


def _app_routes(app) -> dict[str, set[str]]:
    routes: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = PATH_PARAM.sub(r"{\1}", rule.rule)
        methods = {m.lower() for m in rule.methods - {"HEAD", "OPTIONS"}}
        routes.setdefault(path, set()).update(methods)
    return routes


def test_every_route_is_documented(server):
    spec = server.get("/openapi.json", auth=False).body
    documented = {
        path: {m for m in ops if m in ("get", "post", "put", "patch", "delete")}
        for path, ops in spec["paths"].items()
    }
    routes = _app_routes(server.app)
    assert "/sessions/{session_id}/files/{path}" in routes  # the conversion works
    missing = {
        path: methods - documented.get(path, set())
        for path, methods in routes.items()
        if methods - documented.get(path, set())
    }
    assert not missing, f"routes missing from /openapi.json: {missing}"
    extra = set(documented) - set(routes)
    assert not extra, f"/openapi.json documents routes the app does not serve: {extra}"


def test_path_parameters_are_declared(server):
    spec = server.get("/openapi.json", auth=False).body
    for path, ops in spec["paths"].items():
        wanted = set(re.findall(r"{(\w+)}", path))
        for method, op in ops.items():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            declared = {
                p["name"] for p in op.get("parameters", []) if p["in"] == "path"
            }
            assert wanted <= declared, (path, method, wanted - declared)
