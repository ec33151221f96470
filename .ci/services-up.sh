#!/usr/bin/env bash
# .ci/services-up.sh -- start the real services that ccspec's ssh and Slurm
# integration tests run against, on a Debian 12 machine (as root; no systemd or
# Docker needed). `bash .ci/bootstrap test` runs it when it runs as root.
#   * a dedicated sshd on 127.0.0.1:2222 (key login as user "ccspec"; the system
#     sshd on :22 is never started or touched)
#   * munged (Slurm authentication)
#   * a single-node Slurm 22.05 cluster "ccspec" (partition "debug", node "localhost")
#     with job completion records for `sacct -c` (jobcomp/filetxt; there is no slurmdbd)
#   * user "ccspec" with python3 and a workdir ~ccspec/ccspec for the tests' jobs
# Idempotent: daemons already started by this script are left running (and are
# restarted only when their config file changed); a run with everything up takes
# about a second. Stop them with .ci/services-down.sh; .ci/services-smoke.sh checks
# them end to end; tests/services.py is the tests' view of them.
#
# Environment:
#   CCSPEC_TEST_KEYDIR   client key + ssh_config + env.sh dir (default: $HOME/.ccspec-test)
#   CCSPEC_TEST_TIMEOUT  seconds to wait for readiness (default: 60)
set -euo pipefail

TEST_USER=ccspec
SSH_PORT=2222
SSH_ALIAS=ccspec-test
CLUSTER=ccspec
PARTITION=debug
NODE=localhost
KEYDIR="${CCSPEC_TEST_KEYDIR:-${HOME:-/root}/.ccspec-test}"
TIMEOUT="${CCSPEC_TEST_TIMEOUT:-60}"

STATE_DIR=/run/ccspec-test              # pid files of the daemons WE started
LOG_DIR=/var/log/ccspec-test
SPOOL=/var/spool/ccspec-slurm
SSHD_CONF=/etc/ssh/sshd_ccspec_test.conf
SLURM_CONF=/etc/slurm/slurm.conf
MUNGE_KEY=/etc/munge/munge.key
MARK="# managed by ccspec services-up.sh"
PKGS=(openssh-server openssh-client munge slurmctld slurmd slurm-client python3)

T0=$SECONDS
log() { printf '[services-up %3ss] %s\n' "$((SECONDS - T0))" "$*" >&2; }
die() { printf '[services-up] ERROR: %s\n' "$*" >&2; exit 1; }

[[ $EUID -eq 0 ]] || die "must run as root"
export DEBIAN_FRONTEND=noninteractive LC_ALL=C

mkdir -p "$STATE_DIR" "$LOG_DIR"
chmod 0755 "$STATE_DIR" "$LOG_DIR"
# serialize concurrent invocations (up/down share the lock; daemons are started with 9>&- so they do not inherit it)
exec 9>"$STATE_DIR/lock"
flock -w 120 9 || die "could not acquire $STATE_DIR/lock"

# ---------------------------------------------------------------- helpers
source "$(dirname "$0")/services-lib.sh"  # running, pid_of, stop_pid

# wait_pidfile FILE COMM LOGFILE -> wait until FILE holds a live pid with comm COMM
wait_pidfile() {
    local f=$1 comm=$2 logf=$3 pid deadline=$((SECONDS + 20))
    while ((SECONDS < deadline)); do
        if [[ -s $f ]]; then
            pid=$(tr -dc '0-9' <"$f")
            if [[ -n $pid && $(cat "/proc/$pid/comm" 2>/dev/null) == "$comm" ]] && running "$pid"; then
                echo "$pid"
                return 0
            fi
        fi
        sleep 0.1
    done
    [[ -f $logf ]] && tail -n 20 "$logf" >&2
    die "$comm did not start (no live pid in $f; log: $logf)"
}

# write_if_changed FILE MODE OWNER  (content on stdin); returns 0 if the file changed
write_if_changed() {
    local f=$1 mode=$2 owner=$3 tmp
    tmp=$(mktemp)
    cat >"$tmp"
    if [[ -f $f ]] && cmp -s "$tmp" "$f"; then
        rm -f "$tmp"
        chmod "$mode" "$f"
        chown "$owner" "$f"
        return 1
    fi
    if [[ -f $f ]] && ! grep -qF "$MARK" "$f"; then
        cp -p "$f" "$f.pre-ccspec.$(date +%s)"
        log "backed up foreign $f"
    fi
    install -m "$mode" -o "${owner%%:*}" -g "${owner##*:}" "$tmp" "$f"
    rm -f "$tmp"
    return 0
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ---------------------------------------------------------------- packages
missing=()
for p in "${PKGS[@]}"; do
    [[ $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true) == installed ]] || missing+=("$p")
done
if ((${#missing[@]})); then
    log "installing: ${missing[*]}"
    APT_OPTS=(-o DPkg::Lock::Timeout=300 -o Dpkg::Use-Pty=0)
    if ! apt-get "${APT_OPTS[@]}" install -s --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
        log "package lists stale/missing -> apt-get update"
        apt-get "${APT_OPTS[@]}" -q update >/dev/null
    fi
    # keep package postinst scripts from starting the stock daemons (e.g. sshd on :22)
    own_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 0755 /usr/sbin/policy-rc.d
        own_policy=1
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    rc=0
    apt-get "${APT_OPTS[@]}" -q -y install --no-install-recommends "${missing[@]}" >"$LOG_DIR/apt.log" 2>&1 || rc=$?
    if ((rc)); then   # e.g. lists present but outdated (404 on download): update once and retry
        log "apt-get install failed (rc=$rc) -> apt-get update and retry"
        rc=0
        { apt-get "${APT_OPTS[@]}" -q update &&
            apt-get "${APT_OPTS[@]}" -q -y install --no-install-recommends "${missing[@]}"; } >>"$LOG_DIR/apt.log" 2>&1 || rc=$?
    fi
    if ((own_policy)); then
        rm -f /usr/sbin/policy-rc.d
        trap - EXIT
    fi
    if ((rc)); then
        tail -n 30 "$LOG_DIR/apt.log" >&2
        die "apt-get install failed (rc=$rc, see $LOG_DIR/apt.log)"
    fi
    log "packages installed"
else
    log "packages already installed"
fi

# ---------------------------------------------------------------- user ccspec
if ! getent passwd "$TEST_USER" >/dev/null; then
    useradd --create-home --shell /bin/bash "$TEST_USER"
    log "created user $TEST_USER"
fi
usermod -p '*' "$TEST_USER"     # no password, but not "locked" (pubkey login works with UsePAM no)
USER_HOME=$(getent passwd "$TEST_USER" | cut -d: -f6)
USER_GROUP=$(id -gn "$TEST_USER")
install -d -m 0755 -o "$TEST_USER" -g "$USER_GROUP" "$USER_HOME"
chmod go-w "$USER_HOME"
WORKDIR="$USER_HOME/ccspec"     # where the tests' remote and Slurm jobs may write
install -d -m 0755 -o "$TEST_USER" -g "$USER_GROUP" "$WORKDIR"

# ---------------------------------------------------------------- client key + ssh_config
install -d -m 0700 "$KEYDIR"
KEYDIR=$(cd "$KEYDIR" && pwd -P)   # absolute path (it is written into ssh_config)
[[ $KEYDIR != *[[:space:]]* ]] || die "CCSPEC_TEST_KEYDIR must not contain whitespace: '$KEYDIR'"
KEY="$KEYDIR/id_ed25519"
if [[ ! -s $KEY || ! -s $KEY.pub ]]; then
    rm -f "$KEY" "$KEY.pub"
    ssh-keygen -q -t ed25519 -N '' -C "ccspec-test-client" -f "$KEY"
    log "generated client key $KEY"
fi
install -d -m 0700 -o "$TEST_USER" -g "$USER_GROUP" "$USER_HOME/.ssh"
AUTH="$USER_HOME/.ssh/authorized_keys"
touch "$AUTH"
grep -qxF "$(cat "$KEY.pub")" "$AUTH" || cat "$KEY.pub" >>"$AUTH"
chown "$TEST_USER:$USER_GROUP" "$AUTH"
chmod 0600 "$AUTH"

write_if_changed "$KEYDIR/ssh_config" 0600 root:root <<EOF || true
$MARK
Host $SSH_ALIAS
    HostName 127.0.0.1
    Port $SSH_PORT
    User $TEST_USER
    IdentityFile $KEY
    IdentitiesOnly yes
    StrictHostKeyChecking no
    UserKnownHostsFile /dev/null
    BatchMode yes
    LogLevel ERROR
EOF

write_if_changed "$KEYDIR/env.sh" 0644 root:root <<EOF || true
$MARK -- source me from a test script (services-up.sh itself exports nothing)
export CCSPEC_TEST_KEYDIR='$KEYDIR'
export CCSPEC_TEST_SSH_CONFIG='$KEYDIR/ssh_config'
export CCSPEC_TEST_SSH_HOST='$SSH_ALIAS'
export CCSPEC_TEST_SSH_KEY='$KEY'
export CCSPEC_TEST_SSH_USER='$TEST_USER'
export CCSPEC_TEST_SSH_PORT='$SSH_PORT'
export CCSPEC_TEST_SLURM_CLUSTER='$CLUSTER'
export CCSPEC_TEST_SLURM_PARTITION='$PARTITION'
export CCSPEC_TEST_WORKDIR='$WORKDIR'
export CCSPEC_TEST_NOTEBOOK_PYTHON='$USER_HOME/nbvenv/bin/python'
EOF

# ---------------------------------------------------------------- sshd on 127.0.0.1:2222
mkdir -p /run/sshd
chmod 0755 /run/sshd
ssh-keygen -A >/dev/null   # host keys, only the missing ones
sshd_changed=0
write_if_changed "$SSHD_CONF" 0644 root:root <<EOF && sshd_changed=1
$MARK -- dedicated test sshd; does not touch the system sshd on :22
Port $SSH_PORT
ListenAddress 127.0.0.1
HostKey /etc/ssh/ssh_host_ed25519_key
HostKey /etc/ssh/ssh_host_ecdsa_key
HostKey /etc/ssh/ssh_host_rsa_key
PidFile $STATE_DIR/sshd.pid
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AuthorizedKeysFile .ssh/authorized_keys
PermitRootLogin no
AllowUsers $TEST_USER
StrictModes yes
PrintMotd no
PrintLastLog no
UseDNS no
MaxSessions 50
MaxStartups 100:30:200
AcceptEnv LANG LC_*
Subsystem sftp /usr/lib/openssh/sftp-server
EOF
/usr/sbin/sshd -t -f "$SSHD_CONF" || die "sshd config test failed: $SSHD_CONF"
if pid=$(pid_of sshd sshd) && ((sshd_changed)); then
    stop_pid sshd sshd 100
fi
if pid=$(pid_of sshd sshd); then
    log "sshd already running (pid $pid)"
else
    rm -f "$STATE_DIR/sshd.pid"
    port_open "$SSH_PORT" && die "127.0.0.1:$SSH_PORT is already in use by a process not started by this script"
    /usr/sbin/sshd -f "$SSHD_CONF" -E "$LOG_DIR/sshd.log" </dev/null >/dev/null 2>&1 9>&-
    pid=$(wait_pidfile "$STATE_DIR/sshd.pid" sshd "$LOG_DIR/sshd.log")
    log "sshd started (pid $pid) on 127.0.0.1:$SSH_PORT"
fi

# ---------------------------------------------------------------- munge
getent passwd munge >/dev/null || die "user munge missing (munge package not installed?)"
install -d -m 0700 -o munge -g munge /etc/munge /var/lib/munge /var/log/munge
install -d -m 0755 -o munge -g munge /run/munge
if [[ ! -s $MUNGE_KEY ]]; then
    if command -v mungekey >/dev/null; then
        mungekey --create --force --keyfile="$MUNGE_KEY"
    else
        dd if=/dev/urandom of="$MUNGE_KEY" bs=1024 count=1 status=none
    fi
    log "created $MUNGE_KEY"
fi
chown munge:munge "$MUNGE_KEY"
chmod 0400 "$MUNGE_KEY"
if pid=$(pid_of munged munged); then
    log "munged already running (pid $pid)"
elif munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    log "a munged not started by this script is already serving /run/munge -> reusing it"
else
    rm -f "$STATE_DIR/munged.pid" /run/munge/munged.pid
    runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid </dev/null >>"$LOG_DIR/munged.out" 2>&1 9>&- \
        || { tail -n 20 /var/log/munge/munged.log "$LOG_DIR/munged.out" >&2 || true; die "munged failed to start"; }
    pid=$(wait_pidfile /run/munge/munged.pid munged /var/log/munge/munged.log)
    echo "$pid" >"$STATE_DIR/munged.pid"
    log "munged started (pid $pid)"
fi
munge -n | unmunge >/dev/null || die "munge round trip failed"

# ---------------------------------------------------------------- slurm
install -d -m 0755 -o "$TEST_USER" -g "$USER_GROUP" "$SPOOL" "$SPOOL/ctld"
install -d -m 0755 -o root -g root "$SPOOL/d" /etc/slurm
touch "$SPOOL/jobcomp.txt" "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log"
chown "$TEST_USER:$USER_GROUP" "$SPOOL/jobcomp.txt" "$LOG_DIR/slurmctld.log"
chmod 0644 "$SPOOL/jobcomp.txt" "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log"

slurm_changed=0
write_if_changed "$SLURM_CONF" 0644 root:root <<EOF && slurm_changed=1
$MARK -- single-node test cluster (no accounting DB)
ClusterName=$CLUSTER
SlurmctldHost=localhost
SlurmUser=$TEST_USER
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$SPOOL/jobcomp.txt
MailProg=/bin/true
MinJobAge=300
KillWait=5
ReturnToService=2
SlurmdParameters=config_overrides
StateSaveLocation=$SPOOL/ctld
SlurmdSpoolDir=$SPOOL/d
SlurmctldPidFile=$STATE_DIR/slurmctld.pid
SlurmdPidFile=$STATE_DIR/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
NodeName=$NODE CPUs=4 RealMemory=2000 State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF

if ((slurm_changed)); then
    stop_pid slurmd slurmd 100
    stop_pid slurmctld slurmctld 100
fi
if pid=$(pid_of slurmctld slurmctld); then
    log "slurmctld already running (pid $pid)"
else
    rm -f "$STATE_DIR/slurmctld.pid"
    port_open 6817 && die "port 6817 (slurmctld) is already in use by a process not started by this script"
    /usr/sbin/slurmctld -f "$SLURM_CONF" </dev/null >>"$LOG_DIR/slurmctld.out" 2>&1 9>&-
    pid=$(wait_pidfile "$STATE_DIR/slurmctld.pid" slurmctld "$LOG_DIR/slurmctld.log")
    log "slurmctld started (pid $pid)"
fi
if pid=$(pid_of slurmd slurmd); then
    log "slurmd already running (pid $pid)"
else
    rm -f "$STATE_DIR/slurmd.pid"
    port_open 6818 && die "port 6818 (slurmd) is already in use by a process not started by this script"
    /usr/sbin/slurmd -N "$NODE" -f "$SLURM_CONF" </dev/null >>"$LOG_DIR/slurmd.out" 2>&1 9>&-
    pid=$(wait_pidfile "$STATE_DIR/slurmd.pid" slurmd "$LOG_DIR/slurmd.log")
    log "slurmd started (pid $pid)"
fi

# ---------------------------------------------------------------- readiness
deadline=$((SECONDS + TIMEOUT))
until scontrol ping 2>/dev/null | grep -q 'is UP'; do
    ((SECONDS < deadline)) || { tail -n 20 "$LOG_DIR/slurmctld.log" >&2; die "slurmctld not answering after ${TIMEOUT}s"; }
    sleep 0.2
done
resumed=0
while :; do
    state=$(sinfo -h -N -n "$NODE" -o '%T' 2>/dev/null | head -n1 || true)
    case $state in
        idle | mixed | allocated | completing) break ;;
        down | drained | draining | drain)
            if ((!resumed)); then
                log "node $NODE is '$state' -> scontrol update state=resume"
                scontrol update NodeName="$NODE" State=RESUME || true
                resumed=1
            fi ;;
    esac
    ((SECONDS < deadline)) || { tail -n 20 "$LOG_DIR/slurmd.log" >&2; die "node $NODE not idle after ${TIMEOUT}s (state: '${state:-?}')"; }
    sleep 0.2
done
log "slurm node $NODE is $state"

# trivial job as user ccspec, checked through the jobcomp/filetxt records (sacct -c)
jid=$(cd / && runuser -u "$TEST_USER" -- sbatch --parsable -J ccspec-up-check -p "$PARTITION" \
    --chdir=/tmp -o /dev/null -e /dev/null --wrap 'echo ok') || die "sbatch failed"
jid=${jid%%;*}
while :; do
    rec=$(runuser -u "$TEST_USER" -- sacct -c -P -n -j "$jid" --format=JobID,State,ExitCode 2>/dev/null | head -n1 || true)
    [[ -n $rec ]] && break
    ((SECONDS < deadline)) || die "check job $jid not completed after ${TIMEOUT}s (squeue: $(squeue -h -j "$jid" -o '%T %R' 2>&1))"
    sleep 0.1
done
[[ $rec == "$jid|COMPLETED|0:0" ]] || die "check job $jid finished unexpectedly: '$rec'"
log "check job $jid: $rec"

# ---------------------------------------------------------------- notebook python
# Notebook jobs on a remote host run `PYTHON -m papermill`: give the test user a Python that
# has papermill and a kernel (~20 s once; kept across runs).
NBVENV="$USER_HOME/nbvenv"
if ! runuser -u "$TEST_USER" -- "$NBVENV/bin/python" -c 'import papermill, ipykernel' </dev/null 2>/dev/null; then
    log "creating $NBVENV (papermill, ipykernel)"
    rm -rf "$NBVENV"
    runuser -u "$TEST_USER" -- python3 -m venv "$NBVENV" </dev/null >>"$LOG_DIR/nbvenv.log" 2>&1 \
        || die "python3 -m venv failed for $TEST_USER (Debian: apt-get install python3-venv; see $LOG_DIR/nbvenv.log)"
    runuser -u "$TEST_USER" -- "$NBVENV/bin/pip" install -q --disable-pip-version-check papermill ipykernel \
        </dev/null >>"$LOG_DIR/nbvenv.log" 2>&1 || die "pip install papermill ipykernel failed (see $LOG_DIR/nbvenv.log)"
fi

# ---------------------------------------------------------------- summary
ssh -F "$KEYDIR/ssh_config" "$SSH_ALIAS" true </dev/null || die "ssh -F $KEYDIR/ssh_config $SSH_ALIAS failed (see $LOG_DIR/sshd.log)"
runuser -u "$TEST_USER" -- sh -c 'cd "$1" && test -w . && python3 -c pass' sh "$WORKDIR" </dev/null \
    || die "user $TEST_USER cannot run python3 in $WORKDIR"
cat <<EOF
ccspec test services are UP ($((SECONDS - T0))s)
  ssh   : ssh -F $KEYDIR/ssh_config $SSH_ALIAS   (127.0.0.1:$SSH_PORT, user $TEST_USER, key $KEY)
  slurm : cluster $CLUSTER, partition $PARTITION, node $NODE (CPUs=4), conf $SLURM_CONF
          completion records: sacct -c (JobCompLoc=$SPOOL/jobcomp.txt)
  user  : $TEST_USER, workdir $WORKDIR, $(runuser -u "$TEST_USER" -- python3 -V 2>&1)
  env   : source $KEYDIR/env.sh
  logs  : $LOG_DIR/   pids: $STATE_DIR/*.pid   stop: .ci/services-down.sh
EOF
