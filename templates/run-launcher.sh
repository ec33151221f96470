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
# Record: its length in six digits, then that many bytes of shell code, all ASCII (the
# runner escapes other bytes as $'\xHH'), so `read -N` takes it in two reads whatever the
# locale instead of one read call per byte: `export NAME='VALUE'...` and `unset -v NAME...`
# for what differs from the launcher's environment, then __ccspec_cmd=... __ccspec_log=...
# __ccspec_cwd=... A record shorter than its length was cut short.
# Each job runs templates/run-wrapper.sh in its own process group (set -m), with the
# environment, signal dispositions and shell options a fresh `bash -c` would have: the
# wrapper's set-up function, defined here once (parsed once), then the wrapper's last
# lines, which are repeated below.
# At end of input the spares say so (`e`), and the launcher ends; jobs go on (detached).
eval "${1%%__ccspec_setup \"\$@\"*}"  # the wrapper up to the call of its set-up: defines it
declare -F __ccspec_setup >/dev/null || exit 1  # not that wrapper: ccspec then spawns every job
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
    # a record cut short (the runner died writing it) runs nothing
    if ! { IFS= read -r -N 6 __ccspec_n && case $__ccspec_n in *[!0-9]*) false ;; esac &&
           __ccspec_n=$((10#$__ccspec_n)) && IFS= read -r -N "$__ccspec_n" __ccspec_rec &&
           [ "${#__ccspec_rec}" -eq "$__ccspec_n" ]; }; then
      printf t >&6
      printf e >&4
      exit 0
    fi
    printf t >&6
    exec 4>&- 5<&- 6>&- 7<&- </dev/null
    eval "$__ccspec_rec"
    __ccspec_setup "$__ccspec_cmd" "$__ccspec_log" "$__ccspec_cwd"
    unset -f __ccspec_setup
    __ccspec_command=$__ccspec_cmd
    unset __ccspec_n __ccspec_rec __ccspec_cmd __ccspec_log __ccspec_cwd __ccspec_said __ccspec_e
    eval "$__ccspec_command"
  ) &
  echo "$!" >&3
  disown "$!"  # bash still reaps it; no job table growing with every job
  IFS= read -r -n 1 __ccspec_said <&5 || break
done
