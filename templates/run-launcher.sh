# ccspec's launcher for `run:` jobs on this machine (bash only): one long-lived bash that
# forks a subshell per job instead of starting a new bash (an exec costs about 1 ms here, a
# fork of this small shell a fifth of that). Started as
#   bash -c "$(cat run-launcher.sh)" bash WRAPPER_TEXT
# with stdin a pipe of launch records, fd 3 a pipe for pids, fds 4 and 5 the two ends of a
# pipe from the spares to the launcher, and K=4 "turn" pipes between spares: read ends on
# fds 10-13, write ends on fds 20-23. Spares are subshells forked ahead of time; each reads the
# next record itself and becomes that job, so the runner knows a job's pid (reported here
# in order) before it sends the job, and does not wait for a fork. Spares take turns on
# stdin: spare number i waits for one byte on turn pipe i mod K, which spare i-1 writes
# once it has read its record; one pipe per spare (K-1 of them wait at a time) keeps the
# order of the turns that of the pids. A spare that gets the turn tells the launcher (`r`
# on fd 4), which forks the next: up to K-1 spares wait, so a busy machine has time to
# fork them before the runner needs their pids.
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
__ccspec_k=4  # turn pipes (the runner passes this many)
printf t >&20  # spare 0 has the first turn
__ccspec_i=0  # the number of the next spare
__ccspec_ahead=0  # spares forked that have not had their turn yet
while :; do
  while [ "$__ccspec_ahead" -lt "$((__ccspec_k - 1))" ]; do
    (
      set +m
      exec 3>&-  # the turn pipes and fd 5 stay open while we write: a dead peer must not SIGPIPE us
      IFS= read -r -n 1 __ccspec_e <&"$((10 + __ccspec_i % __ccspec_k))"  # our turn on stdin
      printf r >&4
      # a record cut short (the runner died writing it) runs nothing
      if ! { IFS= read -r -N 6 __ccspec_n && case $__ccspec_n in *[!0-9]*) false ;; esac &&
             __ccspec_n=$((10#$__ccspec_n)) && IFS= read -r -N "$__ccspec_n" __ccspec_rec &&
             [ "${#__ccspec_rec}" -eq "$__ccspec_n" ]; }; then
        printf t >&"$((20 + (__ccspec_i + 1) % __ccspec_k))"
        printf e >&4
        exit 0
      fi
      printf t >&"$((20 + (__ccspec_i + 1) % __ccspec_k))"
      exec 4>&- 5<&- 10<&- 11<&- 12<&- 13<&- 20>&- 21>&- 22>&- 23>&- </dev/null
      eval "$__ccspec_rec"
      __ccspec_setup "$__ccspec_cmd" "$__ccspec_log" "$__ccspec_cwd"
      unset -f __ccspec_setup
      __ccspec_command=$__ccspec_cmd
      unset __ccspec_n __ccspec_rec __ccspec_cmd __ccspec_log __ccspec_cwd __ccspec_said __ccspec_e \
        __ccspec_i __ccspec_k __ccspec_ahead
      eval "$__ccspec_command"
    ) &
    echo "$!" >&3
    disown "$!"  # bash still reaps it; no job table growing with every job
    __ccspec_i=$((__ccspec_i + 1)) __ccspec_ahead=$((__ccspec_ahead + 1))
  done
  IFS= read -r -n 1 __ccspec_said <&5 && [ "$__ccspec_said" = r ] || break
  __ccspec_ahead=$((__ccspec_ahead - 1))
done
