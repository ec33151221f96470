#!/bin/sh
# ccspec job wrapper: runs one attempt of a job, detached from ccspec, and records in the
# attempt's run folder its pid and exit code, so a restarted ccspec re-attaches to it
# instead of launching it again. The exit-code file's mtime is the job's recorded end.
#   usage: job-wrapper.sh RUN_DIR COMMAND [ARG...]
# Output goes where the caller pointed stdout/stderr (the job's log).
run_dir=$1
shift
echo $$ > "$run_dir/pid"
# Survive a TERM/INT/HUP sent to the process group long enough to record the job's status;
# the job itself keeps the default dispositions.
trap : TERM INT HUP
"$@" < /dev/null
code=$?
echo "$code" > "$run_dir/exit_code"
exit "$code"
