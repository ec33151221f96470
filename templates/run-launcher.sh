# ccspec's launcher for `run:` jobs on this machine (bash only): one long-lived bash that
# forks a subshell per job instead of starting a new bash (an exec costs about 1 ms here, a
# fork of this small shell a tenth of that). Started as
#   bash -c "$(cat run-launcher.sh)" bash WRAPPER_TEXT
# with stdin a pipe of launch records and fd 3 a pipe for the replies.
# Record: COMMAND \0 LOG \0 CWD \0 then environment changes, each NAME=VALUE \0 (export)
# or -NAME \0 (unset), ended by an empty field \0. Reply: the job's pid and a newline.
# Each job runs templates/run-wrapper.sh's text in its own process group (set -m), with
# the environment, signal dispositions and shell options a fresh `bash -c` would have.
# The launcher ends at end of input; its jobs go on (they are detached, like every job).
__ccspec_wrapper=$1
shift $#
set -m
while IFS= read -r -d '' __ccspec_cmd && IFS= read -r -d '' __ccspec_log && IFS= read -r -d '' __ccspec_cwd; do
  __ccspec_env=()
  while IFS= read -r -d '' __ccspec_e && [ -n "$__ccspec_e" ]; do __ccspec_env+=("$__ccspec_e"); done
  (
    set +m
    exec 3>&- </dev/null
    for __ccspec_e in "${__ccspec_env[@]}"; do
      case $__ccspec_e in -*) unset "${__ccspec_e#-}" ;; *) export "$__ccspec_e" ;; esac
    done
    set -- "$__ccspec_cmd" "$__ccspec_log" "$__ccspec_cwd"
    __ccspec_e=$__ccspec_wrapper
    unset __ccspec_env __ccspec_cmd __ccspec_log __ccspec_cwd __ccspec_wrapper
    eval "$__ccspec_e"
  ) &
  echo "$!" >&3
  disown "$!"  # bash still reaps it; no job table growing with every job
done
