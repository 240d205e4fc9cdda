# Helpers shared by the scripts in this directory; sourced, not run. The sourcing script
# sets NAME (the prefix of its error messages), WORK (its work directory) and optionally
# POLL (seconds between the checks of wait_for, 0.1 by default).

die() { echo "$NAME: $*" >&2; exit 1; }

# Fails unless the COUNT ports from BASE on 127.0.0.1 are all free.
require_free_ports() { # BASE COUNT
    local offset
    for offset in $(seq 0 $(($2 - 1))); do
        ! (exec 3<>"/dev/tcp/127.0.0.1/$(($1 + offset))") 2>/dev/null \
            || die "port $(($1 + offset)) is in use; set BASE_PORT"
    done
}

# Runs COMMAND every POLL seconds until it succeeds or SECONDS_MAX pass.
wait_for() { # WHAT SECONDS_MAX COMMAND...
    local what=$1 seconds=$2; shift 2
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || die "timed out waiting for $what (logs in $WORK; KEEP=1 keeps them)"
        sleep "${POLL:-0.1}"
    done
}
