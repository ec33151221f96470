# ccspec's wrapper for `run:` jobs, given to the job's shell as its -c script, with the job's
# command as $1. It runs the command in this same shell process (no extra fork/exec per
# job) and records in $CCSPEC_RUN_DIR the pid and, on exit, the exit code, so a restarted
# ccspec re-attaches to the job instead of launching it again. A job killed by a signal
# leaves no exit code; ccspec records why it killed it (timeout, cancel) or marks it lost.
trap 'echo $? > "$CCSPEC_RUN_DIR/exit_code"' EXIT
echo $$ > "$CCSPEC_RUN_DIR/pid"
__ccspec_command=$1
shift
eval "$__ccspec_command"
