# ccspec's launcher for `run:` jobs on this machine (bash only): one long-lived bash that
# forks a subshell per job instead of starting a new bash. Started as
#   bash -c "$(cat run-launcher.sh)" bash WRAPPER_TEXT
# The @NAME@ words are its file descriptors and the number of turn pipes, which
# ccspec.targets.launcher writes in (it dup2s the pipes onto those numbers: one map for both
# sides): stdin a pipe of launch records, @REPLIES@ a pipe of answers to the runner (pids,
# statuses), @SAID_W@ and @SAID_R@ the two ends of a pipe to the launcher (from the spares,
# and from the runner), and @K@ "turn" pipes between spares: read ends on @TURN_R@.., write
# ends on @TURN_W@... Spares are subshells forked ahead of time; each reads the next record
# itself and becomes that job, so the runner knows a job's pid (reported on @REPLIES@ in
# order) before it sends the job, and does not wait for a fork. Spares take turns on stdin:
# spare number i waits for one byte on turn pipe i mod K, which spare i-1 writes once it
# has read its record; one pipe per spare (K-1 of them wait at a time) keeps the order of
# the turns that of the pids. A spare that gets the turn tells the launcher (`r`), which
# forks the next: up to K-1 spares wait, so a busy machine has time to fork them before the
# runner needs their pids.
# Record: its length in six digits, then that many bytes of shell code, all ASCII (the
# runner escapes other bytes as $'\xHH'), so `read -N` takes it in two reads whatever the
# locale instead of one read call per byte: `export NAME='VALUE'...` and `unset -v NAME...`
# for what differs from the launcher's environment, then __ccspec_cmd=... __ccspec_log=...
# __ccspec_cwd=... A record shorter than its length was cut short.
# Each job runs templates/run-wrapper.sh in its own process group (set -m), with the
# environment, signal dispositions and shell options a fresh `bash -c` would have: the
# wrapper's set-up function, defined here once (parsed once), then the wrapper's last
# lines, which are repeated below.
# The launcher is the jobs' parent: when a job's wrapper could not write its exit code
# (killed by KILL), the runner asks for its wait status (`wPID` and a newline on
# @SAID_W@) and the launcher answers `=PID STATUS` on @REPLIES@. Jobs are not disowned, so
# bash keeps their statuses; `jobs -n` now and then moves the ended ones out of its job
# table (bash still answers `wait PID` for them).
# At end of input the spares say so (`e`), and the launcher ends; jobs go on (detached).
eval "${1%%__ccspec_setup \"\$@\"*}"  # the wrapper up to the call of its set-up: defines it
declare -F __ccspec_setup >/dev/null || exit 1  # not that wrapper: ccspec then spawns every job
shift $#
set -m
__ccspec_k=@K@
printf t >&@TURN_W@  # spare 0 has the first turn
__ccspec_i=0  # the number of the next spare
__ccspec_ahead=0  # spares forked that have not had their turn yet
while :; do
  while [ "$__ccspec_ahead" -lt "$((__ccspec_k - 1))" ]; do
    (
      set +m
      exec @REPLIES@>&-  # the turn pipes and @SAID_R@ stay open while we write: a dead peer must not SIGPIPE us
      IFS= read -r -n 1 __ccspec_e <&"$((@TURN_R@ + __ccspec_i % __ccspec_k))"  # our turn on stdin
      printf r >&@SAID_W@
      # a record cut short (the runner died writing it) runs nothing
      if ! { IFS= read -r -N 6 __ccspec_n && case $__ccspec_n in *[!0-9]*) false ;; esac &&
             __ccspec_n=$((10#$__ccspec_n)) && IFS= read -r -N "$__ccspec_n" __ccspec_rec &&
             [ "${#__ccspec_rec}" -eq "$__ccspec_n" ]; }; then
        printf t >&"$((@TURN_W@ + (__ccspec_i + 1) % __ccspec_k))"
        printf e >&@SAID_W@
        exit 0
      fi
      printf t >&"$((@TURN_W@ + (__ccspec_i + 1) % __ccspec_k))"
      exec @CLOSE@ </dev/null
      eval "$__ccspec_rec"
      __ccspec_setup "$__ccspec_cmd" "$__ccspec_log" "$__ccspec_cwd"
      unset -f __ccspec_setup
      __ccspec_command=$__ccspec_cmd
      unset __ccspec_n __ccspec_rec __ccspec_cmd __ccspec_log __ccspec_cwd __ccspec_said __ccspec_e \
        __ccspec_i __ccspec_k __ccspec_ahead
      eval "$__ccspec_command"
    ) &
    echo "$!" >&@REPLIES@
    __ccspec_i=$((__ccspec_i + 1)) __ccspec_ahead=$((__ccspec_ahead + 1))
    ((__ccspec_i % 8)) || jobs -n >/dev/null 2>&1  # ended jobs leave the job table
  done
  IFS= read -r -n 1 __ccspec_said <&@SAID_R@ || break
  case $__ccspec_said in
    r) __ccspec_ahead=$((__ccspec_ahead - 1)) ;;
    w) IFS= read -r __ccspec_p <&@SAID_R@
       wait "$__ccspec_p" 2>/dev/null
       echo "=$__ccspec_p $?" >&@REPLIES@ ;;
    *) break ;;
  esac
done
