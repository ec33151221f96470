# ccspec's launcher for `run:` jobs on this machine (bash only): one long-lived bash that
# forks a subshell per job instead of starting a new bash (an exec costs about 1 ms here, a
# fork of this small shell a fifth of that). Started as
#   bash -c "$(cat run-launcher.sh)" bash WRAPPER_TEXT
# with stdin a pipe of launch records, fd 3 a pipe for pids, fds 4 and 5 the two ends of a
# pipe from the spares to the launcher, fds 6 and 7 the two ends of a pipe between spares.
# Spares are subshells forked ahead of time; each reads the next record itself and becomes
# that job, so the runner knows a job's pid (reported here in order) before it sends the
# job, and does not wait for a fork. Spares take turns on stdin: one byte on fds 6/7 passes
# the turn. A spare that gets the turn tells the launcher (`r` on fd 4), which forks the
# next spare: one spare reads stdin, one waits for its turn, and the order of the pids is
# the order of the records.
# Record: COMMAND \0 LOG \0 CWD \0 then environment changes, each NAME=VALUE \0 (export)
# or -NAME \0 (unset), ended by an empty field \0.
# Each job runs templates/run-wrapper.sh's text in its own process group (set -m), with
# the environment, signal dispositions and shell options a fresh `bash -c` would have.
# At end of input the spares say so (`e`), and the launcher ends; jobs go on (detached).
__ccspec_wrapper=$1
shift $#
set -m
printf t >&6  # the first spare's turn
__ccspec_said=r
while [ "$__ccspec_said" = r ]; do
  (
    set +m
    exec 3>&-  # fds 5 and 7 stay open while we write: a dead peer must not SIGPIPE us
    IFS= read -r -n 1 __ccspec_e <&7  # our turn on stdin
    printf r >&4
    __ccspec_env=()
    if ! { IFS= read -r -d '' __ccspec_cmd && IFS= read -r -d '' __ccspec_log && IFS= read -r -d '' __ccspec_cwd; }; then
      printf t >&6
      printf e >&4
      exit 0
    fi
    while :; do  # a record cut short (the runner died writing it) runs nothing
      IFS= read -r -d '' __ccspec_e || { printf t >&6; printf e >&4; exit 0; }
      [ -n "$__ccspec_e" ] || break
      __ccspec_env+=("$__ccspec_e")
    done
    printf t >&6
    exec 4>&- 5<&- 6>&- 7<&- </dev/null
    for __ccspec_e in "${__ccspec_env[@]}"; do
      case $__ccspec_e in -*) unset "${__ccspec_e#-}" ;; *) export "$__ccspec_e" ;; esac
    done
    set -- "$__ccspec_cmd" "$__ccspec_log" "$__ccspec_cwd"
    __ccspec_e=$__ccspec_wrapper
    unset __ccspec_env __ccspec_cmd __ccspec_log __ccspec_cwd __ccspec_wrapper __ccspec_said
    eval "$__ccspec_e"
  ) &
  echo "$!" >&3
  disown "$!"  # bash still reaps it; no job table growing with every job
  IFS= read -r -n 1 __ccspec_said <&5 || break
done
