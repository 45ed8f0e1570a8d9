"""The worker's confinement, set up once per worker after TensorFlow's import (worker side; ctypes
only, no TensorFlow). Each layer is independent; one the platform lacks is reported with why.

- no_new_privs: `PR_SET_NO_NEW_PRIVS`, so nothing below can be undone through a set-uid binary
  (and Landlock/seccomp may be installed without CAP_SYS_ADMIN).
- landlock: reads only beneath what the worker needs (`read_roots`: the interpreter's stdlib and
  installed packages, the system library directories, a few /proc/self, /dev and /sys entries)
  plus the paths the caller names (the worker's home, where its uploads are staged); write,
  create, remove files and directories (no symlinks, devices, sockets, fifos) only beneath the
  `writable` ones (its scratch, staged exports); no exec (no EXECUTE right); no TCP bind/connect
  (ABI >= 4); no signals to, or abstract-socket connections with, processes outside the sandbox
  (ABI >= 6). Of /proc only its own entries are readable, so the parent's /proc/<pid>/environ
  is closed by Landlock too; without Landlock (gVisor) that is the capabilities' (and, for a
  non-root function, non-dumpable's) job.
- caps_dropped: the worker runs as root here. Bounding and ambient sets cleared, effective/
  permitted/inheritable emptied. securebits (reported on its own): locked, so no capabilities
  come back with uid 0; refused (EPERM) without CAP_SETPCAP and by gVisor for any bit but
  KEEP_CAPS, which is reported, not swallowed. The kernel lets a process read another's
  /proc/<pid>/environ, mem or fd/ only if the target's capabilities are a subset of its own (or it has CAP_SYS_PTRACE): with none, the function
  process (root, all capabilities) is closed to it. Signals to same-uid processes stay possible
  without capabilities: the Landlock signal scope and the seccomp filter cover those. (Not root:
  the bounding set cannot be cleared without CAP_SETPCAP; no_new_privs keeps exec from adding.)
- seccomp: a BPF filter (all threads: TSYNC) answers EPERM to socket creation, execve/execveat,
  ptrace and cross-process memory access, io_uring (which would bypass the filter), bpf,
  perf_event_open, userfaultfd, setsid/setpgid (leaving the process group the timeout kills),
  namespaces (unshare/setns/clone with CLONE_NEW*; clone3 answers ENOSYS so libc falls back to
  clone), mounts, key rings, pidfd signals/fd theft, signals to any process but itself, and
  symbolic or hard links (an export holding one could make the function read a file for it).

Landlock and capabilities belong to one thread: they are applied from the main thread while it is
the only one (the worker starts with OPENBLAS_NUM_THREADS=1; numpy's BLAS pool would otherwise be
a second thread), so every thread TensorFlow starts later inherits them. `confine()` then asks
the kernel what holds (prctl for no_new_privs and seccomp; every thread's /proc status where it
has the line: gVisor's has no `NoNewPrivs:` or `CapAmb:`), not what was asked for.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import stat
import sys
from typing import Any

_libc = ctypes.CDLL(None, use_errno=True)

_PR_SET_NO_NEW_PRIVS = 38
_PR_GET_NO_NEW_PRIVS = 39
_PR_GET_SECCOMP = 21
_PR_CAPBSET_DROP = 24
_PR_SET_SECUREBITS = 28
_PR_GET_SECUREBITS = 27
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
# NOROOT, NO_SETUID_FIXUP, NO_CAP_AMBIENT_RAISE and KEEP_CAPS_LOCKED, each with its lock bit.
_SECUREBITS = 0b11101111

# --- per-architecture facts ----------------------------------------------------------------------
_DENIED: dict[str, tuple[int, int | None]] = {  # name: (x86_64, aarch64) numbers -> EPERM
    "socket": (41, 198),
    "socketpair": (53, 199),
    "execve": (59, 221),
    "execveat": (322, 281),
    "ptrace": (101, 117),
    "process_vm_readv": (310, 270),
    "process_vm_writev": (311, 271),
    "io_uring_setup": (425, 425),
    "io_uring_enter": (426, 426),
    "io_uring_register": (427, 427),
    "bpf": (321, 280),
    "perf_event_open": (298, 241),
    "userfaultfd": (323, 282),
    "setsid": (112, 157),
    "setpgid": (109, 154),
    "unshare": (272, 97),
    "setns": (308, 268),
    "mount": (165, 40),
    "umount2": (166, 39),
    "pivot_root": (155, 41),
    "chroot": (161, 51),
    "open_tree": (428, 428),
    "move_mount": (429, 429),
    "fsopen": (430, 430),
    "fsmount": (432, 432),
    "keyctl": (250, 219),
    "add_key": (248, 217),
    "request_key": (249, 218),
    "pidfd_open": (434, 434),
    "pidfd_send_signal": (424, 424),
    "pidfd_getfd": (438, 438),
    "name_to_handle_at": (303, 264),
    "open_by_handle_at": (304, 265),
    # No links: an export holding a link could make the function read (and publish) a file the
    # worker cannot read itself. (aarch64 has only the *at forms.)
    "symlink": (88, None),
    "symlinkat": (266, 36),
    "link": (86, None),
    "linkat": (265, 37),
}
_SELF_ONLY = {  # signals: allowed only when the first argument is our own pid
    "kill": (62, 129),
    "tkill": (200, 130),
    "tgkill": (234, 131),
    "rt_sigqueueinfo": (129, 138),
    "rt_tgsigqueueinfo": (297, 240),
}
_MACHINES = {  # machine: (column, AUDIT_ARCH_*, seccomp, clone, clone3)
    "x86_64": (0, 0xC000003E, 317, 56, 435),
    "aarch64": (1, 0xC00000B7, 277, 220, 435),
}


def _arch(machine: str) -> dict[str, Any] | None:
    if machine not in _MACHINES:
        return None
    column, audit, seccomp, clone, clone3 = _MACHINES[machine]
    return {
        "machine": machine,
        "audit_arch": audit,
        "seccomp": seccomp,
        "clone": clone,
        "clone3": clone3,
        "deny": {name: nrs[column] for name, nrs in _DENIED.items() if nrs[column] is not None},
        "self_only": {name: numbers[column] for name, numbers in _SELF_ONLY.items()},
    }


_ARCH = _arch(platform.machine())
_LANDLOCK_CREATE_RULESET, _LANDLOCK_ADD_RULE, _LANDLOCK_RESTRICT_SELF = 444, 445, 446
_CLONE_NEW_NAMESPACES = 0x7E020080  # NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET|NEWTIME


def confine(
    writable: list[str], readable: list[str] | None = None, removable: list[str] | None = None
) -> dict[str, Any]:
    """Apply every layer; `{"no_new_privs": True, "landlock": "abi 7", "caps_dropped": True,
    "securebits": True, "seccomp": True, "unavailable": {layer: why}}` (a layer that did not hold
    is False). Landlock lets the worker read `read_roots()`, `readable` and `writable`, remove
    files beneath `removable` (read-only otherwise) and write only beneath `writable`."""
    layers: dict[str, Any] = {}
    why: dict[str, str] = {}
    threads = len(os.listdir("/proc/self/task"))
    grants = _grants(writable, readable or [], removable or [])
    steps = (
        ("no_new_privs", _no_new_privs),
        ("landlock", lambda: _landlock(grants)),
        ("securebits", _lock_securebits),
        ("caps_dropped", _drop_capabilities),
        ("seccomp", _seccomp),
    )
    for name, step in steps:
        try:
            layers[name] = step()
        except _Unavailable as exc:
            layers[name], why[name] = False, str(exc)
        except OSError as exc:  # anything else the kernel says: reported, never silently skipped
            layers[name], why[name] = False, f"{exc.__class__.__name__}: {exc}"
    if threads > 1:
        for name in ("landlock", "caps_dropped"):
            if layers.get(name):
                layers[name] = False
                why[name] = f"{threads} threads were running when it was set up"
    _verify(layers, why)
    if why:
        layers["unavailable"] = why
    return layers


class _Unavailable(Exception):
    """The platform lacks this layer (old kernel, other architecture, gVisor...)."""


def _call(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        if err in (errno.ENOSYS, errno.EOPNOTSUPP):
            raise _Unavailable(f"{what}: {os.strerror(err)} (not supported by this kernel)")
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def _no_new_privs() -> bool:
    _call(_libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
    return no_new_privs()


def no_new_privs() -> bool:
    """The kernel's answer for the calling thread (`PR_GET_NO_NEW_PRIVS`; gVisor's /proc status
    has no `NoNewPrivs:` line, so that cannot be the source)."""
    return _libc.prctl(_PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1


# --- Landlock ------------------------------------------------------------------------------------
_FS_EXECUTE, _FS_WRITE_FILE, _FS_READ_FILE, _FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_FS_REMOVE_FILE, _FS_MAKE_CHAR, _FS_MAKE_SOCK, _FS_MAKE_FIFO = 1 << 5, 1 << 6, 1 << 9, 1 << 10
_FS_MAKE_BLOCK, _FS_MAKE_SYM = 1 << 11, 1 << 12
_FS_TRUNCATE, _FS_IOCTL_DEV = 1 << 14, 1 << 15
_FS_FILE_RIGHTS = _FS_EXECUTE | _FS_WRITE_FILE | _FS_READ_FILE | _FS_TRUNCATE | _FS_IOCTL_DEV
_FS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 4: (1 << 15) - 1}
_NET_BIND_TCP, _NET_CONNECT_TCP = 1 << 0, 1 << 1
_SCOPE_ABSTRACT_UNIX_SOCKET, _SCOPE_SIGNAL = 1 << 0, 1 << 1
_RULE_PATH_BENEATH = 1


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def landlock_abi() -> int:
    """The kernel's Landlock ABI version (0: none)."""
    abi = _libc.syscall(_LANDLOCK_CREATE_RULESET, None, 0, 1)  # LANDLOCK_CREATE_RULESET_VERSION
    return max(abi, 0)


# What TensorFlow 2.21 and the interpreter read once TensorFlow is imported (measured with strace
# over .keras and SavedModel validations): modules and extensions imported lazily, the loader's
# cache and library directories (dlopen), the CPU description, its own /proc entries (thread
# names, status), random bytes. Nothing else on the system is readable from the worker.
_SYSTEM_READ = (
    "/lib",
    "/lib64",
    "/usr/lib",
    "/usr/lib64",
    "/usr/local/lib",
    "/etc/ld.so.cache",
    "/proc/self",  # opened through the link: /proc/<the worker's pid>, its threads included
    "/proc/cpuinfo",
    "/proc/meminfo",
    "/sys/devices/system/cpu",
    "/sys/devices/system/node",
    "/dev/urandom",
    "/dev/random",
    "/dev/zero",
)


def read_roots(skip: list[str] | None = None) -> list[str]:
    """Where the worker may read: the interpreter's standard library and installed packages
    (sysconfig's paths and every absolute `sys.path` entry but those in `skip`, e.g. the project
    checkout, of which the caller allows only the package), the directories of the shared
    objects it has loaded, and `_SYSTEM_READ`."""
    import sysconfig

    skipped = [os.path.realpath(p) for p in skip or []]
    found = [sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")]
    found += [p for p in sys.path if os.path.isabs(p)]
    roots = [os.path.realpath(p) for p in found] + _loaded_library_dirs()
    roots = [p for p in dict.fromkeys(roots) if p not in skipped and os.path.exists(p)]
    roots += [p for p in _SYSTEM_READ if os.path.exists(p)]
    return [p for p in roots if not any(p.startswith(r + os.sep) for r in roots if r != "/")]


def _loaded_library_dirs() -> list[str]:
    """Directories of the shared objects already mapped (libpython's, for one: an extension
    imported later may need a library beside it, outside the system directories)."""
    dirs = []
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                fields = line.split(maxsplit=5)  # address perms offset dev inode [path]
                path = fields[5].strip() if len(fields) == 6 else ""
                if path.startswith("/") and ".so" in os.path.basename(path):
                    dirs.append(os.path.dirname(os.path.realpath(path)))
    except OSError:
        return []
    return [d for d in dict.fromkeys(dirs) if not d.startswith(("/proc", "/dev", "/memfd"))]


def _grants(
    writable: list[str], readable: list[str], removable: list[str]
) -> list[tuple[str, str]]:
    roots = readable or read_roots()
    return (
        [(p, "read") for p in roots]
        + [(p, "remove") for p in removable]
        + [(p, "write") for p in writable]
        + [(os.devnull, "devnull")]  # opened for writing by libraries that silence output
    )


def _landlock(grants: list[tuple[str, str]]) -> str:
    abi = _libc.syscall(_LANDLOCK_CREATE_RULESET, None, 0, 1)
    if abi < 0:
        err = ctypes.get_errno()
        raise _Unavailable(f"Landlock: {os.strerror(err)} (kernel without Landlock, or disabled)")
    handled = _FS_BY_ABI.get(abi, (1 << 16) - 1)
    attr = _RulesetAttr(handled_access_fs=handled)
    size = 8
    if abi >= 4:
        attr.handled_access_net, size = _NET_BIND_TCP | _NET_CONNECT_TCP, 16  # no rule: no TCP
    if abi >= 6:
        attr.scoped, size = _SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL, 24
    ruleset = _call(
        _libc.syscall(_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), size, 0), "Landlock ruleset"
    )
    read = _FS_READ_FILE | _FS_READ_DIR
    # Files and directories only: no exec, devices, sockets, fifos or symlinks.
    special = _FS_MAKE_CHAR | _FS_MAKE_SOCK | _FS_MAKE_FIFO | _FS_MAKE_BLOCK | _FS_MAKE_SYM
    rights = {
        "read": read,
        "remove": read | _FS_REMOVE_FILE,
        "write": handled & ~(_FS_EXECUTE | special),
        "devnull": handled & (_FS_READ_FILE | _FS_WRITE_FILE | _FS_TRUNCATE),
    }
    try:
        for path, kind in grants:
            _allow(ruleset, path, rights[kind], missing_ok=kind == "read")
        _call(_libc.syscall(_LANDLOCK_RESTRICT_SELF, ruleset, 0), "landlock_restrict_self")
    finally:
        os.close(ruleset)
    return f"abi {abi}"


def _allow(ruleset: int, path: str, access: int, *, missing_ok: bool = False) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except FileNotFoundError:
        if missing_ok:
            return
        raise
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            access &= _FS_FILE_RIGHTS  # a rule on a file takes only the rights a file has
        rule = _PathBeneath(allowed_access=access, parent_fd=fd)
        _call(
            _libc.syscall(_LANDLOCK_ADD_RULE, ruleset, _RULE_PATH_BENEATH, ctypes.byref(rule), 0),
            f"Landlock rule for {path}",
        )
    finally:
        os.close(fd)


# --- capabilities --------------------------------------------------------------------------------
class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def _lock_securebits() -> bool:
    """Lock NOROOT, NO_SETUID_FIXUP, NO_CAP_AMBIENT_RAISE and KEEP_CAPS (off): uid 0 never gains
    capabilities back. Needs CAP_SETPCAP: a non-root process gets EPERM, and gVisor refuses every
    bit but KEEP_CAPS with EPERM even for root. Refused is reported (False with why), never
    swallowed; already set (a parent locked them) counts as held."""
    if _libc.prctl(_PR_SET_SECUREBITS, _SECUREBITS, 0, 0, 0) == 0:
        return True
    err = ctypes.get_errno()
    if _libc.prctl(_PR_GET_SECUREBITS, 0, 0, 0, 0) == _SECUREBITS:
        return True
    hint = "" if os.geteuid() == 0 else " (not root: no CAP_SETPCAP)"
    raise OSError(err, f"prctl(PR_SET_SECUREBITS) refused: {os.strerror(err)}{hint}")


def _drop_capabilities() -> bool:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            last = int(f.read())
    except (OSError, ValueError):
        last = 63
    # The bounding set needs CAP_SETPCAP: before emptying the sets (securebits, too, come first).
    for cap in range(last + 1):
        if _libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and ctypes.get_errno() != errno.EINVAL:
            err = ctypes.get_errno()
            if err == errno.EPERM and os.geteuid() != 0:
                break  # not root: no CAP_SETPCAP to drop it, and no_new_privs stops exec gaining
            raise OSError(err, f"prctl(PR_CAPBSET_DROP, {cap}): {os.strerror(err)}")
    _libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)  # EINVAL before 4.3: none
    header = _CapHeader(version=0x20080522, pid=0)  # _LINUX_CAPABILITY_VERSION_3
    data = (_CapData * 2)()
    _call(_libc.capset(ctypes.byref(header), data), "capset")
    return True


# --- seccomp -------------------------------------------------------------------------------------
_LD_W_ABS, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06
_RET_ALLOW = 0x7FFF0000
_RET_EPERM = 0x00050000 | errno.EPERM
_RET_ENOSYS = 0x00050000 | errno.ENOSYS
_OFF_NR, _OFF_ARCH, _OFF_ARG0_LOW = 0, 4, 16  # struct seccomp_data (little-endian)


class _SockFilter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_SockFilter))]


def seccomp_program(arch: dict[str, Any], own_pid: int) -> list[tuple[int, int, int, int]]:
    """The filter as (code, jt, jf, k): deny-listed syscalls -> EPERM, clone3 -> ENOSYS, clone
    with namespace flags -> EPERM, signals to anyone but `own_pid` -> EPERM, the rest allowed."""
    body: list[tuple[Any, ...]] = [
        ("ld", _OFF_ARCH),
        ("jeq", arch["audit_arch"], None, "deny"),  # another ABI (int 0x80): refuse all
        ("ld", _OFF_NR),
    ]
    if arch["machine"] == "x86_64":
        body.append(("jge", 0x40000000, "deny", None))  # the x32 ABI
    body += [("jeq", nr, "deny", None) for nr in sorted(arch["deny"].values())]
    body.append(("jeq", arch["clone3"], "enosys", None))
    body.append(("jeq", arch["clone"], "clone", None))
    body += [("jeq", nr, "self", None) for nr in sorted(arch["self_only"].values())]
    body.append(("ret", _RET_ALLOW))
    labels = {
        "clone": [("ld", _OFF_ARG0_LOW), ("jset", _CLONE_NEW_NAMESPACES, "deny", "allow")],
        "self": [("ld", _OFF_ARG0_LOW), ("jeq", own_pid, "allow", "deny")],
        "allow": [("ret", _RET_ALLOW)],
        "deny": [("ret", _RET_EPERM)],
        "enosys": [("ret", _RET_ENOSYS)],
    }
    at: dict[str, int] = {}
    flat = list(body)
    for name, block in labels.items():
        at[name] = len(flat)
        flat += block

    def offset(target: str | None, here: int) -> int:
        if target is None:
            return 0
        jump = at[target] - here - 1
        assert 0 <= jump < 256, "seccomp program too long for 8-bit jumps"
        return jump

    program = []
    for i, ins in enumerate(flat):
        if ins[0] == "ld":
            program.append((_LD_W_ABS, 0, 0, ins[1]))
        elif ins[0] == "ret":
            program.append((_RET, 0, 0, ins[1]))
        else:
            code = {"jeq": _JEQ, "jge": _JGE, "jset": _JSET}[ins[0]]
            program.append((code, offset(ins[2], i), offset(ins[3], i), ins[1]))
    return program


def _seccomp() -> bool:
    if _ARCH is None:
        raise _Unavailable(f"seccomp: no syscall table for {platform.machine()}")
    program = seccomp_program(_ARCH, os.getpid())
    filters = (_SockFilter * len(program))(*(_SockFilter(*ins) for ins in program))
    prog = _SockFprog(len(program), filters)
    # SECCOMP_SET_MODE_FILTER with SECCOMP_FILTER_FLAG_TSYNC: every thread, or none.
    result = _libc.syscall(_ARCH["seccomp"], 1, 1, ctypes.byref(prog))
    if result > 0:
        raise OSError(errno.EAGAIN, f"seccomp: thread {result} could not be synchronised")
    _call(result, "seccomp(SECCOMP_SET_MODE_FILTER)")
    return True


# --- what actually holds -------------------------------------------------------------------------
def thread_status() -> list[dict[str, str]]:
    """NoNewPrivs, Seccomp(_filters) and the capability sets of every thread of this process."""
    keys = ("NoNewPrivs", "Seccomp", "Seccomp_filters", "CapEff", "CapPrm", "CapBnd", "CapAmb")
    found = []
    for tid in os.listdir("/proc/self/task"):
        entry: dict[str, str] = {}
        try:
            with open(f"/proc/self/task/{tid}/status") as f:
                for line in f:
                    key, _, value = line.partition(":")
                    if key in keys:
                        entry[key] = value.strip()
        except OSError:
            continue  # the thread ended
        found.append(entry)
    return found


def _verify(layers: dict[str, Any], why: dict[str, str]) -> None:
    """Hold each layer to what the kernel reports. This thread: prctl (no_new_privs, seccomp
    mode). Every thread: its /proc status lines, where present (gVisor has no `NoNewPrivs:` and
    no `CapAmb:` line: an absent line is no evidence either way)."""
    if layers.get("no_new_privs") and not no_new_privs():
        layers["no_new_privs"], why["no_new_privs"] = False, "PR_GET_NO_NEW_PRIVS says 0"
    if layers.get("seccomp") and _libc.prctl(_PR_GET_SECCOMP, 0, 0, 0, 0) != 2:
        layers["seccomp"], why["seccomp"] = False, "PR_GET_SECCOMP: not in filter mode"
    for status in thread_status():
        if layers.get("no_new_privs") and status.get("NoNewPrivs", "1") != "1":
            layers["no_new_privs"], why["no_new_privs"] = False, "a thread kept NoNewPrivs 0"
        if layers.get("seccomp") and status.get("Seccomp", "2") != "2":
            layers["seccomp"], why["seccomp"] = False, "a thread is not in seccomp filter mode"
        sets = ("CapEff", "CapPrm", "CapAmb") + (("CapBnd",) if os.geteuid() == 0 else ())
        caps = [status[k] for k in sets if k in status]
        if layers.get("caps_dropped") and any(int(c or "1", 16) for c in caps):
            layers["caps_dropped"], why["caps_dropped"] = False, "a thread kept capabilities"
