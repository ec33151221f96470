#!/usr/bin/env bash
# .ci/services-smoke.sh -- end-to-end check of ccspec's integration-test services
# (started by .ci/services-up.sh): the ssh alias, python3 and the workdir of user
# ccspec, Slurm jobs submitted/polled over ssh as ccspec (sacct -c), a failing
# job (exit 3 -> FAILED 3:0), per-job latency, and the same through fabric (the
# library ccspec's ssh and Slurm hosts use) when it is importable.
# Environment:
#   CCSPEC_TEST_KEYDIR   as for services-up.sh (default: $HOME/.ccspec-test)
#   CCSPEC_TEST_PYTHON   python used for the fabric check (default: the repository's
#                        .venv/bin/python if present, else python3); the check is
#                        skipped if it cannot `import fabric`
#   CCSPEC_SMOKE_NJOBS   sequential trivial jobs for the latency figure (default: 5)
set -euo pipefail
cd "$(dirname "$0")/.."

KEYDIR="${CCSPEC_TEST_KEYDIR:-${HOME:-/root}/.ccspec-test}"
SSH_CONFIG="$KEYDIR/ssh_config"
HOST=ccspec-test
DEFAULT_PY=python3
[[ -x .venv/bin/python ]] && DEFAULT_PY="$PWD/.venv/bin/python"
PY="${CCSPEC_TEST_PYTHON:-$DEFAULT_PY}"
NJOBS="${CCSPEC_SMOKE_NJOBS:-5}"
TIMEOUT=60

fail() { printf 'SMOKE FAIL: %s\n' "$*" >&2; exit 1; }
ok() { printf 'ok   %s\n' "$*"; }
rssh() { ssh -F "$SSH_CONFIG" "$HOST" "$@"; }
now() { date +%s.%N; }
ms_since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%d", (b-a)*1000}'; }

[[ -r $SSH_CONFIG ]] || fail "$SSH_CONFIG missing -- run .ci/services-up.sh (as root) first"

# poll sacct -c (job completion records) over ssh until the job has a record
wait_job() {
    local jid=$1 rec deadline=$((SECONDS + TIMEOUT))
    while :; do
        rec=$(rssh "sacct -c -P -n -j $jid --format=JobID,State,ExitCode" </dev/null | head -n1)
        [[ -n $rec ]] && { echo "$rec"; return 0; }
        ((SECONDS < deadline)) || fail "job $jid: no completion record after ${TIMEOUT}s"
        sleep 0.2
    done
}

# 1. plain ssh
t=$(now)
out=$(rssh 'echo hi; hostname; id -un' </dev/null)
[[ $(sed -n 1p <<<"$out") == hi && $(sed -n 3p <<<"$out") == ccspec ]] || fail "ssh output: $out"
ok "ssh $HOST: hi / host $(sed -n 2p <<<"$out") / user ccspec ($(ms_since "$t") ms)"
out=$(rssh 'cd ccspec && test -w . && python3 -V' </dev/null 2>&1) || fail "python3 / workdir ~/ccspec: $out"
ok "ccspec: workdir ~/ccspec writable, $out"

# 2. successful job, submitted and polled over ssh
t=$(now)
jid=$(rssh "cd ccspec && sbatch --parsable -J smoke-ok -o smoke-%j.out --wrap 'echo hello-from-slurm; hostname'" </dev/null)
jid=${jid%%;*}
[[ $jid =~ ^[0-9]+$ ]] || fail "sbatch returned '$jid'"
rec=$(wait_job "$jid")
el=$(ms_since "$t")
[[ $rec == "$jid|COMPLETED|0:0" ]] || fail "job $jid record '$rec' (want COMPLETED 0:0)"
joboutput=$(rssh "cat ccspec/smoke-$jid.out && rm -f ccspec/smoke-$jid.out" </dev/null)
[[ $(head -n1 <<<"$joboutput") == hello-from-slurm ]] || fail "job $jid output: $joboutput"
ok "job $jid: $rec, output ok (submit->record over ssh: $el ms)"

# 3. failing job: exit 3 -> FAILED 3:0
jid=$(rssh "sbatch --parsable -J smoke-fail -o /dev/null --wrap 'exit 3'" </dev/null)
jid=${jid%%;*}
rec=$(wait_job "$jid")
[[ $rec == "$jid|FAILED|3:0" ]] || fail "job $jid record '$rec' (want FAILED 3:0)"
ok "job $jid: $rec"

# 4. latency of trivial jobs, measured on the remote side inside one ssh session
lat=$(rssh "bash -s" <<EOF
set -eu
tot=0
for i in \$(seq $NJOBS); do
    t0=\$(date +%s%N)
    j=\$(sbatch --parsable -J smoke-lat -o /dev/null --wrap true)
    until [ -n "\$(sacct -c -P -n -j \$j --format=State)" ]; do sleep 0.05; done
    st=\$(sacct -c -P -n -j \$j --format=State)
    [ "\$st" = COMPLETED ] || { echo "job \$j \$st"; exit 1; }
    tot=\$(( tot + (\$(date +%s%N) - t0) / 1000000 ))
done
echo \$(( tot / $NJOBS ))
EOF
) || fail "latency loop: $lat"
ok "$NJOBS sequential trivial jobs: ${lat} ms/job (submit -> COMPLETED in sacct -c, 50 ms polling)"

# 5. python fabric (optional)
if "$PY" -c 'import fabric' 2>/dev/null; then
    SSH_CONFIG="$SSH_CONFIG" HOST="$HOST" "$PY" - <<'EOF' || fail "fabric check"
import os
import time

from fabric import Config, Connection

cfg = Config(runtime_ssh_path=os.environ["SSH_CONFIG"])
with Connection(os.environ["HOST"], config=cfg) as c:
    # in_stream=False: required under pytest (stdin is captured)
    r = c.run("echo hi; id -un", hide=True, in_stream=False)
    assert r.stdout.split() == ["hi", "ccspec"], r.stdout
    jid = c.run("sbatch --parsable -o /dev/null --wrap 'exit 3'", hide=True, in_stream=False).stdout.strip()
    deadline = time.time() + 60
    while True:
        rec = c.run(f"sacct -c -P -n -j {jid} --format=JobID,State,ExitCode",
                    hide=True, in_stream=False).stdout.strip()
        if rec or time.time() > deadline:
            break
        time.sleep(0.2)
    assert rec == f"{jid}|FAILED|3:0", rec
    r = c.run("exit 5", hide=True, in_stream=False, warn=True)
    assert r.exited == 5, r.exited
import fabric
print(f"ok   fabric {fabric.__version__}: run ok, job {jid}: {rec}, remote exit code propagated")
EOF
else
    echo "skip fabric check ($PY cannot import fabric; set CCSPEC_TEST_PYTHON to a python that can)"
fi
echo "SMOKE OK"
