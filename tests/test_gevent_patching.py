import ssl  # noqa: F401

from gevent import monkey


def test_stdlib_is_patched_for_gevent():
    assert monkey.is_module_patched("socket")
    assert monkey.is_module_patched("ssl")
