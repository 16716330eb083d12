"""The commands and code in README.md and docs/*.md work.

- every ``biqa ...`` command line (also under ``torchrun -m biqa``) parses with biqa's own argument
  parser, and ``biqa train`` / ``biqa search`` lines load their config with their overrides (every key
  checked);
- every ``python benchmarks/X.py`` / ``python scripts/X.py`` / ``bash scripts/X.sh`` names a file that
  exists, and every ``--option`` it passes is one the script defines;
- a ``console`` block's ``$ biqa ...`` line that documents an error fails with that error;
- every Python block compiles, every YAML block parses (and a ``strategy:`` block passes the config
  checks);
- every relative link points to a file that exists, and every ``#anchor`` to a heading there;
- the blocks marked ``<!-- docs-test: run -->`` (the quick ones) run, from a scratch folder.

A command that is none of the above (``pip``, ``chromium``, ``torchrun`` options ...) must be listed in
``NOT_CHECKED`` by its program name, so a new kind of command cannot slip through unnoticed.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md"] + sorted((REPO / "docs").glob("*.md"))
RUN_MARK = "<!-- docs-test: run -->"
NOT_CHECKED = {"pip", "source", ".", "chromium", "grep"}


def _blocks(path: Path):
    """(language, first line number, lines, marked to run) of each fenced block."""
    lines = path.read_text(encoding="utf-8").split("\n")
    i = 0
    while i < len(lines):
        m = re.match(r"^\s*```(\w*)\s*$", lines[i])
        if m:
            j = i + 1
            while j < len(lines) and not lines[j].strip().startswith("```"):
                j += 1
            run = i > 0 and lines[i - 1].strip() == RUN_MARK
            yield m.group(1), i + 2, lines[i + 1:j], run
            i = j
        i += 1


def _commands(lines: list[str], console: bool = False):
    """Shell command lines of a bash block (continuations joined, comments and blank lines dropped);
    for a console block, (command, the output lines that follow it)."""
    out, cur = [], ""
    for k, raw in enumerate(lines):
        line = raw.strip()
        if console:
            if line.startswith("$ "):
                out.append((line[2:], [x.strip() for x in lines[k + 1:] if not x.strip().startswith("$ ")]))
            continue
        if not cur and (not line or line.startswith("#")):
            continue
        cur = (cur + " " + line) if cur else line
        if cur.endswith("\\"):
            cur = cur[:-1].rstrip()
            continue
        out.append(cur)
        cur = ""
    return out


def _all(kind: str):
    for path in DOCS:
        for lang, lineno, body, run in _blocks(path):
            if kind == "bash" and lang in ("bash", "sh"):
                for cmd in _commands(body):
                    yield pytest.param(cmd, id=f"{path.name}:{lineno}:{cmd[:40]}")
            elif kind == lang:
                yield pytest.param("\n".join(body), run, id=f"{path.name}:{lineno}")


def _argv(cmd: str) -> list[list[str]]:
    """A command line split into its programs (``a && b``, ``a; b``, ``a | b``; ``2>&1`` dropped)."""
    words = [w for w in shlex.split(cmd, comments=True) if not re.fullmatch(r"\d?>&\d", w)]
    progs, cur = [], []
    for w in words:
        if w in ("&&", ";", "||", "|"):
            progs.append(cur)
            cur = []
        else:
            cur.append(w)
    return [p for p in progs + [cur] if p]


def _check_biqa(args: list[str]) -> None:
    from biqa.cli import build_parser
    from biqa.config import load_config

    parser = build_parser()
    try:
        a = parser.parse_args(args)
    except SystemExit as e:  # argparse's error exit
        raise AssertionError(f"`biqa {' '.join(args)}` does not parse (exit {e.code})") from None
    if args[0] in ("train", "search"):
        overrides = list(getattr(a, "overrides", None) or [])
        for spec in getattr(a, "space", None) or []:  # search: KEY=dist:lo,hi -> KEY=lo must be a valid key
            key, _, rng = spec.partition("=")
            overrides.append(f"{key}={rng.split(':')[-1].split(',')[0]}")
        load_config(a.config, overrides)


def _check_script(args: list[str]) -> None:
    script = REPO / args[0]
    assert script.is_file(), f"{args[0]} does not exist"
    source = script.read_text(encoding="utf-8")
    for w in args[1:]:
        if w.startswith("--"):
            opt = w.split("=")[0]
            assert f'"{opt}"' in source or f"'{opt}'" in source, f"{args[0]} defines no option {opt}"


def check_command(cmd: str) -> None:
    for argv in _argv(cmd):
        prog = argv[0]
        if prog == "biqa":
            _check_biqa(argv[1:])
        elif prog == "torchrun":
            assert "-m" in argv and argv[argv.index("-m") + 1] == "biqa", cmd
            _check_biqa(argv[argv.index("-m") + 2:])
        elif prog in ("python", "python3", "bash"):
            while len(argv) > 2 and argv[1] in ("-X", "-W"):  # interpreter options: python -X importtime -m biqa ...
                argv = argv[:1] + argv[3:]
            if argv[1:2] == ["-m"]:
                assert argv[2] in ("venv", "pytest", "biqa"), cmd
                if argv[2] == "biqa":
                    _check_biqa(argv[3:])
            else:
                _check_script(argv[1:])
        else:
            assert prog in NOT_CHECKED, f"docs command `{cmd}`: unknown program {prog!r} (check it or add it to NOT_CHECKED)"


@pytest.mark.parametrize("cmd", list(_all("bash")))
def test_documented_command_is_valid(cmd):
    check_command(cmd)


def test_console_errors_are_the_documented_ones():
    from biqa.config import load_config

    seen = 0
    for path in DOCS:
        for lang, lineno, body, _ in _blocks(path):
            if lang != "console":
                continue
            for cmd, output in _commands(body, console=True):
                argv = shlex.split(cmd)
                assert argv[:2] == ["biqa", "train"], f"{path.name}:{lineno}: only `biqa train` errors are checked"
                text = " ".join(output)
                assert text.startswith("biqa: error: "), f"{path.name}:{lineno}"
                expected = text[len("biqa: error: "):].split("...")[0].strip()
                with pytest.raises(ValueError) as e:
                    load_config(argv[2], argv[3:])
                assert str(e.value).startswith(expected), (str(e.value), expected)
                seen += 1
    assert seen >= 1


@pytest.mark.parametrize("src, run", list(_all("python")))
def test_python_block_compiles(src, run):
    compile(src, "<docs>", "exec")


@pytest.mark.parametrize("src, run", list(_all("yaml")))
def test_yaml_block_is_a_valid_config_part(src, run):
    from biqa.config import check_keys, deep_update, load_config

    data = yaml.safe_load(src)
    assert isinstance(data, dict)
    if "strategy" in data:
        cfg = deep_update(load_config(None), data)
        check_keys(cfg)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    return {_slug(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", text, flags=re.M)}


def test_links_point_to_files_and_headings():
    bad = []
    for path in DOCS:
        text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"^[a-z]+://", target):
                continue
            file, _, anchor = target.partition("#")
            dest = (path.parent / file).resolve() if file else path
            if not dest.exists():
                bad.append(f"{path.name}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                bad.append(f"{path.name}: {target} (no such heading)")
    assert not bad, "\n".join(bad)


def test_readme_is_a_front_door():
    n = len((REPO / "README.md").read_text(encoding="utf-8").split("\n"))
    assert n <= 300, f"README.md has {n} lines; move topic notes to docs/"
    linked = set(re.findall(r"\(docs/([\w.-]+\.md)", (REPO / "README.md").read_text(encoding="utf-8")))
    missing = {p.name for p in (REPO / "docs").glob("*.md")} - linked
    assert not missing, f"docs pages the README does not link: {sorted(missing)}"


def _marked():
    for path in DOCS:
        for lang, lineno, body, run in _blocks(path):
            if run:
                yield pytest.param(lang, body, id=f"{path.name}:{lineno}")


@pytest.mark.parametrize("lang, body", list(_marked()))
def test_quick_blocks_run(lang, body, tmp_path):
    """From a scratch folder holding only a link to the package (``biqa/examples`` resolves)."""
    (tmp_path / "biqa").symlink_to(REPO / "biqa", target_is_directory=True)
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
               PYTHONPATH=str(REPO))
    if lang == "python":
        cmds = [[sys.executable, "-c", "\n".join(body)]]
    else:
        assert lang == "bash"
        cmds = [["bash", "-c", c] for c in _commands(body)]
    for c in cmds:
        r = subprocess.run(c, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, f"{c[-1]}\nstdout: {r.stdout[-2000:]}\nstderr: {r.stderr[-2000:]}"
