"""The evaluation corpora, built deterministically from text on this machine.

* `pydoc`: CPython's help topics (`pydoc_data.topics`): language-reference prose.
* `man`: a fixed list of Debian manual pages of sections 1, 5 and 8 (commands, formats,
 administration), rendered with man-db (`man -l`, 80 columns, no hyphenation or
 justification): option lists and terse reference text.
* `numpy`: the docstrings of a fixed list of numpy functions (numpydoc sections): API
 reference with parameters, returns and examples.

The PostgreSQL reference pages installed with the database server are the independent check
of issue 18: they are never built, tuned or evaluated on here. `EXCLUDED` keeps them (and
PostgreSQL's client and contrib pages under /usr/share/man) out even if a name is added to
the list by mistake.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import re
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

MAN_ROOT = Path("/usr/share/man")

# PostgreSQL's pages: the server's reference pages and its client/contrib programs.
EXCLUDED = re.compile(
    r"^(pg_|postgres|psql|createdb|dropdb|createuser|dropuser|clusterdb|reindexdb|vacuumdb|"
    r"vacuumlo|oid2name|initdb|ecpg|pgbench|postmaster)",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Doc:
    key: str
    title: str
    markdown: str


# ---------------------------------------------------------------- pydoc help topics


_UNDERLINE = {"*": "#", "=": "##", "-": "###", "^": "####"}


def rst_markdown(key: str, text: str) -> Doc:
    """reST headings ("Title" over "*****") become markdown headings; the first is the title."""
    lines = text.splitlines()
    out: list[str] = []
    title = key
    i = 0
    while i < len(lines):
        line = lines[i]
        under = lines[i + 1] if i + 1 < len(lines) else ""
        marker = under[:1]
        if (
            line.strip()
            and marker in _UNDERLINE
            and set(under.strip()) == {marker}
            and len(under.strip()) >= len(line.strip())
        ):
            if title == key:
                title = line.strip()
            out.append(f"{_UNDERLINE[marker]} {line.strip()}")
            i += 2
            continue
        out.append(line)
        i += 1
    return Doc(key, title, "\n".join(out).strip() + "\n")


def pydoc_corpus(keys: Sequence[str] | None = None) -> list[Doc]:
    from pydoc_data.topics import topics

    chosen = sorted(topics) if keys is None else list(keys)
    return [rst_markdown(key, topics[key]) for key in chosen]


# ---------------------------------------------------------------- Debian manual pages

MAN_PAGES: tuple[str, ...] = (
    # section 1: user commands
    *(
        f"{name}.1"
        for name in [
            "b2sum",
            "bzip2",
            "chage",
            "chattr",
            "chgrp",
            "chmod",
            "chown",
            "chrt",
            "cksum",
            "column",
            "cp",
            "cut",
            "date",
            "dd",
            "df",
            "diff",
            "du",
            "env",
            "expr",
            "fallocate",
            "flock",
            "free",
            "fuser",
            "getent",
            "getopt",
            "gpasswd",
            "gzip",
            "hexdump",
            "hostnamectl",
            "install",
            "ionice",
            "join",
            "kill",
            "ln",
            "locale",
            "localectl",
            "logger",
            "ls",
            "md5sum",
            "more",
            "mv",
            "namei",
            "newgrp",
            "nl",
            "nsenter",
            "numfmt",
            "od",
            "passwd",
            "pgrep",
            "pr",
            "prlimit",
            "pstree",
            "rm",
            "runuser",
            "script",
            "sed",
            "setpriv",
            "shred",
            "sort",
            "split",
            "stat",
            "stdbuf",
            "stty",
            "su",
            "tail",
            "taskset",
            "timedatectl",
            "timeout",
            "touch",
            "tr",
            "uniq",
            "unshare",
            "watch",
            "whereis",
        ]
    ),
    # section 5: file formats and configuration
    *(
        f"{name}.5"
        for name in [
            "access.conf",
            "adduser.conf",
            "crypt",
            "deluser.conf",
            "environment",
            "fstab",
            "gai.conf",
            "group",
            "gshadow",
            "host.conf",
            "hostname",
            "hosts",
            "hosts_access",
            "limits.conf",
            "locale.gen",
            "logind.conf",
            "machine-id",
            "modules-load.d",
            "motd",
            "nsswitch.conf",
            "pam.conf",
            "passwd",
            "protocols",
            "resolv.conf",
            "securetty",
            "services",
            "shadow",
            "shells",
            "subuid",
            "sysctl.d",
            "systemd.timer",
            "systemd.mount",
            "timesyncd.conf",
            "gitignore",
        ]
    ),
    # section 8: system administration
    *(
        f"{name}.8"
        for name in [
            "adduser",
            "apt-cache",
            "apt-mark",
            "blkid",
            "blockdev",
            "chpasswd",
            "chroot",
            "e2fsck",
            "fsck",
            "findmnt",
            "fstrim",
            "groupadd",
            "groupdel",
            "groupmod",
            "ip-address",
            "ip-neighbour",
            "ip-rule",
            "ldconfig",
            "losetup",
            "lsblk",
            "mkswap",
            "newusers",
            "pam_limits",
            "pam_unix",
            "sysctl",
            "shutdown",
            "ss",
            "swapon",
            "umount",
            "userdel",
            "usermod",
            "vmstat",
            "wipefs",
            "zramctl",
            "resize2fs",
            "dumpe2fs",
            "run-parts",
            "start-stop-daemon",
            "update-rc.d",
            "tc-netem",
            "tc-tbf",
        ]
    ),
)

# Pages rendering longer than this are left out: model time on 2 shared cores (encoding every
# chunk twice, titled and not) is the limit; 118 of the 149 listed pages remain.
MAN_MAX_CHARS = 8_000

_MAN_HEADING = re.compile(r"^[A-Z][A-Z0-9 ,/&()-]*$")
_BACKSPACE = re.compile(r".\x08")


def render_man(path: Path) -> str:
    """The page as plain text, as man-db renders it at 80 columns (deterministic)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LC_ALL": "C.UTF-8",
        "MANWIDTH": "80",
        "GROFF_NO_SGR": "1",
        "MAN_KEEP_FORMATTING": "",
    }
    out = subprocess.run(  # noqa: S603 - fixed argv, a page under /usr/share/man
        [
            "/usr/bin/man",
            "--no-hyphenation",
            "--no-justification",
            "-E",
            "UTF-8",
            "-P",
            "cat",
            "-l",
            str(path),
        ],
        capture_output=True,
        check=True,
        env=env,
    ).stdout.decode("utf-8", "replace")
    return _BACKSPACE.sub("", out)


def man_markdown(key: str, text: str) -> Doc:
    """Section names (NAME, OPTIONS...) become `##` headings, paragraphs are unwrapped (the
    chunker splits sentences within a line), the running header and footer are dropped. The
    title is the NAME line: " - create a new user or update default new user
    information"."""
    lines = text.splitlines()
    if lines and "(" in lines[0]:
        lines = lines[1:]
    if lines and "(" in lines[-1]:
        lines = lines[:-1]
    out: list[str] = []
    paragraph: list[str] = []
    title = key
    section = ""

    def flush() -> None:
        nonlocal title
        if paragraph:
            joined = " ".join(paragraph)
            if section == "NAME" and title == key:
                title = joined
            out.append(joined)
            paragraph.clear()

    for line in lines:
        if not line.strip():
            flush()
            continue
        if not line.startswith(" ") and _MAN_HEADING.match(line.strip()):
            flush()
            section = line.strip()
            out.append(f"\n## {section.title() if len(section) > 3 else section}")
            continue
        paragraph.append(" ".join(line.split()))
    flush()
    body = "\n".join(part for part in out if part.strip())
    return Doc(key, title, f"# {key}\n{body.strip()}\n")


def man_path(name: str) -> Path:
    section = name.rsplit(".", 1)[1]
    return MAN_ROOT / f"man{section}" / f"{name}.gz"


def man_corpus(pages: Sequence[str] = MAN_PAGES) -> list[Doc]:
    docs = []
    for page in pages:
        if EXCLUDED.match(page):
            raise ValueError(f"{page} is a PostgreSQL page: the independent check, never used")
        path = man_path(page)
        if not path.exists():
            continue
        doc = man_markdown(page, render_man(path))
        if len(doc.markdown) <= MAN_MAX_CHARS:
            docs.append(doc)
    return docs


# ---------------------------------------------------------------- numpy docstrings

NUMPY_FUNCTIONS: tuple[str, ...] = (
    "all",
    "allclose",
    "amax",
    "amin",
    "any",
    "append",
    "arange",
    "argmax",
    "argmin",
    "argpartition",
    "argsort",
    "argwhere",
    "around",
    "array",
    "array_equal",
    "array_split",
    "asarray",
    "atleast_2d",
    "average",
    "bincount",
    "broadcast_to",
    "clip",
    "column_stack",
    "concatenate",
    "convolve",
    "copy",
    "corrcoef",
    "count_nonzero",
    "cov",
    "cross",
    "cumprod",
    "cumsum",
    "delete",
    "diag",
    "diagonal",
    "diff",
    "digitize",
    "dot",
    "dstack",
    "einsum",
    "empty",
    "expand_dims",
    "eye",
    "flatnonzero",
    "flip",
    "fromfunction",
    "full",
    "gradient",
    "histogram",
    "hstack",
    "identity",
    "insert",
    "interp",
    "intersect1d",
    "isclose",
    "isin",
    "isnan",
    "ix_",
    "lexsort",
    "linspace",
    "logspace",
    "meshgrid",
    "median",
    "moveaxis",
    "nan_to_num",
    "nanmean",
    "nanmax",
    "nonzero",
    "ones",
    "outer",
    "pad",
    "partition",
    "percentile",
    "place",
    "polyfit",
    "put",
    "quantile",
    "ravel",
    "repeat",
    "reshape",
    "resize",
    "roll",
    "rot90",
    "round",
    "searchsorted",
    "select",
    "setdiff1d",
    "sort",
    "split",
    "squeeze",
    "stack",
    "std",
    "swapaxes",
    "take",
    "take_along_axis",
    "tile",
    "trace",
    "transpose",
    "tril",
    "trapezoid",
    "union1d",
    "unique",
    "unravel_index",
    "var",
    "vstack",
    "where",
    "zeros",
    "linalg.solve",
    "linalg.inv",
    "linalg.det",
    "linalg.eig",
    "linalg.svd",
    "linalg.norm",
    "linalg.lstsq",
    "linalg.qr",
    "linalg.cholesky",
    "random.Generator.choice",
    "random.Generator.permutation",
    "random.Generator.integers",
    "random.default_rng",
    "fft.fft",
    "fft.rfft",
    "fft.fftfreq",
)

_NUMPYDOC = re.compile(r"^-{3,}$")


def numpy_markdown(name: str, doc: str) -> Doc:
    """numpydoc section underlines ("Parameters" over "----------") become `##` headings;
    the signature line and the summary line make the title."""
    lines = doc.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        under = lines[i + 1] if i + 1 < len(lines) else ""
        if line.strip() and _NUMPYDOC.match(under.strip()):
            out.append(f"## {line.strip()}")
            i += 2
            continue
        out.append(line)
        i += 1
    summary = next((line.strip() for line in lines if line.strip()), "")
    title = f"numpy.{name}: {summary}"[:200]
    return Doc(name, title, f"# numpy.{name}\n" + "\n".join(out).strip() + "\n")


def _numpy_object(name: str) -> object:
    import numpy as np

    obj: object = np
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def numpy_corpus(names: Sequence[str] = NUMPY_FUNCTIONS) -> list[Doc]:
    docs = []
    for name in names:
        doc = inspect.getdoc(_numpy_object(name))
        if doc:
            docs.append(numpy_markdown(name, doc))
    return docs


CORPORA: dict[str, Callable[[], list[Doc]]] = {
    "pydoc": pydoc_corpus,
    "man": man_corpus,
    "numpy": numpy_corpus,
}


CACHE_DIR = Path(__file__).resolve().parents[1] / "results" / "cache"


def _fingerprint(name: str) -> str:
    """What a built corpus depends on: its list, and the versions of what renders it."""
    import platform

    import numpy as np

    parts = {"pydoc": platform.python_version(), "man": f"{MAN_MAX_CHARS}|" + "|".join(MAN_PAGES)}
    parts["numpy"] = np.__version__ + "|".join(NUMPY_FUNCTIONS)
    return hashlib.sha256(parts[name].encode()).hexdigest()[:16]


def build(name: str) -> list[Doc]:
    """The corpus, rendered once and kept in the git-ignored cache (man takes ~45 s)."""
    path = CACHE_DIR / f"corpus-{name}-{_fingerprint(name)}.json"
    if path.exists():
        return [Doc(**d) for d in json.loads(path.read_text())]
    docs = CORPORA[name]()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([asdict(d) for d in docs]))
    return docs
