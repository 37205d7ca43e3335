#!/usr/bin/env bash
# The environment the harness runs in (docs/environment.md). uv.lock is the tested set of every dependency.
#
#   tools/environment.sh install ENV_DIR [active]    exactly uv.lock, with the dev extra (`make install`)
#   tools/environment.sh install-unlocked ENV_DIR [active]   the newest releases pyproject.toml allows
#   tools/environment.sh lock ENV_DIR [active]       move every version to the newest (`make lock`)
#
# ENV_DIR is .venv (created here) or, with `active`, the virtual or conda environment the user has active (never
# recreated, nothing of theirs removed). uv comes from ENV_DIR; where it is missing, pip installs the locked one.
set -euo pipefail
cd "$(dirname "$0")/.."
action=$1 env_dir=$2 active=${3:-}
LOCK=uv.lock

die() { echo "error: $*" >&2; exit 2; }

# Whether PYTHON's platform and version are among those uv.lock covers ([tool.uv] environments in pyproject.toml);
# if not, the one error line that names them.
covered() {
    "$1" - "$LOCK" <<'PY'
import platform, re, sys
text = open(sys.argv[1]).read()  # read as text: an old Python (no tomllib) must be told so too
lock = {"requires-python": re.search(r'^requires-python = "([^"]*)"', text, re.M).group(1),
        "supported-markers": re.findall(r'"([^"]*)"', re.search(r"^supported-markers = \[(.*?)^\]", text, re.M | re.S).group(1))}
here = {"sys_platform": sys.platform, "platform_machine": platform.machine(),
        "python_full_version": platform.python_version()}
def clauses(marker):
    return [re.fullmatch(r"(\w+) (==|<|>=) '([^']*)'", clause.strip()).groups() for clause in marker.split(" and ")]
def holds(name, op, value):
    mine = here[name]
    if name == "python_full_version":
        mine, value = tuple(map(int, mine.split(".")[:2])), tuple(map(int, value.split(".")[:2]))
    return {"==": mine == value, "<": mine < value, ">=": mine >= value}[op]
markers = [clauses(marker) for marker in lock["supported-markers"]]
minimum = re.fullmatch(r">=\s*([\d.]+)", lock["requires-python"]).group(1)
if not (holds("python_full_version", ">=", minimum) and any(all(holds(*clause) for clause in marker) for marker in markers)):
    named = [{name: value for name, _, value in marker} for marker in markers]
    platforms = ", ".join(f"{where['sys_platform']} {where['platform_machine']}" for where in named)
    pythons = " and ".join([lock["requires-python"]] + sorted({op + value for marker in markers for name, op, value in marker
                                                            if name == "python_full_version"}))
    print(f"error: uv.lock covers {platforms} with Python {pythons}, not {sys.platform} {platform.machine()} Python "
          f"{platform.python_version()}: `make install-unlocked` installs the newest releases instead (not the tested set)")
    sys.exit(1)
PY
}

# A Python for a new .venv: python3, or the first python3.1x on PATH that the lock covers.
base_python() {
    local candidate
    for candidate in python3 python3.13 python3.12 python3.11; do
        command -v "$candidate" >/dev/null && covered "$candidate" >/dev/null && { echo "$candidate"; return; }
    done
    check python3  # refuses, naming what python3 is
}

check() {  # refuses PYTHON unless the lock covers it, in one line
    local refusal
    refusal=$(covered "$1") || { echo "$refusal" >&2; exit 2; }
}

locked_uv_version() {
    "$python" -c 'import sys, tomllib; print(next(p["version"] for p in tomllib.load(open(sys.argv[1], "rb"))["package"] if p["name"] == "uv"))' "$LOCK"
}

# ENV_DIR's python, after creating .venv if needed; refuses a platform the lock does not cover.
if [[ -n $active ]]; then
    python=$env_dir/bin/python
    [[ -x $python ]] || die "the active environment $env_dir has no bin/python"
    [[ $action == install-unlocked ]] || check "$python"
else
    if [[ ! -x $env_dir/bin/python ]]; then
        if [[ $action == install-unlocked ]]; then base=python3; else base=$(base_python); fi
        "$base" -m venv "$env_dir"
    fi
    python=$env_dir/bin/python
    [[ $action == install-unlocked ]] || check "$python"
fi

uv=$env_dir/bin/uv
if [[ ! -x $uv ]]; then
    version=$(locked_uv_version)
    echo "installing uv $version, the lock's, into $env_dir"
    if command -v uv >/dev/null; then
        uv pip install -q --python "$python" "uv==$version"
    else
        "$python" -m pip install -q --disable-pip-version-check "uv==$version"
    fi
fi
export UV_PROJECT_ENVIRONMENT=$env_dir  # uv works on ENV_DIR, not on a .venv of its own choosing
# Every module compiled once, at install: each start of a run then reads bytecode instead of compiling torch's
# sources again wherever bytecode is not written (PYTHONDONTWRITEBYTECODE, a read-only environment): 12 s -> 5 s.
export UV_COMPILE_BYTECODE=1

case $action in
install)
    "$uv" lock --check --offline --quiet 2>/dev/null ||
        die "uv.lock is out of step with pyproject.toml: run \`make lock\` (and commit uv.lock)"
    # In the user's own environment: add and replace, never remove what else they have installed.
    "$uv" sync --frozen --extra dev ${active:+--inexact}
    ;;
install-unlocked)
    "$uv" pip install --python "$python" --upgrade -e ".[dev]"
    echo "note: installed the newest releases pyproject.toml allows, not uv.lock's tested set; every run records" \
         "in summary.json what differs (\`make install\` goes back to the lock)"
    ;;
lock)
    "$uv" lock --upgrade
    version=$(locked_uv_version)
    sed -i.bak -E "s/^( *- uv==).*/\1$version/" environment.yml && rm -f environment.yml.bak
    echo "uv.lock moved (git diff uv.lock shows what); test it before committing: docs/environment.md#moving-the-versions"
    ;;
*) die "unknown action $action (install, install-unlocked, lock)" ;;
esac
