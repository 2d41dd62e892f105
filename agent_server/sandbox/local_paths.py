"""Files in a local workspace: paths resolved and walked so that none leads outside."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress

from agent_server.errors import PathOutsideWorkspace, SandboxError
from agent_server.sandbox.base import workspace_relative


def resolve(root: str, path: str) -> str:
    """The path relative to the root with every symlink resolved, or refused."""
    rel = workspace_relative(path)
    real = os.path.realpath(os.path.join(root, rel))
    if real != root and not real.startswith(root + os.sep):
        raise PathOutsideWorkspace(
            f"path {path!r} leads outside the workspace through a symlink"
        )
    return os.path.relpath(real, root)


@contextmanager
def open_parent(root: str, rel: str, *, create: bool) -> Iterator[tuple[int, str]]:
    """(fd of the parent dir, leaf name), walking with O_NOFOLLOW from the root.

    ``rel`` is already resolved; a component that is a symlink now was swapped in
    since, and the walk refuses it instead of following it out.
    """
    if rel == ".":
        raise IsADirectoryError(errno.EISDIR, "the workspace root is a directory")
    *dirs, leaf = rel.split(os.sep)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in dirs:
            if create:
                with suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=fd)
            flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
            nfd = os.open(part, flags, dir_fd=fd)
            os.close(fd)
            fd = nfd
        yield fd, leaf
    finally:
        os.close(fd)


@contextmanager
def os_errors(path: str, op: str) -> Iterator[None]:
    """Translate OS errors into the documented ones."""
    try:
        yield
    except (FileNotFoundError, IsADirectoryError):
        raise
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise PathOutsideWorkspace(
                f"path {path!r} is a symlink that changed while it was opened"
            ) from None
        if exc.errno == errno.ENOTDIR and op != "write":
            raise FileNotFoundError(errno.ENOENT, "no such file", path) from None
        raise SandboxError(f"cannot {op} {path!r}: {exc.strerror}") from None


@contextmanager
def in_parent(
    root: str, rel: str, path: str, op: str, *, create: bool = False
) -> Iterator[tuple[int, str]]:
    """open_parent's (fd, leaf name), with OS errors translated for ``op`` on ``path``."""
    with os_errors(path, op), open_parent(root, rel, create=create) as at:
        yield at


def ignored(parts: tuple[str, ...], ignore: Sequence[tuple[str, ...]]) -> bool:
    """True if an ignore entry matches the end of ``parts`` (at any depth)."""
    return any(len(parts) >= len(i) and parts[-len(i) :] == i for i in ignore if i)


def require_regular(fd: int, path: str) -> None:
    mode = os.fstat(fd).st_mode
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, "is a directory", path)
    if not stat.S_ISREG(mode):
        raise SandboxError(f"{path!r} is not a regular file")
