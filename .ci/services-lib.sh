# .ci/services-lib.sh -- helpers shared by services-up.sh and services-down.sh (sourced;
# they set STATE_DIR and log() first).

# running PID -> true if PID exists and is not a zombie (pid 1 here may reap orphans late)
running() {
    local st
    st=$(sed -n 's/^State:[[:space:]]*//p' "/proc/$1/status" 2>/dev/null) || return 1
    [[ -n $st && $st != Z* ]]
}

# pid_of NAME COMM -> prints pid if $STATE_DIR/NAME.pid names a live process whose comm is COMM
pid_of() {
    local f="$STATE_DIR/$1.pid" pid
    [[ -s $f ]] || return 1
    pid=$(tr -dc '0-9' <"$f")
    [[ -n $pid && $(cat "/proc/$pid/comm" 2>/dev/null) == "$2" ]] || return 1
    running "$pid" || return 1
    echo "$pid"
}

# stop_pid NAME COMM [TENTHS] -> TERM the process recorded in NAME.pid, KILL it if it is
# still there after TENTHS tenths of a second (default 150)
stop_pid() {
    local pid i
    if pid=$(pid_of "$1" "$2"); then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < ${3:-150}; i++)); do
            running "$pid" || break
            sleep 0.1
        done
        if running "$pid"; then
            log "$1 (pid $pid) ignored SIGTERM -> SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        log "stopped $1 (pid $pid)"
    else
        log "$1 not running (no live pid file)"
    fi
    rm -f "$STATE_DIR/$1.pid"
}
