# Shared by run.sh and test.sh: find Python 3.12+, make the virtualenv, install.
# shellcheck shell=bash

_py_ok() {
    "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1
}

find_python() {
    local candidate
    for candidate in "${PYTHON:-}" python3.13 python3.12 python3 python; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null 2>&1 && _py_ok "$candidate"; then
            command -v "$candidate"
            return 0
        fi
    done
    # pyenv installs that are not the active version (their shims answer only
    # when PYENV_VERSION is set), newest first.
    if command -v pyenv >/dev/null 2>&1; then
        local version prefix
        for version in $(pyenv versions --bare 2>/dev/null | grep -E '^3\.(1[2-9]|[2-9][0-9])(\.[0-9]+)?$' | sort -rV); do
            prefix="$(pyenv prefix "$version" 2>/dev/null)" || continue
            if [ -x "$prefix/bin/python3" ] && _py_ok "$prefix/bin/python3"; then
                echo "$prefix/bin/python3"
                return 0
            fi
        done
    fi
    cat >&2 <<'MSG'
Python 3.12 or newer is required (Django 6.1 does not run on older versions) and none
was found on PATH or through pyenv. Install one, for example:
  Debian/Ubuntu:  sudo apt-get install python3.12 python3.12-venv
  pyenv:          pyenv install 3.12
  macOS:          brew install python@3.12
or point PYTHON at it:  PYTHON=/path/to/python3.12 ./run.sh
MSG
    return 1
}

# ensure_venv REQUIREMENTS_FILE: create .venv with Python 3.12+ and install the
# pinned requirements when they changed since the last install.
ensure_venv() {
    local requirements="$1" python stamp wanted
    if [ ! -x .venv/bin/python ] || ! _py_ok .venv/bin/python; then
        python="$(find_python)" || exit 1
        echo "==> creating .venv with $("$python" --version) ($python)"
        rm -rf .venv
        "$python" -m venv .venv
    fi
    stamp=".venv/.installed-$(basename "$requirements")"
    wanted="$(cat requirements*.txt | sha256sum | cut -c1-16)"
    if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
        echo "==> installing $requirements"
        .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
        .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$requirements"
        echo "$wanted" > "$stamp"
    fi
}
