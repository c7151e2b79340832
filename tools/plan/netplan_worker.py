"""`netplan generate` for many files in one process, through netplan's own library.

Run by tools/plan/checkers.py as `python -I netplan_worker.py` (standard library only): it reads
a JSON list of paths on stdin and prints a JSON list of {"path", "valid", "output"}, in order.

netplan's generator is a thin `main()` around libnetplan (netplan.io 0.106 and 0.107:
canonical/netplan src/generate.c): parse the YAML (`netplan_parser_load_yaml`), import it into a
state (`netplan_state_import_parser_results`), clear the previous output, then write every
backend's files (`netplan_state_finish_ovs_write`, per definition `netplan_netdef_write_networkd`,
`_ovs`, `_nm`, then `netplan_state_finish_nm_write` and `_sriov_write`); the first call that fails
prints its error and exits 1. This makes the same calls in the same order on each file, alone
under its own root, and reports the same message. What it leaves out validates nothing: option
parsing, `udevadm control --reload`, NetworkManager's global conf file and the
`systemctl is-system-running` probe that starts units on a booting machine. The probe and the
process start were four fifths of the generator's time.

netplan 1.0 made those writers private (`_netplan_netdef_write_networkd`...): where the library
lacks this API the worker exits with API_MISSING and the caller runs the generator instead.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import sys
import tempfile
from typing import Any

API_MISSING = 4
_SHM = "/dev/shm"  # noqa: S108 (only ever the parent of a private mkdtemp directory)


class _GError(ctypes.Structure):
    _fields_ = [("domain", ctypes.c_uint32), ("code", ctypes.c_int), ("message", ctypes.c_char_p)]


_P = ctypes.c_void_p
_STR = ctypes.c_char_p
_ERR = ctypes.POINTER(ctypes.POINTER(_GError))  # GError**
_FLAG = ctypes.POINTER(ctypes.c_int)  # gboolean*


# name: (argument types, result type), from netplan 0.106's include/*.h (NETPLAN_PUBLIC).
_API: dict[str, tuple[list[Any], Any]] = {
    "netplan_parser_new": ([], _P),
    "netplan_parser_clear": ([ctypes.POINTER(_P)], None),
    "netplan_parser_load_yaml": ([_P, _STR, _ERR], ctypes.c_int),
    "netplan_state_new": ([], _P),
    "netplan_state_clear": ([ctypes.POINTER(_P)], None),
    "netplan_state_import_parser_results": ([_P, _P, _ERR], ctypes.c_int),
    "netplan_state_get_netdefs_size": ([_P], ctypes.c_int),
    "netplan_networkd_cleanup": ([_STR], None),
    "netplan_nm_cleanup": ([_STR], None),
    "netplan_ovs_cleanup": ([_STR], None),
    "netplan_sriov_cleanup": ([_STR], None),
    "netplan_state_finish_ovs_write": ([_P, _STR, _ERR], ctypes.c_int),
    "netplan_state_iterator_init": ([_P, _P], None),
    "netplan_state_iterator_next": ([_P], _P),
    "netplan_netdef_write_networkd": ([_P, _P, _STR, _FLAG, _ERR], ctypes.c_int),
    "netplan_netdef_write_ovs": ([_P, _P, _STR, _FLAG, _ERR], ctypes.c_int),
    "netplan_netdef_write_nm": ([_P, _P, _STR, _FLAG, _ERR], ctypes.c_int),
    "netplan_state_finish_nm_write": ([_P, _STR, _ERR], ctypes.c_int),
    "netplan_state_finish_sriov_write": ([_P, _STR, _ERR], ctypes.c_int),
}


class ApiMissingError(Exception):
    pass


def load_library() -> Any:
    """libnetplan, found as netplan's own Python module finds it (netplan/libnetplan.py)."""
    name = ctypes.util.find_library("netplan")
    if not name:
        raise ApiMissingError("libnetplan is not installed")
    lib = ctypes.CDLL(name)
    for symbol, (args, result) in _API.items():
        try:
            fn = getattr(lib, symbol)
        except AttributeError as err:
            raise ApiMissingError(f"{name} has no {symbol}") from err
        fn.argtypes, fn.restype = args, result
    return lib


class _CallFailedError(Exception):
    pass


def generate(lib: Any, path: str, root: str) -> str | None:
    """src/generate.c's main() on one file under `root`: None, or the error it would print."""
    err = ctypes.POINTER(_GError)()
    root_b = root.encode()

    def check(ok: int) -> None:
        if not ok:
            raise _CallFailedError(err.contents.message.decode(errors="replace") if err else "failed")

    npp, state = _P(lib.netplan_parser_new()), _P(lib.netplan_state_new())
    try:
        check(lib.netplan_parser_load_yaml(npp, path.encode(), ctypes.byref(err)))
        check(lib.netplan_state_import_parser_results(state, npp, ctypes.byref(err)))
        cleanups = (
            lib.netplan_networkd_cleanup,
            lib.netplan_nm_cleanup,
            lib.netplan_ovs_cleanup,
            lib.netplan_sriov_cleanup,
        )
        for cleanup in cleanups:
            cleanup(root_b)
        check(lib.netplan_state_finish_ovs_write(state, root_b, ctypes.byref(err)))
        if lib.netplan_state_get_netdefs_size(state) > 0:  # `if (np_state->netdefs)`
            iterator = ctypes.create_string_buffer(64)  # an opaque NetplanStateIterator, room to spare
            lib.netplan_state_iterator_init(state, iterator)
            writers = (lib.netplan_netdef_write_networkd, lib.netplan_netdef_write_ovs, lib.netplan_netdef_write_nm)
            while netdef := lib.netplan_state_iterator_next(iterator):
                written = ctypes.c_int(0)
                for write in writers:
                    check(write(state, _P(netdef), root_b, ctypes.byref(written), ctypes.byref(err)))
            check(lib.netplan_state_finish_nm_write(state, root_b, ctypes.byref(err)))
            check(lib.netplan_state_finish_sriov_write(state, root_b, ctypes.byref(err)))
    except _CallFailedError as failed:
        return str(failed)
    finally:
        lib.netplan_state_clear(ctypes.byref(state))
        lib.netplan_parser_clear(ctypes.byref(npp))
    return None


def scratch() -> str | None:
    """Where to generate: a tmpfs like the node's /run when there is one. On a disk, GLib's
    g_file_set_contents fsyncs every file the generator replaces, which made the disk the
    bottleneck."""
    return _SHM if os.path.isdir(_SHM) and os.access(_SHM, os.W_OK) else None


def check_all(lib: Any, paths: list[str]) -> list[dict[str, Any]]:
    """Each file copied (0600, as on the node: netplan warns about others' access) into its own
    root, generated, with what the library wrote to stderr (GLib warnings) captured per file."""
    results = []
    with tempfile.TemporaryDirectory(prefix="akiba-netplan-", dir=scratch()) as root, tempfile.TemporaryFile() as log:
        config = os.path.join(root, "etc", "netplan", "60-akiba-bond.yaml")
        os.makedirs(os.path.dirname(config))
        saved = os.dup(2)
        try:
            for path in paths:
                with open(path, "rb") as src:
                    text = src.read()
                fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "wb") as dst:
                    dst.write(text)
                log.seek(0)
                log.truncate()
                os.dup2(log.fileno(), 2)
                try:
                    error = generate(lib, config, root)
                finally:
                    os.dup2(saved, 2)
                log.seek(0)
                output = log.read().decode(errors="replace") + (error + "\n" if error else "")
                output = output.replace(config, path)
                results.append({"path": path, "valid": error is None and "Error" not in output, "output": output})
        finally:
            os.close(saved)
    return results


def main() -> int:
    paths = json.load(sys.stdin)
    try:
        lib = load_library()
    except ApiMissingError as err:
        print(err, file=sys.stderr)
        return API_MISSING
    json.dump(check_all(lib, paths), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
