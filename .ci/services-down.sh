#!/usr/bin/env bash
# .ci/services-down.sh -- stop ccspec's integration-test services: exactly the
# daemons that .ci/services-up.sh started (sshd on 127.0.0.1:2222, munged,
# slurmctld, slurmd; identified by the pid files in /run/ccspec-test, checked
# against the process name). Run as root. Idempotent; never touches any other
# process. Jobs still queued/running in the test cluster are cancelled first
# (scancel -p debug) so that no slurmstepd/job processes are left behind. Config,
# keys, the ccspec user and the Slurm state are kept, so a later services-up.sh is
# a fast warm start.
set -euo pipefail

STATE_DIR=/run/ccspec-test
PARTITION=debug

T0=$SECONDS
log() { printf '[services-down %3ss] %s\n' "$((SECONDS - T0))" "$*" >&2; }
[[ $EUID -eq 0 ]] || { log "ERROR: must run as root"; exit 1; }

if [[ ! -d $STATE_DIR ]]; then
    log "nothing to stop ($STATE_DIR absent)"
    exit 0
fi
exec 9>"$STATE_DIR/lock"
flock -w 120 9 || { log "ERROR: could not acquire $STATE_DIR/lock"; exit 1; }

source "$(dirname "$0")/services-lib.sh"

# cancel leftover jobs of the test cluster while our slurmctld is still up
if pid_of slurmctld slurmctld >/dev/null && command -v scancel >/dev/null; then
    if [[ -n $(squeue -h -p "$PARTITION" -t PENDING,RUNNING,SUSPENDED,COMPLETING -o %i 2>/dev/null || true) ]]; then
        log "cancelling remaining jobs in partition $PARTITION"
        scancel -p "$PARTITION" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do
            [[ -z $(squeue -h -p "$PARTITION" -t PENDING,RUNNING,SUSPENDED,COMPLETING -o %i 2>/dev/null || true) ]] && break
            sleep 0.1
        done
    fi
fi

stop_pid slurmd slurmd
stop_pid slurmctld slurmctld
stop_pid munged munged
stop_pid sshd sshd
log "done"
