# ccspec's wrapper for `run:` jobs, given to the job's shell as its -c script:
#   $1 the job's command, $2 the log (optional), $3 the working folder (optional)
# It runs the command in this same shell process (no extra fork/exec per job) and records
# in $CCSPEC_RUN_DIR the pid and, on exit, the exit code, so a restarted ccspec re-attaches
# to the job instead of launching it again; the exit-code file's mtime is the job's recorded
# end (however late ccspec reads it). Opening the log and changing folder happen
# here, in the job's process, not in the runner's. templates/run-launcher.sh runs this
# same text in a forked bash subshell, whose pid is $BASHPID, not $$. A shell stopped by
# a signal does not give its EXIT trap the right status, so the terminating signals with
# the same number everywhere record 128+N themselves; a job killed by KILL leaves no exit
# code (ccspec records why it killed it, or marks it lost). The set-up is a function so
# that the launcher parses it once, not once per job; the command runs outside of it.
__ccspec_setup() {
  if [ -n "${2-}" ]; then
    [ -d "$CCSPEC_RUN_DIR" ] || mkdir -p "$CCSPEC_RUN_DIR"  # the runner usually made it: no process then
    exec >>"$2" 2>&1
  fi
  trap 'echo $? > "$CCSPEC_RUN_DIR/exit_code"' EXIT
  trap 'trap - EXIT; echo 129 > "$CCSPEC_RUN_DIR/exit_code"; exit 129' HUP
  trap 'trap - EXIT; echo 130 > "$CCSPEC_RUN_DIR/exit_code"; exit 130' INT
  trap 'trap - EXIT; echo 131 > "$CCSPEC_RUN_DIR/exit_code"; exit 131' QUIT
  trap 'trap - EXIT; echo 141 > "$CCSPEC_RUN_DIR/exit_code"; exit 141' PIPE
  trap 'trap - EXIT; echo 142 > "$CCSPEC_RUN_DIR/exit_code"; exit 142' ALRM
  trap 'trap - EXIT; echo 143 > "$CCSPEC_RUN_DIR/exit_code"; exit 143' TERM
  echo "${BASHPID:-$$}" > "$CCSPEC_RUN_DIR/pid"
  if [ -n "${3-}" ]; then
    cd "$3" || exit 127
  fi
}
__ccspec_setup "$@"
unset -f __ccspec_setup
__ccspec_command=$1
shift $#
eval "$__ccspec_command"
