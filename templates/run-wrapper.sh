# ccspec's wrapper for `run:` jobs, given to the job's shell as its -c script, with the job's
# command as $1. It runs the command in this same shell process (no extra fork/exec per
# job) and records in $CCSPEC_RUN_DIR the pid and, on exit, the exit code, so a restarted
# ccspec re-attaches to the job instead of launching it again. A shell stopped by a signal
# does not give its EXIT trap the right status, so HUP, INT and TERM record 128+N themselves;
# a job killed by KILL leaves no exit code (ccspec records why it killed it, or marks it lost).
trap 'echo $? > "$CCSPEC_RUN_DIR/exit_code"' EXIT
trap 'trap - EXIT; echo 129 > "$CCSPEC_RUN_DIR/exit_code"; exit 129' HUP
trap 'trap - EXIT; echo 130 > "$CCSPEC_RUN_DIR/exit_code"; exit 130' INT
trap 'trap - EXIT; echo 143 > "$CCSPEC_RUN_DIR/exit_code"; exit 143' TERM
echo $$ > "$CCSPEC_RUN_DIR/pid"
__ccspec_command=$1
shift
eval "$__ccspec_command"
