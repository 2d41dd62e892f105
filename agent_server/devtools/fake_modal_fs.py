"""``modal-sandbox-fs-tools`` in process, for fake Modal.

The client's ``sandbox.filesystem`` API execs this tool with one JSON object naming
the operation and its arguments (a write's data comes on stdin); it answers on
stdout, or with ``{"error_kind", "message"}`` on stderr and exit 1. The fake serves
it against the sandbox's directory, for paths under ``/workspace`` only.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
from pathlib import Path

from agent_server.devtools.fake_modal_sandbox import WORKSPACE, _Exec, _Sandbox

FS_TOOLS = "/__modal/.bin/modal-sandbox-fs-tools"


class _FsToolExec(_Exec):
    """modal-sandbox-fs-tools, run in process against the sandbox's directory."""

    def __init__(self, exec_id: str, sandbox: _Sandbox, command: str) -> None:
        super().__init__(exec_id)
        self.root = sandbox.root
        self.pending = bytearray()
        try:
            (self.op, self.args), *_ = json.loads(command).items()
        except (ValueError, AttributeError):
            self.op, self.args = "Invalid", {}
        if self.op != "WriteFile":  # a write waits for its stdin
            self._run()

    async def _stdin(self, data: bytes) -> None:
        self.pending += data

    async def _stdin_eof(self) -> None:
        self._run()

    def kill(self) -> None:
        self.finish("signal", signal.SIGKILL)

    def _run(self) -> None:
        try:
            path = self._host_path(self.args.get("path", ""))
            out = getattr(self, "_op_" + self.op, self._op_invalid)(path)
        except OSError as exc:
            self._fail(_ERROR_KINDS.get(type(exc), "Other"), exc.strerror or str(exc))
        except _FsToolError as exc:
            self._fail(exc.kind, exc.message)
        else:
            self.add_output(1, out)
            self.finish("code", 0)

    def _fail(self, kind: str, message: str) -> None:
        self.add_output(
            2, json.dumps({"error_kind": kind, "message": message}).encode()
        )
        self.finish("code", 1)

    def _host_path(self, remote: str) -> Path:
        norm = os.path.normpath(remote) if remote else ""
        if norm == WORKSPACE:
            return Path(self.root)
        if not norm.startswith(WORKSPACE + "/"):
            raise _FsToolError(
                "PermissionDenied", f"fake Modal serves only {WORKSPACE}"
            )
        return Path(self.root) / norm[len(WORKSPACE) + 1 :]

    def _op_ReadFile(self, path: Path) -> bytes:
        return path.read_bytes()

    def _op_WriteFile(self, path: Path) -> bytes:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(bytes(self.pending))
        return b""

    def _op_Remove(self, path: Path) -> bytes:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path) if self.args.get("recursive") else path.rmdir()
        else:
            path.unlink()
        return b""

    def _op_MakeDirectory(self, path: Path) -> bytes:
        path.mkdir(parents=bool(self.args.get("parents")), exist_ok=False)
        return b""

    def _op_Stat(self, path: Path) -> bytes:
        return json.dumps(self._info(path)).encode()

    def _op_ListFiles(self, path: Path) -> bytes:
        if not path.is_dir():
            raise NotADirectoryError(20, "Not a directory")
        return json.dumps([self._info(p) for p in sorted(path.iterdir())]).encode()

    def _op_invalid(self, path: Path) -> bytes:
        raise _FsToolError("Other", f"fake Modal does not implement {self.op}")

    def _info(self, path: Path) -> dict:
        st = path.lstat()
        kind = (
            "symlink"
            if stat.S_ISLNK(st.st_mode)
            else "directory"
            if stat.S_ISDIR(st.st_mode)
            else "file"
        )
        remote = WORKSPACE + str(path)[len(self.root) :]
        return {
            "name": path.name,
            "path": remote,
            "type": kind,
            "size": st.st_size,
            "mode": st.st_mode,
            "permissions": stat.filemode(st.st_mode),
            "owner": str(st.st_uid),
            "group": str(st.st_gid),
            "modified_time": int(st.st_mtime),
            "symlink_target": os.readlink(path) if kind == "symlink" else None,
        }


class _FsToolError(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind, self.message = kind, message


_ERROR_KINDS = {
    FileNotFoundError: "NotFound",
    IsADirectoryError: "IsDirectory",
    NotADirectoryError: "NotDirectory",
    FileExistsError: "PathAlreadyExists",
    PermissionError: "PermissionDenied",
}
