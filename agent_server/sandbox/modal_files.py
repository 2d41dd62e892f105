"""Files in a Modal sandbox: read, write, delete, list and restore the workspace.

Files move through ``sandbox.filesystem``; each path is first resolved inside the
sandbox (``realpath -m``), so a symlink pointing out of /workspace is refused. Listing
runs GNU find and restoring runs tar (Debian-based images have both, and bash and
coreutils).
"""

from __future__ import annotations

import io
import re
import tarfile
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from agent_server.errors import PathOutsideWorkspace, SandboxError, SandboxGone
from agent_server.persistence.types import WorkspaceFile
from agent_server.sandbox.base import WORKSPACE_ROOT, FileInfo, workspace_relative

if TYPE_CHECKING:
    from agent_server.sandbox.modal_sandbox import ModalSandboxProvider

_RESOLVE = (
    'p=$(realpath -m -- "$0") || exit 3; printf "%s\\n" "$p"; '
    'if [ -d "$p" ]; then echo dir; elif [ -e "$p" ]; then echo file; '
    "else echo none; fi"
)


class ModalFiles:
    """The file half of ModalSandbox.

    Mixed into ModalSandbox, which supplies the attributes below and the methods
    ``_call``, ``_check_open`` and ``_run`` (a helper command's stdout, from
    ModalCommands).
    """

    _p: ModalSandboxProvider
    _sb: Any  # the modal.Sandbox

    def read_file(self, path: str) -> bytes:
        """The file's bytes; a symlink is followed only while it stays inside."""
        target, kind = self._resolve(path)
        if kind == "none":
            raise FileNotFoundError(2, "no such file", path)
        if kind == "dir":
            raise IsADirectoryError(21, "is a directory", path)
        return self._fs(path, "reading", "read_bytes", target)

    def write_file(self, path: str, data: bytes) -> None:
        """Create or replace the file, creating parent directories."""
        target, kind = self._resolve(path)
        if kind == "dir":
            raise IsADirectoryError(21, "is a directory", path)
        self._fs(path, "writing", "write_bytes", bytes(data), target)

    def delete_file(self, path: str) -> None:
        """Remove the file; FileNotFoundError if there is none."""
        target, kind = self._resolve(path)
        if kind == "none":
            raise FileNotFoundError(2, "no such file", path)
        if kind == "dir":
            raise IsADirectoryError(21, "is a directory", path)
        self._fs(path, "deleting", "remove", target)

    def list_files(self) -> list[FileInfo]:
        """Regular files under /workspace (symlinks not followed), minus the ignored."""
        prune: list[str] = []
        for parts in self._p.ignore:
            pattern = "*/" + re.sub(r"([*?\[\]\\])", r"\\\1", "/".join(parts))
            prune += [*(("-o",) if prune else ()), "-path", pattern]
        argv = ["find", WORKSPACE_ROOT, "-mindepth", "1"]
        if prune:
            argv += ["(", *prune, ")", "-prune", "-o"]
        argv += ["-type", "f", "-printf", "%s\\t%T@\\t%P\\0"]
        out = self._run("listing the workspace", *argv)
        files = []
        for record in out.split(b"\0"):
            if not record:
                continue
            size, mtime, rel = record.split(b"\t", 2)
            rel_path = rel.decode("utf-8", "surrogateescape")
            if _ignored(tuple(rel_path.split("/")), self._p.ignore):
                continue
            files.append(FileInfo(rel_path, int(size), float(mtime)))
        return sorted(files, key=lambda f: f.path)

    def restore(self, files: Sequence[WorkspaceFile]) -> None:
        """Write ``files`` into the workspace in one go (a tar through stdin)."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for f in files:
                rel = workspace_relative(f.path)
                if rel == ".":
                    raise SandboxError(f"cannot restore {f.path!r}: not a file path")
                data = f.data
                info = tarfile.TarInfo(rel)
                info.size, info.mode = len(data), 0o644
                info.mtime = f.modified_at.timestamp()
                tar.addfile(info, io.BytesIO(data))
        argv = ("tar", "-x", "-f", "-", "--no-same-owner", "-C", WORKSPACE_ROOT)
        self._run("restoring the workspace files", *argv, stdin=buf.getvalue())

    def _resolve(self, path: str) -> tuple[str, str]:
        """(the path with every symlink resolved, "file" | "dir" | "none"), or refused."""
        self._check_open()
        rel = workspace_relative(path)
        full = WORKSPACE_ROOT if rel == "." else f"{WORKSPACE_ROOT}/{rel}"
        out = self._run_allowing(
            "resolving a path", ("bash", "-c", _RESOLVE, full), path
        )
        lines = out.decode("utf-8", "surrogateescape").split("\n")
        real, kind = lines[0], lines[1] if len(lines) > 1 else "none"
        if real != WORKSPACE_ROOT and not real.startswith(WORKSPACE_ROOT + "/"):
            raise PathOutsideWorkspace(
                f"path {path!r} leads outside the workspace through a symlink"
            )
        return real, kind

    def _run_allowing(self, what: str, argv: tuple[str, ...], path: str) -> bytes:
        try:
            return self._run(what, *argv)
        except SandboxGone:
            raise
        except SandboxError as exc:
            if "exit 3" in exc.message:  # realpath failed: a symlink loop
                raise PathOutsideWorkspace(
                    f"path {path!r} cannot be resolved (a symlink loop?)"
                ) from None
            raise

    def _fs(self, path: str, what: str, op: str, *args):
        e = self._p.modal.exception
        try:
            fs = self._sb.filesystem
            return self._call(
                f"{what} {path!r}",
                getattr(fs, op),
                *args,
                passthrough=(e.SandboxFilesystemError,),
            )
        except e.SandboxFilesystemNotFoundError:
            raise FileNotFoundError(2, "no such file", path) from None
        except e.SandboxFilesystemIsADirectoryError:
            raise IsADirectoryError(21, "is a directory", path) from None
        except e.SandboxFilesystemError as exc:
            raise SandboxError(
                f"{what} {path!r} failed in the sandbox: {exc}"
            ) from None


def _ignored(parts: tuple[str, ...], ignore: Sequence[tuple[str, ...]]) -> bool:
    """True if an ignore entry matches a run of ``parts`` ending at some depth."""
    return any(
        parts[k - len(i) : k] == i
        for i in ignore
        if i
        for k in range(len(i), len(parts) + 1)
    )
