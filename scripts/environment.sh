# Sourced by scripts/setup, scripts/test and scripts/voiceskill: the one place that says which
# Python environment is the project's. An active virtual environment ($VIRTUAL_ENV) if there is
# one, else .venv in the repo, so nothing is ever installed into the system Python (Debian and
# Ubuntu mark it externally managed, and pip refuses to touch it).

project_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
project_env="${VIRTUAL_ENV:-$project_root/.venv}"

# The project environment's python, or one line on stderr and status 2 if it is not set up.
project_python() {
    if [ ! -x "$project_env/bin/voiceskill" ]; then
        echo "voiceskill is not installed in $project_env; run scripts/setup first" >&2
        return 2
    fi
    echo "$project_env/bin/python"
}
