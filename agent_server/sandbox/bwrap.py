"""Bubblewrap (bwrap) for the local sandbox: finding a working bwrap and its command line.

The command line shows a command the workspace at ``/workspace`` (read-write), ``/usr``
and a short list of harmless ``/etc`` entries read-only, generated passwd/group/hosts
files, a private ``/tmp``, no network and nothing else of the host; hidden paths that
lie inside something bound are covered up.
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
import threading
from collections.abc import Sequence

from gevent import subprocess

from agent_server.sandbox.base import WORKSPACE_ROOT

# the PATH commands see (the probe's too), bwrap or not
MINIMAL_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BWRAP_NOT_FOUND = "bubblewrap (bwrap) not found"
# /etc entries programs need to work (alternatives links, certificates, loader cache,
# time zones); never passwd/shadow, pip.conf, npmrc, gitconfig and the like
ETC_ALLOWED = (
    "alternatives", "ssl", "ca-certificates", "ld.so.cache", "ld.so.conf",
    "ld.so.conf.d", "localtime", "timezone", "mime.types", "magic", "magic.mime",
    "protocols", "services", "os-release", "debian_version", "terminfo",
    "nsswitch.conf", "host.conf", "gai.conf", "locale.alias", "perl", "python3*",
)  # fmt: skip
_bwrap_checked: dict[str, str | None] = {}  # bwrap path -> None if it works, else why
_bwrap_lock = threading.Lock()


def bwrap_status() -> tuple[str | None, str | None]:
    """(path of a working bwrap, None) or (None, why there is none); probed once."""
    path = shutil.which("bwrap")
    if path is None:
        return None, BWRAP_NOT_FOUND
    with _bwrap_lock:
        if path not in _bwrap_checked:
            _bwrap_checked[path] = _probe_bwrap(path)
    problem = _bwrap_checked[path]
    return (None, problem) if problem else (path, None)


def _probe_bwrap(path: str) -> str | None:
    with tempfile.TemporaryDirectory(prefix="bwrap-probe-") as ws:
        argv, fds = bwrap_argv(path, ws, ["true"], ())
        try:
            proc = subprocess.run(
                argv, env={"PATH": MINIMAL_PATH}, pass_fds=fds, timeout=20,
                stdin=subprocess.DEVNULL, capture_output=True,
            )  # fmt: skip
        except (OSError, subprocess.SubprocessError) as exc:
            return f"bwrap at {path} does not run here ({exc})"
        finally:
            for fd in fds:
                os.close(fd)
    if proc.returncode != 0:
        why = proc.stderr.decode("utf-8", "replace").strip()[:200]
        return f"bwrap at {path} does not work here ({why or proc.returncode})"
    return None


def bwrap_argv(
    bwrap: str, root: str, command: list[str], hidden: Sequence[str]
) -> tuple[list[str], tuple[int, ...]]:
    """The bwrap command line, and the fds it reads generated /etc files from."""
    args = [bwrap, "--ro-bind", "/usr", "/usr"]
    binds = [("/usr", "/usr"), (root, WORKSPACE_ROOT)]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):  # merged /usr: /bin -> usr/bin
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
            binds.append((top, top))
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    for pattern in ETC_ALLOWED:
        for path in sorted(glob.glob(os.path.join("/etc", pattern))):
            args += ["--ro-bind-try", path, path]
            binds.append((os.path.realpath(path), path))
    uid, gid = os.getuid(), os.getgid()
    generated = {
        "/etc/passwd": f"sandbox:x:{uid}:{gid}:sandbox:{WORKSPACE_ROOT}:/bin/sh\n",
        "/etc/group": f"sandbox:x:{gid}:\n",
        "/etc/hosts": "127.0.0.1 localhost sandbox\n::1 localhost\n",
    }
    fds = []
    for dest, content in generated.items():
        # memfd, not a pipe: with pipes here gevent missed bwrap's exit about once
        # in 30 runs (the child stayed a zombie and wait() never returned)
        fd = os.memfd_create("sandbox-etc", os.MFD_CLOEXEC)
        os.write(fd, content.encode())
        os.lseek(fd, 0, os.SEEK_SET)
        fds.append(fd)
        args += ["--ro-bind-data", str(fd), dest]
    args += ["--bind", root, WORKSPACE_ROOT]
    args += _masks(binds, hidden)
    args += ["--chdir", WORKSPACE_ROOT, "--unshare-all", "--hostname", "sandbox"]
    # no --new-session: it would move the sandbox out of the process group that
    # exec kills (bwrap's own --die-with-parent lost that race about 1 run in 10);
    # exec already starts a new session, so there is no controlling terminal anyway
    args += ["--die-with-parent", *command]
    return args, tuple(fds)


def _masks(binds: Sequence[tuple[str, str]], hidden: Sequence[str]) -> list[str]:
    """Cover hidden paths that lie inside something bound (an empty tmpfs or file)."""
    args: list[str] = []
    for h in hidden:
        for src, dest in binds:
            if h == src or h.startswith(src.rstrip("/") + "/"):
                target = dest + h[len(src) :]
                if os.path.isdir(h):
                    args += ["--tmpfs", target]
                elif os.path.exists(h):
                    args += ["--ro-bind", "/dev/null", target]
    return args
