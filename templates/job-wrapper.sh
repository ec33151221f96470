#!/bin/sh
# ccspec job wrapper: runs one attempt of a job, detached from ccspec, and records in the
# attempt's run folder its pid and exit code, so a restarted ccspec re-attaches to it
# instead of launching it again. The exit-code file's mtime is the job's recorded end.
#   usage: job-wrapper.sh RUN_DIR COMMAND [ARG...]
# Output goes where the caller pointed stdout/stderr (the job's log).
# The pid and exit code files are private (0600), as everything in the state folder; the
# job keeps the umask it was started with.
run_dir=$1
shift
job_umask=$(umask)
umask 077
# a full folder: the pid (and below, the exit code) in the name of an empty file, which needs
# no data block
echo $$ 2>/dev/null >"$run_dir/pid" || true 2>/dev/null >"$run_dir/pid.$$"
umask "$job_umask"
# Survive a TERM/INT/HUP sent to the process group long enough to record the job's status;
# the job itself keeps the default dispositions.
trap : TERM INT HUP
"$@" < /dev/null
code=$?
umask 077
echo "$code" 2>/dev/null >"$run_dir/exit_code" || true 2>/dev/null >"$run_dir/exit_code.$code"
exit "$code"
